"""Segments: definitions, preview, dry runs, explain, members, history and overlap.

Every segment belongs to one brand; a principal must hold that brand to see or touch it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Text, and_, cast, func, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.commerce.models import Product, TrackedEvent
from domain.customers.models import Customer, CustomerBrand, Tag
from domain.errors import (
    DomainError,
    ErrorCode,
    InvalidState,
    ValidationFailed,
    Validator,
)
from domain.pagination import Page, decode_cursor, encode_cursor
from domain.platform.db import tenant_session
from domain.segments import compiler, dsl
from domain.segments.models import CustomAttribute, Segment, SegmentMembership
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize

MAX_LOOKALIKE = 100_000


class SegmentKind(str, Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"
    LOOKALIKE = "lookalike"


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
                        first: int, after: str | None) -> Page[Segment]:
    authorize(principal, Action.SEGMENT_READ)
    conditions = [Segment.tenant_id == principal.tenant_id]
    conditions += scoping.brand_filter(principal, Segment.brand_id, brand_id)
    if not include_archived:
        conditions.append(Segment.archived_at.is_(None))
    if after:
        at, last = decode_cursor(after, datetime, uuid.UUID)
        conditions.append(or_(Segment.created_at < at, and_(Segment.created_at == at, Segment.id < last)))
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(Segment).where(*conditions)
                                     .order_by(Segment.created_at.desc(), Segment.id.desc()).limit(first + 1))).all())
    return Page.of(rows, first, lambda x: encode_cursor(x.created_at, x.id))


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
        from domain.segments.lookalike import lookalike_select

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
                         lookalike_size: int | None = None) -> Segment:
    authorize(principal, Action.SEGMENT_WRITE, brand_id=brand_id)
    values = _clean(data, creating=True)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        seg = Segment(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id, kind=kind.value,
                      created_by=principal.label, **values)
        if kind is SegmentKind.DYNAMIC:
            group = await check_definition(s, principal, brand_id, definition if definition is not None else {})
            seg.definition = dsl.to_json(group)
            seg.stale_since = datetime.now(UTC)
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
            seg.stale_since = datetime.now(UTC)
        s.add(seg)
        await s.flush()
        await s.refresh(seg)
        audit.record(s, principal, "segment.create", "Segment", seg.id, brand_id=brand_id,
                     summary={"name": seg.name, "kind": seg.kind})
    return seg


@dataclass
class DryRun:
    count_before: int
    count_after: int
    entering: int
    exiting: int


async def update_segment(principal: Principal, segment_id: uuid.UUID, data: dict[str, Any], *,
                         definition: Any = None, dry_run: bool = False) -> Segment | DryRun:
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
        if dry_run:
            return await _dry_run(s, seg, group)
        before = {k: getattr(seg, k) for k in values}
        for k, v in values.items():
            setattr(seg, k, v)
        if group is not None:
            seg.definition = dsl.to_json(group)
            seg.definition_version += 1
            seg.stale_since = datetime.now(UTC)
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


# --- preview, explain --------------------------------------------------------------------


@dataclass
class Preview:
    count: int
    customers: list[Customer]


async def preview(principal: Principal, brand_id: uuid.UUID, definition: Any, *, first: int) -> Preview:
    authorize(principal, Action.SEGMENT_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        group = await check_definition(s, principal, brand_id, definition)
        scope = scope_for(brand_id, principal.tenant_id)
        members = compiler.members_select(group, scope).subquery()
        count = await s.scalar(select(func.count()).select_from(members))
        page = list((await s.scalars(
            select(Customer).where(Customer.tenant_id == principal.tenant_id,
                                   Customer.id.in_(select(members.c.customer_id)))
            .order_by(Customer.created_at.desc(), Customer.id.desc()).limit(first))).all())
    return Preview(count=count or 0, customers=page)


@dataclass
class Explained:
    """One node of the explained tree: a group (children) or a rule (actual value)."""

    path: str
    matched: bool
    match: str | None = None  # groups
    rule: dict[str, Any] | None = None  # rules: the stored form
    actual: Any = None
    children: list[Explained] = field(default_factory=list)


@dataclass
class Explanation:
    customer_id: uuid.UUID
    in_brand: bool
    matched: bool
    root: Explained


async def explain(principal: Principal, customer_id: uuid.UUID, *, segment_id: uuid.UUID | None = None,
                  brand_id: uuid.UUID | None = None, definition: Any = None) -> Explanation:
    """Why the customer is in or out: each rule's truth and the value it looked at."""
    from domain.customers.service import load_visible

    authorize(principal, Action.SEGMENT_READ)
    async with tenant_session(principal.tenant_id) as s:
        if segment_id is not None:
            seg = await load(s, principal, segment_id, field_name="segmentId")
            if seg.kind != SegmentKind.DYNAMIC.value:
                raise InvalidState(f"a {seg.kind} segment has no rules to explain", field="segmentId")
            brand_id, definition = seg.brand_id, seg.definition
        if brand_id is None or definition is None:
            raise DomainError("give segmentId, or brandId and definition", field="segmentId", code=ErrorCode.REQUIRED)
        await scoping.check_brand(s, principal, brand_id)
        await load_visible(s, principal, customer_id)
        group = await check_definition(s, principal, brand_id, definition, segment_id=segment_id)
        scope = scope_for(brand_id, principal.tenant_id)
        rules: list[tuple[str, dsl.Rule]] = []
        groups: list[tuple[str, dsl.Group]] = []

        def collect(g: dsl.Group, path: str) -> None:
            groups.append((path, g))
            prefix = f"{path}." if path else ""
            for i, r in enumerate(g.rules):
                rules.append((f"{prefix}rules[{i}]", r))
            for i, sub in enumerate(g.groups):
                collect(sub, f"{prefix}groups[{i}]")

        collect(group, "")
        cols = [literal(True).label("in_brand")]
        for i, (_, r) in enumerate(rules):
            cols += [compiler.compile_rule(r, scope).label(f"r{i}"), compiler.actual(r, scope).label(f"v{i}")]
        for j, (_, g) in enumerate(groups):
            cols.append(compiler.compile_group(g, scope).label(f"g{j}"))
        found = (await s.execute(compiler.base_select(scope, *cols).where(Customer.id == customer_id))).first()
        row = found._mapping if found is not None else None
    stored = dsl.to_json(group)
    rule_json = {path: rj for (path, _), rj in zip(rules, _flatten_rules(stored), strict=True)}

    def node_for(path: str, g: dsl.Group, j_of: dict[str, int]) -> Explained:
        prefix = f"{path}." if path else ""
        children = []
        for i, r in enumerate(g.rules):
            rpath = f"{prefix}rules[{i}]"
            k = next(n for n, (p, _) in enumerate(rules) if p == rpath)
            value = row[f"v{k}"] if row is not None else None
            if r.kind is dsl.RuleKind.PROFILE and r.value_type is dsl.ValueType.MONEY and value is not None:
                value = float(value) / 100
            children.append(Explained(path=rpath, matched=bool(row[f"r{k}"]) if row is not None else False,
                                      rule=rule_json[rpath], actual=_plain(value)))
        for i, sub in enumerate(g.groups):
            children.append(node_for(f"{prefix}groups[{i}]", sub, j_of))
        matched = bool(row[f"g{j_of[path]}"]) if row is not None else False
        return Explained(path=path or "root", matched=matched, match=g.match.value, children=children)

    root = node_for("", group, {p: j for j, (p, _) in enumerate(groups)})
    return Explanation(customer_id=customer_id, in_brand=row is not None, matched=root.matched and row is not None,
                       root=root)


