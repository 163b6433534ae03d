"""Customers and commerce over the API: ingestion, profiles, tags, notes, consent, timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import Api, TenantFixture, audit_count, create_tenant_fixture

UPSERT = """mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
  created customer { id email phone firstName lastName name country attributes brands { source brand { slug } } }
  errors { field code message } } }"""
RECORD_ORDER = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) {
  created order { id externalOrderId totalCents currency status items { sku quantity unitPriceCents }
  customer { email } brand { slug } } errors { field code message } } }"""
TRACK = """mutation($input: TrackEventInput!) { trackEvent(input: $input) {
  created event { id name properties } errors { field code message } } }"""
CUSTOMER = """query($id: ID!, $brand: ID) { customer(id: $id) {
  email name
  profile { totalOrderValueCents totalOrderCount averageOrderValueCents purchaseFrequency engagementScore churnRisk
            firstOrderAt lastOrderAt eventsLast30Days }
  brandProfile: profile(brandId: $brand) { totalOrderCount }
  tags { name } consents { channel granted source brand { slug } }
  notes { edges { node { body type visibility author } } }
  lastOrder { externalOrderId }
  orders(first: 10) { edges { node { externalOrderId } } }
  timeline(first: 50) { edges { cursor node { __typename kind occurredAt brand { slug }
    ... on OrderPlacedEvent { externalOrderId totalCents status }
    ... on EventTrackedEvent { name }
    ... on TagAddedEvent { tagName }
    ... on NoteAddedEvent { excerpt noteType visibility }
    ... on ConsentChangedEvent { channel granted } } } pageInfo { hasNextPage endCursor } }
} }"""


def _ago(**kw) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


