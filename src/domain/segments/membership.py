"""A segment's members: the current ones, the history of entries and exits, the overlap of
two segments, and adding or removing members of a static segment by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.customers.models import Customer, CustomerBrand
from domain.errors import DomainError, ErrorCode, InvalidState, NotFound
from domain.pagination import Page, PageRequest, encode_cursor, owners, pages_by
from domain.platform.db import tenant_session
from domain.segments.changes import queue_dependents
from domain.segments.models import MembershipCause, Segment, SegmentKind, SegmentMembership
from domain.segments.refresh import RefreshResult, announce
from domain.segments.service import load
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize


async def members(principal: Principal, segment_id: uuid.UUID, *, page: PageRequest
                  ) -> Page[tuple[SegmentMembership, Customer]]:
    authorize(principal, Action.SEGMENT_READ)
    m = SegmentMembership
    conditions = [m.tenant_id == principal.tenant_id, m.segment_id == segment_id, m.exited_at.is_(None)]
    after, order = page.keyset([(m.entered_at, True), (m.customer_id, True)], datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        await load(s, principal, segment_id)
        rows = list((await s.execute(
            select(m, Customer).join(Customer, and_(Customer.tenant_id == m.tenant_id, Customer.id == m.customer_id))
            .where(*conditions, *after).order_by(*order).limit(page.size + 1))).all())
    return page.page([(r[0], r[1]) for r in rows], lambda r: encode_cursor(r[0].entered_at, r[0].customer_id))


@dataclass
class HistoryEvent:
    customer_id: uuid.UUID
    change: str  # entered | exited
    at: datetime
    cause: str = MembershipCause.REFRESH.value  # refresh | change | time | manual


async def members_of(principal: Principal, segment_ids: list[uuid.UUID], *, page: PageRequest
                     ) -> dict[uuid.UUID, Page[tuple[SegmentMembership, Customer]]]:
    """The same page of several segments' current members in one query (LATERAL), as ``members``
    orders them. A segment the principal may not see has none here."""
    authorize(principal, Action.SEGMENT_READ)
    m = SegmentMembership
    rows: list[tuple[SegmentMembership, Customer]] = []
    async with tenant_session(principal.tenant_id) as s:
        seen = await scoping.by_ids(s, principal, Segment, segment_ids)
        visible = list(seen)
        if visible:
            ids = owners(visible)
            conditions = [m.tenant_id == principal.tenant_id, m.segment_id == ids.c.id, m.exited_at.is_(None)]
            after, order = page.keyset([(m.entered_at, True), (m.customer_id, True)], datetime, uuid.UUID)
            each = select(m).where(*conditions, *after).order_by(*order).limit(page.size + 1).lateral("m")
            member = aliased(SegmentMembership, each)
            found = await s.execute(
                select(member, Customer).select_from(ids).join(each, true())
                .join(Customer, and_(Customer.tenant_id == member.tenant_id, Customer.id == member.customer_id))
                .order_by(member.segment_id, *page.ordering([(member.entered_at, True), (member.customer_id, True)])))
            rows = [(r[0], r[1]) for r in found.all()]
    # the current members of a segment: its member_count counter, kept by every refresh
    return pages_by(segment_ids, rows, lambda r: r[0].segment_id, page,
                    lambda r: encode_cursor(r[0].entered_at, r[0].customer_id),
                    {sid: x.member_count for sid, x in seen.items()})


async def history_of(principal: Principal, segment_ids: list[uuid.UUID], *, page: PageRequest
                     ) -> dict[uuid.UUID, Page[HistoryEvent]]:
    """The same page of several segments' enter and exit events, as ``history`` orders them: the
    newest entries and the newest exits of each segment (one LATERAL query each), merged."""
    authorize(principal, Action.SEGMENT_READ)
    m = SegmentMembership
    events: dict[uuid.UUID, list[HistoryEvent]] = {sid: [] for sid in segment_ids}
    async with tenant_session(principal.tenant_id) as s:
        visible = list(await scoping.by_ids(s, principal, Segment, segment_ids))
        if visible:
            ids = owners(visible)
            for change, column, cause, extra in (("entered", m.entered_at, m.entry_cause, []),
                                                 ("exited", m.exited_at, m.exit_cause, [m.exited_at.is_not(None)])):
                conditions = [m.tenant_id == principal.tenant_id, m.segment_id == ids.c.id, *extra]
                after, order = page.keyset([(column, True), (literal(change), True), (m.customer_id, True)],
                                           datetime, str, uuid.UUID)
                each = (select(m.segment_id, m.customer_id, column.label("at"), cause.label("cause"))
                        .where(*conditions, *after).order_by(*page.ordering([(column, True), (m.customer_id, True)]))
                        .limit(page.size + 1).lateral("h"))
                for r in (await s.execute(select(each.c.segment_id, each.c.customer_id, each.c.at, each.c.cause)
                                          .select_from(ids).join(each, true()))).all():
                    events[r.segment_id].append(HistoryEvent(customer_id=r.customer_id, change=change, at=r.at,
                                                             cause=r.cause or MembershipCause.REFRESH.value))
    return {sid: page.page(sorted(group, key=lambda e: (e.at, e.change, e.customer_id), reverse=not page.backward),
                           lambda e: encode_cursor(e.at, e.change, e.customer_id))
            for sid, group in events.items()}


@dataclass
class Overlap:
    both: int
    only_this: int
    only_other: int


async def overlap(principal: Principal, segment_id: uuid.UUID, other_id: uuid.UUID) -> Overlap:
    authorize(principal, Action.SEGMENT_READ)
    m = SegmentMembership
    async with tenant_session(principal.tenant_id) as s:
        await load(s, principal, segment_id)
        await load(s, principal, other_id, field_name="otherSegmentId")

        def current(sid: uuid.UUID):
            return select(m.customer_id).where(m.tenant_id == principal.tenant_id, m.segment_id == sid,
                                               m.exited_at.is_(None))

        a, b = current(segment_id).subquery(), current(other_id).subquery()
        joined = select(a.c.customer_id.label("a"), b.c.customer_id.label("b")).select_from(
            a.join(b, a.c.customer_id == b.c.customer_id, full=True)).subquery()
        row = (await s.execute(select(
            func.count().filter(and_(joined.c.a.is_not(None), joined.c.b.is_not(None))),
            func.count().filter(joined.c.b.is_(None)),
            func.count().filter(joined.c.a.is_(None)),
        ).select_from(joined))).one()
    return Overlap(both=row[0], only_this=row[1], only_other=row[2])


MAX_OVERLAP = 10


@dataclass
class OverlapReport:
    """How the current members of up to 10 segments overlap: each segment's size and the members
    in no other of them, each pair's members in both, and the members of any."""

    segments: list[Segment]
    sizes: dict[uuid.UUID, int]
    unique: dict[uuid.UUID, int]
    pairs: dict[tuple[uuid.UUID, uuid.UUID], int]  # (first, second) in the order asked
    union: int