def _flatten_rules(stored: dict) -> list[dict]:
    out = [*stored.get("rules", [])]
    for g in stored.get("groups", []):
        out += _flatten_rules(g)
    return out


def _plain(v: Any) -> Any:
    from decimal import Decimal

    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.isoformat()
    return v


# --- members, history, overlap -----------------------------------------------------------


async def members(principal: Principal, segment_id: uuid.UUID, *, first: int, after: str | None
                  ) -> Page[tuple[SegmentMembership, Customer]]:
    authorize(principal, Action.SEGMENT_READ)
    m = SegmentMembership
    conditions = [m.tenant_id == principal.tenant_id, m.segment_id == segment_id, m.exited_at.is_(None)]
    if after:
        at, last = decode_cursor(after, datetime, uuid.UUID)
        conditions.append(or_(m.entered_at < at, and_(m.entered_at == at, m.customer_id < last)))
    async with tenant_session(principal.tenant_id) as s:
        await load(s, principal, segment_id)
        rows = list((await s.execute(
            select(m, Customer).join(Customer, and_(Customer.tenant_id == m.tenant_id, Customer.id == m.customer_id))
            .where(*conditions).order_by(m.entered_at.desc(), m.customer_id.desc()).limit(first + 1))).all())
    return Page.of([(r[0], r[1]) for r in rows], first, lambda r: encode_cursor(r[0].entered_at, r[0].customer_id))


