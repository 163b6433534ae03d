from __future__ import annotations

import logging
import uuid

from domain.audit import service
from domain.config import get_settings
from domain.platform.broker import tenant_actor

log = logging.getLogger(__name__)


@tenant_actor(queue_name="maintenance", max_retries=5, time_limit=600_000, max_age=12 * 3_600_000)
async def prune_audit_log(tenant_id: uuid.UUID) -> None:
    removed = await service.prune(tenant_id, get_settings().audit_retention_days)
    log.info("audit log pruned", extra={"tenant_id": str(tenant_id), "removed": removed})
