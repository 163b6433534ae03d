"""The demo's campaigns: per brand, delivery through the ``log`` provider, a *sent* e-mail
campaign with engagement applied as provider events would be, and a *scheduled* one."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from brandgraph.demo.commerce import BRANDS, CATALOGUE
from domain.tenancy import brands
from domain.tenancy.policies import Principal

SENT_DAYS_AGO = 6
# per brand: the sent campaign (name, segment, cost in cents, content, its links) and the
# scheduled one (name, segment, content)
DEMO_CAMPAIGNS: dict[str, dict[str, Any]] = {
    "aurora": {
        "sent": ("First frost", "Big spenders", 18_000, {
            "subject": "{{ customer.first_name }}, first frost is here",
            "preheader": "Layer up for the ridge line: down, merino and a shell that means it.",
            "html": "<p>Hi {{ customer.first_name }},</p><p>First frost is here. Layer up for the ridge line.</p>"
                    "<p><a href=\"https://aurora.example/collections/winter\">Shop the winter layers</a></p>"
                    "<p><a href=\"https://aurora.example/journal/layering-101\">Layering 101</a></p>"
                    "<p>See you on the trail,<br>{{ brand.from_name }}</p>"
                    "<p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>",
            "text": "Hi {{ customer.first_name }}, first frost is here. Layer up: https://aurora.example/collections/winter"
                    "\nUnsubscribe: {{ unsubscribe_url }}"},
            ["https://aurora.example/collections/winter", "https://aurora.example/journal/layering-101"]),
        "scheduled": ("Trail season", "At risk", {
            "subject": "{{ customer.first_name }}, the trails are calling",
            "html": "<p>Hi {{ customer.first_name }},</p><p>Trail season opens next week. Your gear, checked and "
                    "ready?</p><p><a href=\"https://aurora.example/collections/camping\">Get ready</a></p>"
                    "<p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>",
            "text": "Trail season opens next week: https://aurora.example/collections/camping"}),
    },
    "lumen": {
        "sent": ("Evening routine", "Big spenders", 12_000, {
            "subject": "Your evening routine, simplified",
            "preheader": "Three steps, ten minutes, dermatologist-tested.",
            "html": "<p>Bonsoir {{ customer.first_name }},</p><p>Your evening routine, simplified: three steps, ten "
                    "minutes.</p><p><a href=\"https://lumen.example/routines/evening\">Discover the routine</a></p>"
                    "<p><a href=\"https://lumen.example/collections/serums\">Our gentle serums</a></p>"
                    "<p>{{ brand.from_name }}</p><p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>",
            "text": "Your evening routine, simplified: https://lumen.example/routines/evening"
                    "\nUnsubscribe: {{ unsubscribe_url }}"},
            ["https://lumen.example/routines/evening", "https://lumen.example/collections/serums"]),
        "scheduled": ("SPF reminder", "At risk", {
            "subject": "{{ customer.first_name }}, SPF is for every season",
            "html": "<p>Bonjour {{ customer.first_name }},</p><p>A gentle reminder: SPF every morning, all year.</p>"
                    "<p><a href=\"https://lumen.example/journal/spf-myths\">Five SPF myths</a></p>"
                    "<p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>",
            "text": "SPF every morning, all year: https://lumen.example/journal/spf-myths"}),
    },
    "kettle": {
        "sent": ("Bread club", "Big spenders", 6_000, {
            "subject": "Fresh from the oven, {{ customer.first_name }}",
            "preheader": "Join the Monthly Bread Club: a new loaf at your door every month.",
            "html": "<p>Hello {{ customer.first_name }},</p><p>The sourdough is out of the oven. Yours is waiting.</p>"
                    "<p><a href=\"https://kettle.example/bread-club\">Join the Bread Club</a></p>"
                    "<p><a href=\"https://kettle.example/menu\">See this week's bakes</a></p>"
                    "<p>{{ brand.from_name }}</p><p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>",
            "text": "The sourdough is out of the oven: https://kettle.example/bread-club"
                    "\nUnsubscribe: {{ unsubscribe_url }}"},
            ["https://kettle.example/bread-club", "https://kettle.example/menu"]),
        "scheduled": ("Starter workshop", "At risk", {
            "subject": "Bake your own sourdough, {{ customer.first_name }}",
            "html": "<p>Hello {{ customer.first_name }},</p><p>Our starter workshop is back: two hours, one starter, "
                    "lots of crumbs.</p><p><a href=\"https://kettle.example/journal/starter-care\">Book a seat</a></p>"
                    "<p><small><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></small></p>",
            "text": "Our starter workshop is back: https://kettle.example/journal/starter-care"}),
    },
}


async def seed_campaigns(owner: Principal, by_slug: dict[str, uuid.UUID]) -> dict[str, list[str]]:
    """Delivery set-up and two campaigns per brand (see the module's docstring). Idempotent and
    resumable: each campaign is found by brand and name, and carried on from its status (a run
    cut short between launch and engagement finishes on the next). Returns what it did per brand."""
    from sqlalchemy import select

    from domain.campaigns.models import Campaign, CampaignStats
    from domain.delivery.models import DeliveryProvider
    from domain.platform.db import tenant_session
    from domain.segments.models import Segment

    tenant_id = owner.tenant_id
    names = {slug: (c["sent"][0], c["scheduled"][0]) for slug, c in DEMO_CAMPAIGNS.items()}
    async with tenant_session(tenant_id) as s:
        found = {(b, n): (cid, status, delivered + bounced) for b, n, cid, status, delivered, bounced in (await s.execute(
            select(Campaign.brand_id, Campaign.name, Campaign.id, Campaign.status, CampaignStats.delivered,
                   CampaignStats.bounced)
            .join(CampaignStats, (CampaignStats.tenant_id == Campaign.tenant_id)
                  & (CampaignStats.campaign_id == Campaign.id))
            .where(Campaign.tenant_id == tenant_id,
                   Campaign.name.in_([n for pair in names.values() for n in pair])))).all()}
        providers = set((await s.execute(select(DeliveryProvider.brand_id, DeliveryProvider.channel).where(
            DeliveryProvider.tenant_id == tenant_id))).all())
        segments = {(b, n): sid for b, n, sid in (await s.execute(select(Segment.brand_id, Segment.name, Segment.id).where(
            Segment.tenant_id == tenant_id, Segment.archived_at.is_(None)))).all()}
    done: dict[str, list[str]] = {}
    for slug, brand_id in by_slug.items():
        spec = DEMO_CAMPAIGNS.get(slug)
        if spec is None:
            continue
        steps = done.setdefault(slug, [])
        sent_name, segment_name = spec["sent"][:2]
        sent = found.get((brand_id, sent_name))
        scheduled = found.get((brand_id, spec["scheduled"][0]))
        finished = sent is not None and (sent[1] != "sent" or sent[2] > 0) and scheduled is not None
        if finished and all((brand_id, ch) in providers for ch in ("email", "sms", "push")):
            continue  # the common case: a later run reads what exists (three queries) and leaves
        steps += await _delivery_setup(owner, slug, brand_id, providers)
        if sent is None or sent[1] in ("draft", "sending") or (sent[1] == "sent" and sent[2] == 0):
            segment_id = segments.get((brand_id, segment_name))
            if segment_id is not None:
                steps += await _sent_campaign(owner, slug, brand_id, segment_id, sent)
        if scheduled is None:
            name, segment_name, body = spec["scheduled"]
            segment_id = segments.get((brand_id, segment_name))
            if segment_id is not None:
                steps.append(await _scheduled_campaign(owner, slug, brand_id, segment_id, name, body))
    return done


async def _delivery_setup(owner: Principal, slug: str, brand_id: uuid.UUID,
                          providers: set[tuple[uuid.UUID, str]]) -> list[str]:
    """The ``log`` provider for each channel the brand has none for (a provider the user chose
    stays), and the brand's sending identity when it has none."""
    from domain.delivery import service as delivery
    from domain.delivery.base import Channel

    steps = []
    for channel in Channel:
        if (brand_id, channel.value) not in providers:
            await delivery.set_provider(owner, brand_id, channel, "log", {}, {})
            steps.append(f"{channel.value} provider: log")
    brand = await brands.get_brand(owner, brand_id)
    identity = next((b for b in BRANDS if b["slug"] == slug), None)
    if identity is not None and (not brand.from_email or not brand.sms_sender):
        changes = {k: identity[k] for k in ("from_name", "from_email", "reply_to", "sms_sender") if not getattr(brand, k)}
        await brands.update_brand(owner, brand_id, changes)
        steps.append("sending identity")
    return steps


async def _sent_campaign(owner: Principal, slug: str, brand_id: uuid.UUID, segment_id: uuid.UUID,
                         existing: tuple[uuid.UUID, str, int] | None) -> list[str]:
    """Create, launch and send (the real pipeline, in this process), move it back in time, then
    engagement and attributed orders."""
    import inspect

    from sqlalchemy import select

    from domain.campaigns import sending
    from domain.campaigns import service as campaigns
    from domain.campaigns.models import Campaign, Recipient
    from domain.platform.db import tenant_session

    tenant_id = owner.tenant_id
    name, _, cost, content, links = DEMO_CAMPAIGNS[slug]["sent"]
    steps = []
    if existing is None:
        campaign = await campaigns.create_campaign(owner, brand_id, {
            "name": name, "channel": "email", "content": content, "segment_ids": [segment_id], "cost_cents": cost})
        cid, status = campaign.id, campaign.status
        steps.append(f"campaign {name!r} created")
    else:
        cid, status, _ = existing
    if status == "draft":
        # launchCampaign's own path; its after-commit message to the worker finds the work done
        await campaigns.launch_campaign(owner, cid, "demo-seed")
        status = "sending"
    if status == "sending":
        # the actors' bodies, here and now: prepare (audience, recipient rows), then each batch
        await inspect.unwrap(sending.prepare_campaign.fn)(tenant_id, str(cid))
        async with tenant_session(tenant_id) as s:
            batches = list((await s.scalars(select(Recipient.batch_no).where(
                Recipient.tenant_id == tenant_id, Recipient.campaign_id == cid,
                Recipient.status.in_(("queued", "sending"))).distinct().order_by(Recipient.batch_no))).all())
        for batch_no in batches:
            await inspect.unwrap(sending.send_batch.fn)(tenant_id, str(cid), batch_no)
        for _ in range(600):  # a worker running beside the seed may hold a batch: wait for it
            async with tenant_session(tenant_id) as s:
                status = await s.scalar(select(Campaign.status).where(Campaign.tenant_id == tenant_id,
                                                                      Campaign.id == cid))
            if status != "sending":
                break
            await _sleep(0.1)
        steps.append(f"campaign {name!r} sent")
    if status == "sent":
        steps += await _engagement(owner, slug, brand_id, cid, links)
    return steps


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def _engagement(owner: Principal, slug: str, brand_id: uuid.UUID, cid: uuid.UUID,
                      links: list[str]) -> list[str]:
    """Move the send back SENT_DAYS_AGO days (to 10:00 in the brand's time zone), apply delivery,
    open, click, bounce and unsubscribe events as the webhooks and tracking would, then place
    orders after a few clicks (attributed to the campaign by ``record_order``)."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from domain.campaigns import tracking
    from domain.campaigns.engagement import apply_events
    from domain.campaigns.models import Campaign, Recipient
    from domain.commerce.service import OrderInput, OrderLine, record_order
    from domain.delivery.base import DeliveryEvent, EventKind
    from domain.platform.db import tenant_session

    tenant_id = owner.tenant_id
    tz = ZoneInfo(next(b["timezone"] for b in BRANDS if b["slug"] == slug))
    now = datetime.now(UTC)
    t0 = (now.astimezone(tz) - timedelta(days=SENT_DAYS_AGO)).replace(hour=10, minute=0, second=0, microsecond=0)
    async with tenant_session(tenant_id) as s:
        launched = await s.scalar(select(Campaign.launched_at).where(Campaign.tenant_id == tenant_id,
                                                                     Campaign.id == cid))
        p = {"t": tenant_id, "c": cid, "ref": str(cid)}
        if launched is not None and launched > now - timedelta(days=1):  # not moved yet
            p["shift"] = launched - t0.astimezone(UTC)
            await s.execute(text("""
                UPDATE campaigns SET created_at = least(created_at, launched_at) - CAST(:shift AS interval) - interval '1 day',
                       launched_at = launched_at - CAST(:shift AS interval), scheduled_at = scheduled_at - CAST(:shift AS interval),
                       audience_ready_at = audience_ready_at - CAST(:shift AS interval), completed_at = completed_at - CAST(:shift AS interval),
                       audience_snapshot = jsonb_set(audience_snapshot, '{at}',
                                                     to_jsonb(audience_ready_at - CAST(:shift AS interval)))
                 WHERE tenant_id = :t AND id = :c"""), p)
            await s.execute(text("""
                UPDATE campaign_recipients SET send_after = send_after - CAST(:shift AS interval), sent_at = sent_at - CAST(:shift AS interval)
                 WHERE tenant_id = :t AND campaign_id = :c"""), p)
            await s.execute(text("""
                UPDATE campaign_stats SET first_sent_at = first_sent_at - CAST(:shift AS interval)
                 WHERE tenant_id = :t AND campaign_id = :c"""), p)
            await s.execute(text("""
                UPDATE timeline_events SET occurred_at = occurred_at - CAST(:shift AS interval)
                 WHERE tenant_id = :t AND kind = 'message_sent' AND ref_type = 'Campaign' AND ref_id = :ref"""), p)
        sent = list((await s.execute(select(Recipient.customer_id, Recipient.sent_at).where(
            Recipient.tenant_id == tenant_id, Recipient.campaign_id == cid, Recipient.sent_at.is_not(None))
            .order_by(Recipient.customer_id))).all())
    if not sent:
        return []
    rnd = random.Random(f"demo-campaign-{slug}")
    events: list[DeliveryEvent] = []
    clicks: list[tuple[uuid.UUID, datetime]] = []
    n = len(sent)
    order = list(range(n))
    rnd.shuffle(order)
    bounced = set(order[:max(1, round(n * 0.02))])  # hard bounces
    pending = set(order[len(bounced):len(bounced) + round(n * 0.01)])  # no news yet
    delivered = [i for i in order if i not in bounced and i not in pending]
    opened = delivered[:max(3, round(len(delivered) * 0.40))]
    clicked = set(opened[:max(2, round(len(delivered) * 0.10))])
    unsubscribed = set(opened[len(clicked):len(clicked) + max(1, round(len(delivered) * 0.008))])
    latest = now - timedelta(minutes=30)
    for i in range(n):
        customer_id, sent_at = sent[i]
        key = tracking.message_key(cid, customer_id)

        def at(delta: timedelta, sent_at: datetime = sent_at) -> datetime:
            return min(sent_at + delta, latest)

        if i in bounced:
            events.append(DeliveryEvent(EventKind.BOUNCED, at(timedelta(seconds=rnd.randint(20, 600))), key,
                                        reason="550 5.1.1 mailbox unavailable"))
            continue
        if i in pending:
            continue
        events.append(DeliveryEvent(EventKind.DELIVERED, at(timedelta(seconds=rnd.randint(5, 300))), key))
    for i in opened:
        customer_id, sent_at = sent[i]
        key = tracking.message_key(cid, customer_id)
        opened_at = min(sent_at + timedelta(hours=min(96.0, rnd.expovariate(1 / 6)), minutes=1), latest)
        events.append(DeliveryEvent(EventKind.OPENED, opened_at, key))
        if i in clicked:
            clicked_at = min(opened_at + timedelta(seconds=rnd.randint(15, 900)), latest)
            events.append(DeliveryEvent(EventKind.CLICKED, clicked_at, key, url=rnd.choice(links)))
            clicks.append((customer_id, clicked_at))
        elif i in unsubscribed:
            events.append(DeliveryEvent(EventKind.UNSUBSCRIBED, min(opened_at + timedelta(seconds=rnd.randint(30, 300)),
                                                                    latest), key))
    changed = 0
    for start in range(0, len(events), 2_000):  # one transaction per slice, like a webhook's delivery
        changed += await apply_events(tenant_id, events[start:start + 2_000], brand_id=brand_id, source="demo")
    # a few clickers buy within the attribution window: the campaign's conversions and revenue
    catalogue = CATALOGUE[slug]
    buyers = sorted(clicks, key=lambda c: c[1])[:max(2, len(clicks) // 4)]
    for k, (customer_id, clicked_at) in enumerate(buyers, start=1):
        placed = min(clicked_at + timedelta(minutes=rnd.randint(20, 1800)), now - timedelta(minutes=5))
        lines = [OrderLine(sku=sku, name=name_, category=category, quantity=rnd.randint(1, catalogue["max_qty"]),
                           unit_price_cents=price)
                 for sku, name_, category, price in rnd.sample(catalogue["products"], rnd.choice([1, 2, 2, 3]))]
        subtotal = sum(line.quantity * line.unit_price_cents for line in lines)
        total = subtotal + (0 if subtotal >= catalogue["free_shipping"] else catalogue["shipping"])
        await record_order(owner, OrderInput(
            brand_id=brand_id, external_order_id=f"{catalogue['prefix']}-EM-{k:03d}", total_cents=total,
            currency=catalogue["currency"], placed_at=placed.replace(microsecond=0), status="paid",
            customer_id=customer_id, items=lines))
    return [f"{changed} engagement events", f"{len(buyers)} attributed orders"]


async def _scheduled_campaign(owner: Principal, slug: str, brand_id: uuid.UUID, segment_id: uuid.UUID, name: str,
                              content: dict[str, str]) -> str:
    """A campaign scheduled for 09:00 (the brand's time) a week from today."""
    from zoneinfo import ZoneInfo

    from domain.campaigns import service as campaigns

    campaign = await campaigns.create_campaign(owner, brand_id, {
        "name": name, "channel": "email", "content": content, "segment_ids": [segment_id]})
    tz = ZoneInfo(next(b["timezone"] for b in BRANDS if b["slug"] == slug))
    day = (datetime.now(tz) + timedelta(days=7)).date()
    await campaigns.schedule_campaign(owner, campaign.id, campaigns.ScheduleMode.AT, f"{day.isoformat()}T09:00")
    return f"campaign {name!r} scheduled for {day.isoformat()} 09:00"


