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

import uuid
from dataclasses import dataclass

from brandgraph.demo.campaigns import seed_campaigns
from brandgraph.demo.commerce import BRANDS, CATALOGUE, Progress, seed_commerce, without_customers
from brandgraph.demo.conversations import seed_conversations
from domain.errors import NotFound
from domain.tenancy import api_keys, brands, members, tenants
from domain.tenancy.policies import Principal, Role

DEMO_SLUG = "demo"
DEMO_OWNER = "owner@demo.brandgraph.dev"

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
        await tenants.set_feature(DEMO_SLUG, "copilot", True)  # the demo shows the premium copilot
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
    if await without_customers(tenant_id) and all(slug in by_slug for slug in CATALOGUE):
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


