"""The demo tenant a new user lands in: three brands, a few members, an API key, and a shop's
worth of commerce data: customers (some shared between brands), products, 18 months of orders,
tags, consents, tracked events and notes, with profiles computed; then campaigns.

The commerce data goes in through the bulk import functions and set-based SQL, and is the same
on every run (``random.Random(42)``; dates are relative to the day of the seed).

Campaigns (:func:`seed_campaigns`): each brand sends e-mail, SMS and push through the ``log``
provider (set when the brand has none for a channel) and gets a *sent* e-mail campaign to its
"Big spenders" segment, sent for real by the sending pipeline run in-process, moved back six days,
with engagement applied as provider events would be (~97 % delivered, ~40 % of those opened,
~10 % clicked, a bounce or two, an unsubscribe) and a few orders placed after a click, which the
campaign is credited with; and a campaign *scheduled* for next week. Each step looks at what
exists first, so a second run adds nothing.

Conversations (:func:`seed_conversations`): per brand, four live-looking threads (an order
question by e-mail answered and waiting on the customer, an SMS product question resolved, a
member's e-mail about the newsletter, an urgent chat), with replies, private notes, labels,
priorities and an assignment, and two canned responses.
"""

from __future__ import annotations

import json
import random
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from domain.errors import NotFound
from domain.tenancy import api_keys, brands, members, tenants
from domain.tenancy.policies import Principal, Role

Progress = Callable[[int, int], None]

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.brandgraph.dev"

BRANDS = [
    dict(name="Aurora Outdoor", slug="aurora", timezone="America/Denver", from_name="Aurora Outdoor",
         from_email="hello@aurora.example", reply_to="care@aurora.example", sms_sender="AURORA",
         voice_tone="warm, adventurous, plain-spoken",
         voice_style_guide="Short sentences. Lead with the trail, not the product.",
         voice_words_to_use=["trail", "layer up", "built to last"],
         voice_words_to_avoid=["cheap", "revolutionary"],
         voice_sample_copy="First frost is here. Layer up for the ridge line."),
    dict(name="Lumen Skin", slug="lumen", timezone="Europe/Paris", from_name="Lumen",
         from_email="bonjour@lumen.example", reply_to="care@lumen.example", sms_sender="LUMEN",
         voice_tone="calm, expert, reassuring",
         voice_style_guide="Evidence first; never promise miracles.",
         voice_words_to_use=["gentle", "dermatologist-tested"],
         voice_words_to_avoid=["anti-aging", "flawless"],
         voice_sample_copy="Your evening routine, simplified: three steps, ten minutes."),
    dict(name="Kettle & Crumb", slug="kettle", timezone="Europe/London", from_name="Kettle & Crumb",
         from_email="hello@kettle.example", reply_to="orders@kettle.example", sms_sender="KETTLE",
         voice_tone="cosy, witty, generous",
         voice_style_guide="Talk like the baker behind the counter.",
         voice_words_to_use=["fresh from the oven", "treat"],
         voice_words_to_avoid=["processed"],
         voice_sample_copy="The sourdough is out of the oven. Yours is waiting."),
]


@dataclass
class DemoCredentials:
    tenant_id: uuid.UUID
    owner_id: uuid.UUID
    brand_ids: dict[str, uuid.UUID]
    api_key: str | None  # only when this run created it


async def demo_tenant_id() -> uuid.UUID | None:
    try:
        return await tenants.tenant_id_for_slug(DEMO_SLUG)
    except NotFound:
        return None


