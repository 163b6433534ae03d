"""Redis clients, one per event loop (a client's connections belong to the loop that made them)."""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from domain.config import get_settings

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def redis_url() -> str:
    return get_settings().require_redis_url()


def retry_policy() -> Retry:
    """A few quick retries (up to 0.2 s apart): a command fails fast while Redis is away, and
    nothing waits long once it is back (callers that must not lose work retry on their own)."""
    return Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), 3)


def client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        found = aioredis.Redis.from_url(redis_url(), decode_responses=True, retry=retry_policy(),
                                        socket_connect_timeout=2)
        _clients[loop] = found
    return found


def sync_client() -> redis.Redis:
    return redis.Redis.from_url(redis_url(), decode_responses=True)


async def close_client() -> None:
    found = _clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()
