"""Segment rules on preferences (docs/segments.md, "Preference rules"): genres, types, creators,
preferred day, price range and watchlist, against the worked example of docs/profiles.md
("Preferences"): Ana (rock 0.833, jazz 0.167; concert, tasting; Miles, The Band; 25.00-40.00;
Monday; watchlist NEXT-GIG), Bob (one WINE tasting at 20.00 on a Saturday) and Cleo (no orders)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conftest import Api, TenantFixture, gid
from domain.commerce.service import OrderInput, OrderLine, record_order
from domain.customers.service import upsert_customer
from domain.segments import refresh
from offers.test_catalogue_and_preferences import _product, worked_example

PREVIEW = """query($b: ID!, $d: SegmentDefinitionInput!) { previewSegment(brandId: $b, definition: $d, first: 50) {
  totalCount edges { node { email } } } }"""
CREATE = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id } errors { field code message } } }"""


async def people(t: TenantFixture) -> dict:
    ana, _, next_gig = await worked_example(t)
    bob, _ = await upsert_customer(t.owner, {"email": "bob@example.test"}, brand_id=t.brands["a"])
    await record_order(t.owner, OrderInput(
        brand_id=t.brands["a"], external_order_id="B-1", total_cents=2000, currency="EUR", customer_id=bob.id,
        placed_at=datetime(2026, 11, 7, 10, tzinfo=UTC), items=[OrderLine("WINE", 1, 2000)]))
    await upsert_customer(t.owner, {"email": "cleo@example.test"}, brand_id=t.brands["a"])
    return {"ana": ana, "bob": bob.id, "next_gig": next_gig}


async def members(api: Api, t: TenantFixture, field: str, operator: str, value) -> set[str]:
    rule = {"preference": {"field": field.upper(), "operator": operator.upper(), "value": value}}
    body = await api.data(PREVIEW, {"b": t.brand_gid("a"), "d": {"match": "ALL", "rules": [rule]}},
                          token=t.owner_token)
    found = {e["node"]["email"].split("@")[0] for e in body["previewSegment"]["edges"]}
    assert body["previewSegment"]["totalCount"] == len(found)
    return found


async def test_each_preference_rule_matches_the_hand_worked_customers(api: Api, tenant: TenantFixture) -> None:
    ids = await people(tenant)
    cases = [
        ("genres", "includes", ["Rock"], {"ana"}),  # genres compare lower case
        ("genres", "includes", ["folk", "jazz"], {"ana"}),
        ("genres", "not_in", ["rock"], {"bob", "cleo"}),  # no profile: no genres
        ("types", "includes", ["tasting"], {"ana", "bob"}),
        ("types", "includes", ["concert"], {"ana"}),
        ("creators", "includes", ["Miles"], {"ana"}),
        ("creators", "includes", ["miles"], set()),  # creators match as written
        ("preferred_day", "includes", [1], {"ana"}),  # Monday
        ("preferred_day", "includes", [6], {"bob"}),  # Saturday
        ("preferred_day", "not_in", [1, 6], {"cleo"}),
        ("price_range", "includes", [30], {"ana"}),  # 25.00-40.00 holds 30.00
        ("price_range", "includes", [20], {"bob"}),  # 20.00-20.00
        ("price_range", "includes", [20, 40], {"ana", "bob"}),  # an edge is inside
        ("price_range", "between", [10, 25], {"ana", "bob"}),  # overlaps both ranges
        ("price_range", "between", [40.01, 100], set()),
        ("price_range", "exists", None, {"ana", "bob"}),
        ("price_range", "not_exists", None, {"cleo"}),
        ("watchlist", "includes", [gid("Product", ids["next_gig"])], {"ana"}),
        ("watchlist", "not_in", [gid("Product", ids["next_gig"])], {"bob", "cleo"}),
    ]
    got = [(f, op, v, await members(api, tenant, f, op, v)) for f, op, v, _ in cases]
    assert got == cases


async def test_explain_shows_the_preference_the_rule_read(api: Api, tenant: TenantFixture) -> None:
    ids = await people(tenant)
    seg = (await api.data(CREATE, {"input": {"brandId": tenant.brand_gid("a"), "name": "Jazz", "definition": {
        "rules": [{"preference": {"field": "GENRES", "operator": "INCLUDES", "value": ["jazz"]}},
                  {"preference": {"field": "PRICE_RANGE", "operator": "INCLUDES", "value": [30]}}]}}},
        token=tenant.owner_token))["createSegment"]
    assert seg["errors"] == []
    explained = (await api.data("""query($s: ID!, $c: ID!) { explainSegment(segmentId: $s, customerId: $c) {
        matched root { children { matched actual } } } }""",
        {"s": seg["segment"]["id"], "c": gid("Customer", ids["ana"])}, token=tenant.owner_token))["explainSegment"]
    assert explained == {"matched": True, "root": {"children": [
        {"matched": True, "actual": ["rock", "jazz"]}, {"matched": True, "actual": [2500, 4000]}]}}


