"""Messages from customers: provider webhooks (e-mail, SMS) and chat messages posted through the
API, stored once each and threaded.

For each inbound message, in one transaction:

1. **Once.** A delivery the provider retries (same provider id) finds its message and changes
   nothing (a unique index backs this against concurrent retries).
2. **The customer**, within the tenant, by e-mail address or phone number; a new one is created,
   and the brand relationship is recorded either way (source ``message``).
3. **The campaign** it answers: an e-mail whose ``In-Reply-To``/``References`` name a campaign
   message (``<c.<campaign>.<customer>@…>``), or an SMS from a customer who got one of the brand's
   SMS campaigns in the last 7 days.
4. **The thread.** E-mail: the conversation holding a message named in ``In-Reply-To`` or
   ``References``. SMS and chat: the customer's latest conversation with the brand on that
   channel. Otherwise a new conversation. A pending, snoozed or resolved one is opened again.
5. The message, the conversation's activity, a timeline event, and a live event for the inbox.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.campaigns.models import Campaign, Recipient
from domain.config import get_settings
from domain.conversations.events import announce
from domain.conversations.models import Conversation, ConversationChannel, Message, Status
from domain.conversations.service import _set_status
from domain.customers.models import Customer
from domain.customers.service import CustomerSource, link_brand, load_visible
from domain.delivery import inbound as parse
from domain.delivery.base import WebhookRejected
from domain.delivery.inbound import InboundMessage
from domain.delivery.service import verify_webhook
from domain.errors import DomainError, Validator
from domain.platform.db import tenant_session
from domain.tenancy import validation
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, authorize
from domain.timeline import service as timeline

_CAMPAIGN_MSGID = re.compile(r"^<c\.([0-9a-f]{32})\.([0-9a-f]{32})@")
SMS_REPLY_WINDOW = timedelta(days=7)
INBOUND_PROVIDERS = ("brevo", "twilio")


def inbound_url(tenant_id: uuid.UUID, brand_id: uuid.UUID, provider: str) -> str:
    return f"{get_settings().public_url}/webhooks/{provider}/inbound/{tenant_id}/{brand_id}"


async def receive(provider: str, tenant_id: uuid.UUID, brand_id: uuid.UUID, *, headers: Mapping[str, str],
                  body: bytes, query: str = "") -> int:
    """Verify an inbound webhook with the brand's secret, then store its messages. Returns how
    many were new. Raises WebhookRejected for anything not from the provider."""
    if provider not in INBOUND_PROVIDERS:
        raise WebhookRejected("unknown provider")
    url = inbound_url(tenant_id, brand_id, provider) + (f"?{query}" if query else "")
    params = await verify_webhook(provider, tenant_id, brand_id, url=url, headers=headers, body=body)
    messages = parse.parse_brevo_inbound(body) if provider == "brevo" else parse.parse_twilio_inbound(params)
    created = 0
    for m in messages:
        _, _, new = await store(tenant_id, brand_id, m)
        created += int(new)
    return created


async def _customer(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, m: InboundMessage) -> Customer:
    if m.channel == ConversationChannel.CHAT.value:  # posted through the API for a known customer
        found = await s.scalar(select(Customer).where(Customer.tenant_id == tenant_id,
                                                      Customer.id == uuid.UUID(m.from_address)))
        await link_brand(s, tenant_id, found.id, brand_id, CustomerSource.MESSAGE, refuse=False)
        return found
    column = Customer.email if m.channel == "email" else Customer.phone
    address = m.from_address.lower() if m.channel == "email" else m.from_address
    # the brand's private record first, then the shared one (customers.service.find_existing)
    mine = select(Customer).where(
        Customer.tenant_id == tenant_id, column == address,
        or_(Customer.private_to_brand_id == brand_id, Customer.private_to_brand_id.is_(None)),
    ).order_by(Customer.private_to_brand_id.is_(None), Customer.created_at).limit(1)
    found = await s.scalar(mine)
    if found is None:
        first = last = None
        if m.from_name:
            first, _, last = m.from_name.strip().partition(" ")
        values = dict(tenant_id=tenant_id, id=uuid.uuid4(), first_name=(first or None) and first[:100],
                      last_name=(last or None) and last[:100], attributes={},
                      **({"email": address} if m.channel == "email" else {"phone": address}))
        inserted = (await s.execute(insert(Customer).values(**values).on_conflict_do_nothing()
                                    .returning(Customer.id))).scalar()
        found = await s.scalar(mine)
        if inserted is not None:
            timeline.write(s, tenant_id, found.id, timeline.Kind.CUSTOMER_CREATED, m.received_at, brand_id=brand_id,
                           data={"source": CustomerSource.MESSAGE.value})
    await link_brand(s, tenant_id, found.id, brand_id, CustomerSource.MESSAGE, refuse=False)
    return found


async def _campaign_of(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, customer_id: uuid.UUID,
                       m: InboundMessage) -> uuid.UUID | None:
    r = Recipient
    if m.channel == "email":
        for ref in (m.in_reply_to, *m.references):
            found = _CAMPAIGN_MSGID.match(ref or "")
            if found is None:
                continue
            campaign_id, ref_customer = uuid.UUID(hex=found.group(1)), uuid.UUID(hex=found.group(2))
            ok = await s.scalar(select(r.campaign_id).where(r.tenant_id == tenant_id, r.campaign_id == campaign_id,
                                                            r.customer_id == ref_customer, r.brand_id == brand_id))
            if ok is not None:
                return campaign_id
        # providers that set their own Message-ID (Brevo returns it as the message id)
        refs = [x for x in (m.in_reply_to, *m.references) if x]
        if refs:
            return await s.scalar(select(r.campaign_id).where(r.tenant_id == tenant_id, r.brand_id == brand_id,
                                                              r.provider_message_id.in_(refs)).limit(1))
        return None
    if m.channel == "sms":
        return await s.scalar(select(r.campaign_id).join(Campaign, (Campaign.tenant_id == r.tenant_id)
                                                         & (Campaign.id == r.campaign_id))
                              .where(r.tenant_id == tenant_id, r.brand_id == brand_id, r.customer_id == customer_id,
                                     Campaign.channel == "sms", r.sent_at >= m.received_at - SMS_REPLY_WINDOW)
                              .order_by(r.sent_at.desc()).limit(1))
    return None


async def _thread(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, customer_id: uuid.UUID,
                  m: InboundMessage) -> Conversation | None:
    if m.channel == "email":
        refs = [x for x in (m.in_reply_to, *m.references) if x]
        if not refs:
            return None
        return await s.scalar(select(Conversation).join(Message, (Message.tenant_id == Conversation.tenant_id)
                                                        & (Message.conversation_id == Conversation.id))
                              .where(Message.tenant_id == tenant_id,
                                     Message.message_id_header.in_(refs) | Message.provider_message_id.in_(refs),
                                     Conversation.brand_id == brand_id)
                              .order_by(Message.created_at.desc()).limit(1).with_for_update(of=Conversation))
    return await s.scalar(select(Conversation).where(
        Conversation.tenant_id == tenant_id, Conversation.brand_id == brand_id, Conversation.customer_id == customer_id,
        Conversation.channel == m.channel).order_by(Conversation.last_message_at.desc()).limit(1).with_for_update())


async def store(tenant_id: uuid.UUID, brand_id: uuid.UUID, m: InboundMessage
                ) -> tuple[Conversation | None, Message | None, bool]:
    """Store one inbound message (see the module's steps). Returns (conversation, message, new)."""
    async with tenant_session(tenant_id) as s:
        seen = await s.scalar(select(Message).where(
            Message.tenant_id == tenant_id, Message.provider == m.provider,
            Message.provider_message_id == m.provider_message_id, Message.direction == "inbound"))
        if seen is not None:
            return await s.get(Conversation, (tenant_id, seen.conversation_id)), seen, False
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == tenant_id, Brand.id == brand_id))
        if brand is None:
            return None, None, False
        customer = await _customer(s, tenant_id, brand_id, m)
        campaign_id = await _campaign_of(s, tenant_id, brand_id, customer.id, m)
        conv = await _thread(s, tenant_id, brand_id, customer.id, m)
        now = await s.scalar(select(func.clock_timestamp()))
        if conv is None:
            conv = Conversation(id=uuid.uuid4(), tenant_id=tenant_id, brand_id=brand_id, customer_id=customer.id,
                                channel=m.channel, status=Status.OPEN.value, priority="medium",
                                subject=(m.subject or "")[:500] or None, campaign_id=campaign_id, started_by="customer",
                                customer_address=m.from_address, brand_address=m.to_address, last_message_at=now,
                                message_count=0)
            s.add(conv)
            await s.flush()
            announce(s, conv, "conversation_created")
        elif conv.campaign_id is None and campaign_id is not None:
            conv.campaign_id = campaign_id
        message = Message(id=uuid.uuid4(), tenant_id=tenant_id, conversation_id=conv.id, direction="inbound",
                          kind="message", author_type="customer", author_id=str(customer.id),
                          author_label=m.from_name or m.from_address, body_text=m.text or "", body_html=m.html,
                          attachments=m.attachments, from_address=m.from_address, to_address=m.to_address,
                          message_id_header=m.message_id, in_reply_to=m.in_reply_to,
                          references=" ".join(m.references) or None, provider=m.provider,
                          provider_message_id=m.provider_message_id, created_at=now)
        inserted = (await s.execute(insert(Message).values(
            **{c.key: getattr(message, c.key) for c in Message.__table__.columns if getattr(message, c.key) is not None}
        ).on_conflict_do_nothing().returning(Message.id))).scalar()
        if inserted is None:  # a concurrent retry stored it first
            return conv, None, False
        conv.last_message_at = now
        conv.last_inbound_at = now
        conv.message_count += 1
        if conv.status != Status.OPEN.value:
            _set_status(s, conv, Status.OPEN)
        timeline.write(s, tenant_id, customer.id, timeline.Kind.CONVERSATION_MESSAGE, m.received_at, brand_id=brand_id,
                       ref=("Conversation", conv.id),
                       data={"conversation_id": str(conv.id), "direction": "inbound", "channel": m.channel,
                             "excerpt": (m.text or "")[:140],
                             **({"campaign_id": str(campaign_id)} if campaign_id else {})})
        announce(s, conv, "message_created", message_id=message.id)
        await s.flush()
        return conv, message, True


