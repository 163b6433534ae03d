"""The conversation inbox: lists of a brand's conversations (filters, keyset pages), the
counts behind its tabs, one thread's messages, and the batched lookups of the API's dataloaders
(conversations, last messages, unread counts, assignees).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ARRAY, and_, cast, exists, func, or_, select, true
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.orm import aliased

from domain.conversations.models import Conversation, ConversationLabel, Message, ReadMarker, Status
from domain.conversations.service import load
from domain.customers.models import Customer
from domain.errors import DomainError, NotFound
from domain.pagination import Page, PageRequest, encode_cursor, owners, pages_by
from domain.platform.db import tenant_session
from domain.tenancy import scoping, validation
from domain.tenancy.models import Brand, Membership
from domain.tenancy.policies import Action, Principal, authorize


async def conversations_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Conversation]:
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await scoping.by_ids(s, principal, Conversation, ids)


@dataclass(frozen=True)
class InboxFilter:
    brand_id: uuid.UUID
    statuses: tuple[Status, ...] = ()
    assignee_id: uuid.UUID | None = None
    unassigned: bool = False
    label_ids: tuple[uuid.UUID, ...] = ()
    unread_only: bool = False
    search: str | None = None


def _unread_clause(principal: Principal, conv=Conversation):
    """The conversation has an inbound message this principal has not read."""
    marker = select(ReadMarker.read_at).where(
        ReadMarker.tenant_id == conv.tenant_id, ReadMarker.conversation_id == conv.id,
        ReadMarker.user_id == principal.id).scalar_subquery()
    return and_(conv.last_inbound_at.is_not(None),
                or_(~exists(select(ReadMarker.user_id).where(
                    ReadMarker.tenant_id == conv.tenant_id, ReadMarker.conversation_id == conv.id,
                    ReadMarker.user_id == principal.id)), conv.last_inbound_at > marker))


async def inbox(principal: Principal, flt: InboxFilter, *, page: PageRequest) -> Page[Conversation]:
    """Newest activity first, keyset-paginated on (last_message_at, id)."""
    authorize(principal, Action.CONVERSATION_READ, brand_id=flt.brand_id)
    c = Conversation
    conditions = _inbox_conditions(principal, flt)
    after, order = page.keyset([(c.last_message_at, True), (c.id, True)], datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(c).where(*conditions, *after)
                                     .order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, lambda x: encode_cursor(x.last_message_at, x.id))


async def count_inbox(principal: Principal, flt: InboxFilter) -> int:
    """How many conversations ``inbox`` lists with ``flt`` (the brand's inbox indexes, as the
    counts of ``counts``)."""
    authorize(principal, Action.CONVERSATION_READ, brand_id=flt.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return await s.scalar(select(func.count()).select_from(Conversation).where(*_inbox_conditions(principal, flt)))


def _inbox_conditions(principal: Principal, flt: InboxFilter) -> list:
    c = Conversation
    conditions = [c.tenant_id == principal.tenant_id, c.brand_id == flt.brand_id]
    if flt.statuses:
        conditions.append(c.status.in_([x.value for x in flt.statuses]))
    if flt.assignee_id is not None:  # a member id; conversations store the member's user id
        conditions.append(c.assignee_id == select(Membership.user_id).where(
            Membership.tenant_id == principal.tenant_id, Membership.id == flt.assignee_id).scalar_subquery())
    if flt.unassigned:
        conditions.append(c.assignee_id.is_(None))
    if flt.label_ids:
        conditions.append(exists(select(ConversationLabel.label_id).where(
            ConversationLabel.tenant_id == c.tenant_id, ConversationLabel.conversation_id == c.id,
            ConversationLabel.label_id.in_(flt.label_ids))))
    if flt.unread_only:
        conditions.append(_unread_clause(principal))
    if flt.search:
        term = flt.search.strip().lower()
        if validation.has_nul(term):
            raise DomainError("search contains a NUL character", field="search")
        like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(or_(func.lower(c.subject).like(like), exists(select(Customer.id).where(
            Customer.tenant_id == c.tenant_id, Customer.id == c.customer_id,
            or_(Customer.email.like(like), func.lower(Customer.first_name + " " + Customer.last_name).like(like),
                Customer.phone.like(like))))))
    return conditions


async def check_inbox(principal: Principal, brand_id: uuid.UUID) -> None:
    """The principal may follow this brand's inbox (conversationEvents): a brand of its own
    tenant that it may use, or NOT_FOUND."""
    authorize(principal, Action.CONVERSATION_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        found = await s.scalar(select(Brand.id).where(Brand.tenant_id == principal.tenant_id, Brand.id == brand_id))
    if found is None:
        raise NotFound("brand not found", field="brandId")


async def counts(principal: Principal, brand_id: uuid.UUID) -> dict[str, int]:
    """Conversations per status (the inbox tabs), plus unread and unassigned open ones."""
    authorize(principal, Action.CONVERSATION_READ, brand_id=brand_id)
    c = Conversation
    async with tenant_session(principal.tenant_id) as s:
        rows = dict((await s.execute(select(c.status, func.count()).where(
            c.tenant_id == principal.tenant_id, c.brand_id == brand_id).group_by(c.status))).all())
        unread = await s.scalar(select(func.count()).where(
            c.tenant_id == principal.tenant_id, c.brand_id == brand_id, c.status != Status.RESOLVED.value,
            _unread_clause(principal)))
        unassigned = await s.scalar(select(func.count()).where(
            c.tenant_id == principal.tenant_id, c.brand_id == brand_id, c.status == Status.OPEN.value,
            c.assignee_id.is_(None)))
    out = {x.value: rows.get(x.value, 0) for x in Status}
    out.update(unread=unread or 0, unassigned=unassigned or 0)
    return out


async def messages_of(principal: Principal, conversation_ids: list[uuid.UUID], *, page: PageRequest,
                      newest_first: bool = False) -> dict[uuid.UUID, Page[Message]]:
    """The same page of several conversations' messages and notes in one query (LATERAL), as
    ``messages`` orders them. A conversation the principal may not see holds none here."""
    authorize(principal, Action.CONVERSATION_READ)
    m = Message
    async with tenant_session(principal.tenant_id) as s:
        visible = list(await scoping.by_ids(s, principal, Conversation, conversation_ids))
        rows: list[Message] = []
        if visible:
            ids = owners(visible)
            conditions = [m.tenant_id == principal.tenant_id, m.conversation_id == ids.c.id]
            after, order = page.keyset([(m.created_at, newest_first), (m.id, newest_first)], datetime, uuid.UUID)
            each = select(m).where(*conditions, *after).order_by(*order).limit(page.size + 1).lateral("m")
            msg = aliased(Message, each)
            outer = page.ordering([(msg.created_at, newest_first), (msg.id, newest_first)])
            rows = list((await s.scalars(select(msg).select_from(ids).join(each, true())
                                         .order_by(msg.conversation_id, *outer))).all())
    return pages_by(conversation_ids, rows, lambda x: x.conversation_id, page,
                    lambda x: encode_cursor(x.created_at, x.id))


async def message_by_id(principal: Principal, conversation_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        await load(s, principal, conversation_id)
        return await s.scalar(select(Message).where(Message.tenant_id == principal.tenant_id,
                                                    Message.conversation_id == conversation_id, Message.id == message_id))


async def last_messages(principal: Principal, conversation_ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
    """Each conversation's latest message (not note), one LATERAL query (dataloaders)."""
    authorize(principal, Action.CONVERSATION_READ)
    ids = select(func.unnest(cast(list(set(conversation_ids)), ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery("c")
    each = (select(Message).where(Message.tenant_id == principal.tenant_id, Message.conversation_id == ids.c.id,
                                  Message.kind == "message")
            .order_by(Message.created_at.desc(), Message.id.desc()).limit(1).lateral("m"))
    m = aliased(Message, each)
    stmt = select(m).select_from(ids).join(each, true())
    if not scoping.sees_every_brand(principal):
        stmt = scoping.in_brands(stmt.join(Conversation, and_(Conversation.tenant_id == m.tenant_id,
                                                              Conversation.id == m.conversation_id)),
                                 principal, Conversation.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return {x.conversation_id: x for x in await s.scalars(stmt)}


async def unread_counts(principal: Principal, conversation_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Inbound messages after the principal's read marker, per conversation, one query."""
    authorize(principal, Action.CONVERSATION_READ)
    m, r = Message, ReadMarker
    stmt = (select(m.conversation_id, func.count())
            .outerjoin(r, and_(r.tenant_id == m.tenant_id, r.conversation_id == m.conversation_id,
                               r.user_id == principal.id))
            .where(m.tenant_id == principal.tenant_id, m.conversation_id.in_(set(conversation_ids)),
                   m.direction == "inbound", m.kind == "message",
                   or_(r.read_at.is_(None), m.created_at > r.read_at))
            .group_by(m.conversation_id))
    if not scoping.sees_every_brand(principal):
        stmt = scoping.in_brands(stmt.join(Conversation, and_(Conversation.tenant_id == m.tenant_id,
                                                              Conversation.id == m.conversation_id)),
                                 principal, Conversation.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return dict((await s.execute(stmt)).all())


@dataclass(frozen=True)
class Assignee:
    member_id: uuid.UUID
    email: str
    name: str | None


async def assignees_by_ids(principal: Principal, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, Assignee]:
    """Who conversations are assigned to (by the user id a conversation stores): members of the
    tenant as the tenant knows them (member id, e-mail and name of the membership), readable by
    anyone who reads conversations (an agent sees who holds a thread, not the member directory)."""
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        rows = (await s.execute(select(Membership.user_id, Membership.id, Membership.email, Membership.name)
                                .where(Membership.tenant_id == principal.tenant_id,
                                       Membership.user_id.in_(set(user_ids))))).all()
    return {r.user_id: Assignee(r.id, r.email, r.name) for r in rows}


async def messages_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
    """For node lookups: messages and notes of conversations of the principal's brands."""
    authorize(principal, Action.CONVERSATION_READ)
    stmt = (select(Message).join(Conversation, and_(Conversation.tenant_id == Message.tenant_id,
                                                    Conversation.id == Message.conversation_id))
            .where(Message.tenant_id == principal.tenant_id, Message.id.in_(set(ids))))
    async with tenant_session(principal.tenant_id) as s:
        return {m.id: m for m in await s.scalars(scoping.in_brands(stmt, principal, Conversation.brand_id))}


async def assignees_by_member_ids(principal: Principal, member_ids: list[uuid.UUID]) -> dict[uuid.UUID, Assignee]:
    """For node lookups, by member id: members who hold a conversation the principal sees."""
    authorize(principal, Action.CONVERSATION_READ)
    holds = select(Conversation.id).where(Conversation.tenant_id == Membership.tenant_id,
                                          Conversation.assignee_id == Membership.user_id)
    holds = scoping.in_brands(holds, principal, Conversation.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        rows = (await s.execute(select(Membership.id, Membership.email, Membership.name)
                                .where(Membership.tenant_id == principal.tenant_id,
                                       Membership.id.in_(set(member_ids)), exists(holds)))).all()
    return {r.id: Assignee(r.id, r.email, r.name) for r in rows}