async def overlap_of(principal: Principal, segment_ids: list[uuid.UUID]) -> OverlapReport:
    """Sizes, pairwise intersections and unique members of several segments, read from the open
    memberships in one statement (each member's segments as an array, paired with itself)."""
    authorize(principal, Action.SEGMENT_READ)
    wanted = list(dict.fromkeys(segment_ids))
    if not wanted:
        raise DomainError("give at least one segment", field="segmentIds", code=ErrorCode.REQUIRED)
    if len(wanted) > MAX_OVERLAP:
        raise DomainError(f"at most {MAX_OVERLAP} segments", field="segmentIds", code=ErrorCode.LIMIT_EXCEEDED)
    m = SegmentMembership
    async with tenant_session(principal.tenant_id) as s:
        visible = await scoping.by_ids(s, principal, Segment, wanted)
        for i, sid in enumerate(wanted):
            if sid not in visible:
                raise NotFound("segment not found", field=f"segmentIds[{i}]")
        each = (select(m.customer_id, func.array_agg(m.segment_id).label("segs"))
                .where(m.tenant_id == principal.tenant_id, m.segment_id.in_(wanted), m.exited_at.is_(None))
                .group_by(m.customer_id).cte("each"))
        a = func.unnest(each.c.segs).table_valued("a").alias("a")
        b = func.unnest(each.c.segs).table_valued("b").alias("b")
        rows = (await s.execute(
            select(a.c.a, b.c.b, func.count(), func.count().filter(func.cardinality(each.c.segs) == 1),
                   select(func.count()).select_from(each).scalar_subquery())
            .select_from(each).join(a, true()).join(b, true())
            .where(a.c.a <= b.c.b).group_by(a.c.a, b.c.b))).all()
    sizes = dict.fromkeys(wanted, 0)
    unique = dict.fromkeys(wanted, 0)
    together: dict[frozenset, int] = {}
    union = rows[0][4] if rows else 0
    for first, second, count, alone, _ in rows:
        if first == second:
            sizes[first], unique[first] = count, alone
        else:
            together[frozenset((first, second))] = count
    pairs = {(x, y): together.get(frozenset((x, y)), 0)
             for i, x in enumerate(wanted) for y in wanted[i + 1:]}
    return OverlapReport(segments=[visible[x] for x in wanted], sizes=sizes, unique=unique, pairs=pairs, union=union)


