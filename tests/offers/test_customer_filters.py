"""customers(...) filters for a filter panel (docs/customers.md, "Filters"): segment membership,
churn risk and lifetime value ranges (override-aware), consent per channel, city, country and
account manager; and their refusals (another brand's segment, a missing brand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import Api, TenantFixture, gid
from domain.commerce.service import OrderInput, record_order
from domain.customers.consent import Channel, set_consent
from domain.customers.overrides import OverrideField, set_override, set_relationship
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session
from domain.segments.models import SegmentMembership

LIST = """query($b: ID, $seg: [ID!], $rmin: Int, $rmax: Int, $vmin: BigInt, $vmax: BigInt, $ch: [Channel!],
  $city: String, $country: String, $am: ID) {
  customers(brandId: $b, segmentIds: $seg, churnRiskMin: $rmin, churnRiskMax: $rmax, lifetimeValueMinCents: $vmin,
            lifetimeValueMaxCents: $vmax, consentedChannels: $ch, city: $city, country: $country,
            accountManagerId: $am, first: 50) { edges { node { email } } } }"""


async def _people(t: TenantFixture) -> dict:
    """ana: 500.00 yesterday (risk 0), Lyon FR, e-mail consent, managed; bob: 50.00 400 days ago
    (risk 67), Paris FR; cleo: no orders (risk 100, value 0), Berlin DE, value override 900.00."""
    brand = t.brands["a"]
    people = {}
    for name, city, country in (("ana", "Lyon", "FR"), ("bob", "Paris", "FR"), ("cleo", "Berlin", "DE")):
        c, _ = await upsert_customer(t.owner, {"email": f"{name}@x.test", "city": city, "country": country},
                                     brand_id=brand)
        people[name] = c.id
    for name, cents, days in (("ana", 50_000, 1), ("bob", 5_000, 400)):
        await record_order(t.owner, OrderInput(brand_id=brand, external_order_id=f"{name}-1", total_cents=cents,
                                               currency="EUR", customer_id=people[name],
                                               placed_at=datetime.now(UTC) - timedelta(days=days)))
    await set_consent(t.owner, people["ana"], brand, Channel.EMAIL, True)
    await set_consent(t.owner, people["bob"], brand, Channel.EMAIL, False)
    await set_override(t.owner, people["cleo"], OverrideField.LIFETIME_VALUE, 90_000, "offline sales")
    manager, _ = await t.member("agent")
    await set_relationship(t.owner, people["ana"], preferred_contact_method=None, account_manager_id=manager)
    people["manager"] = manager
    return people


async def _emails(api: Api, t: TenantFixture, token: str | None = None, **v) -> set[str]:
    body = await api.data(LIST, {"b": t.brand_gid("a"), **v}, token=token or t.owner_token)
    return {e["node"]["email"].split("@")[0] for e in body["customers"]["edges"]}


async def test_each_filter_selects_the_hand_worked_customers(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    p = await _people(t)
    assert await _emails(api, t) == {"ana", "bob", "cleo"}
    assert await _emails(api, t, rmin=60) == {"bob", "cleo"}  # 67 and 100 (no orders)
    assert await _emails(api, t, rmin=60, rmax=99) == {"bob"}
    assert await _emails(api, t, vmin=10_000) == {"ana", "cleo"}  # 500.00; cleo's override 900.00
    assert await _emails(api, t, vmax=10_000) == {"bob"}
    assert await _emails(api, t, ch=["EMAIL"]) == {"ana"}  # bob withdrew
    assert await _emails(api, t, city="lyon") == {"ana"}
    assert await _emails(api, t, country="fr") == {"ana", "bob"}
    assert await _emails(api, t, am=gid("Member", p["manager"])) == {"ana"}
    assert await _emails(api, t, country="FR", rmax=10) == {"ana"}  # filters combine

    seg = (await api.data("""mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
        segment { id } errors { field } } }""", {"input": {"brandId": t.brand_gid("a"), "name": "Static",
                                                           "kind": "STATIC"}}, token=t.owner_token))
    seg_id = seg["createSegment"]["segment"]["id"]
    from graph.core.ids import decode
    async with tenant_session(t.id) as s:
        s.add(SegmentMembership(tenant_id=t.id, segment_id=decode(seg_id, "Segment"), customer_id=p["bob"],
                                entered_at=datetime.now(UTC)))
    assert await _emails(api, t, seg=[seg_id]) == {"bob"}


async def test_refusals_name_the_argument(api: Api, tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    t = tenant
    await _people(t)
    other = (await api.data("""mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
        segment { id } } }""", {"input": {"brandId": t.brand_gid("b"), "name": "B", "kind": "STATIC"}},
        token=t.owner_token))["createSegment"]["segment"]["id"]
    _, brand_a = await t.api_key("admin", brands=["a"])
    body = await api.gql(LIST, {"b": t.brand_gid("a"), "seg": [other]}, token=brand_a)  # brand b's segment
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    no_brand = await api.gql(LIST, {"b": None, "ch": ["EMAIL"]}, token=t.owner_token)
    assert no_brand["errors"][0]["extensions"]["code"] == "REQUIRED"
    reversed_range = await api.gql(LIST, {"rmin": 50, "rmax": 10}, token=t.owner_token)
    assert reversed_range["errors"][0]["extensions"]["code"] == "INVALID"
    assert await _emails(api, other_tenant, token=other_tenant.owner_token, country="FR") == set()
