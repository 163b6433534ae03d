"""Writing in a thread: a user starting a conversation with a customer, agent replies, and
private notes. Replies are sent by :mod:`domain.conversations.sending`, after the commit.

Consent (docs/conversations.md): a reply inside a conversation the customer started is
transactional and always allowed; a conversation a user starts is outbound marketing contact
and needs the brand's consent for the channel (chat excepted: the customer is in the chat).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.conversations import sending
from domain.conversations.events import announce
from domain.conversations.models import Conversation, ConversationChannel, Message, Priority, Status
from domain.conversations.service import load
from domain.customers import consent
from domain.customers.service import load_visible
from domain.errors import DomainError, ErrorCode, InvalidState, Validator
from domain.platform.db import tenant_session
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline

MAX_BODY = 100_000


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