async def receive_chat(principal, brand_id: uuid.UUID, customer_id: uuid.UUID, body: str,
                       idempotency_key: str) -> tuple[Conversation, Message]:
    """A customer's chat message posted by the brand's chat integration (an API key)."""
    authorize(principal, Action.CONVERSATION_REPLY, brand_id=brand_id)
    v = Validator()
    key = validation.text(v, "idempotencyKey", idempotency_key, required=True, max_len=200)
    text = validation.text(v, "body", body, required=True, max_len=100_000)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        customer = await load_visible(s, principal, customer_id)
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == principal.tenant_id, Brand.id == brand_id))
        if brand is None or brand.archived_at is not None:
            raise DomainError("brand not found", field="brandId")
    m = InboundMessage(channel=ConversationChannel.CHAT.value, provider="chat", provider_message_id=key,
                       from_address=str(customer.id), to_address=None, received_at=datetime.now(UTC), text=text,
                       from_name=" ".join(x for x in (customer.first_name, customer.last_name) if x) or None)
    conv, message, _ = await store(principal.tenant_id, brand_id, m)
    if message is None:
        async with tenant_session(principal.tenant_id) as s:
            message = await s.scalar(select(Message).where(
                Message.tenant_id == principal.tenant_id, Message.provider == "chat",
                Message.provider_message_id == key, Message.direction == "inbound"))
            conv = await s.get(Conversation, (principal.tenant_id, message.conversation_id))
    return conv, message

