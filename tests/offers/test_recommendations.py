"""recommendedCustomers: each factor's weight and reason, the 100 cap, per-brand weights, order,
pages, visibility, and the segment made from it (docs/offers.md, worked examples)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture, gid
from domain.commerce.service import EventInput, ProductAttributes, track_event, upsert_product
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session
from domain.segments.refresh import refresh
from graph.core.ids import decode

RECOMMENDED = """query($p: ID!, $b: ID, $min: Int, $first: Int, $after: String) {
  recommendedCustomers(productId: $p, brandId: $b, minScore: $min, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { score reasons { reason weight } customer { id email consents { channel granted } } } } } }"""

# docs/offers.md, "Worked examples": the event, and each customer's brand profile
EVENT = dict(kind="event", genres=["rock"], product_type="concert", creators=["Miles"], city="Lyon", country="FR")
NOTHING = dict(genres=[], types=[], creators=[], low=None, high=None, city=None, country=None, engagement=0,
               watch=False)
CASES: list[tuple[str, dict[str, Any], int, list[tuple[str, int]]]] = [
    ("nothing", {}, 0, []),
    ("genre", {"genres": ["pop", "rock"]}, 25, [("GENRE_MATCH", 25)]),
    ("type", {"types": ["concert"]}, 20, [("TYPE_MATCH", 20)]),
    ("creator", {"creators": ["Miles"]}, 20, [("CREATOR_MATCH", 20)]),
    ("price", {"low": 2500, "high": 4000}, 15, [("PRICE_FIT", 15)]),
    ("price-edge", {"low": 3000, "high": 3000}, 15, [("PRICE_FIT", 15)]),
    ("price-above", {"low": 3100, "high": 9000}, 0, []),
    ("city", {"city": "lyon", "country": "FR"}, 10, [("LOCATION", 10)]),
    ("country", {"city": "Paris", "country": "FR"}, 5, [("LOCATION", 5)]),
    ("engaged", {"engagement": 70}, 5, [("HIGH_ENGAGEMENT", 5)]),
    ("not-engaged", {"engagement": 69}, 0, []),
    ("watching", {"watch": True}, 5, [("ON_WATCHLIST", 5)]),
    ("all", {"genres": ["rock"], "types": ["concert"], "creators": ["Miles"], "low": 1000, "high": 5000,
             "city": "Lyon", "country": "FR", "engagement": 90, "watch": True}, 100,
     [("GENRE_MATCH", 25), ("TYPE_MATCH", 20), ("CREATOR_MATCH", 20), ("PRICE_FIT", 15), ("LOCATION", 10),
      ("HIGH_ENGAGEMENT", 5), ("ON_WATCHLIST", 5)]),
]


async def _event(t: TenantFixture, sku: str = "FEST", brand: str = "a", **over: Any) -> uuid.UUID:
    attrs = {**EVENT, **over}
    p = await upsert_product(t.owner, sku, f"Festival {sku}", brand_id=t.brands[brand], price_cents=3000,
                             currency="EUR", attributes=ProductAttributes(**attrs))
    return p.id


async def _customer(t: TenantFixture, name: str, product: uuid.UUID, prefs: dict[str, Any], brand: str = "a") -> uuid.UUID:
    """A customer of the brand whose brand profile holds exactly ``prefs`` (NOTHING otherwise)."""
    c, _ = await upsert_customer(t.owner, {"email": f"{name}@example.test"}, brand_id=t.brands[brand])
    await track_event(t.owner, EventInput(event_id=f"{name}-seen", name="page_viewed", brand_id=t.brands[brand],
                                          customer_id=c.id))  # makes the brand profile row
    p = {**NOTHING, **prefs}
    async with tenant_session(t.id) as s:
        await s.execute(text(
            "UPDATE customer_profiles SET genres = :g, types = :ty, creators = :cr, price_low_cents = :lo,"
            " price_high_cents = :hi, city = :city, country = :country, engagement_score = :eng,"
            " watchlist = CASE WHEN :watch THEN ARRAY[cast(:product AS uuid)] ELSE '{}' END"
            " WHERE tenant_id = :t AND customer_id = :c AND brand_id = :b"),
            {"g": p["genres"], "ty": p["types"], "cr": p["creators"], "lo": p["low"], "hi": p["high"],
             "city": p["city"], "country": p["country"], "eng": p["engagement"], "watch": p["watch"],
             "product": str(product), "t": t.id, "c": c.id, "b": t.brands[brand]})
    return c.id


def _by_email(body: dict[str, Any]) -> dict[str, tuple[int, list[tuple[str, int]]]]:
    return {e["node"]["customer"]["email"].split("@")[0]: (e["node"]["score"],
                                                            [(r["reason"], r["weight"]) for r in e["node"]["reasons"]])
            for e in body["recommendedCustomers"]["edges"]}


async def test_each_factor_adds_its_weight_with_its_reason(api: Api, tenant: TenantFixture) -> None:
    product = await _event(tenant)
    for name, prefs, _, _ in CASES:
        await _customer(tenant, name, product, prefs)
    body = await api.data(RECOMMENDED, {"p": gid("Product", product), "first": 50}, token=tenant.owner_token)
    assert _by_email(body) == {name: (score, reasons) for name, _, score, reasons in CASES}
    assert body["recommendedCustomers"]["totalCount"] == len(CASES)
    scores = [e["node"]["score"] for e in body["recommendedCustomers"]["edges"]]
    assert scores == sorted(scores, reverse=True)


async def test_brand_weights_change_the_score_and_it_is_capped_at_100(api: Api, tenant: TenantFixture) -> None:
    product = await _event(tenant)
    await _customer(tenant, "all", product, CASES[-1][1])
    await _customer(tenant, "genre", product, {"genres": ["rock"]})
    await _customer(tenant, "country", product, {"city": "Paris", "country": "FR"})
    set_w = """mutation($i: SetRecommendationWeightsInput!) { setRecommendationWeights(input: $i) {
      weights { genre type creator price location engagement watchlist } errors { field code } } }"""
    out = await api.data(set_w, {"i": {"brandId": tenant.brand_gid("a"), "genre": 60, "location": 7}},
                         token=tenant.owner_token)
    assert out["setRecommendationWeights"] == {"errors": [], "weights": {
        "genre": 60, "type": 20, "creator": 20, "price": 15, "location": 7, "engagement": 5, "watchlist": 5}}
    body = await api.data(RECOMMENDED, {"p": gid("Product", product)}, token=tenant.owner_token)
    found = _by_email(body)
    assert found["all"][0] == 100  # 60 + 20 + 20 + 15 + 7 + 5 + 5 = 132, capped
    assert dict(found["all"][1])["GENRE_MATCH"] == 60
    assert found["genre"] == (60, [("GENRE_MATCH", 60)])
    assert found["country"] == (3, [("LOCATION", 3)])  # half of 7, rounded down
    bad = await api.data(set_w, {"i": {"brandId": tenant.brand_gid("a"), "genre": 101}}, token=tenant.owner_token)
    assert bad["setRecommendationWeights"]["errors"] == [{"field": "input.genre", "code": "INVALID"}]


async def test_declared_location_counts_without_a_profile_and_other_brands_do_not(api: Api,
                                                                                  tenant: TenantFixture) -> None:
    product = await _event(tenant)
    await upsert_customer(tenant.owner, {"email": "declared@example.test", "city": "Lyon", "country": "FR"},
                          brand_id=tenant.brands["a"])
    await _customer(tenant, "elsewhere", product, {"genres": ["rock"]}, brand="b")  # a customer of brand b only
    body = await api.data(RECOMMENDED, {"p": gid("Product", product)}, token=tenant.owner_token)
    assert _by_email(body) == {"declared": (10, [("LOCATION", 10)])}


async def test_pages_follow_score_then_id_and_min_score_filters(api: Api, tenant: TenantFixture) -> None:
    product = await _event(tenant)
    for name, prefs, _, _ in CASES:
        await _customer(tenant, name, product, prefs)
    seen: list[tuple[int, str]] = []
    after = None
    while True:
        body = await api.data(RECOMMENDED, {"p": gid("Product", product), "min": 10, "first": 3, "after": after},
                              token=tenant.owner_token)
        conn = body["recommendedCustomers"]
        assert conn["totalCount"] == sum(1 for _, _, score, _ in CASES if score >= 10)
        seen += [(e["node"]["score"], e["node"]["customer"]["id"]) for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(seen) == sum(1 for _, _, score, _ in CASES if score >= 10)
    keys = [(-score, decode(c, "Customer")) for score, c in seen]
    assert keys == sorted(keys)  # score descending, then customer id
    assert len({c for _, c in seen}) == len(seen)
    out_of_range = await api.gql(RECOMMENDED, {"p": gid("Product", product), "min": 101}, token=tenant.owner_token)
    assert out_of_range["errors"][0]["extensions"]["code"] == "INVALID"


async def test_a_segment_from_recommendations_holds_the_customers_at_or_above_the_score(
        api: Api, tenant: TenantFixture) -> None:
    product = await _event(tenant)
    for name, prefs, _, _ in CASES:
        await _customer(tenant, name, product, prefs)
    create = """mutation($i: CreateSegmentFromRecommendationsInput!) { createSegmentFromRecommendations(input: $i) {
      segment { id name definition } errors { field code } } }"""
    out = (await api.data(create, {"i": {"productId": gid("Product", product), "minScore": 20, "name": "Best fit"}},
                          token=tenant.owner_token))["createSegmentFromRecommendations"]
    assert out["errors"] == []
    rule = out["segment"]["definition"]["rules"][0]
    assert rule == {"kind": "recommendation_score", "field": str(product), "operator": "greater_than_or_equal",
                    "value": 20}
    segment_id = decode(out["segment"]["id"], "Segment")
    await refresh(tenant.id, segment_id)
    async with tenant_session(tenant.id) as s:
        members = set((await s.execute(text(
            "SELECT c.email FROM segment_memberships m JOIN customers c ON c.tenant_id = m.tenant_id"
            " AND c.id = m.customer_id WHERE m.tenant_id = :t AND m.segment_id = :s AND m.exited_at IS NULL"),
            {"t": tenant.id, "s": segment_id})).scalars())
    assert members == {f"{name}@example.test" for name, _, score, _ in CASES if score >= 20}
    refused = (await api.data(create, {"i": {"productId": gid("Product", product), "minScore": 200, "name": "x"}},
                              token=tenant.owner_token))["createSegmentFromRecommendations"]
    assert refused["segment"] is None and refused["errors"][0]["field"] == "input.minScore"


@pytest.mark.parametrize("rule_value", [-1, 101, "high"])
async def test_the_segment_rule_refuses_scores_outside_0_to_100(api: Api, tenant: TenantFixture, rule_value) -> None:
    product = await _event(tenant)
    create = """mutation($i: CreateSegmentInput!) { createSegment(input: $i) { segment { id } errors { field } } }"""
    out = (await api.data(create, {"i": {"brandId": tenant.brand_gid("a"), "name": "r", "kind": "DYNAMIC",
                                          "definition": {"rules": [{"recommendationScore": {
                                              "productId": gid("Product", product),
                                              "operator": "GREATER_THAN_OR_EQUAL", "value": rule_value}}]}}},
                          token=tenant.owner_token))["createSegment"]
    assert out["segment"] is None and out["errors"][0]["field"].endswith("rules[0].value")


async def test_a_product_of_another_brand_is_refused_in_a_segment_rule(api: Api, tenant: TenantFixture) -> None:
    product_b = await _event(tenant, "FEST-B", brand="b")
    create = """mutation($i: CreateSegmentInput!) { createSegment(input: $i) { segment { id } errors { field } } }"""
    out = (await api.data(create, {"i": {"brandId": tenant.brand_gid("a"), "name": "r", "kind": "DYNAMIC",
                                          "definition": {"rules": [{"recommendationScore": {
                                              "productId": gid("Product", product_b),
                                              "operator": "GREATER_THAN_OR_EQUAL", "value": 10}}]}}},
                          token=tenant.owner_token))["createSegment"]
    assert out["segment"] is None and out["errors"][0]["field"].startswith("input.definition")


# --- isolation (tests/tenancy/test_isolation.py names these under "Proven elsewhere") ---------------

async def test_another_tenant_sees_and_changes_nothing_of_recommendations(
        api: Api, tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    product = await _event(tenant)
    await _customer(tenant, "fan", product, {"genres": ["rock"]})
    body = await api.gql(RECOMMENDED, {"p": gid("Product", product)}, token=other_tenant.owner_token)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND" and "fan@" not in str(body)
    seg = await api.data("""mutation($i: CreateSegmentFromRecommendationsInput!) {
      createSegmentFromRecommendations(input: $i) { segment { id } errors { field code } } }""",
                         {"i": {"productId": gid("Product", product), "minScore": 0, "name": "steal"}},
                         token=other_tenant.owner_token)
    assert seg["createSegmentFromRecommendations"]["segment"] is None
    w = await api.gql("""mutation($i: SetRecommendationWeightsInput!) { setRecommendationWeights(input: $i) {
      weights { genre } errors { code } } }""", {"i": {"brandId": tenant.brand_gid("a"), "genre": 1}},
                      token=other_tenant.owner_token)
    assert w.get("data") is None or w["data"]["setRecommendationWeights"]["weights"] is None
    r = await api.gql("query($b: ID) { recommendationWeights(brandId: $b) { genre } }",
                      {"b": tenant.brand_gid("a")}, token=other_tenant.owner_token)
    assert r.get("errors") and (r.get("data") or {}).get("recommendationWeights") is None
    async with tenant_session(tenant.id) as s:
        assert await s.scalar(text("SELECT count(*) FROM recommendation_weights WHERE tenant_id = :t"),
                              {"t": tenant.id}) == 0
        assert await s.scalar(text("SELECT count(*) FROM segments WHERE tenant_id = :t"), {"t": tenant.id}) == 0


async def test_a_member_of_another_brand_sees_and_changes_nothing(api: Api, tenant: TenantFixture) -> None:
    product = await _event(tenant)
    await _customer(tenant, "fan", product, {"genres": ["rock"]})
    _, token_b = await tenant.member("marketer", brands=["b"])
    body = await api.gql(RECOMMENDED, {"p": gid("Product", product)}, token=token_b)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND" and "fan@" not in str(body)
    seg = await api.data("""mutation($i: CreateSegmentFromRecommendationsInput!) {
      createSegmentFromRecommendations(input: $i) { segment { id } errors { field code } } }""",
                         {"i": {"productId": gid("Product", product), "minScore": 0, "name": "steal"}}, token=token_b)
    assert seg["createSegmentFromRecommendations"]["segment"] is None
    w = await api.data("""mutation($i: SetRecommendationWeightsInput!) { setRecommendationWeights(input: $i) {
      weights { genre } errors { code } } }""", {"i": {"brandId": tenant.brand_gid("a"), "genre": 1}}, token=token_b)
    assert w["setRecommendationWeights"]["weights"] is None
    r = await api.gql("query($b: ID) { recommendationWeights(brandId: $b) { genre } }",
                      {"b": tenant.brand_gid("a")}, token=token_b)
    assert r.get("errors")
    # brand a's marketer sees brand a's customers, and brandId must be the product's brand
    _, token_a = await tenant.member("marketer", brands=["a"])
    assert "fan" in _by_email(await api.data(RECOMMENDED, {"p": gid("Product", product)}, token=token_a))
    wrong = await api.gql(RECOMMENDED, {"p": gid("Product", product), "b": tenant.brand_gid("b")},
                          token=tenant.owner_token)
    assert wrong["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    async with tenant_session(tenant.id) as s:
        assert await s.scalar(text("SELECT count(*) FROM recommendation_weights WHERE tenant_id = :t"),
                              {"t": tenant.id}) == 0


async def test_an_analyst_reads_but_cannot_make_segments_or_set_weights(api: Api, tenant: TenantFixture) -> None:
    product = await _event(tenant)
    await _customer(tenant, "fan", product, {"genres": ["rock"]})
    _, analyst = await tenant.member("analyst")
    assert _by_email(await api.data(RECOMMENDED, {"p": gid("Product", product)}, token=analyst)) == {
        "fan": (25, [("GENRE_MATCH", 25)])}
    seg = await api.data("""mutation($i: CreateSegmentFromRecommendationsInput!) {
      createSegmentFromRecommendations(input: $i) { segment { id } errors { field code } } }""",
                         {"i": {"productId": gid("Product", product), "minScore": 0, "name": "x"}}, token=analyst)
    assert seg["createSegmentFromRecommendations"]["segment"] is None
    assert seg["createSegmentFromRecommendations"]["errors"][0]["code"] == "FORBIDDEN"
    w = await api.data("""mutation($i: SetRecommendationWeightsInput!) { setRecommendationWeights(input: $i) {
      weights { genre } errors { code } } }""", {"i": {"brandId": tenant.brand_gid("a"), "genre": 1}}, token=analyst)
    assert w["setRecommendationWeights"]["errors"][0]["code"] == "FORBIDDEN"
