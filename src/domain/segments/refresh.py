"""Refreshing a segment, set-based inside PostgreSQL, in one statement.

The target set (rules, lookalike ranking) is a CTE; one data-modifying CTE closes the open
memberships of those who left (exited_at), another opens one for those who entered
(entered_at); every closed row stays as history. No per-customer Python loop. The same statement
(:func:`apply`) restricted to some customers is live evaluation's (:mod:`domain.segments.live`).
Refreshes of one segment are serialised by an advisory lock, never a row lock, so orders and
events never wait for one; live evaluations hold it shared. A refresh records the change
sequence it started from, so a change it did not see leaves the segment stale. Afterwards (a follow-up job) the changes land on the customers'
timelines and feed the segment's automations, and a ``segmentMembershipChanged`` event goes out.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.automations.running import run_for_changes
from domain.config import get_settings
from domain.errors import DomainError, ErrorCode, InvalidState
from domain.insights import alerts
from domain.jobs import service as jobs
from domain.jobs.models import Job
from domain.platform import outbox
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.segments import compiler, dsl, service
from domain.segments.changes import queue_dependents
from domain.segments.models import MembershipCause, Segment, SegmentKind, SegmentMembership
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline.models import TimelineEntry
from domain.timeline.service import Kind

log = logging.getLogger(__name__)


def topic(segment_id: uuid.UUID) -> str:
    return f"segment:{segment_id}"


@dataclass
class RefreshResult:
    segment_id: uuid.UUID
    entered: int
    exited: int
    total: int
    at: datetime
    duration_ms: int


LOCK_KEY = "segment-refresh:{}"


async def refresh(tenant_id: uuid.UUID, segment_id: uuid.UUID) -> RefreshResult | None:
    """Bring the membership in line with the definition; None for an archived segment."""
    started = time.perf_counter()
    async with tenant_session(tenant_id) as s:
        # exclusive: one refresh at a time, and live evaluations (which share it) wait
        await s.execute(text("select pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                        {"k": LOCK_KEY.format(segment_id)})
        seg = await s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id))
        if seg is None or seg.archived_at is not None:
            return None
        # every change this refresh may have missed moves change_seq past this value
        started_from = seg.change_seq
        at = await s.scalar(select(func.clock_timestamp()))
        entered = exited = 0
        group, inputs = None, None
        if seg.kind == SegmentKind.DYNAMIC.value:
            group = dsl.parse(seg.definition, await service.dsl_context(s, tenant_id))
            inputs = compiler.inputs_of(group)
        elif seg.kind == SegmentKind.LOOKALIKE.value and seg.lookalike_source_id is not None:
            inputs = compiler.lookalike_inputs(seg.lookalike_source_id)
        if seg.kind != SegmentKind.STATIC.value:
            target = await service.target_query(s, seg, group)
            entered, exited = await apply(s, seg, target, at, MembershipCause.REFRESH)
        total = seg.member_count + entered - exited
        m = SegmentMembership
        if seg.kind == SegmentKind.STATIC.value:
            total = await s.scalar(select(func.count()).where(m.tenant_id == tenant_id, m.segment_id == segment_id,
                                                              m.exited_at.is_(None)))
        duration_ms = int((time.perf_counter() - started) * 1000)
        await s.execute(update(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id).values(
            member_count=total, last_refreshed_at=at, last_refresh_ms=duration_ms,
            inputs=inputs if inputs is not None else Segment.inputs,
            refreshed_seq=func.greatest(Segment.refreshed_seq, started_from),
            # stale again if a change this refresh did not see arrived while it ran
            stale_since=case((Segment.change_seq > started_from, Segment.stale_since), else_=None)))
        result = RefreshResult(segment_id, entered, exited, total, at, duration_ms)
        announce(s, tenant_id, result)
    return result


async def apply(s: AsyncSession, seg: Segment, target: Select, at: datetime, cause: MembershipCause,
                customers: list[uuid.UUID] | None = None) -> tuple[Any, Any]:
    """Make the open memberships of ``seg`` equal ``target`` (a SELECT of customer_id, score):
    close the stays of those not in it, open one for those in it without one. With
    ``customers``, only those customers are compared (``target`` must be restricted to them
    too) and the ids that entered and exited come back; otherwise their counts. One statement."""
    m = SegmentMembership
    tenant_id, segment_id = seg.tenant_id, seg.id
    mine = [m.tenant_id == tenant_id, m.segment_id == segment_id, m.exited_at.is_(None)]
    if customers is not None:
        mine.append(m.customer_id.in_(customers))
    columns = ["tenant_id", "segment_id", "customer_id", "entered_at", "score", "entry_cause"]
    if customers is None and not await s.scalar(select(exists().where(*mine))):
        # nobody to compare with (a new segment, or one that emptied): a plain INSERT ... SELECT
        t = target.subquery("target")
        inserted = await s.execute(insert(m).from_select(columns, select(
            literal(tenant_id, UUID(as_uuid=True)), literal(segment_id, UUID(as_uuid=True)),
            t.c.customer_id, literal(at), t.c.score, literal(cause.value))))
        return inserted.rowcount, 0
    t = target.cte("target")
    gone = (update(m).where(*mine, ~exists(select(t.c.customer_id).where(t.c.customer_id == m.customer_id)))
            .values(exited_at=at, exit_cause=cause.value).returning(m.customer_id)).cte("gone")
    open_ = select(m.customer_id).where(m.tenant_id == tenant_id, m.segment_id == segment_id,
                                        m.exited_at.is_(None), m.customer_id == t.c.customer_id)
    came = (insert(m).from_select(columns, select(
        literal(tenant_id, UUID(as_uuid=True)), literal(segment_id, UUID(as_uuid=True)),
        t.c.customer_id, literal(at), t.c.score, literal(cause.value)).where(~exists(open_)),
    ).returning(m.customer_id)).cte("came")
    if customers is None:
        row = (await s.execute(select(select(func.count()).select_from(came).scalar_subquery(),
                                      select(func.count()).select_from(gone).scalar_subquery()))).one()
    else:
        row = (await s.execute(select(select(func.array_agg(came.c.customer_id)).scalar_subquery(),
                                      select(func.array_agg(gone.c.customer_id)).scalar_subquery()))).one()
        row = (row[0] or [], row[1] or [])
    return row[0], row[1]


def announce(s: AsyncSession, tenant_id: uuid.UUID, r: RefreshResult) -> None:
    """The refresh's event and, when members changed, what follows it: with the transaction."""
    outbox.publish(s, tenant_id, topic(r.segment_id), {
        "segment_id": str(r.segment_id), "entered": r.entered, "exited": r.exited, "total": r.total,
        "at": r.at.isoformat()})
    if r.entered or r.exited:
        outbox.send(s, apply_changes, tenant_id, str(r.segment_id), r.at.isoformat())


