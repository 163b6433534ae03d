"""dashboard(brandId, period): the figures of a hand-made brand, the same statements at every
size, and nothing for another tenant or brand (docs/insights.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from conftest import Api, TenantFixture
from domain.campaigns.models import Campaign, CampaignStats
from domain.commerce.service import OrderInput, record_order
from domain.conversations.models import Conversation
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session
from domain.segments.models import Segment
from support.graphql import warm

DASHBOARD = """query($b: ID, $p: DashboardPeriod) { dashboard(brandId: $b, period: $p) {
  period customers { total new active } revenueCents { current previous } orders { current previous }
  segments { segmentId name kind memberCount } campaignsSending
  campaigns { campaignId name status channel sent delivered opens clicks conversions revenueCents }
  conversations { open unassigned } plan } }"""


async def _grow(t: TenantFixture, n: int, tag: str, brand: str = "a") -> None:
    """``n`` customers of the brand, each with an order 3 days ago (10.00) and one 40 days ago
    (5.00, the previous 30-day period), a segment of n members, a launched campaign with
    results, and an open conversation (unassigned when its number is even)."""
    now = datetime.now(UTC)
    b = t.brands[brand]
    async with tenant_session(t.id) as s:
        for i in range(n):
            s.add(Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=b, name=f"{tag}-seg-{i}", kind="static",
                          member_count=10 * (i + 1)))
            campaign = uuid.uuid4()
            s.add(Campaign(id=campaign, tenant_id=t.id, brand_id=b, name=f"{tag}-camp-{i}", channel="email",
                           status="sending" if i == 0 else "sent", launched_at=now - timedelta(hours=i + 1)))
            await s.flush()
            s.add(CampaignStats(tenant_id=t.id, campaign_id=campaign, sent=100, delivered=90, opens=40, clicks=10,
                                conversions=2, revenue_cents=5_000))
    for i in range(n):
        c, _ = await upsert_customer(t.owner, {"email": f"{tag}-{i}@example.test"}, brand_id=b)
        for k, (days, cents) in enumerate(((3, 1_000), (40, 500))):
            await record_order(t.owner, OrderInput(brand_id=b, external_order_id=f"{tag}-{i}-{k}", total_cents=cents,
                                                   currency="EUR", placed_at=now - timedelta(days=days),
                                                   customer_id=c.id))
        async with tenant_session(t.id) as s:
            s.add(Conversation(id=uuid.uuid4(), tenant_id=t.id, brand_id=b, customer_id=c.id, channel="email",
                               started_by="customer", status="open",
                               assignee_id=None if i % 2 == 0 else t.owner_member_id))


async def test_the_dashboard_gives_the_brands_figures(api: Api, tenant: TenantFixture) -> None:
    await _grow(tenant, 3, "fig")
    await _grow(tenant, 2, "other", brand="b")  # brand b's figures stay out of brand a's
    body = await api.data(DASHBOARD, {"b": tenant.brand_gid("a")}, token=tenant.owner_token)
    d = body["dashboard"]
    assert d["period"] == "LAST_30_DAYS"
    assert d["customers"] == {"total": 3, "new": 3, "active": 3}
    assert d["revenueCents"] == {"current": 3_000, "previous": 1_500}
    assert d["orders"] == {"current": 3, "previous": 3}
    assert [(s["name"], s["memberCount"], s["kind"]) for s in d["segments"]] == [
        ("fig-seg-2", 30, "STATIC"), ("fig-seg-1", 20, "STATIC"), ("fig-seg-0", 10, "STATIC")]
    assert d["campaignsSending"] == 1
    assert [c["name"] for c in d["campaigns"]] == ["fig-camp-0", "fig-camp-1", "fig-camp-2"]
    assert d["campaigns"][0] | {"campaignId": None} == {
        "campaignId": None, "name": "fig-camp-0", "status": "SENDING", "channel": "EMAIL", "sent": 100, "delivered": 90,
        "opens": 40, "clicks": 10, "conversions": 2, "revenueCents": 5_000}
    assert d["conversations"] == {"open": 3, "unassigned": 2}
    week = (await api.data(DASHBOARD, {"b": tenant.brand_gid("a"), "p": "LAST_7_DAYS"},
                           token=tenant.owner_token))["dashboard"]
    assert (week["revenueCents"], week["orders"]) == ({"current": 3_000, "previous": 0}, {"current": 3, "previous": 0})


async def test_the_dashboard_costs_the_same_statements_at_every_size(api: Api, tenant: TenantFixture) -> None:
    await warm(api, tenant.owner_token)
    counts = []
    for size in (1, 4, 12):
        await _grow(tenant, size, f"s{size}")
        body = await api.gql(DASHBOARD, {"b": tenant.brand_gid("a")}, token=tenant.owner_token)
        assert not body.get("errors"), body
        counts.append(body["extensions"]["sqlStatements"])
    assert counts[0] == counts[1] == counts[2] and counts[0] <= 3, counts


async def test_another_tenant_or_brand_sees_no_dashboard(api: Api, tenant: TenantFixture,
                                                         other_tenant: TenantFixture) -> None:
    await _grow(tenant, 1, "iso")
    foreign = await api.gql(DASHBOARD, {"b": tenant.brand_gid("a")}, token=other_tenant.owner_token)
    assert foreign["errors"][0]["extensions"]["code"] == "NOT_FOUND" and "iso-" not in str(foreign)
    _, token_b = await tenant.member("marketer", brands=["b"])
    limited = await api.gql(DASHBOARD, {"b": tenant.brand_gid("a")}, token=token_b)
    assert limited["errors"][0]["extensions"]["code"] == "NOT_FOUND" and "iso-" not in str(limited)
    missing = await api.gql(DASHBOARD, {}, token=tenant.owner_token)
    assert missing["errors"][0]["extensions"]["code"] == "REQUIRED"
    header = await api.post(DASHBOARD, {}, token=tenant.owner_token, brand=tenant.brand_gid("a"))
    assert header.json()["data"]["dashboard"]["customers"]["total"] == 1