async def seed_demo(progress: Progress | None = None, *, customers_per_brand: int = 200) -> DemoCredentials:
    """Create the demo tenant once; later calls return its ids and create nothing.

    ``progress(done, total)`` is called as the commerce data goes in (for a progress bar).
    A demo tenant left without customers (seeded by an older version) gets its commerce data."""
    tenant_id = await demo_tenant_id()
    created = tenant_id is None
    if created:
        tenant_id = (await tenants.create_tenant(DEMO_SLUG, "Northwind Collective", plan="growth")).id
    owner_id, _ = await members.ensure_member(tenant_id, DEMO_OWNER, Role.OWNER)
    owner = await members.principal_for_user(tenant_id, owner_id)  # acts under its member id
    assert owner is not None and owner.role is Role.OWNER and not owner.invited
    secret = None
    if created:
        for fields in BRANDS:
            await brands.create_brand(owner, fields)
        by_slug = {b.slug: b.id for b in await brands.list_brands(owner)}
        # made by the operator, like the owner: active at once, no invitation to accept
        await members.ensure_member(tenant_id, "maya@demo.brandgraph.dev", Role.MARKETER, name="Maya Marketer",
                                    brand_ids=[by_slug["aurora"], by_slug["lumen"]])
        await members.ensure_member(tenant_id, "alex@demo.brandgraph.dev", Role.AGENT, name="Alex Agent",
                                    brand_ids=[by_slug["kettle"]])
        await members.ensure_member(tenant_id, "ana@demo.brandgraph.dev", Role.ANALYST, name="Ana Analyst")
        _, secret = await api_keys.create_api_key(owner, "Demo storefront integration", "marketer")
    by_slug = {b.slug: b.id for b in await brands.list_brands(owner)}
    if await _without_customers(tenant_id) and all(slug in by_slug for slug in CATALOGUE):
        await seed_commerce(owner, by_slug, progress, customers_per_brand=customers_per_brand)
        await seed_segments(owner, by_slug)
    elif progress is not None:
        progress(1, 1)
    if all(slug in by_slug for slug in CATALOGUE):
        await seed_campaigns(owner, by_slug)
        await seed_conversations(owner, by_slug)
    return DemoCredentials(tenant_id=tenant_id, owner_id=owner_id, brand_ids=by_slug, api_key=secret)


DEMO_SEGMENTS = [
    ("Big spenders", "Spent 200 or more with the brand",
     {"rules": [{"kind": "profile", "field": "total_order_value", "operator": "greater_than_or_equal", "value": 200}]}),
    ("At risk", "Bought before, churn risk 60 or more",
     {"rules": [{"kind": "profile", "field": "churn_risk", "operator": "greater_than_or_equal", "value": 60},
                {"kind": "profile", "field": "total_order_count", "operator": "greater_than_or_equal", "value": 1}]}),
    ("Engaged browsers", "Viewed products at least 3 times in 30 days, or opened the newsletter",
     {"match": "any", "rules": [
         {"kind": "event", "name": "product_viewed", "operator": "greater_than_or_equal", "value": 3, "within_days": 30},
         {"kind": "event", "name": "newsletter_opened", "operator": "greater_than_or_equal", "value": 1,
          "within_days": 30}]}),
]


async def seed_segments(owner: Principal, by_slug: dict[str, uuid.UUID]) -> None:
    """Three rule-based segments per brand, refreshed, so the segment screens have members."""
    from domain.segments import refresh, service
    from domain.segments.models import SegmentKind

    for brand_id in by_slug.values():
        for name, description, definition in DEMO_SEGMENTS:
            seg = await service.create_segment(owner, brand_id, SegmentKind.DYNAMIC,
                                               {"name": name, "description": description}, definition=definition)
            await refresh.refresh(owner.tenant_id, seg.id)


# --- campaigns -------------------------------------------------------------------------------

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


# --- conversations ---------------------------------------------------------------------------

# per brand: (channel, customer index, subject, the customer's messages, the team's reply, status,
# priority, labels, a note)
THREADS = [
    ("email", 0, "Where is my order?", ["Hi, I ordered last week and have not received anything yet. Any news?"],
     "Hello {first}, your parcel left our warehouse yesterday; you will get the tracking link today.", "pending",
     "high", ["Order"], "Carrier confirmed pick-up at 16:40."),
    ("sms", 1, None, ["Do you have the rain jacket in size M?"], "Yes {first}, size M is back in stock since Monday.",
     "resolved", "medium", ["Product question"], None),
    ("email", 2, "Re: our newsletter", ["Love the new collection! Will there be a discount for members?"],
     None, "open", "medium", ["VIP"], "Loyal customer: offer the member preview."),
    ("chat", 3, None, ["Hello, can I change the delivery address of my order?", "It is order #1042"],
     None, "open", "urgent", ["Order"], None),
]
LABELS = [("Order", "#2563eb"), ("Product question", "#16a34a"), ("VIP", "#d97706")]
CANNED = [("shipping", "Shipping times", "Hello {{ customer.first_name }}, orders ship within 2 working days and "
           "arrive in 3 to 5."), ("thanks", "Thank you", "Thank you {{ customer.first_name }}! The {{ brand.name }} team")]