async def test_customer_lifecycle(api: Api, tenant: TenantFixture) -> None:
    token, brand_a = tenant.owner_token, tenant.brand_gid("a")
    first = (await api.data(UPSERT, {"input": {
        "brandId": brand_a, "externalId": "shop-1", "email": "Maya@Example.COM", "phone": "+33 6 12 34 56 78",
        "firstName": "Maya", "lastName": "Lopez", "country": "fr", "attributes": {"vip_level": 2}}}, token=token))["upsertCustomer"]
    assert first["errors"] == [] and first["created"] is True
    c = first["customer"]
    assert c["email"] == "maya@example.com" and c["phone"] == "+33612345678" and c["country"] == "FR"
    assert c["brands"] == [{"source": "api", "brand": {"slug": "brand-a"}}]

    again = (await api.data(UPSERT, {"input": {"email": "maya@example.com", "city": "Lyon",
                                                "attributes": {"segment": "x"}}}, token=token))["upsertCustomer"]
    assert again["created"] is False and again["customer"]["id"] == c["id"]
    assert again["customer"]["attributes"] == {"vip_level": 2, "segment": "x"}

    order_input = {"brandId": brand_a, "externalOrderId": "A-1001", "totalCents": 12_500, "currency": "eur",
                   "placedAt": _ago(days=3), "customerId": c["id"], "status": "PAID",
                   "items": [{"sku": "TENT-2P", "quantity": 1, "unitPriceCents": 10_000, "name": "Tent"},
                             {"sku": "MUG", "quantity": 2, "unitPriceCents": 1_250}]}
    recorded = (await api.data(RECORD_ORDER, {"input": order_input}, token=token))["recordOrder"]
    assert recorded["errors"] == [] and recorded["created"] is True
    assert recorded["order"]["currency"] == "EUR" and len(recorded["order"]["items"]) == 2
    before = await audit_count(tenant.id)
    resent = (await api.data(RECORD_ORDER, {"input": {**order_input, "totalCents": 99}}, token=token))["recordOrder"]
    assert resent["created"] is False and resent["order"]["id"] == recorded["order"]["id"]
    assert resent["order"]["totalCents"] == 12_500  # the re-sent order changed nothing
    assert await audit_count(tenant.id) == before

    # an order for a new customer identified by e-mail creates and links them
    other = (await api.data(RECORD_ORDER, {"input": {**order_input, "externalOrderId": "A-1002", "customerId": None,
                                                      "customer": {"email": "new@example.com"}}}, token=token))["recordOrder"]
    assert other["created"] and other["order"]["customer"] == {"email": "new@example.com"}

    event = {"eventId": "evt-1", "name": "product_viewed", "brandId": brand_a, "customerId": c["id"],
             "properties": {"sku": "TENT-2P"}, "occurredAt": _ago(hours=1)}
    tracked = (await api.data(TRACK, {"input": event}, token=token))["trackEvent"]
    assert tracked["created"] is True and tracked["event"]["properties"] == {"sku": "TENT-2P"}
    assert (await api.data(TRACK, {"input": event}, token=token))["trackEvent"]["created"] is False

    tag = (await api.data('mutation { createTag(input: {name: "VIP", color: "#FFAA00"}) { tag { id color } errors { code } } }',
                          token=token))["createTag"]["tag"]
    assert tag["color"] == "#ffaa00"
    tagged = await api.data("mutation($c: [ID!]!, $t: [ID!]!) { tagCustomers(input: {customerIds: $c, tagIds: $t}) { changed errors { code } } }",
                            {"c": [c["id"]], "t": [tag["id"]]}, token=token)
    assert tagged["tagCustomers"] == {"changed": 1, "errors": []}
    note = await api.data("""mutation($c: ID!) { addCustomerNote(input: {customerId: $c, body: "Prefers SMS", type: ACTION}) {
        note { type visibility author } errors { code } } }""", {"c": c["id"]}, token=token)
    assert note["addCustomerNote"]["note"] == {"type": "ACTION", "visibility": "INTERNAL", "author": f"owner@{tenant.slug}.test"}
    consent = await api.data("""mutation($c: ID!, $b: ID!) { setConsent(input: {customerId: $c, brandId: $b, channel: SMS,
        granted: true, source: "checkout"}) { consent { channel granted grantedAt } errors { code } } }""",
                             {"c": c["id"], "b": brand_a}, token=token)
    assert consent["setConsent"]["consent"]["granted"] is True

    data = (await api.data(CUSTOMER, {"id": c["id"], "brand": brand_a}, token=token))["customer"]
    profile = data["profile"]
    assert profile["totalOrderValueCents"] == 12_500 and profile["totalOrderCount"] == 1
    assert profile["averageOrderValueCents"] == 12_500 and profile["eventsLast30Days"] == 1
    assert 0 < profile["engagementScore"] <= 100 and 0 <= profile["churnRisk"] < 50
    assert data["brandProfile"]["totalOrderCount"] == 1
    assert data["tags"] == [{"name": "VIP"}]
    assert data["consents"] == [{"channel": "SMS", "granted": True, "source": "checkout", "brand": {"slug": "brand-a"}}]
    assert data["notes"]["edges"][0]["node"]["body"] == "Prefers SMS"
    assert data["lastOrder"] == {"externalOrderId": "A-1001"}
    kinds = [e["node"]["kind"] for e in data["timeline"]["edges"]]
    # newest first: consent, note, tag, creation happened just now; the event an hour ago; the order 3 days ago
    assert kinds == ["CONSENT_CHANGED", "NOTE_ADDED", "TAG_ADDED", "CUSTOMER_CREATED", "EVENT_TRACKED", "ORDER_PLACED"]
    order_event = next(e["node"] for e in data["timeline"]["edges"] if e["node"]["kind"] == "ORDER_PLACED")
    assert order_event == {"__typename": "OrderPlacedEvent", "kind": "ORDER_PLACED", "occurredAt": order_event["occurredAt"],
                           "brand": {"slug": "brand-a"}, "externalOrderId": "A-1001", "totalCents": 12_500,
                           "status": "PAID"}
    by_kind = {e["node"]["kind"]: e["node"] for e in data["timeline"]["edges"]}
    assert (by_kind["NOTE_ADDED"]["noteType"], by_kind["NOTE_ADDED"]["visibility"]) == ("ACTION", "INTERNAL")
    assert (by_kind["CONSENT_CHANGED"]["channel"], by_kind["CONSENT_CHANGED"]["granted"]) == ("SMS", True)


