"""Conversations: the inbox, one thread's messages, and what agents do to a thread.

Every conversation belongs to one brand; a principal must hold that brand to see or touch it.
Statuses: open, pending (waiting on the customer), snoozed (until a time; the scheduler reopens
it), resolved. A new inbound message reopens a pending, snoozed or resolved conversation.

Consent (docs/conversations.md): a reply inside a conversation the customer started is
transactional and always allowed; a conversation a user starts is outbound marketing contact
and needs the brand's consent for the channel (chat excepted: the customer is in the chat).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ARRAY, and_, cast, delete, exists, func, or_, select, true
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.conversations.models import Conversation, ConversationLabel, Label, Message, ReadMarker
from domain.customers.models import Customer
from domain.customers.service import load_visible
from domain.customers.tags import COLOR_RE
from domain.errors import DomainError, ErrorCode, InvalidState, NotFound, Validator
from domain.pagination import Page, decode_cursor, encode_cursor
from domain.platform import outbox
from domain.platform.db import tenant_session
from domain.tenancy import scoping, validation
from domain.tenancy.models import Brand, BrandGrant, Membership
from domain.tenancy.policies import Action, Principal, Role, authorize


class Status(str, Enum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class ConversationChannel(str, Enum):
    EMAIL = "email"
    SMS = "sms"
    CHAT = "chat"


MAX_BODY = 100_000


def topic(brand_id: uuid.UUID) -> str:
    return f"conversations:{brand_id}"


def announce(s: AsyncSession, c: Conversation, kind: str, **extra: Any) -> None:
    """Publish a conversation event for the brand's live inbox with the transaction."""
    payload = {"type": kind, "conversation_id": str(c.id), **{k: str(v) if v is not None else None
                                                                for k, v in extra.items()}}
    outbox.publish(s, c.tenant_id, topic(c.brand_id), payload)


# --- loading -----------------------------------------------------------------------------


async def load(s: AsyncSession, principal: Principal, conversation_id: uuid.UUID, *, lock: bool = False,
               field: str = "conversationId") -> Conversation:
    return await scoping.load_brand_owned(s, principal, Conversation, conversation_id, what="conversation",
                                          field=field, lock=lock)


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


async def inbox(principal: Principal, flt: InboxFilter, *, first: int, after: str | None) -> Page[Conversation]:
    """Newest activity first, keyset-paginated on (last_message_at, id)."""
    authorize(principal, Action.CONVERSATION_READ, brand_id=flt.brand_id)
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
    if after:
        at, last = decode_cursor(after, datetime, uuid.UUID)
        conditions.append(or_(c.last_message_at < at, and_(c.last_message_at == at, c.id < last)))
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(c).where(*conditions)
                                     .order_by(c.last_message_at.desc(), c.id.desc()).limit(first + 1))).all())
    return Page.of(rows, first, lambda x: encode_cursor(x.last_message_at, x.id))


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


async def messages(principal: Principal, conversation_id: uuid.UUID, *, first: int, after: str | None,
                   newest_first: bool = False) -> Page[Message]:
    """A conversation's messages and notes, oldest first (or newest first), keyset-paginated."""
    authorize(principal, Action.CONVERSATION_READ)
    m = Message
    async with tenant_session(principal.tenant_id) as s:
        await load(s, principal, conversation_id, field="id")
        conditions = [m.tenant_id == principal.tenant_id, m.conversation_id == conversation_id]
        if after:
            at, last = decode_cursor(after, datetime, uuid.UUID)
            conditions.append(or_(m.created_at < at, and_(m.created_at == at, m.id < last)) if newest_first
                              else or_(m.created_at > at, and_(m.created_at == at, m.id > last)))
        order = (m.created_at.desc(), m.id.desc()) if newest_first else (m.created_at, m.id)
        rows = list((await s.scalars(select(m).where(*conditions).order_by(*order).limit(first + 1))).all())
    return Page.of(rows, first, lambda x: encode_cursor(x.created_at, x.id))


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


async def labels_of(principal: Principal, conversation_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Label]]:
    authorize(principal, Action.CONVERSATION_READ)
    stmt = (select(ConversationLabel.conversation_id, Label)
            .join(Label, and_(Label.tenant_id == ConversationLabel.tenant_id, Label.id == ConversationLabel.label_id))
            .where(ConversationLabel.tenant_id == principal.tenant_id,
                   ConversationLabel.conversation_id.in_(set(conversation_ids)))
            .order_by(Label.name))
    stmt = scoping.in_brands(stmt, principal, Label.brand_id)
    out: dict[uuid.UUID, list[Label]] = {}
    async with tenant_session(principal.tenant_id) as s:
        for cid, label in (await s.execute(stmt)).all():
            out.setdefault(cid, []).append(label)
    return out


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