async def seed_conversations(owner: Principal, by_slug: dict[str, uuid.UUID]) -> int:
    """A few live-looking conversations per brand (inbound e-mail, SMS and chat, replies, notes,
    labels, an assignment) and two canned responses. Skips a brand that has conversations."""
    from sqlalchemy import select

    from domain.conversations import canned, inbound, models, replies
    from domain.conversations import labels as conversation_labels
    from domain.conversations import service as conversations
    from domain.conversations.models import Conversation
    from domain.customers.models import Customer, CustomerBrand
    from domain.delivery.inbound import InboundMessage
    from domain.platform.db import tenant_session
    from domain.tenancy.models import Brand

    made = 0
    for slug, brand_id in by_slug.items():
        async with tenant_session(owner.tenant_id) as s:
            if await s.scalar(select(Conversation.id).where(Conversation.tenant_id == owner.tenant_id,
                                                            Conversation.brand_id == brand_id).limit(1)):
                continue
            people = list((await s.scalars(select(Customer).join(CustomerBrand, (CustomerBrand.tenant_id == Customer.tenant_id)
                                                                 & (CustomerBrand.customer_id == Customer.id))
                                            .where(Customer.tenant_id == owner.tenant_id, CustomerBrand.brand_id == brand_id,
                                                   Customer.email.is_not(None), Customer.phone.is_not(None))
                                            .order_by(Customer.created_at, Customer.id).limit(len(THREADS)))).all())
            brand = await s.get(Brand, (owner.tenant_id, brand_id))
        if len(people) < len(THREADS):
            continue
        labels = {name: await conversation_labels.create_label(owner, brand_id, name, color) for name, color in LABELS}
        for code, title, body in CANNED:
            await canned.create_canned(owner, brand_id, {"shortcode": code, "title": title, "body": body})
        for i, (channel, who, subject, texts, answer, status, priority, tags, note) in enumerate(THREADS):
            person = people[who]
            conv = None
            for k, text_ in enumerate(texts):
                if channel == "chat":
                    conv, _ = await inbound.receive_chat(owner, brand_id, person.id, text_, f"demo-{slug}-{i}-{k}")
                    continue
                address = person.email if channel == "email" else person.phone
                conv, _, _ = await inbound.store(owner.tenant_id, brand_id, InboundMessage(
                    channel=channel, provider="demo", provider_message_id=f"demo-{slug}-{i}-{k}",
                    from_address=address, to_address=brand.from_email if channel == "email" else brand.sms_sender,
                    received_at=datetime.now(UTC), from_name=f"{person.first_name or ''} {person.last_name or ''}".strip(),
                    subject=subject, text=text_,
                    message_id=f"<demo-{slug}-{i}-{k}@mail.example>" if channel == "email" else None))
            if answer:
                await replies.reply(owner, conv.id, answer.format(first=person.first_name or "there"), None,
                                   f"demo-{slug}-{i}")
            if note:
                await replies.add_note(owner, conv.id, note)
            await conversation_labels.change_labels(owner, conv.id, [labels[t].id for t in tags], [])
            await conversations.set_priority(owner, conv.id, models.Priority(priority))
            if status != "open":
                await conversations.set_status(owner, conv.id, models.Status(status))
            if i == 0:
                await conversations.assign(owner, conv.id, owner.member_id)
            made += 1
    return made


# --- commerce data ---------------------------------------------------------------------------