@dataclass
class HistoryEvent:
    customer_id: uuid.UUID
    change: str  # entered | exited
    at: datetime


async def history(principal: Principal, segment_id: uuid.UUID, *, first: int, after: str | None) -> Page[HistoryEvent]:
    """Enter and exit events, newest first."""
    authorize(principal, Action.SEGMENT_READ)
    m = SegmentMembership
    base = [m.tenant_id == principal.tenant_id, m.segment_id == segment_id]
    entered = select(m.customer_id, literal("entered").label("change"), m.entered_at.label("at")).where(*base)
    exited = select(m.customer_id, literal("exited").label("change"), m.exited_at.label("at")).where(
        *base, m.exited_at.is_not(None))
    events = union_all(entered, exited).subquery()
    conditions = []
    if after:
        at, change, last = decode_cursor(after, datetime, str, uuid.UUID)
        conditions.append(or_(events.c.at < at, and_(events.c.at == at, events.c.change < change),
                              and_(events.c.at == at, events.c.change == change, events.c.customer_id < last)))
    async with tenant_session(principal.tenant_id) as s:
        await load(s, principal, segment_id)
        rows = (await s.execute(select(events).where(*conditions)
                                .order_by(events.c.at.desc(), events.c.change.desc(), events.c.customer_id.desc())
                                .limit(first + 1))).all()
    items = [HistoryEvent(customer_id=r.customer_id, change=r.change, at=r.at) for r in rows]
    return Page.of(items, first, lambda e: encode_cursor(e.at, e.change, e.customer_id))


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


# --- the field catalogue, custom attributes -----------------------------------------------


@dataclass
class FieldInfo:
    kind: dsl.RuleKind
    field: str
    label: str
    value_type: dsl.ValueType
    operators: tuple[dsl.Operator, ...]
    enum_values: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()


async def field_catalogue(principal: Principal, brand_id: uuid.UUID) -> list[FieldInfo]:
    """Every field a rule can use, with its operators, value type and, where the data has
    them, suggested values (this brand's categories, SKUs, event names; the tenant's tags)."""
    authorize(principal, Action.SEGMENT_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)

        async def distinct(col, *where, limit: int = 50) -> tuple[str, ...]:
            rows = await s.scalars(select(col).where(*where, col.is_not(None)).group_by(col)
                                   .order_by(func.count().desc(), col).limit(limit))
            return tuple(str(r) for r in rows)

        t = principal.tenant_id
        categories = await distinct(Product.category, Product.tenant_id == t, Product.brand_id == brand_id)
        skus = await distinct(Product.sku, Product.tenant_id == t, Product.brand_id == brand_id, limit=100)
        events = await distinct(TrackedEvent.name, TrackedEvent.tenant_id == t, or_(
            TrackedEvent.brand_id == brand_id,
            and_(TrackedEvent.brand_id.is_(None), TrackedEvent.customer_id.in_(select(CustomerBrand.customer_id).where(
                CustomerBrand.tenant_id == t, CustomerBrand.brand_id == brand_id)))))
        of_brand = Customer.id.in_(select(CustomerBrand.customer_id).where(
            CustomerBrand.tenant_id == t, CustomerBrand.brand_id == brand_id))  # only this brand's customers
        buyer_types = await distinct(Customer.buyer_type, Customer.tenant_id == t, of_brand)
        countries = await distinct(Customer.country, Customer.tenant_id == t, of_brand)
        tags = tuple(str(x) for x in await s.scalars(select(Tag.id).where(Tag.tenant_id == t).order_by(Tag.name, Tag.id)))
        segments = tuple(str(x) for x in await s.scalars(select(Segment.id).where(
            Segment.tenant_id == t, Segment.brand_id == brand_id, Segment.archived_at.is_(None))
            .order_by(Segment.name, Segment.id)))
        customs = (await s.execute(select(CustomAttribute).where(CustomAttribute.tenant_id == t)
                                   .order_by(CustomAttribute.name))).scalars().all()
    out = [FieldInfo(dsl.RuleKind.PROFILE, f.name, f.label, f.type, f.operators) for f in dsl.PROFILE_FIELDS.values()]
    suggest = {"buyer_type": buyer_types, "country": countries}
    out += [FieldInfo(dsl.RuleKind.ATTRIBUTE, f.name, f.label, f.type, f.operators, suggestions=suggest.get(f.name, ()))
            for f in dsl.ATTRIBUTE_FIELDS.values()]
    out += [FieldInfo(dsl.RuleKind.ATTRIBUTE, f"attributes.{c.name}", c.label or c.name, dsl.CUSTOM_TYPES[c.type],
                      dsl.OPS_BY_TYPE[dsl.CUSTOM_TYPES[c.type]]) for c in customs]
    suggest_purchase = {"sku": skus, "category": categories}
    out += [FieldInfo(dsl.RuleKind.PURCHASE, f.name, f.label, f.type, f.operators,
                      suggestions=suggest_purchase.get(f.name, ())) for f in dsl.PURCHASE_FIELDS.values()]
    out.append(FieldInfo(dsl.RuleKind.EVENT, "count", "Performed event (times)", dsl.ValueType.INTEGER,
                         dsl.EVENT_COUNT_OPS, suggestions=events))
    out.append(FieldInfo(dsl.RuleKind.TAG, "tag", "Has tag", dsl.ValueType.ID, dsl.TAG_OPS, suggestions=tags))
    out += [FieldInfo(dsl.RuleKind.CONSENT, ch, f"Consent: {ch}", dsl.ValueType.BOOLEAN, dsl.CONSENT_OPS)
            for ch in dsl.CONSENT_CHANNELS]
    out.append(FieldInfo(dsl.RuleKind.SEGMENT, "segment", "Member of segment", dsl.ValueType.ID, dsl.SEGMENT_OPS,
                         suggestions=segments))
    return out