# --- starting, replying, notes -----------------------------------------------------------


def _clean_body(v: Validator, text: str | None, html: str | None, field: str = "body") -> tuple[str, str | None]:
    text = validation.text(v, field, text, required=True, max_len=MAX_BODY)
    if html is not None:
        if validation.has_nul(html):
            v.add("html", "html contains a NUL character")
        elif len(html) > MAX_BODY * 5:
            v.add("html", "html is too long", ErrorCode.TOO_LONG)
    return text or "", html


async def start_conversation(principal: Principal, brand_id: uuid.UUID, customer_id: uuid.UUID,
                             channel: ConversationChannel, subject: str | None, body: str, html: str | None,
                             idempotency_key: str) -> tuple[Conversation, Message]:
    """A user opens a thread with a customer and sends the first message. Outbound contact the
    customer did not ask for: it needs the brand's consent for the channel (chat excepted)."""
    from domain.conversations import sending
    from domain.customers import consent

    authorize(principal, Action.CONVERSATION_REPLY, brand_id=brand_id)
    v = Validator()
    key = validation.text(v, "idempotencyKey", idempotency_key, required=True, max_len=200)
    subject = validation.text(v, "subject", subject, required=channel is ConversationChannel.EMAIL, max_len=500)
    text, html = _clean_body(v, body, html)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        brand = await scoping.check_brand(s, principal, brand_id)
        customer = await load_visible(s, principal, customer_id)
        existing = await s.scalar(select(Message).where(
            Message.tenant_id == principal.tenant_id, Message.idempotency_key == f"start:{key}"))
        if existing is not None:
            return await s.get(Conversation, (principal.tenant_id, existing.conversation_id)), existing
        address = {ConversationChannel.EMAIL: customer.email, ConversationChannel.SMS: customer.phone,
                   ConversationChannel.CHAT: str(customer.id)}[channel]
        if not address:
            raise InvalidState(f"the customer has no {'e-mail address' if channel is ConversationChannel.EMAIL else 'phone number'}",
                               field="customerId")
        if channel is not ConversationChannel.CHAT:
            allowed = await consent.reachable(s, principal.tenant_id, brand_id, consent.Channel(channel.value),
                                              [customer.id])
            if customer.id not in allowed:
                raise DomainError(f"the customer has not consented to {channel.value} from this brand; a "
                                  "conversation you start needs consent (replies to the customer's own messages do not)",
                                  field="customerId", code=ErrorCode.FORBIDDEN)
        brand_address = brand.from_email if channel is ConversationChannel.EMAIL else brand.sms_sender
        now = datetime.now(UTC)
        conv = Conversation(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id, customer_id=customer.id,
                            channel=channel.value, status=Status.OPEN.value, priority=Priority.MEDIUM.value,
                            subject=subject, started_by="user", customer_address=address, brand_address=brand_address,
                            last_message_at=now, first_response_at=now, message_count=0)
        s.add(conv)
        await s.flush()
        message = await _outbound(s, principal, conv, text, html, f"start:{key}")
        audit.record(s, principal, "conversation.start", "Conversation", conv.id, brand_id=brand_id,
                     summary={"channel": channel.value})
        sending.send_later(s, conv.tenant_id, message.id)
        return conv, message


async def _outbound(s: AsyncSession, principal: Principal, conv: Conversation, text: str, html: str | None,
                    key: str) -> Message:
    from domain.timeline import service as timeline

    now = datetime.now(UTC)
    message = Message(id=uuid.uuid4(), tenant_id=conv.tenant_id, conversation_id=conv.id, direction="outbound",
                      kind="message", author_type="user", author_id=str(principal.id), author_label=principal.label,
                      body_text=text, body_html=html, attachments=[], from_address=conv.brand_address,
                      to_address=conv.customer_address, idempotency_key=key,
                      delivery_status="sent" if conv.channel == ConversationChannel.CHAT.value else "queued",
                      sent_at=now if conv.channel == ConversationChannel.CHAT.value else None, created_at=now)
    s.add(message)
    conv.last_message_at = now
    conv.message_count += 1
    if conv.first_response_at is None:
        conv.first_response_at = now
    timeline.write(s, conv.tenant_id, conv.customer_id, timeline.Kind.CONVERSATION_MESSAGE, now, brand_id=conv.brand_id,
                   ref=("Conversation", conv.id),
                   data={"conversation_id": str(conv.id), "direction": "outbound", "channel": conv.channel,
                         "excerpt": text[:140]})
    await s.flush()
    announce(s, conv, "message_created", message_id=message.id)
    return message


