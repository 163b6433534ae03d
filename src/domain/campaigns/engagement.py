"""What happens to a message after it is sent: provider webhooks and our own tracking land here.

Each event changes its recipient row at most once: every kind has its own timestamp, set only
while empty, under the row's lock. So a duplicate event changes nothing, and out-of-order events
settle the same way in any order: an open or a click implies the message was delivered (the
``delivered`` that arrives later changes nothing), a click implies an open, a bounce after a
delivery takes the delivery back. Counters move with the rows (one stats update per campaign per
request), and each first event lands on the customer's timeline. Complaints and unsubscribes
revoke the brand's consent for the channel and suppress the address.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.campaigns import stats
from domain.campaigns.models import Campaign, Recipient
from domain.campaigns.tracking import parse_message_key
from domain.conversations.sending import apply_event
from domain.customers import consent
from domain.delivery.base import DeliveryEvent, EventKind
from domain.delivery.service import suppress
from domain.platform.db import tenant_session
from domain.timeline import service as timeline

Kind = timeline.Kind
_TIMELINE = {
    EventKind.DELIVERED: Kind.MESSAGE_DELIVERED, EventKind.BOUNCED: Kind.MESSAGE_BOUNCED,
    EventKind.FAILED: Kind.MESSAGE_FAILED, EventKind.OPENED: Kind.MESSAGE_OPENED,
    EventKind.CLICKED: Kind.MESSAGE_CLICKED, EventKind.COMPLAINED: Kind.MESSAGE_COMPLAINED,
    EventKind.UNSUBSCRIBED: Kind.MESSAGE_UNSUBSCRIBED,
}


async def _find(s: AsyncSession, tenant_id: uuid.UUID, e: DeliveryEvent) -> Recipient | None:
    parsed = parse_message_key(e.message_key)
    r = Recipient
    if parsed is not None:
        stmt = select(r).where(r.tenant_id == tenant_id, r.campaign_id == parsed[0], r.customer_id == parsed[1])
    elif e.provider_message_id:
        stmt = select(r).where(r.tenant_id == tenant_id, r.provider_message_id == e.provider_message_id)
    else:
        return None
    return await s.scalar(stmt.limit(1).with_for_update())


def _deliver(r: Recipient, at: datetime, deltas: dict[str, int]) -> bool:
    if r.delivered_at is not None or r.bounced_at is not None or r.failed_at is not None:
        return False
    r.delivered_at = at
    if r.status in ("sending", "sent"):
        r.status = "delivered"
    deltas["delivered"] += 1
    return True


def _apply(r: Recipient, e: DeliveryEvent, deltas: dict[str, int]) -> bool:
    """Change the row for one event; True when it changed something (and the event counts)."""
    at = e.occurred_at
    match e.kind:
        case EventKind.DELIVERED:
            return _deliver(r, at, deltas)
        case EventKind.BOUNCED | EventKind.FAILED:
            if r.bounced_at is not None or r.failed_at is not None:
                return False
            if r.delivered_at is not None:
                deltas["delivered"] -= 1
            if e.kind is EventKind.BOUNCED:
                r.bounced_at, r.status = at, "bounced"
                deltas["bounced"] += 1
            else:
                r.failed_at, r.status = at, "failed"
                deltas["failed"] += 1
            r.error = (e.reason or "")[:1000] or None
            return True
        case EventKind.OPENED:
            if r.opened_at is not None:
                return False
            _deliver(r, at, deltas)
            r.opened_at = at
            deltas["opens"] += 1
            return True
        case EventKind.CLICKED:
            if r.clicked_at is not None:
                return False
            _deliver(r, at, deltas)
            if r.opened_at is None:
                r.opened_at = at
                deltas["opens"] += 1
            r.clicked_at = at
            deltas["clicks"] += 1
            return True
        case EventKind.COMPLAINED:
            if r.complained_at is not None:
                return False
            r.complained_at = at
            deltas["complaints"] += 1
            return True
        case EventKind.UNSUBSCRIBED:
            if r.unsubscribed_at is not None:
                return False
            r.unsubscribed_at = at
            deltas["unsubscribes"] += 1
            return True
    return False


async def apply_events(tenant_id: uuid.UUID, events: list[DeliveryEvent], *, brand_id: uuid.UUID | None = None,
                       source: str = "webhook") -> int:
    """Apply provider (or tracking) events for one tenant; events about messages that are not
    this tenant's (or, with ``brand_id``, not this brand's) are ignored. Returns how many changed
    something."""
    changed = 0
    per_campaign: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    channels: dict[uuid.UUID, str] = {}
    async with tenant_session(tenant_id) as s:
        for e in sorted(events, key=lambda x: x.occurred_at):
            r = await _find(s, tenant_id, e)
            if r is None:  # not a campaign message: perhaps a conversation reply
                changed += int(await apply_event(s, tenant_id, brand_id, e))
                continue
            if brand_id is not None and r.brand_id != brand_id:
                continue
            deltas = per_campaign[r.campaign_id]
            if not _apply(r, e, deltas):
                continue
            changed += 1
            data = {"campaign_id": str(r.campaign_id), "source": source}
            if e.url:
                data["url"] = e.url[:2000]
            if e.reason:
                data["reason"] = e.reason[:500]
            timeline.write(s, tenant_id, r.customer_id, _TIMELINE[e.kind], e.occurred_at, brand_id=r.brand_id,
                           ref=("Campaign", r.campaign_id), data=data)
            if e.kind in (EventKind.BOUNCED, EventKind.COMPLAINED, EventKind.UNSUBSCRIBED) and r.address:
                if r.campaign_id not in channels:
                    channels[r.campaign_id] = await s.scalar(select(Campaign.channel).where(
                        Campaign.tenant_id == tenant_id, Campaign.id == r.campaign_id))
                channel = channels[r.campaign_id]
                reason = {EventKind.BOUNCED: "bounced", EventKind.COMPLAINED: "complained",
                          EventKind.UNSUBSCRIBED: "unsubscribed"}[e.kind]
                await suppress(s, tenant_id, r.brand_id, channel, r.address, reason, source)
                if e.kind is not EventKind.BOUNCED:
                    await consent.record(s, tenant_id, r.customer_id, r.brand_id, consent.Channel(channel), False,
                                         source=f"{reason}:{source}", at=e.occurred_at)
        for campaign_id, deltas in per_campaign.items():
            await stats.bump(s, tenant_id, campaign_id, **dict(deltas))
    return changed
