from __future__ import annotations

import uuid
from datetime import datetime

from domain.platform.broker import tenant_actor
from domain.tenancy import api_keys


# API key use is recorded in batches by the API itself now (domain/tenancy/key_usage.py); this
# actor stays registered for the messages queued before that.
@tenant_actor(queue_name="default", max_retries=3, time_limit=10_000, max_age=3_600_000)
async def record_api_key_use(tenant_id: uuid.UUID, key_id: str, used_at: str) -> None:
    await api_keys.touch(tenant_id, uuid.UUID(key_id), datetime.fromisoformat(used_at))