# (city, state, country, time zone, locale, phone prefix, name pool)
PLACES: dict[str, list[tuple[str, str | None, str, str, str, str, str]]] = {
    "aurora": [
        ("Denver", "CO", "US", "America/Denver", "en-US", "+1303555", "us"),
        ("Boulder", "CO", "US", "America/Denver", "en-US", "+1720555", "us"),
        ("Salt Lake City", "UT", "US", "America/Denver", "en-US", "+1801555", "us"),
        ("Seattle", "WA", "US", "America/Los_Angeles", "en-US", "+1206555", "us"),
        ("Portland", "OR", "US", "America/Los_Angeles", "en-US", "+1503555", "us"),
        ("Bend", "OR", "US", "America/Los_Angeles", "en-US", "+1541555", "us"),
        ("Bozeman", "MT", "US", "America/Denver", "en-US", "+1406555", "us"),
        ("Flagstaff", "AZ", "US", "America/Phoenix", "en-US", "+1928555", "us"),
        ("Asheville", "NC", "US", "America/New_York", "en-US", "+1828555", "us"),
        ("Vancouver", "BC", "CA", "America/Vancouver", "en-CA", "+1604555", "us"),
        ("Calgary", "AB", "CA", "America/Edmonton", "en-CA", "+1403555", "us"),
    ],
    "lumen": [
        ("Paris", None, "FR", "Europe/Paris", "fr-FR", "+3361", "fr"),
        ("Lyon", None, "FR", "Europe/Paris", "fr-FR", "+3362", "fr"),
        ("Bordeaux", None, "FR", "Europe/Paris", "fr-FR", "+3363", "fr"),
        ("Nantes", None, "FR", "Europe/Paris", "fr-FR", "+3364", "fr"),
        ("Marseille", None, "FR", "Europe/Paris", "fr-FR", "+3365", "fr"),
        ("Bruxelles", None, "BE", "Europe/Brussels", "fr-BE", "+32470", "fr"),
        ("Genève", None, "CH", "Europe/Zurich", "fr-CH", "+4179", "fr"),
        ("Montréal", "QC", "CA", "America/Toronto", "fr-CA", "+1514555", "fr"),
        ("Barcelona", None, "ES", "Europe/Madrid", "es-ES", "+3461", "es"),
        ("Milano", None, "IT", "Europe/Rome", "it-IT", "+39347", "it"),
    ],
    "kettle": [
        ("London", None, "GB", "Europe/London", "en-GB", "+44770", "gb"),
        ("Manchester", None, "GB", "Europe/London", "en-GB", "+44771", "gb"),
        ("Bristol", None, "GB", "Europe/London", "en-GB", "+44772", "gb"),
        ("Edinburgh", None, "GB", "Europe/London", "en-GB", "+44773", "gb"),
        ("Leeds", None, "GB", "Europe/London", "en-GB", "+44774", "gb"),
        ("Brighton", None, "GB", "Europe/London", "en-GB", "+44775", "gb"),
        ("Cardiff", None, "GB", "Europe/London", "en-GB", "+44776", "gb"),
        ("Dublin", None, "IE", "Europe/Dublin", "en-IE", "+35385", "gb"),
    ],
}
NAMES = {
    "us": (["Avery", "Jordan", "Maya", "Ethan", "Olivia", "Liam", "Harper", "Noah", "Chloe", "Lucas", "Zoe",
            "Caleb", "Riley", "Nina", "Owen", "Sofia", "Mason", "Aaliyah", "Diego", "Hannah"],
           ["Carter", "Nguyen", "Brooks", "Ramirez", "Patel", "Walsh", "Kim", "Foster", "Hayes", "Ortiz",
            "Bennett", "Price", "Sullivan", "Reyes", "Hughes", "Okafor", "Larsen", "Coleman"]),
    "fr": (["Camille", "Léa", "Hugo", "Louis", "Chloé", "Manon", "Jules", "Inès", "Théo", "Clara", "Arthur",
            "Emma", "Noémie", "Gabriel", "Zoé", "Raphaël"],
           ["Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Lefèvre", "Girard", "Roux", "Fontaine",
            "Chevalier", "Mercier", "Blanc", "Benali", "Nguyen"]),
    "es": (["Lucía", "Mateo", "Martina", "Pablo", "Carmen"], ["García", "Fernández", "López", "Sánchez"]),
    "it": (["Giulia", "Marco", "Chiara", "Luca", "Francesca"], ["Rossi", "Bianchi", "Romano", "Ferrari"]),
    "gb": (["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Freya", "Charlie", "Poppy", "Alfie",
            "Evie", "Aisha", "Rhys", "Siobhan", "Callum"],
           ["Smith", "Jones", "Taylor", "Davies", "Evans", "Wilson", "Thomas", "Roberts", "Walker", "Wright",
            "Edwards", "Khan", "O'Brien", "MacLeod", "Ahmed"]),
}
COMPANIES = {
    "aurora": ["Peak Outfitters", "Basecamp Rentals", "Trailhead Guiding Co."],
    "lumen": ["Spa Lumière", "Institut Belle Peau", "Clinique du Parc"],
    "kettle": ["The Corner Café", "Harbour Deli", "Green Street Grocer"],
}
# sku, name, category, unit price (cents)
CATALOGUE: dict[str, dict[str, Any]] = {
    "aurora": {"prefix": "AUR", "currency": "USD", "free_shipping": 10_000, "shipping": 795, "max_qty": 2,
               "products": [
        ("AUR-TENT-2P", "Ridgeline 2P Tent", "Camping", 34_900),
        ("AUR-BAG-5C", "Switchback -5°C Sleeping Bag", "Camping", 21_900),
        ("AUR-STOVE", "Emberlite Camp Stove", "Camping", 7_900),
        ("AUR-JKT-DOWN", "Summit Down Jacket", "Apparel", 27_900),
        ("AUR-SHELL", "Stormline Rain Shell", "Apparel", 18_900),
        ("AUR-BASE-MER", "Merino Base Layer", "Apparel", 8_900),
        ("AUR-SOCK-3", "Wool Hiking Socks (3-pack)", "Apparel", 3_400),
        ("AUR-PACK-28", "Trailhead 28L Daypack", "Packs", 12_900),
        ("AUR-PACK-55", "Traverse 55L Backpack", "Packs", 24_900),
        ("AUR-BOOT", "Scree Hiking Boots", "Footwear", 17_900),
        ("AUR-POLES", "Alpine Trekking Poles", "Accessories", 8_900),
        ("AUR-LAMP", "Headlamp 400", "Accessories", 4_900),
        ("AUR-BOTTLE", "Insulated Bottle 1L", "Accessories", 3_900),
    ]},
    "lumen": {"prefix": "LUM", "currency": "EUR", "free_shipping": 5_000, "shipping": 490, "max_qty": 2,
              "products": [
        ("LUM-CLEANSE", "Gentle Cleansing Gel", "Cleansers", 1_900),
        ("LUM-MICELLAR", "Micellar Water", "Cleansers", 1_500),
        ("LUM-TONER", "Soft Exfoliating Toner", "Toners", 2_400),
        ("LUM-SERUM-HA", "Hydrating Serum", "Serums", 3_900),
        ("LUM-SERUM-C", "Vitamin C Brightening Serum", "Serums", 4_500),
        ("LUM-CREAM", "Barrier Repair Cream", "Moisturisers", 3_200),
        ("LUM-NIGHT", "Night Recovery Oil", "Moisturisers", 4_200),
        ("LUM-SPF50", "Mineral Sunscreen SPF 50", "Sun care", 2_600),
        ("LUM-EYE", "Calming Eye Cream", "Eye care", 2_900),
        ("LUM-LIP", "Nourishing Lip Balm", "Lips", 900),
        ("LUM-KIT", "Evening Routine Travel Kit", "Sets", 3_500),
    ]},
    "kettle": {"prefix": "KET", "currency": "GBP", "free_shipping": 4_000, "shipping": 350, "max_qty": 4,
               "products": [
        ("KET-SOURDOUGH", "Country Sourdough", "Bread", 550),
        ("KET-RYE", "Seeded Rye", "Bread", 520),
        ("KET-BAGUETTE", "Baguette", "Bread", 280),
        ("KET-FOCACCIA", "Rosemary Focaccia", "Bread", 600),
        ("KET-CROISSANT", "Butter Croissant", "Pastry", 260),
        ("KET-PAINCHOC", "Pain au Chocolat", "Pastry", 290),
        ("KET-CINNAMON", "Cardamom Cinnamon Bun", "Pastry", 350),
        ("KET-LEMON", "Lemon Drizzle Cake", "Cakes", 1_800),
        ("KET-SHORTBREAD", "Shortbread Tin", "Gifts", 1_200),
        ("KET-STARTER", "Sourdough Starter Kit", "Gifts", 2_400),
        ("KET-CLUB", "Monthly Bread Club", "Subscriptions", 3_200),
    ]},
}
PAGES = {"aurora": ["/", "/collections/camping", "/collections/apparel", "/journal/layering-101", "/stores"],
         "lumen": ["/", "/routines/evening", "/collections/serums", "/journal/spf-myths", "/quiz"],
         "kettle": ["/", "/menu", "/bread-club", "/journal/starter-care", "/visit"]}
