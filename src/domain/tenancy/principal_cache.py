"""What authentication resolved, kept briefly in the API process so that a request needs no
database round trip to know who is calling.

Two things are cached, both per tenant: the :class:`Principal` a credential stands for (keyed by
an HMAC of the credential under a key made at process start, never the credential itself), and
the ids of the tenant's brands (what the ``X-Brand-Id`` check needs besides the principal, see
``brands.check_active_brand``). Entries live :data:`AUTH_CACHE_SECONDS` (settings, default 30 s;
0 turns the cache off), a JWT's no longer than its ``exp``; at most :data:`MAX_CREDENTIALS` and
:data:`MAX_TENANTS` of them, the least recently used going first. Failures are never cached.

**Invalidation.** Whatever changes what a cached answer says (a key revoked, a member added,
accepted, removed, a role changed, a brand granted or taken away, a brand created or archived)
calls :func:`invalidate` in its transaction. After the commit this process drops the tenant's
entries at once, and every API process is told on the Redis channel :data:`CHANNEL` twice: by
a ``PUBLISH`` sent straight away (fast), and by a row in the outbox that the relay publishes
(durable: it waits in PostgreSQL while Redis is away). A process drops the tenant's entries on
either message.

**Failing closed.** Each process follows the channel with :class:`Listener`, on its own
connection, which pings Redis every :data:`PING_SECONDS`. Redis answers a ping on that
connection after every message it published before it, so once the answer to a ping sent at
time T has come back, every invalidation published before T has been applied. The cache answers
(and takes new entries) only while such a T is less than :data:`SYNC_SECONDS` old: a listener
that is not connected, reconnecting, or not hearing back (Redis away, a network cut, a stalled
loop) turns the cache off, and every request authenticates against the database. When a
connection is (re)established the cache is emptied before it serves again. So a change reaches
every process within :data:`SYNC_SECONDS` of its commit (in practice within milliseconds).

A request that read the database before an invalidation arrived may not store what it read
afterwards: every drop advances :attr:`PrincipalCache.generation`, and an entry is stored only
if the generation read before the lookup is still current.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncSession

from domain.config import get_settings
from domain.platform import outbox
from domain.platform import redis as redis_mod
from domain.platform.db import after_commit
from domain.tenancy.policies import Principal

log = logging.getLogger(__name__)

CHANNEL = "auth:invalidate"  # Redis pub/sub; the message is a tenant id
PING_SECONDS = 0.25
SYNC_SECONDS = 1.0  # answers are served only while the listener heard Redis this recently
RECONNECT_AFTER_SECONDS = 5.0  # no answer to pings for this long: the connection is dead
MAX_CREDENTIALS = 10_000
MAX_TENANTS = 10_000

_KEY = secrets.token_bytes(32)  # per process: the cache's keys match nothing stored or logged


def credential_key(credential: str) -> bytes:
    """The cache key of a credential (an API key or a JWT): an HMAC under a per-process key."""
    return hmac.new(_KEY, credential.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class _Entry:
    tenant_id: uuid.UUID
    value: Any
    expires: float  # time.monotonic()


class PrincipalCache:
    """One per process (:data:`cache`). Every method is synchronous: nothing else runs on the
    event loop while one of them does."""

    def __init__(self) -> None:
        self._principals: OrderedDict[bytes, _Entry] = OrderedDict()
        self._brands: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._plans: OrderedDict[uuid.UUID, _Entry] = OrderedDict()  # domain/plans/quotas.tenant_plan
        self._keys_by_tenant: dict[uuid.UUID, set[bytes]] = {}
        self.generation = 0
        self._synced_at = -math.inf  # the send time of the last ping Redis answered
        self.hits = self.misses = 0

    # --- state ------------------------------------------------------------------------------

    @staticmethod
    def _ttl() -> float:
        return float(get_settings().auth_cache_seconds)

    def usable(self) -> bool:
        """Whether the cache may answer now: on, and the listener in step with Redis."""
        return self._ttl() > 0 and time.monotonic() - self._synced_at < SYNC_SECONDS

    def synced(self, sent_at: float) -> None:
        """Redis answered a ping sent at ``sent_at``: every invalidation before it is applied."""
        self._synced_at = max(self._synced_at, sent_at)

    def unsynced(self) -> None:
        """The listener lost Redis: answer nothing until it is back and the cache emptied."""
        self._synced_at = -math.inf

    # --- reading and storing -----------------------------------------------------------------

    def _get(self, table: OrderedDict[Any, _Entry], key: Hashable) -> Any | None:
        if not self.usable():
            return None
        found = table.get(key)
        if found is None:
            self.misses += 1
            return None
        if found.expires <= time.monotonic():
            self._forget(table, key)
            self.misses += 1
            return None
        table.move_to_end(key)
        self.hits += 1
        return found.value

    def _put(self, table: OrderedDict[Any, _Entry], key: Hashable, tenant_id: uuid.UUID, value: Any,
             generation: int, limit: int, expires_at: float | None) -> None:
        """Store unless something was dropped since ``generation`` was read, or the cache is not
        usable. ``expires_at`` (wall clock, a JWT's ``exp``) shortens the entry's life."""
        if generation != self.generation or not self.usable():
            return
        life = self._ttl()
        if expires_at is not None:
            life = min(life, expires_at - time.time())
        if life <= 0:
            return
        self._forget(table, key)
        table[key] = _Entry(tenant_id, value, time.monotonic() + life)
        if table is self._principals:
            self._keys_by_tenant.setdefault(tenant_id, set()).add(key)  # type: ignore[arg-type]
        while len(table) > limit:
            self._forget(table, next(iter(table)))

    def _forget(self, table: OrderedDict[Any, _Entry], key: Hashable) -> None:
        found = table.pop(key, None)
        if found is not None and table is self._principals:
            keys = self._keys_by_tenant.get(found.tenant_id)
            if keys is not None:
                keys.discard(key)  # type: ignore[arg-type]
                if not keys:
                    del self._keys_by_tenant[found.tenant_id]

    def principal(self, key: bytes) -> Principal | None:
        return self._get(self._principals, key)

    def put_principal(self, key: bytes, principal: Principal, generation: int, *,
                      expires_at: float | None = None) -> None:
        self._put(self._principals, key, principal.tenant_id, principal, generation, MAX_CREDENTIALS, expires_at)

    def brand_ids(self, tenant_id: uuid.UUID) -> frozenset[uuid.UUID] | None:
        return self._get(self._brands, tenant_id)

    def put_brand_ids(self, tenant_id: uuid.UUID, brand_ids: frozenset[uuid.UUID], generation: int) -> None:
        self._put(self._brands, tenant_id, tenant_id, brand_ids, generation, MAX_TENANTS, None)

    def plan(self, tenant_id: uuid.UUID) -> Any | None:
        return self._get(self._plans, tenant_id)

    def put_plan(self, tenant_id: uuid.UUID, plan: Any, generation: int) -> None:
        self._put(self._plans, tenant_id, tenant_id, plan, generation, MAX_TENANTS, None)

    # --- dropping ------------------------------------------------------------------------------

    def drop_tenant(self, tenant_id: uuid.UUID | str) -> None:
        try:
            tid = uuid.UUID(str(tenant_id))
        except ValueError:
            self.clear()  # not a tenant id: drop everything rather than guess
            return
        self.generation += 1
        for key in list(self._keys_by_tenant.pop(tid, ())):
            self._principals.pop(key, None)
        self._brands.pop(tid, None)
        self._plans.pop(tid, None)

    def clear(self) -> None:
        self.generation += 1
        self._principals.clear()
        self._brands.clear()
        self._plans.clear()
        self._keys_by_tenant.clear()

    def __len__(self) -> int:
        return len(self._principals)


cache = PrincipalCache()


# --- announcing a change ---------------------------------------------------------------------


def invalidate(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """The tenant's credentials, roles, brand grants or brands change in this transaction:
    once it commits, every API process drops what it cached for the tenant (this one at once,
    the others within :data:`SYNC_SECONDS`). Call it in every transaction that changes what
    authentication or the ``X-Brand-Id`` check reads (CONTRIBUTING.md)."""
    tid = str(tenant_id)
    done: set[str] = session.info.setdefault("auth_invalidated", set())
    if tid in done:
        return
    done.add(tid)
    outbox.broadcast(session, tid, CHANNEL, tid)

    async def announce() -> None:
        cache.drop_tenant(tid)
        _send(tid)

    after_commit(session, announce)


_sending: set[asyncio.Task[None]] = set()


def _send(tenant_id: str) -> None:
    """The fast path: PUBLISH now, without making the caller wait (the outbox row is the sure one)."""

    async def publish() -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(redis_mod.client().publish(CHANNEL, tenant_id), 1)

    task = asyncio.get_running_loop().create_task(publish())
    _sending.add(task)
    task.add_done_callback(_sending.discard)


# --- following the changes ----------------------------------------------------------------------


class Listener:
    """Follows :data:`CHANNEL` for this process and keeps :data:`cache` in step (the API runs one
    in its lifespan; without one the cache never answers)."""

    def __init__(self, target: PrincipalCache | None = None, *, url: str | None = None) -> None:
        self.cache = target if target is not None else cache
        self.url = url  # REDIS_URL's unless given
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None
        self.connections = 0  # how many times it (re)subscribed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="auth-cache-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2)  # never holds up the process's shutdown
        self._task = None
        self.cache.unsynced()
        self.cache.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), 1)
        self._client = None

    def _redis(self) -> Any:
        # its own client, which never reconnects behind our back: a connection that failed is
        # replaced by a new subscription, and the cache emptied, here
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.url or redis_mod.redis_url(), decode_responses=True,
                                                   retry=Retry(NoBackoff(), 0), socket_connect_timeout=2,
                                                   socket_timeout=RECONNECT_AFTER_SECONDS)
        return self._client

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = None
            connections = self.connections
            self.cache.unsynced()
            try:
                pubsub = self._redis().pubsub()
                await pubsub.subscribe(CHANNEL)
                await self._follow(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the cache stays off until it is back
                self.cache.unsynced()
                if self.connections != connections:  # it was following until now: a new outage
                    backoff = 0.05
                    log.warning("auth cache listener lost Redis (%s); authenticating against the database "
                                "until it is back", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(pubsub.aclose(), 1)

    async def _follow(self, pubsub: Any) -> None:
        first = True
        answered = time.monotonic()  # when the last ping was answered (or the connection began)
        next_ping = 0.0
        while True:
            now = time.monotonic()
            if now >= next_ping:
                if now - answered > RECONNECT_AFTER_SECONDS:
                    raise ConnectionError("Redis stopped answering pings")
                await pubsub.ping(repr(now))
                next_ping = now + PING_SECONDS
            message = await pubsub.get_message(timeout=max(0.0, next_ping - time.monotonic()))
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                self.cache.drop_tenant(message["data"])
            elif kind == "pong":
                try:
                    sent = float(message["data"])
                except (TypeError, ValueError):
                    continue
                if first:  # subscribed since before this ping: forget what may have been missed
                    first = False
                    self.connections += 1
                    self.cache.clear()
                answered = time.monotonic()
                self.cache.synced(sent)
