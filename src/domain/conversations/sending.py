"""Agent replies go out through the same provider layer as campaigns, one Dramatiq message each.

A reply is a ``queued`` message row written with the request; the ``send_message`` actor moves
it ``queued → sending → sent`` (with the provider's id), or ``failed`` with the reason. Its key
``m.<message id>`` travels with it, so delivery events come back through the same webhooks as
campaign events (:func:`apply_event`). The move to ``sending`` is a conditional update that
records the Dramatiq message claiming it; a delivery that finds the reply no longer ``queued``
gives up, unless it is that same message again (a retry after the provider was unavailable, or
Dramatiq's redelivery after its worker died between sending and marking), which sends again with
the same idempotency key (the message id), which Brevo processes once. E-mail replies
thread: ``Message-ID`` ``<m.<id>@<brand domain>>``, ``In-Reply-To`` the customer's last message,
``References`` the chain.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta

import dramatiq
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.conversations.events import announce
from domain.conversations.models import Conversation, Message
from domain.delivery import service as delivery
from domain.delivery.base import (
    DeliveryEvent,
    EventKind,
    OutboundMessage,
    Outcome,
    ProviderRejected,
    ProviderUnavailable,
    Sender,
)
from domain.platform import outbox
from domain.platform import redis as redis_mod
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.tenancy.models import Brand

log = logging.getLogger(__name__)


def message_key(message_id: uuid.UUID) -> str:
    return f"m.{message_id.hex}"


def parse_key(key: str | None) -> uuid.UUID | None:
    if not key or not key.startswith("m."):
        return None
    try:
        return uuid.UUID(hex=key[2:])
    except ValueError:
        return None


def send_later(s: AsyncSession, tenant_id: uuid.UUID, message_id: uuid.UUID) -> None:
    """Queue the provider send with the transaction that wrote the message."""
    outbox.send(s, send_message, tenant_id, str(message_id))


async def _thread_headers(s: AsyncSession, conv: Conversation, message: Message, domain: str) -> dict[str, str]:
    headers = {"Message-ID": f"<{message_key(message.id)}@{domain}>"}
    last = await s.scalar(select(Message).where(
        Message.tenant_id == conv.tenant_id, Message.conversation_id == conv.id, Message.direction == "inbound",
        Message.message_id_header.is_not(None)).order_by(Message.created_at.desc()).limit(1))
    if last is not None:
        chain = [x for x in (last.references or "").split() if x] + [last.message_id_header]
        headers["In-Reply-To"] = last.message_id_header
        headers["References"] = " ".join(chain[-20:])
    return headers


STALLED_AFTER_MINUTES = 15


async def requeue_stalled_messages(tenant_id: uuid.UUID) -> int:
    """Send again the message of replies still ``queued`` long after they were written: a
    backstop for a send lost in Redis (a crash within a second of the relay's publish, with
    ``appendfsync everysec``), as :func:`domain.jobs.service.requeue_stalled` is for jobs. At
    most once per :data:`STALLED_AFTER_MINUTES` per reply (a Redis key throttles it; the keys
    are released when the transaction does not commit). Should the first message not have been
    lost after all, whichever of the two claims the reply sends it and the other gives up.
    Returns how many were sent."""
    client = redis_mod.client()
    taken: list[str] = []
    try:
        async with tenant_session(tenant_id) as s:
            stalled = list((await s.scalars(
                select(Message.id).where(Message.tenant_id == tenant_id, Message.direction == "outbound",
                                         Message.delivery_status == "queued",
                                         Message.created_at < func.now() - timedelta(minutes=STALLED_AFTER_MINUTES))
                .order_by(Message.created_at).limit(1000))).all())
            for mid in stalled:
                key = f"resend:m.{mid.hex}"
                if await client.set(key, "1", nx=True, ex=STALLED_AFTER_MINUTES * 60):
                    taken.append(key)
                    outbox.send(s, send_message, tenant_id, str(mid), resend=True)
    except BaseException:
        if taken:  # nothing was sent: the next sweep may try again
            with contextlib.suppress(Exception):
                await client.delete(*taken)
        raise
    return len(taken)


def _claimant() -> str | None:
    """The id of the Dramatiq message being processed: the same for its retries and for its
    redelivery after its worker died, another for any other message."""
    message = dramatiq.middleware.CurrentMessage.get_current_message()
    return message.message_id if message is not None else None


@tenant_actor(queue_name="messages", max_retries=20, min_backoff=2_000, max_backoff=300_000, time_limit=120_000)
async def send_message(tenant_id: uuid.UUID, message_id: str, resend: bool = False) -> None:
    """Send one reply. ``resend`` marks the sweep's re-send (see :func:`requeue_stalled_messages`);
    it follows the same rule as the first message: the one that claims the reply sends it."""
    mid = uuid.UUID(message_id)
    claimant = _claimant()
    async with tenant_session(tenant_id) as s:
        # the claim, in one statement: a queued reply, or one this very message claimed before
        mine = Message.delivery_status == "queued"
        if claimant is not None:
            mine = mine | ((Message.delivery_status == "sending") & (Message.claimed_by == claimant))
        claimed = await s.scalar(
            update(Message).where(Message.tenant_id == tenant_id, Message.id == mid, mine)
            .values(delivery_status="sending", claimed_by=claimant).returning(Message.id)
            .execution_options(synchronize_session=False))
        if claimed is None:
            return  # sent, failed, or claimed by another message (the first or the re-send), which sends it
        message = await s.scalar(select(Message).where(Message.tenant_id == tenant_id, Message.id == mid)
                                 .execution_options(populate_existing=True))
        conv = await s.get(Conversation, (tenant_id, message.conversation_id))
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == tenant_id, Brand.id == conv.brand_id))
        loaded = await delivery.load_provider(s, tenant_id, conv.brand_id, conv.channel)
        if loaded is None:
            message.delivery_status, message.error = "failed", f"the brand has no {conv.channel} provider"
            announce(s, conv, "message_updated", message_id=message.id)
            return
        row, provider = loaded
        domain = (brand.from_email or "brandgraph.local").rsplit("@", 1)[-1]
        headers = await _thread_headers(s, conv, message, domain) if conv.channel == "email" else {}
        if headers:
            message.message_id_header = headers["Message-ID"]
        subject = conv.subject or brand.name
        if conv.started_by == "customer" or conv.message_count > 1:
            subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        outbound = OutboundMessage(key=message_key(message.id), to=conv.customer_address, subject=subject,
                                   html=message.body_html, text=message.body_text, headers=headers)
        sender = Sender(from_email=brand.from_email, from_name=brand.from_name or brand.name,
                        reply_to=brand.reply_to, sms_sender=brand.sms_sender)
    try:
        results = await provider.send(sender, [outbound], mid)
    except ProviderRejected as exc:
        await _mark(tenant_id, mid, "failed", error=f"{row.provider} refused the request: {exc.message}")
        return
    except ProviderUnavailable:
        raise  # Dramatiq retries with backoff; the message stays 'sending' and goes again with its key
    result = results[0]
    if result.outcome is Outcome.ACCEPTED:
        await _mark(tenant_id, mid, "sent", provider=row.provider, provider_message_id=result.provider_message_id)
    elif result.outcome is Outcome.REJECTED:
        await _mark(tenant_id, mid, "failed", provider=row.provider, error=result.error or "rejected")
    else:
        raise ProviderUnavailable(result.error or "the provider asked to retry")


async def _mark(tenant_id: uuid.UUID, message_id: uuid.UUID, status: str, *, provider: str | None = None,
                provider_message_id: str | None = None, error: str | None = None) -> None:
    async with tenant_session(tenant_id) as s:
        message = await s.scalar(select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id)
                                 .with_for_update())
        if message is None or message.delivery_status not in ("queued", "sending"):
            return
        message.delivery_status = status
        message.provider = provider or message.provider
        message.provider_message_id = provider_message_id or message.provider_message_id
        message.error = error
        if status == "sent":
            message.sent_at = await s.scalar(select(func.clock_timestamp()))
        conv = await s.get(Conversation, (tenant_id, message.conversation_id))
        announce(s, conv, "message_updated", message_id=message.id)


async def apply_event(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID | None, e: DeliveryEvent) -> bool:
    """A provider event about a conversation message (by our key, or the provider's id):
    delivered / failed move its delivery status forward, once."""
    mid = parse_key(e.message_key)
    stmt = select(Message).where(Message.tenant_id == tenant_id, Message.direction == "outbound")
    if mid is not None:
        stmt = stmt.where(Message.id == mid)
    elif e.provider_message_id:
        stmt = stmt.where(Message.provider_message_id == e.provider_message_id)
    else:
        return False
    message = await s.scalar(stmt.limit(1).with_for_update())
    if message is None:
        return False
    conv = await s.get(Conversation, (tenant_id, message.conversation_id))
    if brand_id is not None and conv.brand_id != brand_id:
        return False
    if e.kind is EventKind.DELIVERED and message.delivery_status in ("sending", "sent"):
        message.delivery_status, message.delivered_at = "delivered", e.occurred_at
    elif e.kind in (EventKind.BOUNCED, EventKind.FAILED) and message.delivery_status in ("sending", "sent", "delivered"):
        message.delivery_status, message.error = "failed", (e.reason or e.kind.value)[:1000]
    else:
        return False
    announce(s, conv, "message_updated", message_id=message.id)
    return True