CAMPAIGNS = {"aurora": ["First frost", "Trail season", "Gear care guide"],
             "lumen": ["Evening routine", "SPF reminder", "New: Vitamin C"],
             "kettle": ["Bread club", "Christmas orders", "Starter workshop"]}
NOTES = [
    ("aurora", "Called about a torn tent seam; sending a repair kit under warranty.", "action"),
    ("aurora", "Guides groups in the Wasatch; interested in a pro discount.", "info"),
    ("lumen", "Sensitive skin: recommended the fragrance-free routine.", "info"),
    ("lumen", "Reported a reaction to the Vitamin C serum; refund issued, follow up in two weeks.", "warning"),
    ("kettle", "Orders for the café every Friday; prefers 7am delivery.", "info"),
    ("kettle", "Delivery missed twice in December: offer a free loaf with the next order.", "action"),
    (None, "Shops with two of our brands; good candidate for the cross-brand loyalty pilot.", "info"),
    (None, "Asked us to use their work e-mail for invoices.", "info"),
]
PHONE_LENGTH = {"US": 12, "CA": 12, "FR": 12, "BE": 12, "CH": 12, "ES": 12, "IT": 13, "GB": 13, "IE": 13}
DAYS = 548  # 18 months


@dataclass
class _Person:
    n: int
    home: str  # the brand market they live in
    fields: dict[str, Any]
    brands: list[str] = field(default_factory=list)


