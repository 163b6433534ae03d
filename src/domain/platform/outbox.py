"""Transactional outbox: live events and job messages written in the transaction that causes them.

A change and what it announces commit together or not at all. :func:`publish` (a live event)
and :func:`send` (a Dramatiq message) add an ``outbox`` row to the session; they cost no round
trip of their own (the rows go out with the session's flush at commit). Once the transaction
has committed, :func:`wake` rouses the relays (see there); the relay
(:mod:`domain.platform.outbox_relay`, one leads among the API and worker processes) wakes,
reads pending rows of every tenant oldest first, writes them to Redis and deletes them. While
Redis (or PostgreSQL) is away the rows wait and the relay retries; when it is back the backlog
drains in order.

This module owns the writing side: the rows a transaction adds, their flush before the commit
(:func:`domain.platform.db.tenant_session` calls :func:`flush` and :func:`wake`), and the
wake-up of the relays running in this process (:func:`register`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any, Protocol

import dramatiq
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.platform import redis as redis_mod

WAKE_CHANNEL = "outbox:wake"  # Redis pub/sub: a transaction that wrote outbox rows committed
# an event row whose topic starts so is a Redis PUBLISH on the rest of the topic, not a stream entry
BROADCAST = "broadcast:"
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


def broadcast(session: AsyncSession, tenant_id: uuid.UUID | str, channel: str, message: str) -> None:
    """``PUBLISH channel message`` in Redis once this transaction commits (never if it rolls
    back; never lost while Redis is away). Pub/sub reaches only the processes subscribed when the
    relay publishes: for notices a process that was not subscribed can do without (it must
    assume it missed some, as the auth cache's listener does)."""
    _pending(session).append(dict(
        tenant_id=str(tenant_id), id=str(uuid.uuid4()), kind="event", topic=BROADCAST + channel, queue=None,
        payload=json.dumps({"message": message}), delay_ms=None))


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
        session.info["outbox_written"] = True


# Waking the relay. A NOTIFY in the writing transaction (a trigger) would be the obvious way,
# but PostgreSQL serialises the commits of transactions that queued a notification on one
# global lock, held through the commit's WAL flush: with 8 concurrent writers it cut the write
# rate by about 30 % (bench/outbox_notify_bench.py). So the wake-up goes after the commit,
# outside PostgreSQL: relays in this process are woken directly, the others through a Redis
# PUBLISH, sent without making the request wait. Sent after the commit, it cannot arrive before
# the rows are visible; lost (Redis away), the relay's poll finds the rows within its POLL_SECONDS.
# When the leading relay runs in this process, the direct wake-up is all it takes.
class LocalRelay(Protocol):
    """What :func:`wake` needs of a relay running in this process."""

    @property
    def leading(self) -> bool: ...

    def poke(self) -> None: ...


_local: set[LocalRelay] = set()
_waking: set[asyncio.Task[None]] = set()


def register(relay: LocalRelay) -> None:
    """A relay started in this process: :func:`wake` rouses it directly."""
    _local.add(relay)


def unregister(relay: LocalRelay) -> None:
    _local.discard(relay)


def wake() -> None:
    """Rouse the relays: a transaction that wrote outbox rows has committed. Never raises, never
    waits."""
    try:
        local = list(_local)  # relays start and stop on other threads (the worker's)
    except RuntimeError:
        local = []
    for relay in local:
        relay.poke()
    if any(relay.leading for relay in local):
        return  # the leader is here: no one else needs waking
    try:
        task = asyncio.get_running_loop().create_task(_publish_wake())
    except RuntimeError:  # no event loop: the poll will do
        return
    _waking.add(task)
    task.add_done_callback(_waking.discard)


async def _publish_wake() -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(redis_mod.client().publish(WAKE_CHANNEL, "1"), 1)
