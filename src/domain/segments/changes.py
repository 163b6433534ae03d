"""What every area announces when it changed data that segment rules read (orders, events,
tags, attributes, consents, profiles, memberships), in the change's own transaction.

A change to some customers queues each of them for live evaluation: one row per customer in
``segment_pending_evaluations`` (a burst of changes coalesces into the row, its ``inputs`` the
union of what changed), and a message to :func:`evaluate_pending` (one per transaction, sent
``LIVE_SEGMENT_DEBOUNCE_MS`` after the commit) through the outbox, so nothing is lost and nothing
runs before the change commits. The evaluation takes every queued customer it finds, so a burst
is evaluated once; the messages that come after it find nothing to do. A change too wide to
queue customer by customer (a profile rebuild, a customer import) moves the change sequence of
the tenant's rule-based segments instead, which the scheduler refreshes.

It imports only the segment tables and the outbox, so any area may call it without an import
cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import (
    ARRAY,
    Select,
    Text,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.config import get_settings
from domain.platform import outbox
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.segments.models import PendingEvaluation, Segment, SegmentKind

NEXT_SEQ = func.nextval("segment_change_seq")


async def customers_changed(s: AsyncSession, tenant_id: uuid.UUID, customers: Iterable[uuid.UUID] | Select,
                            inputs: Iterable[str], *, delay_ms: int | None = None) -> None:
    """Queue ``customers`` (ids, or a SELECT of customer ids) for live evaluation of the segments
    that read ``inputs``. One statement; one message when a customer was not queued yet."""
    inputs = sorted(set(inputs))
    if not inputs:
        return
    if isinstance(customers, Select):
        ids = customers.subquery("changed")
        source = select(literal(tenant_id, UUID(as_uuid=True)), ids.c[0], literal(inputs, ARRAY(Text)))
    else:
        wanted = list(dict.fromkeys(customers))
        if not wanted:
            return
        source = select(literal(tenant_id, UUID(as_uuid=True)),
                        func.unnest(literal(wanted, ARRAY(UUID(as_uuid=True)))), literal(inputs, ARRAY(Text)))
    p = PendingEvaluation
    stmt = pg_insert(p).from_select(["tenant_id", "customer_id", "inputs"], source)
    stmt = stmt.on_conflict_do_update(index_elements=[p.tenant_id, p.customer_id], set_={
        "inputs": literal_column(
            "ARRAY(SELECT DISTINCT x FROM unnest(segment_pending_evaluations.inputs || excluded.inputs) AS x "
            "ORDER BY x)")})
    await s.execute(stmt)
    # one message per transaction, whether the row is new or not: a row updated here may be
    # skipped (locked) by an evaluation running meanwhile, so the message that follows this commit
    # is the one that finds it
    sent = s.info.setdefault("segment_evaluation_sent", set())
    if tenant_id not in sent or delay_ms is not None:
        sent.add(tenant_id)
        outbox.send(s, evaluate_pending, tenant_id,
                    delay_ms=delay_ms if delay_ms is not None else get_settings().live_segment_debounce_ms or None)


async def queue_dependents(s: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID,
                           customers: Iterable[uuid.UUID] | Select) -> None:
    """Members of ``segment_id`` changed: segments whose rules refer to it evaluate those
    customers again (only when such a segment exists)."""
    token = f"segment:{segment_id}"
    refers = await s.scalar(select(exists().where(
        Segment.tenant_id == tenant_id, Segment.archived_at.is_(None), Segment.kind != SegmentKind.STATIC.value,
        or_(Segment.inputs.is_(None), Segment.inputs.contains([token])))))
    if refers:
        await customers_changed(s, tenant_id, customers, [token])


async def segments_changed(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID | None = None) -> None:
    """A change too wide to queue per customer: the rule-based segments (of ``brand_id``, or of
    every brand) are stale until a refresh that starts after it."""
    conditions = [Segment.tenant_id == tenant_id, Segment.kind != SegmentKind.STATIC.value,
                  Segment.archived_at.is_(None)]
    if brand_id is not None:
        conditions.append(Segment.brand_id == brand_id)
    await s.execute(update(Segment).where(*conditions).values(
        change_seq=NEXT_SEQ, stale_since=func.coalesce(Segment.stale_since, func.now())))


async def segments_changed_everywhere(tenant_id: uuid.UUID) -> None:
    async with tenant_session(tenant_id) as s:
        await segments_changed(s, tenant_id, None)


@tenant_actor(queue_name="segments", max_retries=20, min_backoff=500, max_backoff=30_000, time_limit=120_000)
async def evaluate_pending(tenant_id: uuid.UUID) -> None:
    """Evaluate a micro-batch of the tenant's queued customers (another message follows while
    more are queued)."""
    # live evaluation compiles definitions and writes memberships (refresh, automations), modules
    # that import the areas which call this one: imported here to keep the import graph acyclic
    from domain.segments import live

    await live.evaluate_batch(tenant_id)
