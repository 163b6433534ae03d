"""Notes on customers: info, warning or action; internal, or shared with the customer's brands."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.customers.models import Customer, Note
from domain.customers.service import load_visible
from domain.errors import Validator
from domain.pagination import Page, PageRequest, encode_cursor, owners, pages_by
from domain.platform.db import tenant_session
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline


class NoteType(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ACTION = "action"


class NoteVisibility(str, Enum):
    INTERNAL = "internal"
    SHARED = "shared"


async def add_note(principal: Principal, customer_id: uuid.UUID, body: str, *, type: NoteType = NoteType.INFO,
                   visibility: NoteVisibility = NoteVisibility.INTERNAL, brand_id: uuid.UUID | None = None) -> Note:
    authorize(principal, Action.NOTE_WRITE)
    v = Validator()
    body = validation.text(v, "body", body, required=True, max_len=10_000)
    v.check()
    scoping.require_brand_if_limited(principal, brand_id)
    async with tenant_session(principal.tenant_id) as s:
        customer = await load_visible(s, principal, customer_id)
        if brand_id is not None:
            await scoping.check_brand(s, principal, brand_id)
        note = Note(id=uuid.uuid4(), tenant_id=principal.tenant_id, customer_id=customer.id, brand_id=brand_id,
                    body=body, type=type.value, visibility=visibility.value, author_type=principal.kind.value,
                    author_id=str(principal.id), author_label=principal.label)
        s.add(note)
        await s.flush()
        await s.refresh(note)
        timeline.write(s, principal.tenant_id, customer.id, timeline.Kind.NOTE_ADDED, note.created_at,
                       brand_id=brand_id, ref=("Note", note.id),
                       data={"type": note.type, "visibility": note.visibility, "author": principal.label,
                             "excerpt": body[:140]})
        audit.record(s, principal, "note.add", "Note", note.id, brand_id=brand_id,
                     summary={"customer_id": customer.id, "type": note.type})
    return note


async def notes_of(principal: Principal, customer_ids: list[uuid.UUID], *, page: PageRequest
                   ) -> dict[uuid.UUID, Page[Note]]:
    """The same page of several customers' notes, newest first, in one query (LATERAL), and
    their counts in one more (the notes index, (tenant, customer, created_at, id)). A
    brand-limited principal sees brand-less notes and its brands' notes."""
    authorize(principal, Action.CUSTOMER_READ)
    ids = owners(customer_ids)
    visible = [Note.tenant_id == principal.tenant_id, Note.customer_id == ids.c.id,
               *scoping.brand_filter(principal, Note.brand_id, shared=True)]
    after, order = page.keyset([(Note.created_at, True), (Note.id, True)], datetime, uuid.UUID)
    each = select(Note).where(*visible, *after).order_by(*order).limit(page.size + 1).lateral("n")
    note = aliased(Note, each)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(note).select_from(ids).join(each, true()).order_by(
            note.customer_id, *page.ordering([(note.created_at, True), (note.id, True)])))).all())
        totals = dict((await s.execute(select(Note.customer_id, func.count()).select_from(ids).join(
            Note, and_(*visible)).group_by(Note.customer_id))).all())
    return pages_by(customer_ids, rows, lambda n: n.customer_id, page, lambda n: encode_cursor(n.created_at, n.id),
                    totals)


async def notes_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Note]:
    """For node lookups: notes of customers the principal sees, brand-less or of its brands."""
    authorize(principal, Action.CUSTOMER_READ)
    stmt = select(Note).where(Note.tenant_id == principal.tenant_id, Note.id.in_(set(ids)),
                              *scoping.brand_filter(principal, Note.brand_id, shared=True))
    visible = scoping.customer_visible_clause(principal, Customer)
    if visible is not None:
        stmt = stmt.join(Customer, and_(Customer.tenant_id == Note.tenant_id, Customer.id == Note.customer_id)
                         ).where(visible)
    async with tenant_session(principal.tenant_id) as s:
        return {n.id: n for n in await s.scalars(stmt)}
