"""Alerts (docs/insights.md "Alerts"): rules per brand, one alert per crossing (lifetime value,
churn risk, entering a segment), the alerts connection with unread counts, markAlertsRead, the
``alerts`` subscription, and isolation (another tenant, another brand, a role without the
action)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from conftest import Api, TenantFixture
from domain.commerce.service import OrderInput, record_order
from domain.customers.overrides import OverrideField, set_override
from domain.customers.service import upsert_customer
from domain.insights import alerts as alerts_service
from domain.segments import refresh
from graph.core.ids import decode
from support.ws import Client, bearer, poll

CREATE_RULE = """mutation($i: CreateAlertRuleInput!) { createAlertRule(input: $i) {
  alertRule { id name kind threshold segmentId } errors { field code } } }"""
ALERTS = """query($b: ID, $unread: Boolean) { alerts(brandId: $b, unreadOnly: $unread, first: 20) {
  totalCount unreadCount edges { node { id kind value readAt ruleId customer { email } } } } }"""
PAGE = """query($b: ID, $last: Int, $before: String) { alerts(brandId: $b, last: $last, before: $before) {
  edges { node { value } } pageInfo { hasPreviousPage hasNextPage startCursor } } }"""
MARK = """mutation($i: MarkAlertsReadInput!) { markAlertsRead(input: $i) { marked unreadCount errors { field code } } }"""


async def _rule(api: Api, t: TenantFixture, kind: str, threshold=None, segment=None, token=None) -> dict:
    out = (await api.data(CREATE_RULE, {"i": {"brandId": t.brand_gid("a"), "name": kind.lower(), "kind": kind,
                                              "threshold": threshold, "segmentId": segment}},
                          token=token or t.owner_token))["createAlertRule"]
    return out


async def _order(t: TenantFixture, customer, n: int, cents: int, days_ago: int = 1) -> None:
    await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=f"{customer}-{n}",
                                           total_cents=cents, currency="EUR", customer_id=customer,
                                           placed_at=datetime.now(UTC) - timedelta(days=days_ago)))


async def _alerts(api: Api, t: TenantFixture, token: str | None = None, unread: bool = False) -> dict:
    return (await api.data(ALERTS, {"b": t.brand_gid("a"), "unread": unread}, token=token or t.owner_token))["alerts"]


async def test_lifetime_value_alerts_once_per_crossing_and_read_state(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    rule = await _rule(api, t, "LIFETIME_VALUE", 30_000)  # 300.00
    assert rule["errors"] == [] and rule["alertRule"]["threshold"] == 30_000
    ada, _ = await upsert_customer(t.owner, {"email": "ada@x.test"}, brand_id=t.brands["a"])
    await _order(t, ada.id, 1, 20_000)  # 200.00: under
    assert (await _alerts(api, t))["totalCount"] == 0
    await _order(t, ada.id, 2, 15_000)  # 350.00: crosses
    await _order(t, ada.id, 3, 5_000)  # 400.00: still over, no new alert
    got = await _alerts(api, t)
    assert (got["totalCount"], got["unreadCount"]) == (1, 1)
    node = got["edges"][0]["node"]
    assert (node["kind"], node["value"], node["customer"]["email"], node["readAt"], node["ruleId"]) == (
        "LIFETIME_VALUE", 40_000 - 5_000, "ada@x.test", None, rule["alertRule"]["id"])

    # falls below (an override of 1.00), then over again (override cleared): a second crossing
    await set_override(t.owner, ada.id, OverrideField.LIFETIME_VALUE, 100, "refund agreed")
    await _order(t, ada.id, 4, 1)  # the profile recomputes: 1.00 is under
    await set_override(t.owner, ada.id, OverrideField.LIFETIME_VALUE, None, None)
    await _order(t, ada.id, 5, 1)  # 400.02: over again
    got = await _alerts(api, t)
    assert (got["totalCount"], got["unreadCount"]) == (2, 2)
    assert [e["node"]["value"] for e in got["edges"]] == [40_002, 35_000]  # newest first
    # paged both ways: the last one, then the one before it
    last = (await api.data(PAGE, {"b": t.brand_gid("a"), "last": 1}, token=t.owner_token))["alerts"]
    assert [e["node"]["value"] for e in last["edges"]] == [35_000]
    assert (last["pageInfo"]["hasPreviousPage"], last["pageInfo"]["hasNextPage"]) == (True, False)
    before = (await api.data(PAGE, {"b": t.brand_gid("a"), "last": 1, "before": last["pageInfo"]["startCursor"]},
                             token=t.owner_token))["alerts"]
    assert [e["node"]["value"] for e in before["edges"]] == [40_002]
    assert (before["pageInfo"]["hasPreviousPage"], before["pageInfo"]["hasNextPage"]) == (False, True)

    first_id = got["edges"][1]["node"]["id"]
    marked = (await api.data(MARK, {"i": {"brandId": t.brand_gid("a"), "alertIds": [first_id]}},
                             token=t.owner_token))["markAlertsRead"]
    assert marked == {"marked": 1, "unreadCount": 1, "errors": []}
    unread = await _alerts(api, t, unread=True)
    assert (unread["totalCount"], unread["unreadCount"], len(unread["edges"])) == (1, 1, 1)
    everything = (await api.data(MARK, {"i": {"brandId": t.brand_gid("a")}}, token=t.owner_token))["markAlertsRead"]
    assert everything == {"marked": 1, "unreadCount": 0, "errors": []}


async def test_churn_risk_alerts_read_the_profile_and_bad_rules_are_refused(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    assert (await _rule(api, t, "CHURN_RISK", 60))["errors"] == []
    # docs/profiles.md: one order 400 days ago, none within 365 days (g clamped to 365), no events:
    # round(100 × (1 − e^(−400/365))) = 67; one order yesterday: 0
    old, _ = await upsert_customer(t.owner, {"email": "old@x.test"}, brand_id=t.brands["a"])
    await _order(t, old.id, 1, 1_000, days_ago=400)
    recent, _ = await upsert_customer(t.owner, {"email": "recent@x.test"}, brand_id=t.brands["a"])
    await _order(t, recent.id, 1, 1_000, days_ago=1)
    got = await _alerts(api, t)
    assert {e["node"]["customer"]["email"] for e in got["edges"]} == {"old@x.test"}
    assert got["edges"][0]["node"]["value"] == 67
    for kind, threshold, field in (("CHURN_RISK", 101, "input.threshold"), ("LIFETIME_VALUE", None, "input.threshold"),
                                   ("SEGMENT_ENTERED", None, "input.segmentId"), ("LIFETIME_VALUE", 0, "input.threshold")):
        out = await _rule(api, t, kind, threshold)
        assert out["alertRule"] is None and out["errors"][0]["field"] == field, (kind, out)


async def test_entering_a_segment_alerts_once_and_the_subscription_delivers(api: Api, tenant: TenantFixture,
                                                                             worker) -> None:
    t = tenant
    made = (await api.data("""mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
        segment { id } errors { field } } }""", {"input": {"brandId": t.brand_gid("a"), "name": "Spenders",
        "definition": {"rules": [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL",
                                              "value": 100}}]}}}, token=t.owner_token))["createSegment"]
    seg = made["segment"]["id"]
    rule = await _rule(api, t, "SEGMENT_ENTERED", segment=seg)
    assert rule["errors"] == [] and rule["alertRule"]["segmentId"] == seg
    await refresh.refresh(t.id, decode(seg, "Segment"))  # empty; live from now on
    client = await Client.open(api, bearer(t.owner_token))
    try:
        await client.subscribe("""subscription($b: ID) { alerts(brandId: $b) { kind customer { email } } }""",
                               {"b": t.brand_gid("a")})
        await client.sync()
        await asyncio.sleep(0.3)  # the subscription reads the stream from here on
        bea, _ = await upsert_customer(t.owner, {"email": "bea@x.test"}, brand_id=t.brands["a"])
        await _order(t, bea.id, 1, 15_000)  # enters the live segment
        assert await poll(lambda: bool(client.data("alerts")), 15), client.messages
        assert client.data("alerts")[0] == {"kind": "SEGMENT_ENTERED", "customer": {"email": "bea@x.test"}}
    finally:
        await client.ws.close()
    got = await _alerts(api, t)
    assert got["totalCount"] == 1
    # the job that follows the entry, run again (a retry), records nothing twice
    from sqlalchemy import text

    from domain.platform.db import tenant_session
    async with tenant_session(t.id) as s:
        at = await s.scalar(text("SELECT entered_at FROM segment_memberships WHERE tenant_id = :t AND segment_id = :s"),
                            {"t": t.id, "s": decode(seg, "Segment")})
    assert await alerts_service.record_segment_entries(t.id, decode(seg, "Segment"), at) == 0
    assert (await _alerts(api, t))["totalCount"] == 1


# --- isolation (tests/tenancy/test_isolation.py names these under "Proven elsewhere") ---------------

async def test_another_tenant_or_brand_or_role_sees_and_changes_no_alerts(
        api: Api, tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    t = tenant
    rule = await _rule(api, t, "LIFETIME_VALUE", 1_000)
    rule_id = rule["alertRule"]["id"]
    ada, _ = await upsert_customer(t.owner, {"email": "ada@x.test"}, brand_id=t.brands["a"])
    await _order(t, ada.id, 1, 5_000)
    alert_id = (await _alerts(api, t))["edges"][0]["node"]["id"]
    _, brand_b = await t.api_key("admin", brands=["b"])
    _, analyst = await t.member("analyst")
    for token in (other_tenant.owner_token, brand_b):
        read = await api.gql(ALERTS, {"b": t.brand_gid("a")}, token=token)
        assert read["data"] is None or read["data"]["alerts"] is None
        assert read["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        rules = await api.gql("query($b: ID) { alertRules(brandId: $b) { edges { node { id } } } }",
                              {"b": t.brand_gid("a")}, token=token)
        assert rules["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        mark = (await api.data(MARK, {"i": {"brandId": t.brand_gid("a"), "alertIds": [alert_id]}},
                               token=token))["markAlertsRead"]
        assert mark["marked"] is None and mark["errors"][0]["code"] == "NOT_FOUND"
        deleted = (await api.data("""mutation($i: DeleteAlertRuleInput!) { deleteAlertRule(input: $i) {
            deletedId errors { code } } }""", {"i": {"id": rule_id}}, token=token))["deleteAlertRule"]
        assert deleted["deletedId"] is None and deleted["errors"][0]["code"] == "NOT_FOUND"
        created = await _rule(api, t, "CHURN_RISK", 50, token=token)
        assert created["alertRule"] is None and created["errors"][0]["code"] == "NOT_FOUND"
        node = await api.data("query($id: ID!) { node(id: $id) { id } }", {"id": alert_id}, token=token)
        assert node["node"] is None
        ws = await Client.open(api, bearer(token))
        try:  # the subscription to brand a's alerts is refused
            await ws.subscribe("subscription($b: ID) { alerts(brandId: $b) { kind } }", {"b": t.brand_gid("a")})
            msg = await ws.receive(10)
            assert msg is not None and msg["type"] in ("next", "error"), msg
            errors = msg["payload"]["errors"] if msg["type"] == "next" else msg["payload"]
            assert errors[0]["extensions"]["code"] == "NOT_FOUND", msg
        finally:
            await ws.ws.close()
    # brand b's own alerts connection does not hold brand a's alert; marking it from there marks nothing
    own = await api.data(ALERTS, {"b": t.brand_gid("b")}, token=brand_b)
    assert own["alerts"]["totalCount"] == 0
    mark_b = (await api.data(MARK, {"i": {"brandId": t.brand_gid("b"), "alertIds": [alert_id]}},
                             token=brand_b))["markAlertsRead"]
    assert mark_b == {"marked": 0, "unreadCount": 0, "errors": []}
    refused = await _rule(api, t, "CHURN_RISK", 50, token=analyst)  # reads alerts, makes no rules
    assert refused["alertRule"] is None and refused["errors"][0]["code"] == "FORBIDDEN"
    assert (await _alerts(api, t, token=analyst))["totalCount"] == 1
    got = await _alerts(api, t)
    assert (got["totalCount"], got["unreadCount"]) == (1, 1)  # nothing changed
    rules = await api.data("query($b: ID) { alertRules(brandId: $b) { edges { node { id } } } }",
                           {"b": t.brand_gid("a")}, token=t.owner_token)
    assert [e["node"]["id"] for e in rules["alertRules"]["edges"]] == [rule_id]
