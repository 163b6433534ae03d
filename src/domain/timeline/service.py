"""Writing and reading the customer timeline.

Producers call :func:`write` (one event) or :func:`write_select` (set-based, from a SELECT) in
the same transaction as the change. Readers page newest first on the primary key
(tenant_id, customer_id, occurred_at, id), so the first page is an index range scan whatever the
timeline's size.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import ARRAY, Select, and_, cast, func, insert, or_, select, true
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.customers.models import Customer
from domain.pagination import Page, PageRequest, encode_cursor, pages_by
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline.models import TimelineEntry


class Kind(str, Enum):
    ORDER_PLACED = "order_placed"
    EVENT_TRACKED = "event_tracked"
    NOTE_ADDED = "note_added"
    TAG_ADDED = "tag_added"
    TAG_REMOVED = "tag_removed"
    CONSENT_CHANGED = "consent_changed"
    CUSTOMER_CREATED = "customer_created"
    MESSAGE_SENT = "message_sent"
    MESSAGE_DELIVERED = "message_delivered"
    MESSAGE_OPENED = "message_opened"
    MESSAGE_CLICKED = "message_clicked"
    MESSAGE_BOUNCED = "message_bounced"
    MESSAGE_FAILED = "message_failed"
    MESSAGE_COMPLAINED = "message_complained"
    MESSAGE_UNSUBSCRIBED = "message_unsubscribed"
    CONVERSATION_MESSAGE = "conversation_message"
    SEGMENT_ENTERED = "segment_entered"
    SEGMENT_EXITED = "segment_exited"
    ATTRIBUTE_CHANGED = "attribute_changed"
    CAMPAIGN_CONVERSION = "campaign_conversion"
    AI_ACTION = "ai_action"
    OVERRIDE_SET = "override_set"
    OVERRIDE_CLEARED = "override_cleared"


def write(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    kind: Kind,
    occurred_at: datetime,
    *,
    brand_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
    ref: tuple[str, uuid.UUID | str] | None = None,
) -> None:
    session.add(TimelineEntry(
        tenant_id=tenant_id, customer_id=customer_id, occurred_at=occurred_at, id=uuid.uuid4(),
        brand_id=brand_id, kind=kind.value, data=data or {},
        ref_type=ref[0] if ref else None, ref_id=str(ref[1]) if ref else None,
    ))


async def write_select(session: AsyncSession, rows: Select) -> None:
    """Insert timeline events from a SELECT yielding (tenant_id, customer_id, occurred_at,
    brand_id, kind, data, ref_type, ref_id): one statement for any number of customers."""
    cols = ["tenant_id", "customer_id", "occurred_at", "brand_id", "kind", "data", "ref_type", "ref_id"]
    # ids come from the column's server default, one per row (a Python default would be one per statement)
    await session.execute(insert(TimelineEntry).from_select(cols, rows, include_defaults=False))


@dataclass(frozen=True)
class TimelineFilter:
    kinds: tuple[Kind, ...] = ()
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    brand_id: uuid.UUID | None = None


def _conditions(tenant_id: uuid.UUID, customer_id, flt: TimelineFilter,
                visible_brands: frozenset[uuid.UUID] | None, entry=TimelineEntry) -> list:
    c = [entry.tenant_id == tenant_id, entry.customer_id == customer_id]
    if flt.kinds:
        c.append(entry.kind.in_([k.value for k in flt.kinds]))
    if flt.occurred_from:
        c.append(entry.occurred_at >= flt.occurred_from)
    if flt.occurred_to:
        c.append(entry.occurred_at < flt.occurred_to)
    if flt.brand_id:
        c.append(entry.brand_id == flt.brand_id)
    # brand-less events belong to the customer, not to a brand
    visible = scoping.grants_clause(visible_brands, entry.brand_id, shared=True)
    if visible is not None:
        c.append(visible)
    return c


async def pages(
    tenant_id: uuid.UUID,
    customer_ids: list[uuid.UUID],
    flt: TimelineFilter,
    *,
    visible_brands: frozenset[uuid.UUID] | None,
    page: PageRequest,
) -> dict[uuid.UUID, Page[TimelineEntry]]:
    """The same page of several customers' timelines in one query (a LATERAL join walks each
    customer's key range), newest first. Callers check that the principal may see them."""
    ids = select(func.unnest(cast(list(customer_ids), ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery("c")
    conditions = _conditions(tenant_id, ids.c.id, flt, visible_brands)
    after, order = page.keyset([(TimelineEntry.occurred_at, True), (TimelineEntry.id, True)], datetime, uuid.UUID)
    each = select(TimelineEntry).where(*conditions, *after).order_by(*order).limit(page.size + 1).lateral("t")
    entry = aliased(TimelineEntry, each)
    stmt = select(entry).select_from(ids).join(each, true()).order_by(
        entry.customer_id, *page.ordering([(entry.occurred_at, True), (entry.id, True)]))
    async with tenant_session(tenant_id) as s:
        rows = list((await s.scalars(stmt)).all())
    return pages_by(customer_ids, rows, lambda e: e.customer_id, page, lambda e: encode_cursor(e.occurred_at, e.id))


async def page(
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    flt: TimelineFilter,
    *,
    visible_brands: frozenset[uuid.UUID] | None,
    page: PageRequest,
) -> Page[TimelineEntry]:
    """Newest first. Callers check that the principal may see the customer."""
    found = await pages(tenant_id, [customer_id], flt, visible_brands=visible_brands, page=page)
    return found[customer_id]


async def stream(
    tenant_id: uuid.UUID, customer_id: uuid.UUID, flt: TimelineFilter, *,
    visible_brands: frozenset[uuid.UUID] | None, batch: int = 5000,
):
    """All matching events, newest first, in batches (for exports)."""
    after: str | None = None
    while True:
        p = await page(tenant_id, customer_id, flt, visible_brands=visible_brands, page=PageRequest(batch, after))
        yield p.items
        if not p.has_next:
            return
        after = p.cursors[-1]


async def entries_by_keys(principal: Principal, keys: list[tuple[uuid.UUID, uuid.UUID]]
                          ) -> dict[tuple[uuid.UUID, uuid.UUID], TimelineEntry]:
    """For node lookups, by (customer id, event id): events of customers the principal sees,
    brand-less or of its brands, one query (each key walks its customer's key range)."""
    authorize(principal, Action.CUSTOMER_READ)
    if not keys:
        return {}
    e = TimelineEntry
    pairs = [and_(e.customer_id == c, e.id == i) for c, i in set(keys)]
    stmt = select(e).where(e.tenant_id == principal.tenant_id, or_(*pairs))
    visible = scoping.grants_clause(scoping.granted_brands(principal), e.brand_id, shared=True)
    if visible is not None:
        stmt = stmt.where(visible)
    seen = scoping.customer_visible_clause(principal, Customer)
    if seen is not None:
        stmt = stmt.join(Customer, and_(Customer.tenant_id == e.tenant_id, Customer.id == e.customer_id)).where(seen)
    async with tenant_session(principal.tenant_id) as s:
        return {(x.customer_id, x.id): x for x in await s.scalars(stmt)}
