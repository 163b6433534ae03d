"""The outbox relay: publishes the outbox rows that committed transactions wrote to Redis.

The :class:`Relay` (one leads among the API and worker processes) wakes on
:func:`domain.platform.outbox.wake`, reads pending rows of every tenant oldest first
(``bg_outbox_claim``), writes them to Redis with one script and deletes them
(``bg_outbox_sent``). While Redis (or PostgreSQL) is away the rows wait and the relay retries;
when it is back the backlog drains in order. The API runs one in its lifespan; each worker
process runs one on a thread (:class:`OutboxRelay`, added by :mod:`domain.worker`).

Once into Redis: the script writes a row's message or event only if the row's marker key
(``outbox:<row id>``, kept a day) is absent, and sets the marker with it, atomically. A batch
published again (a relay that stopped between Redis and the delete, a lost reply, a leader
that changed mid-batch) is then only deleted. A job message's Dramatiq message id is the row id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import dramatiq
import redis.asyncio as aioredis
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import text

from domain.config import get_settings
from domain.platform import events, outbox
from domain.platform import redis as redis_mod
from domain.platform.broker import broker
from domain.platform.db import anonymous_session

log = logging.getLogger(__name__)

BATCH = 500
POLL_SECONDS = 1.0  # a missed wake-up (Redis away, the subscriber reconnecting) costs at most this
MARKER_TTL_SECONDS = 24 * 3600  # outlives a relay that stopped mid-batch, or a day-long database outage


async def pending_count() -> int:
    """Rows waiting, across tenants."""
    async with anonymous_session() as s:
        return int(await s.scalar(text("select bg_outbox_pending()")))



# --- the relay -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    tenant_id: uuid.UUID
    id: uuid.UUID
    seq: int
    kind: str
    topic: str
    queue: str | None
    payload: dict[str, Any]
    delay_ms: int | None


def marker(row_id: uuid.UUID | str) -> str:
    return f"outbox:{row_id}"


# Publishes a batch atomically, each row at most once: a row whose marker exists was published
# before (by this relay before a retry, or by another that led until a moment ago) and is
# skipped; otherwise its message or event is written, then its marker. The check and the write
# are one script, so nothing can come between them. Per row: KEYS the marker, then for a job
# Dramatiq's queue list and message hash, for an event the stream (twice); ARGV kind, id, and
# the message and "" (job) or the channel and the payload (event). Write first, marker last: a
# script stopped by an error between the two leaves the row to be written again, not marked
# and lost. A broadcast (``outbox.broadcast``) is a PUBLISH: ARGV "publish", id, the channel,
# the message (its two other keys are the stream's, unused).
_PUBLISH_LUA = """
local ttl, maxlen = ARGV[1], ARGV[2]
local written = 0
for i = 0, #KEYS / 3 - 1 do
  local k, a = i * 3, 2 + i * 4
  if redis.call("exists", KEYS[k + 1]) == 0 then
    if ARGV[a + 1] == "job" then
      -- what Dramatiq's dispatch.lua does for "enqueue"
      redis.call("hset", KEYS[k + 3], ARGV[a + 2], ARGV[a + 3])
      redis.call("rpush", KEYS[k + 2], ARGV[a + 2])
    elseif ARGV[a + 1] == "publish" then
      redis.call("publish", ARGV[a + 3], ARGV[a + 4])
    else
      redis.call("xadd", KEYS[k + 2], "MAXLEN", "~", maxlen, "*", "c", ARGV[a + 3], "d", ARGV[a + 4])
    end
    redis.call("set", KEYS[k + 1], "1", "EX", ttl)
    written = written + 1
  end
