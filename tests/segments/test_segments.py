"""Segments end to end: definitions, preview, dry run, explain, refresh with history, static,
lookalike, overlap, throttling."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conftest import Api, TenantFixture, gid
from domain.commerce.service import EventInput, OrderInput, record_order, track_event
from domain.pagination import PageRequest
from domain.segments import inspection, membership, refresh, service
from domain.segments.models import SegmentKind
from support.graphql import upload
from support.segments import make_shop

CREATE = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id name kind memberCount definition staleness { stale } } errors { field code message } } }"""
SEGMENT = """query($id: ID!, $other: ID!) { segment(id: $id) { name memberCount lastRefreshedAt lastRefreshDurationMs
  staleness { stale } members(first: 50) { edges { node { enteredAt score customer { email } } } }
  history(first: 50) { edges { node { change at customer { email } } } }
  overlap(otherSegmentId: $other) { both onlyThis onlyOther } } }"""


def spenders(min_value: float) -> dict:
    return {"match": "ALL", "rules": [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL",
                                                   "value": min_value}}]}


async def test_create_preview_refresh_history_and_explain(api: Api, tenant: TenantFixture) -> None:
    shop = await make_shop(tenant)
    token, brand = tenant.owner_token, tenant.brand_gid("a")
    preview = await api.data("""query($b: ID!, $d: SegmentDefinitionInput!) { previewSegment(brandId: $b, definition: $d) {
        totalCount edges { node { email } } } }""", {"b": brand, "d": spenders(200)}, token=token)
    assert preview["previewSegment"]["totalCount"] == 3  # 500, 300, 200 (brand b's big spender is not a customer of a)
    assert {c["node"]["email"] for c in preview["previewSegment"]["edges"]} == {"big@x.test", "mid@x.test", "again@x.test"}

    nested = {"match": "ALL", "rules": [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN", "value": 100}}],
              "groups": [{"match": "ANY", "rules": [
                  {"tag": {"operator": "INCLUDES", "tagIds": [gid("Tag", shop["vip"].id)]}},
                  {"event": {"name": "product_viewed", "operator": "GREATER_THAN_OR_EQUAL", "value": 2, "withinDays": 7,
                             "properties": [{"property": "sku", "operator": "EQUALS", "value": "TENT"}]}}]}]}
    # not live: the refreshes below are what moves members (live evaluation is tests/segments/test_live_segments.py)
    created = (await api.data(CREATE, {"input": {"brandId": brand, "name": "Engaged spenders", "definition": nested,
                                                 "live": False}}, token=token))["createSegment"]
    assert created["errors"] == [] and created["segment"]["staleness"] == {"stale": True}
    seg_id = created["segment"]["id"]
    first = await refresh.refresh(tenant.id, service_id(seg_id))
    assert (first.entered, first.exited, first.total) == (3, 0, 3)  # big (vip+views), mid (2 views), again (vip)

    # the explanation shows why "small" is out: the spend rule fails, and so does the ANY group
    explained = (await api.data("""query($s: ID!, $c: ID!) { explainSegment(segmentId: $s, customerId: $c) {
        matched inBrand root { matched match children { path matched rule actual
          children { path matched actual } } } } }""",
        {"s": seg_id, "c": gid("Customer", shop["people"]["small@x.test"].id)}, token=token))["explainSegment"]
    assert explained["matched"] is False and explained["inBrand"] is True
    spend, group = explained["root"]["children"]
    assert spend == {"path": "rules[0]", "matched": False, "actual": 20.0, "children": [],
                     "rule": {"kind": "profile", "field": "total_order_value", "operator": "greater_than", "value": 100.0}}
    assert group["path"] == "groups[0]" and group["matched"] is False
    assert [c["actual"] for c in group["children"]] == [False, 0]

    # people enter and leave across three refreshes; history keeps both
    await api.data("""mutation($i: UpdateSegmentInput!) { updateSegment(input: $i) { errors { code } } }""",
                   {"i": {"id": seg_id, "definition": spenders(250)}}, token=token)
    dry = (await api.data("""mutation($i: UpdateSegmentInput!) { updateSegment(input: $i) {
        segment { id } dryRun { countBefore countAfter entering exiting } errors { code } } }""",
        {"i": {"id": seg_id, "definition": spenders(10), "dryRun": True}}, token=token))["updateSegment"]
    assert dry["segment"] is None
    assert dry["dryRun"] == {"countBefore": 3, "countAfter": 4, "entering": 1, "exiting": 0}
    second = await refresh.refresh(tenant.id, service_id(seg_id))
    assert (second.entered, second.exited, second.total) == (0, 1, 2)  # mid (200) leaves
    await record_order(tenant.owner, OrderInput(brand_id=tenant.brands["a"], external_order_id="late", total_cents=40_000,
                                                currency="EUR", placed_at=datetime.now(UTC), customer_id=shop["people"]["small@x.test"].id))
    third = await refresh.refresh(tenant.id, service_id(seg_id))
    assert (third.entered, third.exited, third.total) == (1, 0, 3)  # small now spent 420

    data = (await api.data(SEGMENT, {"id": seg_id, "other": seg_id}, token=token))["segment"]
    assert data["memberCount"] == 3 and data["staleness"]["stale"] is False
    assert {e["node"]["customer"]["email"] for e in data["members"]["edges"]} == {"big@x.test", "again@x.test", "small@x.test"}
    changes = [(e["node"]["change"], e["node"]["customer"]["email"]) for e in data["history"]["edges"]]
    assert changes[:2] == [("ENTERED", "small@x.test"), ("EXITED", "mid@x.test")]
    assert sorted(changes[2:]) == [("ENTERED", "again@x.test"), ("ENTERED", "big@x.test"), ("ENTERED", "mid@x.test")]
    assert data["overlap"] == {"both": 3, "onlyThis": 0, "onlyOther": 0}


def service_id(global_id: str):
    from graph.core.ids import decode

    return decode(global_id, "Segment")


async def test_refresh_through_the_api_is_throttled_and_lands_on_timelines(api: Api, tenant: TenantFixture, worker) -> None:
    await make_shop(tenant)
    token = tenant.owner_token
    seg = (await api.data(CREATE, {"input": {"brandId": tenant.brand_gid("a"), "name": "All",
                                             "definition": {"match": "ALL"}}}, token=token))["createSegment"]["segment"]
    job = (await api.data("mutation($id: ID!) { refreshSegment(input: {id: $id}) { job { id } errors { code } } }",
                          {"id": seg["id"]}, token=token))["refreshSegment"]["job"]
    again = (await api.data("mutation($id: ID!) { refreshSegment(input: {id: $id}) { job { id } errors { field code message } } }",
                            {"id": seg["id"]}, token=token))["refreshSegment"]
    assert again["job"] is None and again["errors"][0]["code"] == "LIMIT_EXCEEDED"
    assert "next manual refresh is allowed at" in again["errors"][0]["message"]
    for _ in range(100):
        status = (await api.data("query($id: ID!) { job(id: $id) { status result } }", {"id": job["id"]}, token=token))["job"]
        if status["status"] in ("SUCCEEDED", "FAILED"):
            break
        await asyncio.sleep(0.1)
    assert status == {"status": "SUCCEEDED", "result": {**status["result"], "entered": 5, "exited": 0, "total": 5}}
    customer = (await api.data('{ customers(search: "big", first: 1) { edges { node { id } } } }', token=token))["customers"]["edges"][0]["node"]
    for _ in range(100):  # the follow-up job writes the timeline
        tl = (await api.data("""query($id: ID!) { customer(id: $id) { timeline(types: [SEGMENT_ENTERED]) {
            edges { node { kind ... on OtherTimelineEvent { data } } } } } }""", {"id": customer["id"]}, token=token))
        edges = tl["customer"]["timeline"]["edges"]
        if edges:
            break
        await asyncio.sleep(0.1)
    assert edges and edges[0]["node"]["data"]["segment"] == "All"


async def test_static_and_lookalike_segments(tenant: TenantFixture) -> None:
    shop = await make_shop(tenant)
    people = shop["people"]
    static = await service.create_segment(tenant.owner, tenant.brands["a"], SegmentKind.STATIC, {"name": "Picked"})
    r = await membership.change_static_members(tenant.owner, static.id, [people["big@x.test"].id, people["mid@x.test"].id], [])
    assert (r.entered, r.total) == (2, 2)
    r = await membership.change_static_members(tenant.owner, static.id, [people["big@x.test"].id], [people["mid@x.test"].id])
    assert (r.entered, r.exited, r.total) == (0, 1, 1)

    look = await service.create_segment(tenant.owner, tenant.brands["a"], SegmentKind.LOOKALIKE, {"name": "Like big"},
                                        lookalike_source_id=static.id, lookalike_size=2)
    result = await refresh.refresh(tenant.id, look.id)
    assert result.total == 2
    page = await membership.members(tenant.owner, look.id, page=PageRequest(10))
    scored = {c.email: m.score for m, c in page.items}
    assert "big@x.test" not in scored  # the source's members are never their own lookalikes
    assert set(scored) <= {"again@x.test", "mid@x.test", "small@x.test", "none@x.test"}
    assert "again@x.test" in scored  # the closest big spender
    assert all(0 < s <= 1 for s in scored.values())


@pytest.mark.parametrize("evil", ["'; DROP TABLE customers; --", "x\") OR 1=1 --", "%", "_", "\\", "plan') OR ('1'='1"])
async def test_injection_strings_are_only_ever_values(tenant: TenantFixture, evil: str) -> None:
    shop = await make_shop(tenant)
    from domain.errors import ValidationFailed

    a = tenant.brands["a"]
    for definition, expected in [
        ({"rules": [{"kind": "attribute", "field": "city", "operator": "equals", "value": evil}]}, 0),
        ({"rules": [{"kind": "attribute", "field": "city", "operator": "contains", "value": evil}]}, 0),
        ({"rules": [{"kind": "attribute", "field": "country", "operator": "in", "value": [evil, "FR"]}]}, 2),
        ({"rules": [{"kind": "attribute", "field": "email", "operator": "contains", "value": evil}]}, 0),
        ({"rules": [{"kind": "purchase", "field": "sku", "operator": "equals", "value": evil}]}, 0),
        ({"rules": [{"kind": "event", "name": "product_viewed", "operator": "greater_than_or_equal", "value": 1,
                     "properties": [{"property": "sku", "operator": "equals", "value": evil}]}]}, 0),
    ]:
        p = await inspection.preview(tenant.owner, a, definition, page=PageRequest(5))
        assert p.total == expected  # ran as a query; the string was compared as a value, never as SQL
    # a name position refuses what is not a name (INVALID on its path); "_" is a valid property
    # name, so that filter runs and matches the property literally named "_"
    await track_event(tenant.owner, EventInput(event_id="underscore", name="product_viewed",
                                               customer_id=shop["people"]["big@x.test"].id,
                                               brand_id=a, properties={"_": "x"}))
    for bad, path in [
        ({"rules": [{"kind": "attribute", "field": f"attributes.{evil}", "operator": "equals", "value": "x"}]},
         "rules[0].field"),  # not a name, or ("_") a name no attribute was declared with
        ({"rules": [{"kind": "attribute", "field": evil, "operator": "equals", "value": "x"}]}, "rules[0].field"),
        ({"rules": [{"kind": "event", "name": evil, "operator": "greater_than_or_equal", "value": 1}]}, "rules[0].name"),
        ({"rules": [{"kind": "event", "name": "product_viewed", "operator": "greater_than_or_equal", "value": 1,
                     "properties": [{"property": evil, "operator": "equals", "value": "x"}]}]},
         None if evil == "_" else "rules[0].properties[0].property"),
        ({"rules": [{"kind": "profile", "field": "total_order_value", "operator": evil, "value": 1}]}, "rules[0].operator"),
    ]:
        if path is None:
            assert (await inspection.preview(tenant.owner, a, bad, page=PageRequest(5))).total == 1, bad
            continue
        with pytest.raises(ValidationFailed) as refused:
            await inspection.preview(tenant.owner, a, bad, page=PageRequest(5))
        assert [(e.field, e.code.value) for e in refused.value.errors] == [(f"definition.{path}", "INVALID")], bad
    # the tables are all still there
    assert (await inspection.preview(tenant.owner, a, {}, page=PageRequest(1))).total == 5


@pytest.mark.parametrize(("definition", "path"), [
    ({"rules": [{"kind": "profile", "field": "total_order_value", "operator": "contains", "value": 1}]}, "rules[0].operator"),
    ({"rules": [{"kind": "profile", "field": "engagement_score", "operator": "greater_than", "value": "high"}]}, "rules[0].value"),
    ({"groups": [{}, {"rules": [{"kind": "attribute", "field": "age", "operator": "between", "value": [40, 20]}]}]},
     "groups[1].rules[0].value"),
    ({"rules": [{"kind": "nope", "operator": "equals"}]}, "rules[0].kind"),
    ({"rules": [{"kind": "attribute", "field": "attributes.undeclared", "operator": "equals", "value": 1}]}, "rules[0].field"),
    ({"groups": [{"groups": [{"groups": [{"groups": [{"groups": [{}]}]}]}]}]}, "groups[0].groups[0].groups[0].groups[0].groups[0]"),
    ({"rules": [{"kind": "attribute", "field": "city", "operator": "exists"}] * 51}, "rules"),
])
async def test_validation_names_the_failing_path(tenant: TenantFixture, definition: dict, path: str) -> None:
    from domain.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        await inspection.preview(tenant.owner, tenant.brands["a"], definition, page=PageRequest(5))
    assert f"definition.{path}" in [e.field for e in err.value.errors], err.value.errors


async def test_segment_references_refuse_cycles(tenant: TenantFixture) -> None:
    from domain.errors import DomainError

    a = await service.create_segment(tenant.owner, tenant.brands["a"], SegmentKind.DYNAMIC, {"name": "A"}, definition={})
    b = await service.create_segment(tenant.owner, tenant.brands["a"], SegmentKind.DYNAMIC, {"name": "B"},
                                     definition={"rules": [{"kind": "segment", "operator": "includes", "value": [str(a.id)]}]})
    with pytest.raises(DomainError, match="cycle"):
        await service.update_segment(tenant.owner, a.id, {}, definition={
            "rules": [{"kind": "segment", "operator": "not_in", "value": [str(b.id)]}]})
    with pytest.raises(DomainError, match="cycle"):
        await service.update_segment(tenant.owner, a.id, {}, definition={
            "rules": [{"kind": "segment", "operator": "includes", "value": [str(a.id)]}]})


IMPORT_MEMBERS = """mutation($s: ID!, $f: Upload!) { importSegmentMembers(input: {segmentId: $s, file: $f}) {
  job { id } errors { field code message } } }"""


async def _upload(api: Api, token: str, segment: str, content: str) -> dict:
    r = await upload(api, IMPORT_MEMBERS, {"s": segment}, "f", content.encode(), token=token, filename="members.csv")
    assert r.status_code == 200, r.text
    return r.json()["data"]["importSegmentMembers"]


async def _segment_rows(t: TenantFixture) -> dict[str, list]:
    """The rows of ``t`` an import of segment members could write: memberships, jobs, audit."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        return {
            "members": [tuple(r) for r in await s.execute(text(
                "SELECT segment_id, customer_id, exited_at FROM segment_memberships ORDER BY 1, 2, 3"))],
            "jobs": [tuple(r) for r in await s.execute(text("SELECT id, kind, status FROM jobs ORDER BY id"))],
            "audit": [tuple(r) for r in await s.execute(text("SELECT id FROM audit_log ORDER BY id"))],
        }


async def test_static_members_from_a_csv_upload(api: Api, tenant: TenantFixture, other_tenant: TenantFixture,
                                                worker) -> None:
    shop = await make_shop(tenant)
    people = shop["people"]
    static = await service.create_segment(tenant.owner, tenant.brands["a"], SegmentKind.STATIC, {"name": "Uploaded"})
    await membership.change_static_members(tenant.owner, static.id, [people["mid@x.test"].id], [])
    seg = gid("Segment", static.id)
    csv = ("email,externalId,action\nBIG@x.test,,add\nsmall@x.test,,\nmid@x.test,,remove\n"
           "nobody@x.test,,add\nbrand-b-only@x.test,,add\nagain@x.test,,maybe\n")
    # another tenant, and a marketer without brand a, get NOT_FOUND and start nothing
    _, limited = await tenant.member("marketer", brands=["b"])
    before = await _segment_rows(tenant), await _segment_rows(other_tenant)
    assert (await _upload(api, other_tenant.owner_token, seg, csv))["errors"][0]["code"] == "NOT_FOUND"
    assert (await _upload(api, limited, seg, csv))["errors"][0]["code"] == "NOT_FOUND"
    assert (await _segment_rows(tenant), await _segment_rows(other_tenant)) == before
    assert before[0]["members"] == [(static.id, people["mid@x.test"].id, None)]
    started = await _upload(api, tenant.owner_token, seg, csv)
    assert started["errors"] == []
    for _ in range(100):
        job = (await api.data("query($id: ID!) { job(id: $id) { status result } }", {"id": started["job"]["id"]},
                              token=tenant.owner_token))["job"]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "SUCCEEDED", job
    result = job["result"]
    assert (result["rows"], result["added"], result["removed"], result["rejected"]) == (6, 2, 1, 3)
    assert sorted(e["line"] for e in result["errors"]) == [5, 6, 7]  # nobody, brand b's customer, a bad action
    page = await membership.members(tenant.owner, static.id, page=PageRequest(10))
    assert {c.email for _, c in page.items} == {"big@x.test", "small@x.test"}


async def test_field_catalogue_and_custom_attributes_speak_enums(api: Api, tenant: TenantFixture) -> None:
    token, brand = tenant.owner_token, tenant.brand_gid("a")
    declared = (await api.data("""mutation($input: DeclareCustomAttributeInput!) { declareCustomAttribute(input: $input) {
        customAttribute { name type } errors { code } } }""", {"input": {"name": "seats", "type": "NUMBER"}},
                               token=token))["declareCustomAttribute"]
    assert declared == {"customAttribute": {"name": "seats", "type": "NUMBER"}, "errors": []}
    lower = await api.gql("""mutation { declareCustomAttribute(input: {name: "plan", type: string}) { errors { code } } }""",
                          token=token)
    assert lower.get("errors"), lower  # the stored spelling is not the API's
    found = await api.data("""query($b: ID!) { customAttributes { name type }
        segmentFields(brandId: $b) { kind field valueType } }""", {"b": brand}, token=token)
    assert found["customAttributes"] == [{"name": "seats", "type": "NUMBER"}]
    fields = {f["field"]: f for f in found["segmentFields"]}
    assert fields["attributes.seats"] == {"kind": "ATTRIBUTE", "field": "attributes.seats", "valueType": "NUMBER"}
    assert fields["total_order_value"] == {"kind": "PROFILE", "field": "total_order_value", "valueType": "MONEY"}
