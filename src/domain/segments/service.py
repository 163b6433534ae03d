"""Segment definitions: loading and listing segments, checking rule definitions (references,
cycles), the target member set a refresh compares with, and creating, updating (or dry-running),
archiving and duplicating segments.

Every segment belongs to one brand; a principal must hold that brand to see or touch it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.commerce.models import Product
from domain.customers.models import Tag
from domain.errors import (
    DomainError,
    ErrorCode,
    InvalidState,
    ValidationFailed,
    Validator,
)
from domain.pagination import Page, PageRequest, encode_cursor
from domain.plans import quotas
from domain.plans.limits import Quota
from domain.platform.db import tenant_session
from domain.segments import changes, compiler, dsl
from domain.segments.lookalike import lookalike_select
from domain.segments.models import CustomAttribute, Segment, SegmentKind, SegmentMembership
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize

MAX_LOOKALIKE = 100_000


# --- loading ---------------------------------------------------------------------------


async def load(s: AsyncSession, principal: Principal, segment_id: uuid.UUID, *, lock: bool = False,
               field_name: str = "id") -> Segment:
    return await scoping.load_brand_owned(s, principal, Segment, segment_id, what="segment", field=field_name,
                                          lock=lock)


async def get_segment(principal: Principal, segment_id: uuid.UUID) -> Segment:
    authorize(principal, Action.SEGMENT_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await load(s, principal, segment_id)


async def segments_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Segment]:
    authorize(principal, Action.SEGMENT_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await scoping.by_ids(s, principal, Segment, ids)


async def list_segments(principal: Principal, brand_id: uuid.UUID | None, *, include_archived: bool,
                        page: PageRequest) -> Page[Segment]:
    authorize(principal, Action.SEGMENT_READ)
    conditions = [Segment.tenant_id == principal.tenant_id]
    conditions += scoping.brand_filter(principal, Segment.brand_id, brand_id)
    if not include_archived:
        conditions.append(Segment.archived_at.is_(None))
    after, order = page.keyset([(Segment.created_at, True), (Segment.id, True)], datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(Segment).where(*conditions, *after)
                                     .order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, lambda x: encode_cursor(x.created_at, x.id))


async def count_segments(principal: Principal, brand_id: uuid.UUID | None, *, include_archived: bool) -> int:
    """How many segments ``list_segments`` lists (a tenant holds few: the free plan ten active)."""
    authorize(principal, Action.SEGMENT_READ)
    conditions = [Segment.tenant_id == principal.tenant_id, *scoping.brand_filter(principal, Segment.brand_id, brand_id)]
    if not include_archived:
        conditions.append(Segment.archived_at.is_(None))
    async with tenant_session(principal.tenant_id) as s:
        return await s.scalar(select(func.count()).select_from(Segment).where(*conditions))


# --- definitions -----------------------------------------------------------------------


async def dsl_context(s: AsyncSession, tenant_id: uuid.UUID) -> dsl.Context:
    rows = await s.execute(select(CustomAttribute.name, CustomAttribute.type).where(CustomAttribute.tenant_id == tenant_id))
    return dsl.Context(custom_attributes=dict(rows.all()))


async def check_definition(s: AsyncSession, principal: Principal, brand_id: uuid.UUID, definition: Any,
                           segment_id: uuid.UUID | None = None) -> dsl.Group:
    """Parse and validate, then check references: tags exist, referenced segments are of the
    same brand, not archived, and do not lead back to ``segment_id`` (no cycles)."""
    try:
        group = dsl.parse(definition, await dsl_context(s, principal.tenant_id))
    except ValidationFailed as exc:  # paths as the caller sent them: under "definition"
        raise ValidationFailed([DomainError(e.message, field=f"definition.{e.field}" if e.field else "definition",
                                            code=e.code) for e in exc.errors]) from None
    tags = dsl.referenced_tags(group)
    if tags:
        known = set(await s.scalars(select(Tag.id).where(Tag.tenant_id == principal.tenant_id, Tag.id.in_(tags))))
        if tags - known:
            raise DomainError(f"unknown tag {sorted(map(str, tags - known))[0]}", field="definition")
    products = dsl.referenced_products(group)
    if products:
        known = set(await s.scalars(select(Product.id).where(
            Product.tenant_id == principal.tenant_id, Product.id.in_(products), Product.brand_id == brand_id)))
        if products - known:
            raise DomainError(f"product {sorted(map(str, products - known))[0]} is not a product of this brand",
                              field="definition")
    watched = dsl.referenced_watchlist_products(group)
    if watched:  # a product of this brand or one shared by every brand
        known = set(await s.scalars(select(Product.id).where(
            Product.tenant_id == principal.tenant_id, Product.id.in_(watched),
            or_(Product.brand_id == brand_id, Product.brand_id.is_(None)))))
        if watched - known:
            raise DomainError(f"product {sorted(map(str, watched - known))[0]} is not a product of this brand",
                              field="definition")
    refs = dsl.referenced_segments(group)
    if refs:
        rows = {x.id: x for x in await s.scalars(select(Segment).where(
            Segment.tenant_id == principal.tenant_id, Segment.id.in_(refs)))}
        for ref in refs:
            found = rows.get(ref)
            if found is None or found.brand_id != brand_id:
                raise DomainError(f"segment {ref} is not a segment of this brand", field="definition")
            if found.archived_at is not None:
                raise InvalidState(f"segment {found.name!r} is archived", field="definition")
        if segment_id is not None:
            await _refuse_cycle(s, principal.tenant_id, segment_id, refs)
    return group


async def _refuse_cycle(s: AsyncSession, tenant_id: uuid.UUID, segment_id: uuid.UUID, refs: set[uuid.UUID]) -> None:
    seen: set[uuid.UUID] = set()
    frontier = set(refs)
    while frontier:
        if segment_id in frontier:
            raise DomainError("this definition refers back to the segment itself (a cycle)", field="definition",
                              code=ErrorCode.INVALID)
        seen |= frontier
        rows = await s.scalars(select(Segment.definition).where(Segment.tenant_id == tenant_id, Segment.id.in_(frontier)))
        nxt: set[uuid.UUID] = set()
        for definition in rows:
            nxt |= _refs_of_json(definition)
        frontier = nxt - seen


def _refs_of_json(definition: dict) -> set[uuid.UUID]:
    out: set[uuid.UUID] = set()

    def walk(g: dict) -> None:
        for r in g.get("rules", []):
            if r.get("kind") == "segment":
                for v in r.get("value") or []:
                    try:
                        out.add(uuid.UUID(str(v)))
                    except ValueError:
                        pass
        for sub in g.get("groups", []):
            walk(sub)

    walk(definition or {})
    return out


def scope_for(seg_or_brand: Segment | uuid.UUID, tenant_id: uuid.UUID) -> compiler.Scope:
    brand_id = seg_or_brand.brand_id if isinstance(seg_or_brand, Segment) else seg_or_brand
    return compiler.Scope(tenant_id=tenant_id, brand_id=brand_id, now=datetime.now(UTC))


async def target_query(s: AsyncSession, seg: Segment, group: dsl.Group | None = None):
    """The segment's target member set (customer_id, score) as a SELECT: its rules, its
    lookalike ranking, or (static) its current members."""
    scope = scope_for(seg, seg.tenant_id)
    if seg.kind == SegmentKind.LOOKALIKE.value:
        return lookalike_select(seg, scope)
    if seg.kind == SegmentKind.STATIC.value:
        m = SegmentMembership
        return select(m.customer_id, m.score).where(m.tenant_id == seg.tenant_id, m.segment_id == seg.id,
                                                    m.exited_at.is_(None))
    if group is None:
        group = dsl.parse(seg.definition, await dsl_context(s, seg.tenant_id))
    return compiler.members_select(group, scope)


# --- create / update / archive / duplicate ---------------------------------------------


def _clean(data: dict[str, Any], creating: bool) -> dict[str, Any]:
    v = Validator()
    out: dict[str, Any] = {}
    if creating or "name" in data:
        out["name"] = validation.text(v, "name", data.get("name"), required=True, max_len=200)
    if "description" in data:
        out["description"] = validation.text(v, "description", data.get("description"), required=False, max_len=2000)
    if "is_active" in data:
        out["is_active"] = bool(data["is_active"])
    v.check()
    return out


async def create_segment(principal: Principal, brand_id: uuid.UUID, kind: SegmentKind, data: dict[str, Any], *,
                         definition: Any = None, lookalike_source_id: uuid.UUID | None = None,
                         lookalike_size: int | None = None, live: bool | None = None) -> Segment:
    authorize(principal, Action.SEGMENT_WRITE, brand_id=brand_id)
    values = _clean(data, creating=True)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        if values.get("is_active", True):  # the plan's active segments, counted under its lock
            await quotas.check_count(s, principal.tenant_id, Quota.ACTIVE_SEGMENTS, 1)
        seg = Segment(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id, kind=kind.value,
                      created_by=principal.label, **values)
        if kind is SegmentKind.DYNAMIC:
            group = await check_definition(s, principal, brand_id, definition if definition is not None else {})
            seg.definition = dsl.to_json(group)
            seg.inputs = compiler.inputs_of(group)
            if live is not None:
                seg.live = live
            _changed(seg)
        elif kind is SegmentKind.LOOKALIKE:
            if lookalike_source_id is None:
                raise DomainError("a lookalike segment needs a source segment", field="lookalikeSourceId",
                                  code=ErrorCode.REQUIRED)
            source = await load(s, principal, lookalike_source_id, field_name="lookalikeSourceId")
            if source.brand_id != brand_id:
                raise DomainError("the source segment belongs to another brand", field="lookalikeSourceId")
            if not lookalike_size or not 1 <= lookalike_size <= MAX_LOOKALIKE:
                raise DomainError(f"size takes 1 to {MAX_LOOKALIKE}", field="lookalikeSize")
            seg.lookalike_source_id, seg.lookalike_size = source.id, lookalike_size
            seg.inputs = compiler.lookalike_inputs(source.id)
            _changed(seg)
        if live is not None and kind is not SegmentKind.DYNAMIC:
            raise InvalidState("only dynamic segments are evaluated live", field="live")
        s.add(seg)
        await s.flush()
        await s.refresh(seg)
        audit.record(s, principal, "segment.create", "Segment", seg.id, brand_id=brand_id,
                     summary={"name": seg.name, "kind": seg.kind, **({"live": seg.live} if live is not None else {})})
    return seg


def _changed(seg: Segment) -> None:
    """The definition changed: stale until a refresh that starts after this commit."""
    seg.change_seq = changes.NEXT_SEQ
    seg.stale_since = seg.stale_since or datetime.now(UTC)


@dataclass
class DryRun:
    count_before: int
    count_after: int
    entering: int
    exiting: int


async def update_segment(principal: Principal, segment_id: uuid.UUID, data: dict[str, Any], *,
                         definition: Any = None, dry_run: bool = False, live: bool | None = None) -> Segment | DryRun:
    authorize(principal, Action.SEGMENT_WRITE)
    values = _clean(data, creating=False)
    async with tenant_session(principal.tenant_id) as s:
        seg = await load(s, principal, segment_id, lock=not dry_run)
        if seg.archived_at is not None:
            raise InvalidState("segment is archived", field="id")
        group = None
        if definition is not None:
            if seg.kind != SegmentKind.DYNAMIC.value:
                raise InvalidState(f"a {seg.kind} segment has no rule definition", field="definition")
            group = await check_definition(s, principal, seg.brand_id, definition, segment_id=seg.id)
        if live is not None:
            if seg.kind != SegmentKind.DYNAMIC.value:
                raise InvalidState("only dynamic segments are evaluated live", field="live")
            values["live"] = live
        if dry_run:
            return await _dry_run(s, seg, group)
        if values.get("is_active") and not seg.is_active:
            await quotas.check_count(s, principal.tenant_id, Quota.ACTIVE_SEGMENTS, 1, field="isActive")
        before = {k: getattr(seg, k) for k in values}
        for k, v in values.items():
            setattr(seg, k, v)
        if group is not None:
            seg.definition = dsl.to_json(group)
            seg.definition_version += 1
            seg.inputs = compiler.inputs_of(group)
            _changed(seg)
        await s.flush()
        await s.refresh(seg)
        summary = audit.diff(before, values)
        if group is not None:
            summary["definition_version"] = seg.definition_version
        audit.record(s, principal, "segment.update", "Segment", seg.id, brand_id=seg.brand_id, summary=summary)
    return seg


async def _dry_run(s: AsyncSession, seg: Segment, group: dsl.Group | None) -> DryRun:
    m = SegmentMembership
    current = select(m.customer_id).where(m.tenant_id == seg.tenant_id, m.segment_id == seg.id,
                                          m.exited_at.is_(None)).subquery()
    target = (await target_query(s, seg, group)).subquery()
    row = (await s.execute(select(
        select(func.count()).select_from(current).scalar_subquery(),
        select(func.count()).select_from(target).scalar_subquery(),
        select(func.count()).select_from(target).where(target.c.customer_id.not_in(select(current.c.customer_id))).scalar_subquery(),
        select(func.count()).select_from(current).where(current.c.customer_id.not_in(select(target.c.customer_id))).scalar_subquery(),
    ))).one()
    return DryRun(count_before=row[0], count_after=row[1], entering=row[2], exiting=row[3])


async def archive_segment(principal: Principal, segment_id: uuid.UUID) -> Segment:
    authorize(principal, Action.SEGMENT_WRITE)
    async with tenant_session(principal.tenant_id) as s:
        seg = await load(s, principal, segment_id, lock=True)
        if seg.archived_at is not None:
            raise InvalidState("segment is already archived", field="id")
        users = [x for x in await s.scalars(select(Segment).where(
            Segment.tenant_id == seg.tenant_id, Segment.archived_at.is_(None), Segment.id != seg.id))
            if seg.id in _refs_of_json(x.definition) or x.lookalike_source_id == seg.id]
        if users:
            raise InvalidState(f"segment {users[0].name!r} refers to this one; change it first", field="id")
        seg.archived_at = datetime.now(UTC)
        seg.is_active = False
        audit.record(s, principal, "segment.archive", "Segment", seg.id, brand_id=seg.brand_id, summary={"name": seg.name})
    return seg


async def duplicate_segment(principal: Principal, segment_id: uuid.UUID, name: str | None = None) -> Segment:
    authorize(principal, Action.SEGMENT_WRITE)
    async with tenant_session(principal.tenant_id) as s:
        seg = await load(s, principal, segment_id)
    return await create_segment(
        principal, seg.brand_id, SegmentKind(seg.kind),
        {"name": name or f"{seg.name} (copy)", "description": seg.description},
        definition=seg.definition if seg.kind == SegmentKind.DYNAMIC.value else None,
        lookalike_source_id=seg.lookalike_source_id, lookalike_size=seg.lookalike_size,
    )