end
return written
"""


def publish_script_arguments(rows: list[Row], now_ms: int) -> tuple[list[str], list[Any]]:
    """The keys and arguments of :data:`_PUBLISH_LUA` for ``rows``.

    A job message is the one ``RedisBroker.enqueue`` would write: on its queue (``<queue>.DQ``
    with an ``eta`` option when delayed) in the broker's namespace, the encoded message in the
    hash ``<namespace>:<queue>.msgs`` under its Redis message id (here the row id, unique per
    row), and that id pushed on the list ``<namespace>:<queue>``. Dramatiq's dispatch script also
    records the calling broker's heartbeat on every call; that serves only a consumer's acks,
    and the relay consumes nothing, so it is left out."""
    keys: list[str] = []
    args: list[Any] = [MARKER_TTL_SECONDS, events.STREAM_MAXLEN]
    for r in rows:
        if r.kind == "event" and r.topic.startswith(outbox.BROADCAST):
            keys += [marker(r.id), events.STREAM, events.STREAM]
            args += ["publish", str(r.id), r.topic[len(outbox.BROADCAST):], str(r.payload.get("message", ""))]
            continue
        if r.kind == "event":
            c, d = events.entry(r.tenant_id, r.topic, r.payload)
            keys += [marker(r.id), events.STREAM, events.STREAM]
            args += ["event", str(r.id), c, d]
            continue
        queue, options = r.queue or "default", {"redis_message_id": str(r.id)}
        if r.delay_ms:
            queue = dq_name(queue)
            options["eta"] = now_ms + r.delay_ms
        message = dramatiq.Message(queue_name=queue, actor_name=r.topic, args=tuple(r.payload["args"]),
                                   kwargs=r.payload.get("kwargs") or {}, options=options,
                                   message_id=str(r.id), message_timestamp=now_ms)
        full = f"{broker.namespace}:{queue}"
        keys += [marker(r.id), full, f"{full}.msgs"]
        args += ["job", str(r.id), message.encode().decode(), ""]
    return keys, args


class Relay:
    """Publishes pending outbox rows to Redis. Runs as a task in a process's event loop.

    Every API and worker process runs one; the one whose connection holds the outbox advisory
    lock (``bg_outbox_lead``) drains, the others stand by and take over within
    :data:`POLL_SECONDS` when its connection ends. It wakes on :func:`~domain.platform.outbox.wake` (a
    commit in this process, or one in another announced on Redis), and polls every :data:`POLL_SECONDS`. Per batch: one read, one script in Redis
    (:data:`_PUBLISH_LUA`, which skips a row already published), one delete. Its Redis client
    never retries a command on its own: a failed batch is read again and goes through the
    script again, which makes the repeat harmless.
    """

    def __init__(self, name: str = "relay") -> None:
        self.name = name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._leader = False
        self._redis: Any = None
        self._script: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self._wake_redis: Any = None
        self.published = 0

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")
            self._listener = asyncio.create_task(self._listen(), name=f"outbox-{self.name}-wake")
            outbox.register(self)

    @property
    def leading(self) -> bool:
        """Whether this relay holds the lead, as far as it knows (its connection still open)."""
        conn = self._conn
        return self._leader and conn is not None and not conn.is_closed()

    def poke(self) -> None:
        """Wake this relay now, from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    async def _listen(self) -> None:
        """Follow the Redis wake-ups of other processes' commits (reconnecting when Redis was away)."""
        while True:
            pubsub = None
            try:
                pubsub = self._pubsub_client().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(outbox.WAKE_CHANNEL)
                self._wake.set()  # anything committed while not subscribed
                async for _message in pubsub.listen():
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.5)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(pubsub.aclose(), 1)

    async def stop(self) -> None:
        outbox.unregister(self)
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._listener = None
        await self._close()
        for client in (self._redis, self._wake_redis):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._redis = self._script = self._wake_redis = None

    async def _close(self) -> None:
        conn, self._conn, self._leader = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def _connect(self) -> Any:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        await self._close()
        conn = await asyncpg.connect(get_settings().app_database_url(), timeout=5,
                                     server_settings={"application_name": f"brandgraph-outbox-{self.name}"})
        self._conn = conn
        return conn

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                conn = await self._connect()
                self._wake.clear()
                if not self._leader:
                    self._leader = bool(await conn.fetchval("select bg_outbox_lead()"))
                if self._leader:
                    while await self.drain_once() >= BATCH:
                        pass
                backoff = 0.05
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or PostgreSQL away: the rows wait; try again soon
                log.warning("outbox relay waiting: %s", type(exc).__name__, extra={"error": str(exc)[:200]})
                if self._conn is not None and self._conn.is_closed():
                    await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    async def drain_once(self) -> int:
        """Read one batch, publish it, delete it. Returns how many rows it read."""
        conn = await self._connect()
        raw = await conn.fetch("select * from bg_outbox_claim($1)", BATCH)
        if not raw:
            return 0
        rows = [Row(r["tenant_id"], r["id"], r["seq"], r["kind"], r["topic"], r["queue"],
                    json.loads(r["payload"]), r["delay_ms"]) for r in raw]
        await self.publish(rows)
        await conn.fetchval("select bg_outbox_sent($1::uuid[], $2::uuid[])",
                            [r.tenant_id for r in rows], [r.id for r in rows])
        self.published += len(rows)
        return len(rows)

    def _client(self) -> Any:
        if self._redis is None:
            # no retry in the client: redis-py would re-send a script (or a MULTI/EXEC) whose
            # reply was lost; the relay repeats the whole batch instead, through the script
            self._redis = aioredis.Redis.from_url(redis_mod.redis_url(), decode_responses=True,
                                                  retry=Retry(NoBackoff(), 0), socket_connect_timeout=2,
                                                  socket_timeout=10)
            self._script = self._redis.register_script(_PUBLISH_LUA)
        return self._redis

    def _pubsub_client(self) -> Any:
        # its own client: a subscription waits on its socket for as long as no one commits
        if self._wake_redis is None:
            self._wake_redis = aioredis.Redis.from_url(redis_mod.redis_url(), decode_responses=True,
                                                       socket_connect_timeout=2, socket_timeout=None,
                                                       health_check_interval=30)
        return self._wake_redis

    async def publish(self, rows: list[Row]) -> int:
        """Write ``rows`` to Redis, each at most once however often this is called (by this
        relay or another); returns how many were written now."""
        self._client()
        keys, args = publish_script_arguments(rows, int(time.time() * 1000))
        return int(await self._script(keys=keys, args=args))


def run_relay_thread(name: str) -> threading.Thread:
    """A relay on a daemon thread with its own event loop (the worker's)."""

    async def main() -> None:
        relay = Relay(name)
        relay.start()
        assert relay._task is not None
        await relay._task

    thread = threading.Thread(target=asyncio.run, args=(main(),), name=f"outbox-{name}", daemon=True)
    thread.start()
    return thread



class OutboxRelay(Middleware):
    """Runs the relay in each worker process, on a thread with its own event loop, so job
    messages and events leave even when no API process runs (:mod:`domain.worker` adds it)."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        run_relay_thread("worker")