@tenant_actor(queue_name="jobs", max_retries=10, time_limit=1_800_000)
async def apply_changes(tenant_id: uuid.UUID, segment_id: str, at: str) -> None:
    """What follows a refresh: timeline events (one set-based insert per direction), then the
    segment's enter/exit automations. Safe to run twice: the timeline rows are keyed on the
    membership change (ref), and automation executions on the membership stay."""
    sid, when = uuid.UUID(segment_id), datetime.fromisoformat(at)
    await requeue_dependents(tenant_id, sid, when)
    await write_timeline(tenant_id, sid, when)
    await alerts.record_segment_entries(tenant_id, sid, when)
    await run_for_changes(tenant_id, sid, when)


async def requeue_dependents(tenant_id: uuid.UUID, segment_id: uuid.UUID, at: datetime) -> None:
    """Segments whose rules refer to this one evaluate again the customers who entered or left
    at ``at`` (after the refresh committed, never inside it: a refresh holds its lock meanwhile)."""
    m = SegmentMembership
    async with tenant_session(tenant_id) as s:
        await queue_dependents(s, tenant_id, segment_id, select(m.customer_id).where(
            m.tenant_id == tenant_id, m.segment_id == segment_id, (m.entered_at == at) | (m.exited_at == at)))


async def write_timeline(tenant_id: uuid.UUID, segment_id: uuid.UUID, at: datetime) -> None:
    """One set-based insert per direction. Each event's id is derived from (segment, change
    time, customer), so a retried job inserts nothing twice."""
    m, t = SegmentMembership, TimelineEntry
    async with tenant_session(tenant_id) as s:
        seg = await s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id))
        if seg is None:
            return
        data = func.jsonb_build_object("segment_id", str(segment_id), "segment", seg.name)
        for kind, column in ((Kind.SEGMENT_ENTERED, m.entered_at), (Kind.SEGMENT_EXITED, m.exited_at)):
            event_id = cast(func.md5(literal(f"{segment_id}:{kind.value}:{at.isoformat()}:") + cast(m.customer_id, String)),
                            UUID(as_uuid=True))
            await s.execute(pg_insert(t).from_select(
                ["tenant_id", "customer_id", "occurred_at", "id", "brand_id", "kind", "data", "ref_type", "ref_id"],
                select(m.tenant_id, m.customer_id, literal(at), event_id, literal(seg.brand_id, UUID(as_uuid=True)),
                       literal(kind.value), data, literal("Segment"), literal(str(segment_id)))
                .where(m.tenant_id == tenant_id, m.segment_id == segment_id, column == at),
            ).on_conflict_do_nothing())