async def declare_custom_attribute(principal: Principal, name: str, type_: str, label: str | None) -> CustomAttribute:
    authorize(principal, Action.TAG_MANAGE)
    v = Validator()
    if not isinstance(name, str) or not dsl.ATTRIBUTE_NAME_RE.match(name):
        v.add("name", "use letters, digits and _ (starting with a letter or _)")
    if type_ not in dsl.CUSTOM_TYPES:
        v.add("type", f"type is one of {', '.join(dsl.CUSTOM_TYPES)}")
    label = validation.text(v, "label", label, required=False, max_len=200)
    v.check()
    from sqlalchemy.dialects.postgresql import insert

    async with tenant_session(principal.tenant_id) as s:
        current = await s.scalar(select(CustomAttribute.type).where(CustomAttribute.tenant_id == principal.tenant_id,
                                                                    CustomAttribute.name == name))
        if current is not None and current != type_:
            users = await s.scalar(select(func.count()).where(
                Segment.tenant_id == principal.tenant_id, Segment.archived_at.is_(None),
                cast(Segment.definition, Text).contains(f'"attributes.{name}"')))
            if users:
                raise InvalidState(f"{users} segment(s) use attributes.{name} as {current}; change them first",
                                   field="type")
        await s.execute(insert(CustomAttribute).values(tenant_id=principal.tenant_id, name=name, type=type_, label=label)
                        .on_conflict_do_update(index_elements=["tenant_id", "name"], set_={"type": type_, "label": label}))
        found = await s.scalar(select(CustomAttribute).where(CustomAttribute.tenant_id == principal.tenant_id,
                                                             CustomAttribute.name == name))
        audit.record(s, principal, "custom_attribute.declare", "CustomAttribute", None,
                     summary={"name": name, "type": type_})
    return found


async def list_custom_attributes(principal: Principal) -> list[CustomAttribute]:
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(select(CustomAttribute).where(CustomAttribute.tenant_id == principal.tenant_id)
                                     .order_by(CustomAttribute.name))).all())


async def mark_stale(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID | None) -> None:
    """Something segment rules read changed: the rule-based segments of ``brand_id`` (of every
    brand when None: tags, customer attributes and brand-less events count for all brands) need a
    refresh. One cheap UPDATE: only segments not already stale are touched."""
    conditions = [Segment.tenant_id == tenant_id, Segment.kind != SegmentKind.STATIC.value,
                  Segment.archived_at.is_(None), Segment.stale_since.is_(None)]
    if brand_id is not None:
        conditions.append(Segment.brand_id == brand_id)
    await s.execute(update(Segment).where(*conditions).values(stale_since=func.now()))


async def mark_stale_everywhere(tenant_id: uuid.UUID) -> None:
    async with tenant_session(tenant_id) as s:
        await mark_stale(s, tenant_id, None)