async def reply(principal: Principal, conversation_id: uuid.UUID, body: str, html: str | None,
                idempotency_key: str) -> tuple[Conversation, Message]:
    """Answer in the thread; sent through the brand's provider by a worker. The same key twice
    sends once. Allowed without marketing consent when the customer started the conversation."""
    from domain.conversations import sending
    from domain.customers import consent

    authorize(principal, Action.CONVERSATION_REPLY)
    v = Validator()
    key = validation.text(v, "idempotencyKey", idempotency_key, required=True, max_len=200)
    text, html = _clean_body(v, body, html)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        existing = await s.scalar(select(Message).where(
            Message.tenant_id == conv.tenant_id, Message.conversation_id == conv.id, Message.idempotency_key == key))
        if existing is not None:
            return conv, existing
        if conv.started_by == "user" and conv.channel != ConversationChannel.CHAT.value and conv.last_inbound_at is None:
            allowed = await consent.reachable(s, conv.tenant_id, conv.brand_id, consent.Channel(conv.channel),
                                              [conv.customer_id])
            if conv.customer_id not in allowed:
                raise DomainError("the customer has withdrawn consent and has not written back", field="conversationId",
                                  code=ErrorCode.FORBIDDEN)
        message = await _outbound(s, principal, conv, text, html, key)
        audit.record(s, principal, "conversation.reply", "Conversation", conv.id, brand_id=conv.brand_id,
                     summary={"message_id": str(message.id)})
        if conv.channel != ConversationChannel.CHAT.value:
            sending.send_later(s, conv.tenant_id, message.id)
    return conv, message


async def add_note(principal: Principal, conversation_id: uuid.UUID, body: str) -> tuple[Conversation, Message]:
    """A private note: visible to the team, never sent to the customer, not on the timeline."""
    authorize(principal, Action.CONVERSATION_REPLY)
    v = Validator()
    text = validation.text(v, "body", body, required=True, max_len=MAX_BODY)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        message = Message(id=uuid.uuid4(), tenant_id=conv.tenant_id, conversation_id=conv.id, direction="outbound",
                          kind="note", author_type="user", author_id=str(principal.id), author_label=principal.label,
                          body_text=text, attachments=[], created_at=datetime.now(UTC))
        s.add(message)
        await s.flush()
        audit.record(s, principal, "conversation.note", "Conversation", conv.id, brand_id=conv.brand_id)
        announce(s, conv, "note_added", message_id=message.id)
    return conv, message


# --- managing a thread -------------------------------------------------------------------


async def _assignable_user(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID,
                           member_id: uuid.UUID) -> uuid.UUID | None:
    """The user id behind an active member who may use the brand; None otherwise."""
    m = await s.scalar(select(Membership).where(Membership.tenant_id == tenant_id, Membership.id == member_id,
                                                Membership.status == "active"))
    if m is None:
        return None
    if Role(m.role).sees_every_brand or m.all_brands:
        return m.user_id
    granted = await s.scalar(select(exists().where(BrandGrant.tenant_id == tenant_id, BrandGrant.user_id == m.user_id,
                                                   BrandGrant.brand_id == brand_id)))
    return m.user_id if granted else None


async def assign(principal: Principal, conversation_id: uuid.UUID, member_id: uuid.UUID | None) -> Conversation:
    """Assign to a member (by member id), or unassign with None."""
    authorize(principal, Action.CONVERSATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        assignee_id = None
        if member_id is not None:
            assignee_id = await _assignable_user(s, conv.tenant_id, conv.brand_id, member_id)
            if assignee_id is None:
                raise NotFound("no member with access to this brand has this id", field="assigneeId")
        if conv.assignee_id != assignee_id:
            conv.assignee_id = assignee_id
            audit.record(s, principal, "conversation.assign", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"assignee_id": str(member_id) if assignee_id else None})  # the member id
            announce(s, conv, "assigned", assignee_id=assignee_id)
        await s.flush()
    return conv


def _set_status(s: AsyncSession, conv: Conversation, status: Status, until: datetime | None = None) -> bool:
    if conv.status == status.value and conv.snoozed_until == until:
        return False
    conv.status = status.value
    conv.snoozed_until = until
    conv.resolved_at = datetime.now(UTC) if status is Status.RESOLVED else None
    announce(s, conv, "status_changed", status=status.value)
    return True


async def set_status(principal: Principal, conversation_id: uuid.UUID, status: Status) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    if status is Status.SNOOZED:
        raise DomainError("snooze with snoozeConversation(until:)", field="status")
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        if _set_status(s, conv, status):
            audit.record(s, principal, "conversation.status", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"status": status.value})
        await s.flush()
    return conv


