from __future__ import annotations

import uuid
from datetime import datetime

from domain.platform import redis as redis_mod
from domain.platform.broker import enqueue, tenant_actor
from domain.tenancy import api_keys

TOUCH_EVERY_SECONDS = 60


@tenant_actor(queue_name="default", max_retries=3, time_limit=10_000, max_age=3_600_000)
async def record_api_key_use(tenant_id: uuid.UUID, key_id: str, used_at: str) -> None:
    await api_keys.touch(tenant_id, uuid.UUID(key_id), datetime.fromisoformat(used_at))


async def note_api_key_use(tenant_id: uuid.UUID, key_id: uuid.UUID, used_at: datetime) -> None:
    """Queue a last-used update, at most once a minute per key (a Redis flag throttles it)."""
    fresh = await redis_mod.client().set(f"apikey-used:{key_id}", "1", nx=True, ex=TOUCH_EVERY_SECONDS)
    if fresh:
        await enqueue(record_api_key_use, tenant_id, str(key_id), used_at.isoformat())
