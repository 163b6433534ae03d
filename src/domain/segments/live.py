"""Live evaluation: the customers queued by :mod:`domain.segments.changes`, evaluated in
micro-batches against the segments whose definitions read what changed.

One transaction per batch claims (``FOR UPDATE SKIP LOCKED``) and deletes up to :data:`BATCH`
queued customers, evaluates them, and commits the result with the claim, so a worker that dies
mid-batch leaves them queued. For each live dynamic segment that reads one of the batch's inputs
(``segments.inputs``, recorded when the definition is compiled), the refresh's own statement
(:func:`domain.segments.refresh.apply`) runs with the refresh's own compiled SQL, restricted to
the batch's customers: one definition of membership for both. Entries and exits carry the cause
``change``; counters move; ``segmentMembershipChanged`` fires and the follow-up job writes the
timelines and runs the automations, as after a refresh. Segments not evaluated live (scheduled
dynamic segments, lookalikes) that read what changed become stale (their change sequence moves).

A live evaluation holds the segment's refresh lock in shared mode (evaluations run side by side;
a refresh excludes them). A segment whose refresh is running is not waited for: its customers go
back in the queue (``recheck:<segment>``) and are evaluated after the refresh commits, so a
change committed during a refresh is evaluated after it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.customers.models import Customer
from domain.platform import outbox
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.segments import compiler, dsl, service
from domain.segments.changes import NEXT_SEQ, customers_changed, evaluate_pending
from domain.segments.models import MembershipCause, PendingEvaluation, Segment, SegmentKind
from domain.segments.refresh import LOCK_KEY, RefreshResult, announce, apply

log = logging.getLogger(__name__)

BATCH = 500
RECHECK_DELAY_MS = 1_000  # a segment being refreshed: look again after this


async def evaluate_batch(tenant_id: uuid.UUID, limit: int = BATCH) -> int:
    """Evaluate up to ``limit`` queued customers of the tenant; returns how many were taken."""
    p = PendingEvaluation
    async with tenant_session(tenant_id) as s:
        rows = (await s.execute(select(p.customer_id, p.inputs).where(p.tenant_id == tenant_id)
                                .order_by(p.seq).limit(limit).with_for_update(skip_locked=True))).all()
        if not rows:
            return 0
        customers = [r.customer_id for r in rows]
        await s.execute(delete(p).where(p.tenant_id == tenant_id, p.customer_id.in_(customers)))
        inputs = set().union(*(r.inputs for r in rows))
        await evaluate(s, tenant_id, customers, inputs, MembershipCause.CHANGE)
        if len(rows) == limit:  # more may be waiting: another message, with this commit
            outbox.send(s, evaluate_pending, tenant_id)
    return len(rows)


async def evaluate(s: AsyncSession, tenant_id: uuid.UUID, customers: list[uuid.UUID], inputs: set[str],
                   cause: MembershipCause, *, only: list[Segment] | None = None,
                   now: datetime | None = None) -> dict[uuid.UUID, RefreshResult]:
    """Evaluate ``customers`` against the segments that read ``inputs`` (or against ``only``),
    in the caller's transaction, as of ``now``; returns the segments whose members changed."""
    if only is not None:
        segments = only
    else:
        rechecks = {t.removeprefix("recheck:") for t in inputs if t.startswith("recheck:")}
        recheck_ids = [uuid.UUID(x) for x in rechecks]
        reads = or_(Segment.inputs.is_(None), Segment.inputs.overlap(sorted(inputs)), Segment.id.in_(recheck_ids))
        segments = list((await s.scalars(select(Segment).where(
            Segment.tenant_id == tenant_id, Segment.kind != SegmentKind.STATIC.value, Segment.archived_at.is_(None),
            Segment.is_active.is_(True), reads).order_by(Segment.id))).all())
    live = [x for x in segments if x.kind == SegmentKind.DYNAMIC.value and x.live and x.last_refreshed_at is not None]
    others = [x.id for x in segments if x.kind == SegmentKind.LOOKALIKE.value or not x.live]
    if others:  # not evaluated live: stale until a refresh that starts after this commit
        await s.execute(update(Segment).where(Segment.tenant_id == tenant_id, Segment.id.in_(others)).values(
            change_seq=NEXT_SEQ, stale_since=func.coalesce(Segment.stale_since, func.now())))
    changed: dict[uuid.UUID, RefreshResult] = {}
    if not live:
        return changed
    context = await service.dsl_context(s, tenant_id)
    # one statement: the time of this evaluation, the shared locks, and which segments others refer to
    ids = [seg.id for seg in live]
    at, held, referred = (await s.execute(text(
        "SELECT clock_timestamp(), "
        "ARRAY(SELECT x FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS u(x, i) "
        "      WHERE pg_try_advisory_xact_lock_shared(hashtextextended(:prefix || x::text, 0)) ORDER BY i), "
        "ARRAY(SELECT DISTINCT r FROM segments g, unnest(coalesce(g.inputs, ARRAY['*'])) AS r "
        "      WHERE g.tenant_id = :t AND g.archived_at IS NULL AND g.kind <> 'static' "
        "        AND (r LIKE 'segment:%' OR r = '*'))"),
        {"ids": ids, "t": tenant_id, "prefix": LOCK_KEY.format("")})).one()
    held, referred = set(held), set(referred)
    waiting = [x for x in ids if x not in held]  # a refresh holds these: evaluated after it commits
    for seg in live:
        if seg.id not in held:
            continue
        group = dsl.parse(seg.definition, context)
        scope = service.scope_for(seg, tenant_id)
        if now is not None:
            scope.now = now
        target = compiler.members_select(group, scope).where(Customer.id.in_(customers))
        entered, exited = await apply(s, seg, target, at, cause, customers)
        if not entered and not exited:
            continue
        total = await s.scalar(update(Segment).where(Segment.tenant_id == tenant_id, Segment.id == seg.id).values(
            member_count=Segment.member_count + len(entered) - len(exited)).returning(Segment.member_count))
        result = RefreshResult(seg.id, len(entered), len(exited), total, at, 0)
        announce(s, tenant_id, result)
        changed[seg.id] = result
        if "*" in referred or compiler.segment_input(seg.id) in referred:  # others read this one
            await customers_changed(s, tenant_id, [*entered, *exited], [compiler.segment_input(seg.id)])
    if waiting:
        await customers_changed(s, tenant_id, customers, [compiler.recheck_input(x) for x in waiting],
                                delay_ms=RECHECK_DELAY_MS)
    return changed


