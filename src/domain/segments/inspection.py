"""Previewing a rule definition (how many customers, and the first of them) and explaining
why one customer is in or out of a segment: each rule's truth and the value it looked at."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, select

from domain.customers.models import Customer
from domain.customers.service import load_visible
from domain.errors import DomainError, ErrorCode, InvalidState
from domain.pagination import Page, PageRequest, encode_cursor
from domain.platform.db import tenant_session
from domain.segments import compiler, dsl, service
from domain.segments.models import SegmentKind
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize


async def preview(principal: Principal, brand_id: uuid.UUID, definition: Any, *, page: PageRequest) -> Page[Customer]:
    """A page of the customers a definition matches, newest first, and their count (``total``)."""
    authorize(principal, Action.SEGMENT_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        group = await service.check_definition(s, principal, brand_id, definition)
        scope = service.scope_for(brand_id, principal.tenant_id)
        members = compiler.members_select(group, scope).subquery()
        count = await s.scalar(select(func.count()).select_from(members))
        after, order = page.keyset([(Customer.created_at, True), (Customer.id, True)], datetime, uuid.UUID)
        rows = list((await s.scalars(
            select(Customer).where(Customer.tenant_id == principal.tenant_id,
                                   Customer.id.in_(select(members.c.customer_id)), *after)
            .order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, lambda c: encode_cursor(c.created_at, c.id), count or 0)


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
    authorize(principal, Action.SEGMENT_READ)
    async with tenant_session(principal.tenant_id) as s:
        if segment_id is not None:
            seg = await service.load(s, principal, segment_id, field_name="segmentId")
            if seg.kind != SegmentKind.DYNAMIC.value:
                raise InvalidState(f"a {seg.kind} segment has no rules to explain", field="segmentId")
            brand_id, definition = seg.brand_id, seg.definition
        if brand_id is None or definition is None:
            raise DomainError("give segmentId, or brandId and definition", field="segmentId", code=ErrorCode.REQUIRED)
        await scoping.check_brand(s, principal, brand_id)
        await load_visible(s, principal, customer_id)
        group = await service.check_definition(s, principal, brand_id, definition, segment_id=segment_id)
        scope = service.scope_for(brand_id, principal.tenant_id)
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
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
