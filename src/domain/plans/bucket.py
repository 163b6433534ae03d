"""The API's leaky bucket: one per consumer (client app, else API key, else user), kept in Redis
and changed by one Lua script, so every API process draws from the same bucket atomically.

A bucket holds up to ``maximum`` cost points and refills at ``rate`` points a second (Redis's
own clock, ``TIME``, so API processes' clocks do not matter). :func:`take` takes an operation's
cost when the bucket holds it and refuses otherwise, taking nothing; :func:`charge` takes
without refusing (a subscription's events: the bucket may reach zero, never below). A bucket
left alone expires once it would be full again.

**When Redis is away** each process falls back to a bucket of its own with the same limits
(no request waits for Redis: the client has no retries and a 0.25 s timeout, and after a failure
Redis is not asked again for a second). Throttling then holds per process, so N API processes
admit up to N times the budget for that while; it never turns off (docs/security.md,
"Query cost and throttling").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from domain.platform import redis as redis_mod

log = logging.getLogger(__name__)

KEY_PREFIX = "bucket:"
FALLBACK_SECONDS = 1.0  # after a Redis failure, the local buckets answer this long
LOCAL_BUCKETS = 10_000

# KEYS[1] the bucket; ARGV cost, maximum, rate per second, force (1: take even past empty)
# returns {taken (1/0), points available after, as text}
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost, max, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'a', 't')
local avail, at = tonumber(v[1]), tonumber(v[2])
if avail == nil or at == nil then avail, at = max, now end
avail = math.min(max, avail + math.max(0, now - at) * rate / 1000)
local taken = 1
if cost > avail and ARGV[4] ~= '1' then taken = 0 else avail = math.max(0, avail - cost) end
redis.call('HSET', KEYS[1], 'a', tostring(avail), 't', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((max - avail) * 1000 / rate) + 1000)
return {taken, tostring(avail)}
"""


@dataclass(frozen=True)
class Status:
    taken: bool
    available: float  # after this operation
    maximum: int
    rate: int
    cost: int

    @property
    def retry_after(self) -> int:
        """Whole seconds until the bucket holds ``cost`` (at least 1)."""
        return max(1, math.ceil((self.cost - self.available) / self.rate))


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aioredis.Redis, object]] = (
    weakref.WeakKeyDictionary())
_down_until = 0.0
_local: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (available, monotonic time)


def _script() -> object:
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        client = aioredis.Redis.from_url(redis_mod.redis_url(), decode_responses=True, socket_timeout=0.25,
                                         socket_connect_timeout=0.25, retry=Retry(NoBackoff(), 0))
        found = (client, client.register_script(SCRIPT))
        _clients[loop] = found
    return found[1]


def _take_locally(key: str, cost: int, maximum: int, rate: int, force: bool) -> Status:
    now = time.monotonic()
    avail, at = _local.get(key, (float(maximum), now))
    avail = min(maximum, avail + max(0.0, now - at) * rate)
    taken = force or cost <= avail
    if taken:
        avail = max(0.0, avail - cost)
    _local[key] = (avail, now)
    _local.move_to_end(key)
    while len(_local) > LOCAL_BUCKETS:
        _local.popitem(last=False)
    return Status(taken, avail, maximum, rate, cost)


async def take(key: str, cost: int, maximum: int, rate: int, *, force: bool = False) -> Status:
    """Take ``cost`` points from the bucket ``key`` if it holds them (always, with ``force``)."""
    global _down_until
    if time.monotonic() >= _down_until:
        try:
            taken, avail = await _script()(keys=[KEY_PREFIX + key], args=[cost, maximum, rate, int(force)])
            return Status(bool(taken), float(avail), maximum, rate, cost)
        except (RedisError, OSError) as exc:
            _down_until = time.monotonic() + FALLBACK_SECONDS
            log.warning("API bucket: Redis unavailable (%s), using this process's buckets", type(exc).__name__)
    return _take_locally(key, cost, maximum, rate, force)


async def charge(key: str, cost: int, maximum: int, rate: int) -> Status:
    return await take(key, cost, maximum, rate, force=True)


async def close() -> None:
    found = _clients.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found[0].aclose()
