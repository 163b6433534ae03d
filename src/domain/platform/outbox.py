"""Transactional outbox: live events and job messages written in the transaction that causes them.

A change and what it announces commit together or not at all. :func:`publish` (a live event)
and :func:`send` (a Dramatiq message) add an ``outbox`` row to the session; they cost no round
trip of their own (the rows go out with the session's flush at commit). A trigger notifies
``bg_outbox`` on commit; the :class:`Relay` (one leads among the API and worker processes)
wakes, reads pending rows of every tenant oldest first (``bg_outbox_claim``), writes them to
Redis in one ``MULTI``/``EXEC`` and deletes them (``bg_outbox_sent``). While Redis (or PostgreSQL) is away the rows wait and the relay
retries; when it is back the backlog drains in order.

Exactly once into Redis: each row's Redis write carries a marker key (``outbox:<row id>``, kept
a day) set in the same ``MULTI``; a row read again after a relay stopped between Redis and the
delete finds its marker and is only deleted. A job message's Dramatiq message id is the row id.
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
from pathlib import Path
from typing import Any

import dramatiq
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "bg_outbox"
BATCH = 500
POLL_SECONDS = 1.0  # a missed notification (the listener reconnecting) costs at most this
MARKER_TTL_SECONDS = 24 * 3600  # outlives a relay that stopped mid-batch, or a day-long database outage
_INSERT = text(
    "insert into outbox (tenant_id, id, kind, topic, queue, payload, delay_ms) "
    "values (:tenant_id, :id, :kind, :topic, :queue, cast(:payload as jsonb), :delay_ms)"
)


def _pending(session: AsyncSession) -> list[dict[str, Any]]:
    rows = session.info.get("outbox")
    if rows is None:
        rows = session.info["outbox"] = []
    return rows


def publish(session: AsyncSession, tenant_id: uuid.UUID | str, topic: str, payload: dict[str, Any]) -> None:
    """Publish a live event on the tenant's ``topic`` once this transaction commits (never if it
    rolls back; never lost while Redis is away)."""
    _pending(session).append(dict(
        tenant_id=str(tenant_id), id=str(uuid.uuid4()), kind="event", topic=topic, queue=None,
        payload=json.dumps(payload, default=str), delay_ms=None))


def send(session: AsyncSession, actor: dramatiq.Actor, tenant_id: uuid.UUID | str, *args: Any,
         delay_ms: int | None = None, **kwargs: Any) -> uuid.UUID:
    """Send a message to a tenant actor once this transaction commits; returns its message id."""
    message_id = uuid.uuid4()
    _pending(session).append(dict(
        tenant_id=str(tenant_id), id=str(message_id), kind="job", topic=actor.actor_name,
        queue=actor.queue_name, payload=json.dumps({"args": [str(tenant_id), *args], "kwargs": kwargs}, default=str),
        delay_ms=delay_ms))
    return message_id


async def flush(session: AsyncSession) -> None:
    """Write the session's pending outbox rows (one statement); :func:`tenant_session` calls it
    before committing."""
    rows = session.info.pop("outbox", None)
    if rows:
        await session.execute(_INSERT, rows)


async def pending_count() -> int:
    """Rows waiting, across tenants."""
    from domain.platform.db import anonymous_session

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


_dispatch_lua: str | None = None


def _dispatch_script() -> str:
    """Dramatiq's own enqueue script, so a job message and its marker go in one MULTI."""
    global _dispatch_lua
    if _dispatch_lua is None:
        import dramatiq.brokers.redis as rb

        _dispatch_lua = (Path(rb.__file__).parent / "redis" / "dispatch.lua").read_text()
    return _dispatch_lua


class Relay:
    """Publishes pending outbox rows to Redis. Runs as a task in a process's event loop.

    Every API and worker process runs one; the one whose connection holds the outbox advisory
    lock (``bg_outbox_lead``) drains, the others stand by and take over within
    :data:`POLL_SECONDS` when its connection ends. Per batch: one read, one ``MULTI``/``EXEC``
    to Redis, one delete. After taking over, or after a failure, the relay checks each row's
    marker before publishing it (a row may have reached Redis just before its relay stopped)
    until the backlog is empty.
    """

    def __init__(self, name: str = "relay") -> None:
        self.name = name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._leader = False
        self._verify = True
        self._script: Any = None
        self.published = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._close()

    async def _close(self) -> None:
        conn, self._conn, self._leader, self._verify = self._conn, None, False, True
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    async def _connect(self) -> Any:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        await self._close()
        import asyncpg

        from domain.config import get_settings

        conn = await asyncpg.connect(get_settings().app_database_url(), timeout=5,
                                     server_settings={"application_name": f"brandgraph-outbox-{self.name}"})
        await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
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
                    self._verify = True
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
                self._verify = True
                if self._conn is not None and self._conn.is_closed():
                    await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    async def drain_once(self) -> int:
        """Read one batch, publish it, delete it. Returns how many rows it read."""
        conn = await self._connect()
        raw = await conn.fetch("select * from bg_outbox_claim($1)", BATCH)
        if not raw:
            self._verify = False
            return 0
        rows = [Row(r["tenant_id"], r["id"], r["seq"], r["kind"], r["topic"], r["queue"],
                    json.loads(r["payload"]), r["delay_ms"]) for r in raw]
        await self._publish(rows)
        await conn.fetchval("select bg_outbox_sent($1::uuid[], $2::uuid[])",
                            [r.tenant_id for r in rows], [r.id for r in rows])
        self.published += len(rows)
        return len(rows)

    async def _publish(self, rows: list[Row]) -> None:
        from domain.platform import events
        from domain.platform import redis as redis_mod
        from domain.platform.jobs import broker

        client = redis_mod.client()
        todo = rows
        if self._verify:
            seen = await client.mget([marker(r.id) for r in rows])
            todo = [r for r, done in zip(rows, seen, strict=True) if not done]
            if not todo:
                return
        if self._script is None:
            self._script = client.register_script(_dispatch_script())
        pipe = client.pipeline(transaction=True)
        now_ms = int(time.time() * 1000)
        for r in todo:
            if r.kind == "event":
                events.add_to(pipe, r.tenant_id, r.topic, r.payload)
            else:
                queue, options = r.queue or "default", {"redis_message_id": str(r.id)}
                if r.delay_ms:
                    queue = f"{queue}.DQ"
                    options["eta"] = now_ms + r.delay_ms
                message = dramatiq.Message(queue_name=queue, actor_name=r.topic, args=tuple(r.payload["args"]),
                                           kwargs=r.payload.get("kwargs") or {}, options=options,
                                           message_id=str(r.id), message_timestamp=now_ms)
                # the arguments Dramatiq's RedisBroker.enqueue passes to its dispatch script
                await self._script(keys=[broker.namespace], args=[
                    "enqueue", now_ms, queue, broker.broker_id, broker.heartbeat_timeout,
                    broker.dead_message_ttl, "0", broker._max_unpack_size(), str(r.id),
                    message.encode().decode()], client=pipe)
            pipe.set(marker(r.id), "1", ex=MARKER_TTL_SECONDS)
        await pipe.execute()


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
