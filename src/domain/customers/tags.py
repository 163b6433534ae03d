"""Tags: per-tenant labels assigned to many customers at once."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from domain.audit import service as audit
from domain.customers.models import Customer, CustomerTag, Tag
from domain.errors import DomainError, ErrorCode, LimitExceeded, NotFound, Validator
from domain.platform.db import tenant_session
from domain.segments import changes
from domain.segments.compiler import tag_input
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline
from domain.timeline.models import TimelineEntry

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_BULK = 1000


def _clean(data: dict[str, Any], creating: bool) -> dict[str, Any]:
    v = Validator()
    out: dict[str, Any] = {}
    if creating or "name" in data:
        out["name"] = validation.text(v, "name", data.get("name"), required=True, max_len=64)
    if "color" in data and data["color"] is not None:
        if not COLOR_RE.match(data["color"]):
            v.add("color", "use a hex colour like #1f6feb")
        out["color"] = data["color"].lower()
    if "description" in data:
        out["description"] = validation.text(v, "description", data["description"], required=False, max_len=500)
    v.check()
    return out


def _duplicate(name: str) -> DomainError:
    return DomainError(f"a tag named {name!r} already exists", field="name", code=ErrorCode.DUPLICATE)


async def create_tag(principal: Principal, data: dict[str, Any]) -> Tag:
    authorize(principal, Action.TAG_MANAGE)
    values = _clean(data, creating=True)
    tag = Tag(id=uuid.uuid4(), tenant_id=principal.tenant_id, created_by=principal.label, **values)
    try:
        async with tenant_session(principal.tenant_id) as s:
            s.add(tag)
            await s.flush()
            await s.refresh(tag)
            audit.record(s, principal, "tag.create", "Tag", tag.id, summary={"after": values})
    except IntegrityError:
        raise _duplicate(values["name"]) from None
    return tag


async def update_tag(principal: Principal, tag_id: uuid.UUID, data: dict[str, Any]) -> Tag:
    authorize(principal, Action.TAG_MANAGE)
    values = _clean(data, creating=False)
    try:
        async with tenant_session(principal.tenant_id) as s:
            tag = await s.scalar(select(Tag).where(Tag.tenant_id == principal.tenant_id, Tag.id == tag_id).with_for_update())
            if tag is None:
                raise NotFound("tag not found", field="id")
            before = {k: getattr(tag, k) for k in values}
            for k, value in values.items():
                setattr(tag, k, value)
            await s.flush()
            audit.record(s, principal, "tag.update", "Tag", tag.id, summary=audit.diff(before, values))
    except IntegrityError:
        raise _duplicate(values.get("name", "")) from None
    return tag


async def delete_tag(principal: Principal, tag_id: uuid.UUID) -> Tag:
    authorize(principal, Action.TAG_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        tag = await s.scalar(select(Tag).where(Tag.tenant_id == principal.tenant_id, Tag.id == tag_id))
        if tag is None:
            raise NotFound("tag not found", field="id")
        await s.delete(tag)
        audit.record(s, principal, "tag.delete", "Tag", tag.id, summary={"before": {"name": tag.name}})
    return tag


async def list_tags(principal: Principal) -> list[Tag]:
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(select(Tag).where(Tag.tenant_id == principal.tenant_id)
                                     .order_by(func.lower(Tag.name)))).all())


async def tags_by_customer(principal: Principal, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Tag]]:
    authorize(principal, Action.CUSTOMER_READ)
    out: dict[uuid.UUID, list[Tag]] = {}
    async with tenant_session(principal.tenant_id) as s:
        rows = await s.execute(
            select(CustomerTag.customer_id, Tag)
            .join(Tag, (Tag.tenant_id == CustomerTag.tenant_id) & (Tag.id == CustomerTag.tag_id))
            .where(CustomerTag.tenant_id == principal.tenant_id, CustomerTag.customer_id.in_(set(customer_ids)))
            .order_by(func.lower(Tag.name))
        )
        for customer_id, tag in rows:
            out.setdefault(customer_id, []).append(tag)
    return out


async def _check(s, principal: Principal, customer_ids: list[uuid.UUID], tag_ids: list[uuid.UUID]) -> None:
    if not customer_ids or not tag_ids:
        raise DomainError("give at least one customer and one tag", field="customerIds", code=ErrorCode.REQUIRED)
    if len(customer_ids) > MAX_BULK or len(tag_ids) > 50:
        raise LimitExceeded(f"at most {MAX_BULK} customers and 50 tags per call", field="customerIds")
    known_tags = set(await s.scalars(select(Tag.id).where(Tag.tenant_id == principal.tenant_id, Tag.id.in_(tag_ids))))
    for i, tag_id in enumerate(tag_ids):
        if tag_id not in known_tags:
            raise NotFound("tag not found", field=f"tagIds[{i}]")
    stmt = select(Customer.id).where(Customer.tenant_id == principal.tenant_id, Customer.id.in_(customer_ids))
    clause = scoping.customer_visible_clause(principal)
    if clause is not None:
        stmt = stmt.where(clause)
    visible = set(await s.scalars(stmt))
    for i, customer_id in enumerate(customer_ids):
        if customer_id not in visible:
            raise NotFound("customer not found", field=f"customerIds[{i}]")


async def tag_customers(principal: Principal, customer_ids: list[uuid.UUID], tag_ids: list[uuid.UUID]) -> int:
    """Assign every tag to every customer (already-assigned pairs are left alone); returns how
    many assignments are new. One statement for the assignments, one for their timeline."""
    authorize(principal, Action.TAG_ASSIGN)
    customer_ids, tag_ids = list(dict.fromkeys(customer_ids)), list(dict.fromkeys(tag_ids))
    now = datetime.now(UTC)
    async with tenant_session(principal.tenant_id) as s:
        await _check(s, principal, customer_ids, tag_ids)
        pairs = select(  # every customer × every tag: a deliberate cross join
            literal(principal.tenant_id), Customer.id, Tag.id, literal(principal.label), literal(now)
        ).select_from(Customer).join(Tag, true()).where(Customer.tenant_id == principal.tenant_id, Customer.id.in_(customer_ids),
                Tag.tenant_id == principal.tenant_id, Tag.id.in_(tag_ids))
        added = (await s.execute(
            insert(CustomerTag).from_select(["tenant_id", "customer_id", "tag_id", "assigned_by", "assigned_at"], pairs)
            .on_conflict_do_nothing().returning(CustomerTag.customer_id, CustomerTag.tag_id)
        )).all()
        await _timeline(s, principal, added, timeline.Kind.TAG_ADDED, now)
        await _segments_changed(s, principal.tenant_id, added)
        audit.record(s, principal, "customer.tag", "Customer", None,
                     summary={"customers": len(customer_ids), "tags": [str(t) for t in tag_ids], "added": len(added)})
    return len(added)


async def untag_customers(principal: Principal, customer_ids: list[uuid.UUID], tag_ids: list[uuid.UUID]) -> int:
    authorize(principal, Action.TAG_ASSIGN)
    customer_ids, tag_ids = list(dict.fromkeys(customer_ids)), list(dict.fromkeys(tag_ids))
    now = datetime.now(UTC)
    async with tenant_session(principal.tenant_id) as s:
        await _check(s, principal, customer_ids, tag_ids)
        removed = (await s.execute(
            delete(CustomerTag).where(CustomerTag.tenant_id == principal.tenant_id,
                                      CustomerTag.customer_id.in_(customer_ids), CustomerTag.tag_id.in_(tag_ids))
            .returning(CustomerTag.customer_id, CustomerTag.tag_id)
        )).all()
        await _timeline(s, principal, removed, timeline.Kind.TAG_REMOVED, now)
        await _segments_changed(s, principal.tenant_id, removed)
        audit.record(s, principal, "customer.untag", "Customer", None,
                     summary={"customers": len(customer_ids), "tags": [str(t) for t in tag_ids], "removed": len(removed)})
    return len(removed)


async def _segments_changed(s, tenant_id: uuid.UUID, pairs: list) -> None:
    """Tag rules of every brand: the customers whose tags changed, for the tags that did."""
    await changes.customers_changed(s, tenant_id, [c for c, _ in pairs], {tag_input(t) for _, t in pairs})


async def _timeline(s, principal: Principal, pairs: list, kind: timeline.Kind, at: datetime) -> None:
    if not pairs:
        return
    names = dict((await s.execute(select(Tag.id, Tag.name).where(
        Tag.tenant_id == principal.tenant_id, Tag.id.in_({t for _, t in pairs})))).all())
    s.add_all([
        TimelineEntry(tenant_id=principal.tenant_id, customer_id=c, occurred_at=at, id=uuid.uuid4(), kind=kind.value,
                      data={"tag_id": str(t), "tag": names.get(t), "by": principal.label}, ref_type="Tag", ref_id=str(t))
        for c, t in pairs
    ])