# --- refreshing on request, on a schedule ------------------------------------------------


@jobs.job_actor("refresh_segment", time_limit=3_600_000)
async def refresh_segment_job(job: Job, progress: jobs.Progress) -> dict:
    result = await refresh(job.tenant_id, uuid.UUID(job.params["segment_id"]))
    if result is None:
        return {"skipped": "archived"}
    await progress.set_total(result.total)
    await progress.advance(result.total)
    return {"entered": result.entered, "exited": result.exited, "total": result.total,
            "duration_ms": result.duration_ms}


async def request_refresh(principal: Principal, segment_id: uuid.UUID) -> Job:
    """A manual refresh, throttled per segment (SEGMENT_MANUAL_REFRESH_SECONDS)."""
    authorize(principal, Action.SEGMENT_REFRESH)
    interval = timedelta(seconds=get_settings().segment_manual_refresh_seconds)
    async with tenant_session(principal.tenant_id) as s:
        seg = await service.load(s, principal, segment_id, lock=True)
        if seg.archived_at is not None:
            raise InvalidState("segment is archived", field="id")
        now = datetime.now(UTC)
        if seg.last_manual_refresh_at and now < seg.last_manual_refresh_at + interval:
            allowed = (seg.last_manual_refresh_at + interval).isoformat(timespec="seconds")
            raise DomainError(f"this segment was refreshed moments ago; the next manual refresh is allowed at {allowed}",
                              field="id", code=ErrorCode.LIMIT_EXCEEDED)
        seg.last_manual_refresh_at = now
        job = await jobs.create(s, principal, "refresh_segment", refresh_segment_job, brand_id=seg.brand_id,
                                params={"segment_id": str(seg.id), "trigger": "manual"})
        audit.record(s, principal, "segment.refresh", "Segment", seg.id, brand_id=seg.brand_id,
                     summary={"job_id": str(job.id)})
    return job


async def refresh_stale(tenant_id: uuid.UUID) -> int:
    """The scheduler's pass: stale active segments not refreshed automatically within the
    automatic interval (SEGMENT_AUTO_REFRESH_SECONDS), and those not refreshed within their
    brand's backstop (``segment_refresh_hours``), get a refresh job."""
    interval = timedelta(seconds=get_settings().segment_auto_refresh_seconds)
    now = datetime.now(UTC)
    async with tenant_session(tenant_id) as s:
        # stale and not refreshed within the interval, or not refreshed within the brand's backstop
        backstop = Segment.last_refreshed_at < now - func.make_interval(0, 0, 0, 0, Brand.segment_refresh_hours)
        due = list((await s.scalars(select(Segment).join(Brand, and_(
            Brand.tenant_id == Segment.tenant_id, Brand.id == Segment.brand_id)).where(
            Segment.tenant_id == tenant_id, Segment.is_active.is_(True), Segment.archived_at.is_(None),
            Segment.kind != SegmentKind.STATIC.value,
            or_(Segment.last_refreshed_at.is_(None),
                and_(Segment.change_seq > Segment.refreshed_seq, Segment.last_refreshed_at < now - interval),
                backstop),
        ).with_for_update(of=Segment, skip_locked=True))).all())
        for seg in due:
            await jobs.create(s, None, "refresh_segment", refresh_segment_job, brand_id=seg.brand_id,
                              tenant_id=tenant_id, params={"segment_id": str(seg.id), "trigger": "schedule"})
            seg.last_refreshed_at = now  # claimed: the next pass does not queue it again
    return len(due)
