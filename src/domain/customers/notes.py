"""Notes on customers: info, warning or action; internal, or shared with the customer's brands."""

from __future__ import annotations

import uuid
from enum import Enum

from sqlalchemy import select

from domain.audit import service as audit
from domain.customers.models import Note
from domain.customers.service import load_visible
from domain.errors import Validator
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


async def notes_by_customer(principal: Principal, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Note]]:
    """Newest first; a brand-limited principal sees brand-less notes and its brands' notes."""
    authorize(principal, Action.CUSTOMER_READ)
    stmt = select(Note).where(Note.tenant_id == principal.tenant_id, Note.customer_id.in_(set(customer_ids)))
    stmt = stmt.where(*scoping.brand_filter(principal, Note.brand_id, shared=True))
    out: dict[uuid.UUID, list[Note]] = {}
    async with tenant_session(principal.tenant_id) as s:
        for note in await s.scalars(stmt.order_by(Note.created_at.desc(), Note.id.desc())):
            out.setdefault(note.customer_id, []).append(note)
    return out