async def test_timeline_pages_and_filters(api: Api, tenant: TenantFixture) -> None:
    token = tenant.owner_token
    c = (await api.data(UPSERT, {"input": {"brandId": tenant.brand_gid("a"), "email": "t@example.com"}},
                        token=token))["upsertCustomer"]["customer"]
    for i in range(5):
        await api.data(TRACK, {"input": {"eventId": f"e{i}", "name": "page_viewed", "customerId": c["id"],
                                         "brandId": tenant.brand_gid("b" if i % 2 else "a"), "occurredAt": _ago(minutes=10 - i)}},
                       token=token)
    q = """query($id: ID!, $after: String, $brand: ID) { customer(id: $id) {
      timeline(first: 2, after: $after, types: [EVENT_TRACKED], brandId: $brand) {
        edges { node { occurredAt brand { slug } } } pageInfo { hasNextPage endCursor } } } }"""
    seen, after = [], None
    while True:
        page = (await api.data(q, {"id": c["id"], "after": after}, token=token))["customer"]["timeline"]
        seen += [e["node"]["occurredAt"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    only_b = (await api.data(q, {"id": c["id"], "brand": tenant.brand_gid("b")}, token=token))["customer"]["timeline"]
    assert {e["node"]["brand"]["slug"] for e in only_b["edges"]} == {"brand-b"}


async def test_customers_list_search_tags_and_brand_rule(api: Api, tenant: TenantFixture) -> None:
    token = tenant.owner_token
    for email, brand in (("ana@a.test", "a"), ("bob@b.test", "b"), ("anabel@ab.test", "a")):
        await api.data(UPSERT, {"input": {"brandId": tenant.brand_gid(brand), "email": email,
                                          "firstName": email.split("@")[0].title()}}, token=token)
    q = "query($s: String, $b: ID) { customers(search: $s, brandId: $b, first: 10) { edges { node { email } } } }"
    found = await api.data(q, {"s": "ana"}, token=token)
    assert sorted(e["node"]["email"] for e in found["customers"]["edges"]) == ["ana@a.test", "anabel@ab.test"]
    in_b = await api.data(q, {"b": tenant.brand_gid("b")}, token=token)
    assert [e["node"]["email"] for e in in_b["customers"]["edges"]] == ["bob@b.test"]

    _, marketer_a = await tenant.member("marketer", brands=["a"])
    visible = await api.data(q, {}, token=marketer_a)
    assert sorted(e["node"]["email"] for e in visible["customers"]["edges"]) == ["ana@a.test", "anabel@ab.test"]


CUSTOMERS_WITH_EVERYTHING = """query($first: Int!) { customers(first: $first) { edges { node {
  email tags { name } consents { channel granted } profile { totalOrderCount engagementScore }
  lastOrder { externalOrderId brand { slug } } brands { brand { slug } }
  orders(first: 2) { edges { node { externalOrderId } } } timeline(first: 3) { edges { node { kind } } } } } } }"""


async def _shop(n: int) -> TenantFixture:
    from domain.commerce.service import OrderInput, record_order
    from domain.customers.consent import Channel, set_consent
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers

    t = await create_tenant_fixture()
    vip = await create_tag(t.owner, {"name": "VIP"})
    ids = []
    for i in range(n):
        c, _ = await upsert_customer(t.owner, {"email": f"c{i}@shop.test"}, brand_id=t.brands["a"])
        ids.append(c.id)
        await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=f"o{i}", total_cents=1000 + i,
                                               currency="EUR", placed_at=datetime.now(UTC) - timedelta(days=i),
                                               customer_id=c.id))
        await set_consent(t.owner, c.id, t.brands["a"], Channel.EMAIL, True)
    await tag_customers(t.owner, ids, [vip.id])
    return t