async def snooze(principal: Principal, conversation_id: uuid.UUID, until: datetime) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    if until.tzinfo is None:
        raise DomainError("give the time with its offset", field="until")
    if until <= datetime.now(UTC):
        raise DomainError("snooze until a time in the future", field="until")
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        if conv.status == Status.RESOLVED.value:
            raise InvalidState("a resolved conversation cannot be snoozed", field="conversationId")
        _set_status(s, conv, Status.SNOOZED, until)
        audit.record(s, principal, "conversation.snooze", "Conversation", conv.id, brand_id=conv.brand_id,
                     summary={"until": until.isoformat()})
        await s.flush()
    return conv


async def wake_snoozed(tenant_id: uuid.UUID) -> int:
    """The scheduler's pass: snoozed conversations whose time has come are open again."""
    async with tenant_session(tenant_id) as s:
        due = list((await s.scalars(select(Conversation).where(
            Conversation.tenant_id == tenant_id, Conversation.status == Status.SNOOZED.value,
            Conversation.snoozed_until <= datetime.now(UTC)).with_for_update(skip_locked=True))).all())
        for conv in due:
            _set_status(s, conv, Status.OPEN)
            audit.record(s, None, "conversation.wake", "Conversation", conv.id, tenant_id=tenant_id,
                         brand_id=conv.brand_id)
    return len(due)


async def set_priority(principal: Principal, conversation_id: uuid.UUID, priority: Priority) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        if conv.priority != priority.value:
            conv.priority = priority.value
            audit.record(s, principal, "conversation.priority", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"priority": priority.value})
            announce(s, conv, "priority_changed", priority=priority.value)
        await s.flush()
    return conv


async def mark_read(principal: Principal, conversation_id: uuid.UUID) -> Conversation:
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id)
        now = await s.scalar(select(func.clock_timestamp()))
        await s.execute(insert(ReadMarker).values(tenant_id=conv.tenant_id, conversation_id=conv.id,
                                                  user_id=principal.id, read_at=now)
                        .on_conflict_do_update(index_elements=["tenant_id", "conversation_id", "user_id"],
                                               set_={"read_at": now}))
    return conv


# --- labels ------------------------------------------------------------------------------


async def create_label(principal: Principal, brand_id: uuid.UUID, name: str, color: str | None) -> Label:
    authorize(principal, Action.CONVERSATION_LABEL_MANAGE, brand_id=brand_id)
    v = Validator()
    name = validation.text(v, "name", name, required=True, max_len=64)
    if color is not None and not COLOR_RE.match(color):
        v.add("color", "use a hex colour such as #10b981")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        taken = await s.scalar(select(Label.id).where(Label.tenant_id == principal.tenant_id, Label.brand_id == brand_id,
                                                      func.lower(Label.name) == name.lower()))
        if taken is not None:
            raise DomainError(f"this brand already has a label {name!r}", field="name", code=ErrorCode.DUPLICATE)
        label = Label(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id, name=name,
                      color=color or "#6b7280")
        s.add(label)
        await s.flush()
        await s.refresh(label)
        audit.record(s, principal, "conversation_label.create", "ConversationLabel", label.id, brand_id=brand_id,
                     summary={"name": name})
    return label


async def list_labels(principal: Principal, brand_id: uuid.UUID) -> list[Label]:
    authorize(principal, Action.CONVERSATION_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(select(Label).where(Label.tenant_id == principal.tenant_id,
                                                         Label.brand_id == brand_id).order_by(Label.name))).all())


async def labels_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Label]:
    """Labels by id (``node``): those of the brands the principal may use."""
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await scoping.by_ids(s, principal, Label, ids)


async def change_labels(principal: Principal, conversation_id: uuid.UUID, add: list[uuid.UUID],
                        remove: list[uuid.UUID]) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        wanted = set(add) | set(remove)
        known = set(await s.scalars(select(Label.id).where(Label.tenant_id == conv.tenant_id,
                                                           Label.brand_id == conv.brand_id, Label.id.in_(wanted))))
        for i, lid in enumerate(add + remove):
            if lid not in known:
                raise NotFound("not a label of this conversation's brand", field=f"labelIds[{i}]")
        changed = 0
        if add:
            changed += len((await s.execute(insert(ConversationLabel).values([
                dict(tenant_id=conv.tenant_id, conversation_id=conv.id, label_id=lid) for lid in dict.fromkeys(add)
            ]).on_conflict_do_nothing().returning(ConversationLabel.label_id))).all())
        if remove:
            changed += (await s.execute(delete(ConversationLabel).where(
                ConversationLabel.tenant_id == conv.tenant_id, ConversationLabel.conversation_id == conv.id,
                ConversationLabel.label_id.in_(remove)))).rowcount
        if changed:
            audit.record(s, principal, "conversation.labels", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"added": [str(x) for x in add], "removed": [str(x) for x in remove]})
            announce(s, conv, "labels_changed")
    return conv
