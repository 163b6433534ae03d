"""Redis clients, one per event loop (a client's connections belong to the loop that made them)."""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis

from domain.config import get_settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def redis_url() -> str:
    return get_settings().require_redis_url()


def client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = aioredis.Redis.from_url(redis_url(), decode_responses=True)
        _clients[loop] = found
    return found


def sync_client() -> redis.Redis:
    return redis.Redis.from_url(redis_url(), decode_responses=True)


async def close_client() -> None:
    found = _clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()