async def test_customers_list_is_flat_in_sql_statements(api: Api) -> None:
    small, large = await _shop(5), await _shop(50)
    counts = []
    for t, n in ((small, 5), (large, 50)):
        body = await api.gql(CUSTOMERS_WITH_EVERYTHING, {"first": n}, token=t.owner_token)
        assert not body.get("errors"), body
        edges = body["data"]["customers"]["edges"]
        assert len(edges) == n
        assert all(e["node"]["tags"] == [{"name": "VIP"}] and e["node"]["lastOrder"] for e in edges)
        assert all(e["node"]["profile"]["totalOrderCount"] == 1 for e in edges)
        assert all(len(e["node"]["orders"]["edges"]) == 1 and len(e["node"]["timeline"]["edges"]) == 3 for e in edges)
        counts.append(body["extensions"]["sqlStatements"])
    assert counts[0] >= 8  # the list, then one batch each: tags, consents, profiles, last orders, brands, orders, timelines
    assert counts[0] == counts[1], counts


async def test_job_rebuild_profiles_and_export_timeline(api: Api, tenant: TenantFixture, worker) -> None:
    import asyncio

    import httpx

    token = tenant.owner_token
    c = (await api.data(UPSERT, {"input": {"brandId": tenant.brand_gid("a"), "email": "x@example.com"}},
                        token=token))["upsertCustomer"]["customer"]
    await api.data(TRACK, {"input": {"eventId": "ex-1", "name": "signed_up", "customerId": c["id"]}}, token=token)
    job_q = "query($id: ID!) { job(id: $id) { status kind progress { done total percent } result resultUrl errorSummary } }"

    async def wait(job_id: str) -> dict:
        for _ in range(200):
            job = (await api.data(job_q, {"id": job_id}, token=token))["job"]
            if job["status"] in ("SUCCEEDED", "FAILED"):
                return job
            await asyncio.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish: {job}")

    rebuild = (await api.data("mutation { rebuildProfiles { job { id status kind } errors { code } } }", token=token))
    job = await wait(rebuild["rebuildProfiles"]["job"]["id"])
    assert job["status"] == "SUCCEEDED" and job["progress"]["done"] == job["progress"]["total"] == 1

    export = await api.data("mutation($c: ID!) { exportTimeline(input: {customerId: $c}) { job { id } errors { code } } }",
                            {"c": c["id"]}, token=token)
    job = await wait(export["exportTimeline"]["job"]["id"])
    assert job["status"] == "SUCCEEDED" and job["result"] == {"rows": 2}
    async with httpx.AsyncClient() as http:
        r = await http.get(job["resultUrl"])
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        lines = r.text.strip().splitlines()
        assert lines[0].startswith("occurred_at,kind") and "event_tracked" in lines[1]
        tampered = job["resultUrl"][:-3] + ("AAA" if not job["resultUrl"].endswith("AAA") else "BBB")
        assert (await http.get(tampered)).status_code == 404

    # an analyst may not rebuild profiles
    _, analyst = await tenant.member("analyst")
    refused = await api.data("mutation { rebuildProfiles { job { id } errors { code } } }", token=analyst)
    assert refused["rebuildProfiles"] == {"job": None, "errors": [{"code": "FORBIDDEN"}]}


async def test_a_changed_birth_date_is_audited_as_iso_text(api: Api, tenant: TenantFixture) -> None:
    """A date in an audit summary is written as ISO 8601 text (it was an internal error)."""
    token = tenant.owner_token
    made = (await api.data(UPSERT, {"input": {"brandId": tenant.brand_gid("a"), "email": "bday@example.com"}},
                           token=token))["upsertCustomer"]
    assert made["errors"] == []
    changed = (await api.data(
        "mutation($i: UpdateCustomerInput!) { updateCustomer(input: $i) { customer { id } errors { code } } }",
        {"i": {"id": made["customer"]["id"], "birthDate": "1990-05-17"}}, token=token))["updateCustomer"]
    assert changed["errors"] == [] and changed["customer"]["id"] == made["customer"]["id"]
    log = (await api.data('{ auditLog(first: 1, action: "customer.update") { edges { node { summary } } } }',
                          token=token))["auditLog"]["edges"]
    assert log[0]["node"]["summary"]["birthDate"] == {"before": None, "after": "1990-05-17"}