class _Bar:
    """Turns the import's Progress calls (and our own steps) into ``progress(done, total)``."""

    def __init__(self, callback: Progress | None, total: int) -> None:
        self.callback, self.total, self.count = callback, total, 0

    def step(self, n: int = 1) -> None:
        self.count = min(self.total, self.count + n)
        if self.callback is not None:
            self.callback(self.count, self.total)

    async def set_total(self, n: int) -> None:  # the import's Progress protocol
        pass

    async def advance(self, n: int) -> None:
        self.step(n)


def _ascii(value: str) -> str:
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower().replace("'", "")


def _people(rnd: random.Random, per_brand: int) -> list[_Person]:
    """Customers of the three brands: each brand has ``per_brand``; neighbours share a fifth."""
    overlap = per_brand // 5
    slugs = list(CATALOGUE)
    total = len(slugs) * per_brand - (len(slugs) - 1) * overlap
    people: list[_Person] = []
    for n in range(total):
        home = slugs[min(len(slugs) - 1, n // (per_brand - overlap))]
        city, state, country, tz, locale, phone, pool = rnd.choice(PLACES[home])
        first, last = rnd.choice(NAMES[pool][0]), rnd.choice(NAMES[pool][1])
        wholesale = rnd.random() < 0.05
        fields: dict[str, Any] = {
            "externalId": f"demo-{n + 1:04d}",
            "email": f"{_ascii(first)}.{_ascii(last)}{n + 1}@{rnd.choice(['example.com', 'example.net', 'example.org'])}",
            "firstName": first, "lastName": last, "city": city, "state": state, "country": country,
            "timezone": tz, "locale": locale, "buyerType": "wholesale" if wholesale else "consumer",
            "attributes": {"acquisition": rnd.choice(["instagram", "search", "referral", "newsletter", "store"])},
        }
        if rnd.random() < 0.7:  # E.164: +1 and 10 digits, +44 and 10, +33 and 9...
            fields["phone"] = phone + "".join(str(rnd.randint(0, 9)) for _ in range(PHONE_LENGTH[country] - len(phone)))
        if rnd.random() < 0.6:
            fields["birthDate"] = f"{rnd.randint(1950, 2004)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        if wholesale:
            fields["company"] = rnd.choice(COMPANIES[home])
        people.append(_Person(n, home, {k: v for k, v in fields.items() if v is not None}))
    for i, slug in enumerate(slugs):  # brand i: people [i * (per_brand - overlap), + per_brand)
        for person in people[i * (per_brand - overlap):i * (per_brand - overlap) + per_brand]:
            person.brands.append(slug)
    for person in people[:10]:  # a few shop with every brand
        for slug in slugs:
            if slug not in person.brands:
                person.brands.append(slug)
    return people


def _orders(rnd: random.Random, slug: str, person: _Person, now: datetime, counter: list[int]) -> list[dict]:
    cat = CATALOGUE[slug]
    segment = rnd.random()
    count = (0 if segment < 0.12 else rnd.randint(1, 2) if segment < 0.55 else rnd.randint(3, 7) if segment < 0.92
             else rnd.randint(8, 20))
    lapsed = rnd.random() < 0.18  # bought, then went quiet: "At risk"
    out = []
    for _ in range(count):
        days = rnd.randint(200, DAYS) if lapsed else int(DAYS * rnd.random() ** (1.6 if count > 7 else 1))
        placed = now - timedelta(days=days, hours=1, seconds=rnd.randint(0, 86_399))
        lines = []
        for sku, name, category, price in rnd.sample(cat["products"], rnd.choice([1, 1, 1, 2, 2, 3, 4])):
            lines.append({"sku": sku, "name": name, "category": category, "quantity": rnd.randint(1, cat["max_qty"]),
                          "unitPriceCents": price})
        subtotal = sum(line["quantity"] * line["unitPriceCents"] for line in lines)
        status = (rnd.choice(["placed", "paid"]) if days < 3 else
                  rnd.choices(["fulfilled", "refunded", "cancelled"], [94, 3, 3])[0])
        counter[0] += 1
        out.append({
            "externalOrderId": f"{cat['prefix']}-{10_000 + counter[0]}", "customerExternalId": person.fields["externalId"],
            "totalCents": subtotal + (0 if subtotal >= cat["free_shipping"] else cat["shipping"]),
            "currency": cat["currency"], "status": status, "placedAt": placed.isoformat(), "items": lines,
        })
    return out


def _events(rnd: random.Random, slug: str, person: _Person, orders: list[dict], newsletter: bool,
            now: datetime) -> list[tuple[str, str, dict, datetime]]:
    """(key, name, properties, occurred_at) of the person's tracked events with ``slug``."""
    recent = bool(orders) and min(now - datetime.fromisoformat(o["placedAt"]) for o in orders) < timedelta(days=150)
    count = rnd.randint(2, 8) if not orders else rnd.randint(4, 24) if recent else rnd.randint(1, 6)
    window = 90 if recent or not orders else DAYS
    products = CATALOGUE[slug]["products"]
    out = []
    for i in range(count):
        at = now - timedelta(days=rnd.uniform(0, window), minutes=1)
        if recent is False and orders:
            at = now - timedelta(days=rnd.uniform(200, DAYS))
        kind = rnd.choices(["page_viewed", "product_viewed", "cart_abandoned", "newsletter_opened"],
                           [45, 35, 8, 12 if newsletter else 0])[0]
        sku, name, _, price = rnd.choice(products)
        props = {"page_viewed": {"path": rnd.choice(PAGES[slug])},
                 "product_viewed": {"sku": sku, "name": name},
                 "cart_abandoned": {"sku": sku, "value_cents": price * rnd.randint(1, 2)},
                 "newsletter_opened": {"campaign": rnd.choice(CAMPAIGNS[slug])}}[kind]
        out.append((f"demo-{slug}-{person.fields['externalId']}-{i}", kind, props, at))
    return out


async def _without_customers(tenant_id: uuid.UUID) -> bool:
    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        return (await s.scalar(text("SELECT NOT EXISTS (SELECT 1 FROM customers WHERE tenant_id = :t)"),
                               {"t": tenant_id}))


EVENTS_SQL = """
WITH ev AS (
  INSERT INTO tracked_events (tenant_id, id, customer_id, brand_id, name, properties, occurred_at, idempotency_key)
  SELECT cast(:t AS uuid), gen_random_uuid(), c.id, x.brand_id, x.name, cast(x.props AS jsonb), x.at, x.key
    FROM unnest(cast(:ext AS text[]), cast(:brand AS uuid[]), cast(:name AS text[]), cast(:props AS text[]),
                cast(:at AS timestamptz[]), cast(:key AS text[])) AS x (ext, brand_id, name, props, at, key)
    JOIN customers c ON c.tenant_id = :t AND c.external_id = x.ext
  ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
  RETURNING id, customer_id, brand_id, name, properties, occurred_at
)
INSERT INTO timeline_events (tenant_id, customer_id, occurred_at, id, brand_id, kind, data, ref_type, ref_id)
SELECT cast(:t AS uuid), ev.customer_id, ev.occurred_at, gen_random_uuid(), ev.brand_id, 'event_tracked',
       jsonb_build_object('name', ev.name, 'properties', ev.properties), 'TrackedEvent', ev.id::text
  FROM ev
"""


async def seed_commerce(owner: Principal, by_slug: dict[str, uuid.UUID], progress: Progress | None = None, *,
                        customers_per_brand: int = 200) -> dict[str, int]:
    """Customers, orders, events, notes and profiles for the demo brands (idempotent: every
    write is keyed on an external id, an order id or an event id)."""
    from domain.customers import notes
    from domain.imports.customers import import_customers
    from domain.imports.orders import import_orders
    from domain.platform.db import tenant_session
    from domain.profiles import service as profiles

    rnd = random.Random(42)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    tenant_id = owner.tenant_id
    people = _people(rnd, customers_per_brand)
    counters: dict[str, list[int]] = {slug: [0] for slug in CATALOGUE}
    customer_rows: dict[str, list[dict]] = {slug: [] for slug in CATALOGUE}
    order_rows: dict[str, list[dict]] = {slug: [] for slug in CATALOGUE}
    events: list[tuple[str, uuid.UUID, str, str, datetime, str]] = []
    spend: dict[str, int] = {}
    for person in people:
        for slug in person.brands:
            orders = _orders(rnd, slug, person, now, counters[slug])
            order_rows[slug] += orders
            spend[person.fields["externalId"]] = spend.get(person.fields["externalId"], 0) + sum(
                o["totalCents"] for o in orders)
            consents = {"consent_email": rnd.choices(["yes", "no", None], [72, 10, 18])[0],
                        "consent_sms": rnd.choices(["yes", "no", None], [30, 10, 60])[0],
                        "consent_push": rnd.choices(["yes", None], [15, 85])[0],
                        "consent_ads": rnd.choices(["yes", "no", None], [35, 15, 50])[0]}
            tags = []
            if consents["consent_email"] == "yes" and rnd.random() < 0.8:
                tags.append("Newsletter")
            if person.fields["buyerType"] == "wholesale":
                tags.append("Wholesale")
            last = max((datetime.fromisoformat(o["placedAt"]) for o in orders), default=None)
            if len(orders) >= 2 and last is not None and now - last > timedelta(days=150):
                tags.append("At risk")
            if any(len(o["items"]) >= 3 for o in orders) and rnd.random() < 0.3:
                tags.append("Gift buyer")
            customer_rows[slug].append({**person.fields, **{k: v for k, v in consents.items() if v}, "tags": tags})
            for key, name, props, at in _events(rnd, slug, person, orders, "Newsletter" in tags, now):
                events.append((person.fields["externalId"], by_slug[slug], name, json.dumps(props), at, key))
    vip = sorted(spend, key=lambda k: -spend[k])[:max(1, len(spend) * 8 // 100)]
    vip_set = set(vip)
    for rows in customer_rows.values():
        for row in rows:
            if row["externalId"] in vip_set:
                row["tags"] = [*row["tags"], "VIP"]

    n_orders = sum(len(rows) for rows in order_rows.values())
    bar = _Bar(progress, sum(len(r) for r in customer_rows.values()) + n_orders + len(events) + len(NOTES) + 1)
    bar.step(0)
    for slug, rows in customer_rows.items():
        await import_customers(tenant_id, by_slug[slug], rows, bar, label="demo seed")
    for slug, rows in order_rows.items():
        await import_orders(tenant_id, by_slug[slug], rows, bar, label="demo seed")
    for start in range(0, len(events), 5_000):
        batch = events[start:start + 5_000]
        async with tenant_session(tenant_id) as s:
            await s.execute(text(EVENTS_SQL), {"t": tenant_id, **dict(zip(
                ("ext", "brand", "name", "props", "at", "key"), (list(col) for col in zip(*batch, strict=True)),
                strict=True))})
        bar.step(len(batch))
    async with tenant_session(tenant_id) as s:
        ids = dict((await s.execute(text("SELECT external_id, id FROM customers WHERE tenant_id = :t"),
                                    {"t": tenant_id})).all())
    shared = [p for p in people if len(p.brands) == len(CATALOGUE)]
    for i, (slug, body, kind) in enumerate(NOTES):
        who = shared[i % len(shared)] if slug is None else next(
            p for p in people[(i * 37) % len(people):] + people if slug in p.brands)
        await notes.add_note(owner, ids[who.fields["externalId"]], body, type=notes.NoteType(kind),
                             brand_id=by_slug[slug] if slug else None)
        bar.step()
    async with tenant_session(tenant_id) as s:  # events arrived after the orders: recompute everyone
        await profiles.refresh(s, tenant_id, None)
    bar.step()
    return {"customers": len(people), "orders": n_orders, "events": len(events), "notes": len(NOTES)}