@pytest.mark.parametrize(("rule", "field"), [
    ({"field": "PREFERRED_DAY", "operator": "INCLUDES", "value": [8]}, "rules[0].value"),
    ({"field": "GENRES", "operator": "EQUALS", "value": "rock"}, "rules[0].operator"),
    ({"field": "PRICE_RANGE", "operator": "INCLUDES", "value": [-5]}, "rules[0].value"),
    ({"field": "PRICE_RANGE", "operator": "BETWEEN", "value": [40, 10]}, "rules[0].value"),
    ({"field": "TYPES", "operator": "INCLUDES", "value": []}, "rules[0].value"),
])
async def test_bad_preference_rules_are_refused_with_their_path(api: Api, tenant: TenantFixture, rule, field) -> None:
    out = (await api.data(CREATE, {"input": {"brandId": tenant.brand_gid("a"), "name": "bad",
                                             "definition": {"rules": [{"preference": rule}]}}},
                          token=tenant.owner_token))["createSegment"]
    assert out["segment"] is None and out["errors"][0]["field"] == f"input.definition.{field}", out


async def test_a_watchlist_product_of_another_brand_is_refused(api: Api, tenant: TenantFixture) -> None:
    from domain.commerce.service import ProductAttributes, upsert_product
    other = await upsert_product(tenant.owner, "B-GIG", "B gig", brand_id=tenant.brands["b"], price_cents=100,
                                 currency="EUR", attributes=ProductAttributes(kind="event"))
    out = (await api.data(CREATE, {"input": {"brandId": tenant.brand_gid("a"), "name": "w", "definition": {
        "rules": [{"preference": {"field": "WATCHLIST", "operator": "INCLUDES", "value": [gid("Product", other.id)]}}]}}},
        token=tenant.owner_token))["createSegment"]
    assert out["segment"] is None and out["errors"][0]["field"].startswith("input.definition")
    wrong_kind = (await api.data(CREATE, {"input": {"brandId": tenant.brand_gid("a"), "name": "w", "definition": {
        "rules": [{"preference": {"field": "WATCHLIST", "operator": "INCLUDES",
                                  "value": [gid("Customer", other.id)]}}]}}}, token=tenant.owner_token))["createSegment"]
    assert wrong_kind["segment"] is None


async def test_the_field_catalogue_lists_the_preference_fields(api: Api, tenant: TenantFixture) -> None:
    await _product(tenant, "TASTE", product_type="tasting", price=100)
    body = await api.data("""query($b: ID!) { segmentFields(brandId: $b) { kind field operators enumValues
        suggestions } }""", {"b": tenant.brand_gid("a")}, token=tenant.owner_token)
    prefs = {f["field"]: f for f in body["segmentFields"] if f["kind"] == "PREFERENCE"}
    assert set(prefs) == {"genres", "types", "creators", "preferred_day", "price_range", "watchlist"}
    assert prefs["genres"]["operators"] == ["INCLUDES", "NOT_IN"]
    assert prefs["preferred_day"]["enumValues"] == ["1", "2", "3", "4", "5", "6", "7"]
    assert "tasting" in prefs["types"]["suggestions"]


async def test_an_order_moves_a_customer_into_a_live_preference_segment(api: Api, tenant: TenantFixture,
                                                                         worker) -> None:
    t = tenant
    ids = await people(t)
    made = (await api.data(CREATE, {"input": {"brandId": t.brand_gid("a"), "name": "Jazz lovers", "definition": {
        "rules": [{"preference": {"field": "GENRES", "operator": "INCLUDES", "value": ["jazz"]}}]}}},
        token=t.owner_token))["createSegment"]
    assert made["errors"] == []
    from graph.core.ids import decode
    seg = decode(made["segment"]["id"], "Segment")
    first = await refresh.refresh(t.id, seg)
    assert (first.entered, first.total) == (1, 1)  # Ana
    await record_order(t.owner, OrderInput(  # Bob buys a jazz night: his preferences now hold jazz
        brand_id=t.brands["a"], external_order_id="B-2", total_cents=5000, currency="EUR", customer_id=ids["bob"],
        placed_at=datetime(2026, 11, 8, 20, tzinfo=UTC), items=[OrderLine("JAZZ-ROCK", 1, 5000)]))
    q = """query($id: ID!) { segment(id: $id) { memberCount members(first: 10) { edges { node { customer { email } } } }
      history(first: 10) { edges { node { change cause } } } } }"""
    data: dict = {}
    for _ in range(300):
        data = (await api.data(q, {"id": made["segment"]["id"]}, token=t.owner_token))["segment"]
        if data["memberCount"] == 2:
            break
        await asyncio.sleep(0.05)
    assert {e["node"]["customer"]["email"] for e in data["members"]["edges"]} == {"ana@example.test",
                                                                                   "bob@example.test"}
    assert ("ENTERED", "CHANGE") in [(e["node"]["change"], e["node"]["cause"]) for e in data["history"]["edges"]]
