"""Automatic persisted queries (Apollo's protocol): query texts registered by their SHA-256, in
Redis, so every API process finds what any of them stored.

A text is stored under ``apq:<tenant>:<sha256 hex>`` for ``APQ_TTL_SECONDS`` (refreshed by each
registration, not by reads), and only when it is at most ``APQ_MAX_QUERY_BYTES`` of UTF-8 (a
longer one still runs, sent in full each time). Keys carry the tenant, so one tenant cannot
learn whether another ran a text. Each process also keeps the last 1024 texts it read or stored:
a hash names one text only, so a copy can never be wrong, only outlive Redis's expiry.

While Redis is away a hash is not found and nothing is stored (logged): Apollo's client then
sends the query in full, which runs; nothing fails for it.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict

from redis.exceptions import RedisError

from domain.config import get_settings
from domain.platform import redis as redis_mod

log = logging.getLogger(__name__)

_LOCAL_MAX = 1024
_local: OrderedDict[tuple[uuid.UUID, str], str] = OrderedDict()


def key(tenant_id: uuid.UUID, sha256: str) -> str:
    return f"apq:{tenant_id}:{sha256}"


def _remember(tenant_id: uuid.UUID, sha256: str, text: str) -> None:
    _local[(tenant_id, sha256)] = text
    _local.move_to_end((tenant_id, sha256))
    while len(_local) > _LOCAL_MAX:
        _local.popitem(last=False)


async def get(tenant_id: uuid.UUID, sha256: str) -> str | None:
    found = _local.get((tenant_id, sha256))
    if found is not None:
        _local.move_to_end((tenant_id, sha256))
        return found
    try:
        text = await redis_mod.client().get(key(tenant_id, sha256))
    except (RedisError, OSError) as exc:
        log.warning("persisted query lookup failed, answering not found: %s", type(exc).__name__)
        return None
    if text is not None:
        _remember(tenant_id, sha256, text)
    return text


def storable(text: str) -> bool:
    return len(text.encode("utf-8")) <= get_settings().apq_max_query_bytes


async def put(tenant_id: uuid.UUID, sha256: str, text: str) -> bool:
    """Store a text whose hash the caller verified; False when it is too long to keep."""
    if not storable(text):
        return False
    try:
        await redis_mod.client().set(key(tenant_id, sha256), text, ex=get_settings().apq_ttl_seconds)
    except (RedisError, OSError) as exc:  # the operation ran; only its registration is lost
        log.warning("persisted query not stored: %s", type(exc).__name__)
        return False
    _remember(tenant_id, sha256, text)
    return True