# --- static segments -----------------------------------------------------------------------


async def change_static_members(principal: Principal, segment_id: uuid.UUID, add: list[uuid.UUID],
                                remove: list[uuid.UUID]) -> RefreshResult:
    """Add and remove members of a static segment by customer id (customers of its brand)."""
    authorize(principal, Action.SEGMENT_WRITE)
    if len(add) + len(remove) > 10_000:
        raise DomainError("at most 10,000 customers per call", field="customerIds", code=ErrorCode.LIMIT_EXCEEDED)
    m = SegmentMembership
    async with tenant_session(principal.tenant_id) as s:
        seg = await load(s, principal, segment_id, lock=True, field_name="segmentId")
        if seg.kind != SegmentKind.STATIC.value:
            raise InvalidState("members are added by hand only to static segments", field="segmentId")
        if seg.archived_at is not None:
            raise InvalidState("segment is archived", field="segmentId")
        known = set(await s.scalars(select(Customer.id).join(CustomerBrand, and_(
            CustomerBrand.tenant_id == Customer.tenant_id, CustomerBrand.customer_id == Customer.id,
            CustomerBrand.brand_id == seg.brand_id)).where(Customer.tenant_id == seg.tenant_id,
                                                           Customer.id.in_(set(add) | set(remove)))))
        for i, cid in enumerate(add + remove):
            if cid not in known:
                raise DomainError("not a customer of this segment's brand", field=f"customerIds[{i}]",
                                  code=ErrorCode.NOT_FOUND)
        at = await s.scalar(select(func.clock_timestamp()))
        exited = entered = 0
        if remove:
            exited = len((await s.execute(update(m).where(
                m.tenant_id == seg.tenant_id, m.segment_id == seg.id, m.exited_at.is_(None),
                m.customer_id.in_(remove)).values(exited_at=at, exit_cause=MembershipCause.MANUAL.value)
                .returning(m.customer_id))).all())
        if add:
            entered = len((await s.execute(pg_insert(m).values([
                dict(tenant_id=seg.tenant_id, segment_id=seg.id, customer_id=c, entered_at=at,
                     entry_cause=MembershipCause.MANUAL.value) for c in dict.fromkeys(add)
            ]).on_conflict_do_nothing().returning(m.customer_id))).all())
        seg.member_count = seg.member_count + entered - exited
        seg.last_refreshed_at = at
        result = RefreshResult(seg.id, entered, exited, seg.member_count, at, 0)
        audit.record(s, principal, "segment.change_members", "Segment", seg.id, brand_id=seg.brand_id,
                     summary={"added": entered, "removed": exited})
        tenant_id = seg.tenant_id
        announce(s, tenant_id, result)
        if entered or exited:  # segments whose rules refer to this one evaluate them again
            await queue_dependents(s, tenant_id, seg.id, add + remove)
    return result
