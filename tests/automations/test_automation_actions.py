"""Automations that act on the customer who entered: record a tracked event (which other live
segments read) and set or clear a custom attribute (audited, on the timeline), end to end through
the API and the worker; a chain of events that returns to its start is refused when saved."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from conftest import Api, TenantFixture, gid
from domain.audit.models import AuditEntry
from domain.commerce.models import TrackedEvent
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session
from domain.segments import refresh
from domain.timeline.models import TimelineEntry

CREATE_SEGMENT = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id } errors { field code message } } }"""
CREATE = """mutation($i: CreateSegmentAutomationInput!) { createSegmentAutomation(input: $i) {
  automation { id action config } errors { field code message } } }"""
ORDER = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { created errors { field code message } } }"""
DECLARE = """mutation($input: DeclareCustomAttributeInput!) { declareCustomAttribute(input: $input) {
  errors { field code message } } }"""
CUSTOMER = """query($id: ID!) { customer(id: $id) { attributes } }"""
MEMBERS = """query($id: ID!) { segment(id: $id) { memberCount
  history(first: 5) { edges { node { change cause customer { email } } } } } }"""
RUNS = """query($s: ID!) { segmentAutomations(segmentId: $s) { name action
  runs(first: 5) { edges { node { status customers succeeded failed } } } } }"""


def raw(global_id: str) -> uuid.UUID:
    from graph.core.ids import decode

    return decode(global_id, "Segment")


async def segment(api: Api, t: TenantFixture, name: str, rules: list[dict]) -> str:
    made = (await api.data(CREATE_SEGMENT, {"input": {"brandId": t.brand_gid("a"), "name": name,
                                                      "definition": {"match": "ALL", "rules": rules}}},
                           token=t.owner_token))["createSegment"]
    assert made["errors"] == [], made
    return made["segment"]["id"]


def viewed(name: str) -> dict:
    return {"event": {"name": name, "operator": "GREATER_THAN_OR_EQUAL", "value": 1}}


async def automation(api: Api, t: TenantFixture, seg: str, name: str, action: str, config: dict) -> dict:
    return (await api.data(CREATE, {"i": {"segmentId": seg, "name": name, "trigger": "ENTER", "action": action,
                                          "config": config}}, token=t.owner_token))["createSegmentAutomation"]


async def eventually(check, within: float = 20):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_an_entry_records_an_event_other_segments_read_and_updates_the_customer(
        api: Api, tenant: TenantFixture, worker) -> None:
    t = tenant
    assert (await api.data(DECLARE, {"input": {"name": "account_manager", "type": "STRING"}},
                           token=t.owner_token))["declareCustomAttribute"]["errors"] == []
    ivy, _ = await upsert_customer(t.owner, {"email": "ivy@x.test", "attributes": {"account_manager": "nobody"}},
                                   brand_id=t.brands["a"])
    vip = await segment(api, t, "VIP", [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL",
                                                     "value": 300}}])
    welcomed = await segment(api, t, "Welcomed", [viewed("entered_vip")])
    managed = await segment(api, t, "Managed by Ada", [{"attribute": {"field": "attributes.account_manager",
                                                                      "operator": "EQUALS", "value": "Ada"}}])
    for seg in (vip, welcomed, managed):
        await refresh.refresh(t.id, raw(seg))
    made = await automation(api, t, vip, "Mark the entry", "EVENT",
                            {"eventName": "entered_vip", "properties": {"tier": "gold"}})
    assert made["errors"] == [] and made["automation"]["config"] == {"eventName": "entered_vip",
                                                                     "properties": {"tier": "gold"}}
    made = await automation(api, t, vip, "Give a manager", "UPDATE_CUSTOMER", {"attribute": "account_manager",
                                                                               "value": "Ada"})
    assert made["errors"] == [], made

    placed = await api.data(ORDER, {"input": {
        "brandId": t.brand_gid("a"), "externalOrderId": "ivy-1", "totalCents": 50_000, "currency": "EUR",
        "placedAt": datetime.now(UTC).isoformat(), "customerId": gid("Customer", ivy.id)}}, token=t.owner_token)
    assert placed["recordOrder"]["errors"] == []

    async def member_of(seg: str) -> dict | None:
        data = (await api.data(MEMBERS, {"id": seg}, token=t.owner_token))["segment"]
        return data if data["memberCount"] == 1 else None

    # the order moves ivy into VIP; its automations record the event and set the attribute, which
    # move ivy into the segments that read them, live
    for seg in (vip, welcomed, managed):
        data = await eventually(lambda seg=seg: member_of(seg))
        assert data, seg
        assert [(e["node"]["change"], e["node"]["cause"]) for e in data["history"]["edges"]] == [("ENTERED", "CHANGE")]
    attributes = (await api.data(CUSTOMER, {"id": gid("Customer", ivy.id)}, token=t.owner_token))["customer"]["attributes"]
    assert attributes["account_manager"] == "Ada"
    runs = {a["name"]: [e["node"] for e in a["runs"]["edges"]] for a in (await api.data(RUNS, {"s": vip}, token=t.owner_token))["segmentAutomations"]}
    assert runs["Mark the entry"] == [{"status": "SUCCEEDED", "customers": 1, "succeeded": 1, "failed": 0}]
    assert runs["Give a manager"] == [{"status": "SUCCEEDED", "customers": 1, "succeeded": 1, "failed": 0}]

    async with tenant_session(t.id) as s:
        events = (await s.execute(select(TrackedEvent.name, TrackedEvent.brand_id, TrackedEvent.properties).where(
            TrackedEvent.tenant_id == t.id, TrackedEvent.customer_id == ivy.id))).all()
        kinds = set(await s.scalars(select(TimelineEntry.kind).where(TimelineEntry.tenant_id == t.id,
                                                                     TimelineEntry.customer_id == ivy.id)))
        audited = (await s.execute(select(AuditEntry.action, AuditEntry.summary).where(
            AuditEntry.tenant_id == t.id, AuditEntry.target_type == "SegmentAutomation",
            AuditEntry.action == "customer.update"))).all()
    assert [(n, b) for n, b, _ in events] == [("entered_vip", t.brands["a"])]
    assert events[0][2]["tier"] == "gold" and events[0][2]["segment_id"] == str(raw(vip))
    assert {"event_tracked", "attribute_changed", "segment_entered"} <= kinds
    assert [(a, s["attribute"], s["value"], s["customers"]) for a, s in audited] == [
        ("customer.update", "account_manager", "Ada", 1)]


async def test_a_chain_of_events_that_returns_to_its_start_is_refused(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    a = await segment(api, t, "Did a", [viewed("a_done")])
    b = await segment(api, t, "Did b", [viewed("b_done")])
    c = await segment(api, t, "In b", [{"segment": {"operator": "INCLUDES", "segmentIds": [b]}}])
    direct = await automation(api, t, a, "Itself", "EVENT", {"eventName": "a_done"})
    assert direct["automation"] is None and [e["code"] for e in direct["errors"]] == ["INVALID"], direct
    assert "Did a" in direct["errors"][0]["message"]
    assert (await automation(api, t, a, "Tell b", "EVENT", {"eventName": "b_done"}))["errors"] == []
    # c (which refers to b) → a → b: refused; an event no segment reads is fine
    looping = await automation(api, t, c, "Tell a", "EVENT", {"eventName": "a_done"})
    assert looping["automation"] is None and looping["errors"][0]["field"] == "input.config", looping
    assert "Did a → Did b → In b" in looping["errors"][0]["message"], looping
    assert (await automation(api, t, c, "Tell nobody", "EVENT", {"eventName": "z_done"}))["errors"] == []
    # an update of an attribute not declared, or of the wrong type, is refused
    missing = await automation(api, t, a, "Set", "UPDATE_CUSTOMER", {"attribute": "risk_level", "value": "high"})
    assert [(e["field"], e["code"]) for e in missing["errors"]] == [("input.config.attribute", "NOT_FOUND")], missing
    both = await automation(api, t, a, "Set", "UPDATE_CUSTOMER", {"attribute": "risk_level", "value": 1, "clear": True})
    assert [(e["field"], e["code"]) for e in both["errors"]] == [("input.config.value", "INVALID")], both