TIME_MARGIN = timedelta(minutes=1)  # each sweep looks this far behind the last one as well


@tenant_actor(queue_name="segments", max_retries=5, time_limit=600_000)
async def sweep_time_rules(tenant_id: uuid.UUID) -> None:
    """The scheduler's minute pass: window edges the clock crossed, in live segments."""
    await sweep(tenant_id)


async def sweep(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """Time rules change with the clock alone: for each live segment with one, evaluate (cause
    ``time``) only the customers for whom a window's edge passed since the last sweep (or the
    last refresh, which saw everything up to its own time): a timestamp that left a
    ``within_days`` window or reached an ``older_than_days`` one, a birthday. Returns how many
    customers were evaluated."""
    now = now or datetime.now(UTC)
    evaluated = 0
    async with tenant_session(tenant_id) as s:
        segments = list((await s.scalars(select(Segment).where(
            Segment.tenant_id == tenant_id, Segment.kind == SegmentKind.DYNAMIC.value, Segment.live.is_(True),
            Segment.is_active.is_(True), Segment.archived_at.is_(None), Segment.last_refreshed_at.is_not(None),
            Segment.inputs.contains([compiler.TIME])).order_by(Segment.id))).all())
        if not segments:
            return 0
        context = await service.dsl_context(s, tenant_id)
        for seg in segments:
            since = max(seg.time_checked_at or seg.last_refreshed_at, seg.last_refreshed_at) - TIME_MARGIN
            if since >= now:
                continue
            scope = service.scope_for(seg, tenant_id)
            scope.now = now
            candidates = compiler.edge_candidates(dsl.parse(seg.definition, context), scope, since, now)
            customers = list(dict.fromkeys(await s.scalars(candidates))) if candidates is not None else []
            if customers:
                await evaluate(s, tenant_id, customers, set(), MembershipCause.TIME, only=[seg], now=now)
                evaluated += len(customers)
            await s.execute(update(Segment).where(Segment.tenant_id == tenant_id, Segment.id == seg.id)
                            .values(time_checked_at=now))
    return evaluated


async def requeue_pending(tenant_id: uuid.UUID, older_than_seconds: int = 60) -> bool:
    """The scheduler's backstop: customers queued for a while (their message lost with a Redis
    that lost its data) get a message again."""
    p = PendingEvaluation
    async with tenant_session(tenant_id) as s:
        late = await s.scalar(select(func.count()).select_from(
            select(p.customer_id).where(p.tenant_id == tenant_id,
                                        p.queued_at < func.now() - text(f"interval '{int(older_than_seconds)} seconds'"))
            .limit(1).subquery()))
        if late:
            outbox.send(s, evaluate_pending, tenant_id)
    return bool(late)
