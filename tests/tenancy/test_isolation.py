"""Tenant isolation: what a principal may see and change, operation by operation.

Every query, mutation and subscription of the schema appears in one of the row tables of
``tests/support/isolation/`` (``tenancy.py`` for those run here; each area's own isolation tests
follow the same pattern). A new capability adds its rows: a :class:`Read` (a query, what the legitimate owner sees and what an
outsider gets instead) or a :class:`Write` (a mutation aimed at tenant A's objects). Each row is
run against several principals:

* the owner of ANOTHER tenant (every right in its own tenant): sees none of A, changes none of A;
* a principal of the SAME tenant limited to brand "a" (users and API keys): nothing of brand "b";
* the roles below admin (analyst, agent, marketer): no admin mutation, no admin list.

Each refusal is paired with a control, the same request made by someone who may, so that the
ids in the row are known to be live and the assertion can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from conftest import ROOT, Api, TenantFixture, audit_count, gid
from support.graphql import leaks as support_leaks
from support.graphql import payload_codes
from support.isolation import ai, campaigns, conversations, customers, segments
from support.isolation.tenancy import (
    BRAND_SCOPED,
    READS,
    WRITES,
    Read,
    World,
    Write,
)
from support.ws import PROTOCOL, Client, bearer, ws_url

# --- tenant A as its owner sees it ----------------------------------------------------

SNAPSHOT = """
{
  viewer { tenant { id slug name plan { name limits { quota limit used } } features { copilotEnabled } } }
  brands(includeArchived: true) {
    id name slug timezone archivedAt updatedAt
    sendingIdentity { fromName fromEmail replyTo smsSender }
    voice { tone styleGuide wordsToUse wordsToAvoid sampleCopy }
  }
  members { id email name role allBrands brands { id } }
  apiKeys(includeRevoked: true) { id name prefix role createdBy revokedAt brands { id } }
}
"""


async def snapshot(api: Api, t: TenantFixture) -> tuple[dict[str, Any], int]:
    """Everything tenant A's owner can read about A, and the length of A's audit trail."""
    return await api.data(SNAPSHOT, token=t.owner_token), await audit_count(t.id)


async def make_world(api: Api, t: TenantFixture) -> World:
    email = f"target-{uuid.uuid4().hex[:8]}@{t.slug}.test"
    target_id, _ = await t.member("marketer", brands=["a"], email=email)
    key_id, _ = await t.api_key("analyst")
    data = await api.data("{ auditLog(first: 1) { edges { node { id } } } }", token=t.owner_token)
    return World(t=t, target_id=target_id, target_email=email, key_id=key_id,
                 entry_gid=data["auditLog"]["edges"][0]["node"]["id"])


@pytest.fixture
async def world(api: Api, tenant: TenantFixture) -> World:
    return await make_world(api, tenant)


def leaks(body: Any, w: World) -> list[str]:
    return support_leaks(body, w.markers())


# --- queries --------------------------------------------------------------------------


@pytest.mark.parametrize("read", READS, ids=str)
async def test_another_tenants_owner_reads_nothing_of_a(
    api: Api, world: World, other_tenant: TenantFixture, read: Read
) -> None:
    variables = read.variables(world)
    mine = await api.data(read.doc, variables, token=world.t.owner_token)
    read.own(mine, world)  # the legitimate owner does see it: the ids are live
    body = await api.gql(read.doc, variables, token=other_tenant.owner_token)
    assert not body.get("errors"), body
    read.foreign(body["data"], world, other_tenant)
    assert leaks(body, world) == []


@pytest.mark.parametrize("as_gid", [True, False], ids=["global-id", "raw-uuid"])
async def test_another_tenants_owner_cannot_select_a_brand_of_a(
    api: Api, world: World, other_tenant: TenantFixture, as_gid: bool
) -> None:
    header = world.brand("a") if as_gid else str(world.t.brands["a"])
    query = "{ viewer { activeBrand { id } } }"
    mine = await api.data(query, token=world.t.owner_token, brand=header)
    assert mine["viewer"]["activeBrand"] == {"id": world.brand("a")}
    r = await api.post(query, token=other_tenant.owner_token, brand=header)
    assert r.status_code == 403, r.text
    assert r.json()["errors"][0]["extensions"]["code"] == "BRAND_NOT_ACCESSIBLE"
    assert leaks(r.json(), world) == []


# --- mutations ------------------------------------------------------------------------


ADMIN_WRITES = [w for w in WRITES if w.admin]


async def run_write(api: Api, op: Write, variables: dict[str, Any], token: str) -> dict[str, Any]:
    """The mutation's payload; the operation itself must not fail at the GraphQL level."""
    data = await api.data(op.doc, variables, token=token)
    return data[op.name]


async def assert_control_succeeds(api: Api, op: Write, variables: dict[str, Any], w: World, audit_before: int) -> None:
    """A's owner runs the very same mutation and it does change A."""
    mine = await run_write(api, op, variables, w.t.owner_token)
    assert mine["errors"] == [], mine
    assert mine[op.result] is not None
    assert await audit_count(w.t.id) == audit_before + 1


@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_another_tenants_owner_changes_nothing_of_a(
    api: Api, world: World, other_tenant: TenantFixture, op: Write
) -> None:
    before = await snapshot(api, world.t)
    b_audit = await audit_count(other_tenant.id)
    variables = op.variables(world)

    result = await run_write(api, op, variables, other_tenant.owner_token)
    if op.foreign_code is None:  # nothing of A in the input: it lands in the caller's tenant
        assert result["errors"] == [], result
        assert await audit_count(other_tenant.id) == b_audit + 1
    else:
        assert payload_codes(result) == [op.foreign_code], result
        assert result[op.result] is None
        assert await audit_count(other_tenant.id) == b_audit
    assert leaks(result, world) == []
    assert await snapshot(api, world.t) == before

    await assert_control_succeeds(api, op, variables, world, before[1])


MIXED: list[tuple[str, Write, Callable[[World, TenantFixture, uuid.UUID], dict[str, Any]], str]] = [
    ("grantBrandAccess(own member, A's brand)", WRITES[7],
     lambda w, b, m: {"u": gid("Member", m), "b": w.brand("a")}, "input.brandId"),
    ("revokeBrandAccess(own member, A's brand)", WRITES[8],
     lambda w, b, m: {"u": gid("Member", m), "b": w.brand("a")}, "input.brandId"),
    ("addMember(brandIds: [own, A's])", WRITES[4],
     lambda w, b, m: {"input": {"email": f"x@{b.slug}.test", "role": "AGENT",
                                "brandIds": [b.brand_gid("a"), w.brand("b")]}}, "input.brandIds[1]"),
    ("createApiKey(brandIds: [own, A's])", WRITES[9],
     lambda w, b, m: {"input": {"name": "k", "role": "AGENT", "brandIds": [b.brand_gid("a"), w.brand("b")]}},
     "input.brandIds[1]"),
]


@pytest.mark.parametrize(("label", "op", "variables", "field"), MIXED, ids=[m[0] for m in MIXED])
async def test_another_tenants_owner_cannot_attach_a_brand_of_a(
    api: Api, world: World, other_tenant: TenantFixture, label: str, op: Write,
    variables: Callable[[World, TenantFixture, uuid.UUID], dict[str, Any]], field: str,
) -> None:
    b = other_tenant
    member_id, _ = await b.member("marketer", brands=["a"])
    before_a, before_b = await snapshot(api, world.t), await snapshot(api, b)
    result = await run_write(api, op, variables(world, b, member_id), b.owner_token)
    assert [(e["field"], e["code"]) for e in result["errors"]] == [(field, "NOT_FOUND")], result
    assert await snapshot(api, world.t) == before_a
    assert await snapshot(api, b) == before_b
    # control: the same call with B's own brand goes through and changes B (the brand the member
    # holds, for a revoke; one it lacks, for a grant), and still nothing of A
    mine = b.brand_gid("a") if label.startswith("revoke") else b.brand_gid("b")
    own = json.loads(json.dumps(variables(world, b, member_id)).replace(world.brand("a"), mine)
                     .replace(world.brand("b"), mine))
    ok = await run_write(api, op, own, b.owner_token)
    assert ok["errors"] == [], ok
    after_b = await snapshot(api, b)
    assert after_b[0] != before_b[0] and after_b[1] == before_b[1] + 1, (before_b, after_b)
    assert await snapshot(api, world.t) == before_a


# --- coverage: every operation of the schema has rows here -----------------------------

SCHEMA = ROOT / "schema.graphql"
SUBSCRIPTIONS = {"auditEvents"}  # each tested below, over graphql-transport-ws


def root_fields(doc: str) -> set[str]:
    from graphql import parse

    return {sel.name.value for op in parse(doc).definitions for sel in op.selection_set.selections}


def test_every_operation_of_the_schema_has_isolation_rows() -> None:
    """A new query, mutation or subscription fails this test until its rows are added in
    tests/support/isolation/ (tenancy.py here; customers.py for customers, commerce, timeline and
    jobs, segments.py, campaigns.py for campaigns and delivery settings, conversations.py, ai.py for
    AI settings and the copilot), which
    the isolation tests of each area run."""
    from graphql import build_schema

    schema = build_schema(SCHEMA.read_text())
    reads = ([r.doc for r in READS] + [r.doc for r in customers.READS] + [r.doc for r in segments.READS]
             + [r.doc for r in campaigns.READS] + [r.doc for r in conversations.READS] + [r.doc for r in ai.READS])
    writes = ([(w.name, w.doc) for w in WRITES] + [(w.name, w.doc) for w in customers.WRITES]
              + [(w.op, w.doc) for w in segments.WRITES] + [(w.name, w.doc) for w in campaigns.WRITES]
              + [(w.op, w.doc) for w in conversations.WRITES] + [(w.name, w.doc) for w in ai.WRITES]
              + [(w.name, w.doc) for w in ai.BRAND_WRITES])
    read = set().union(*(root_fields(doc) for doc in reads))
    written = {name for name, _ in writes}
    assert all(root_fields(doc) == {name} for name, doc in writes)
    assert set(schema.query_type.fields) == read | AUTOMATION_OPERATIONS["queries"]
    assert set(schema.mutation_type.fields) == written | AUTOMATION_OPERATIONS["mutations"]
    assert set(schema.subscription_type.fields) == (SUBSCRIPTIONS | customers.SUBSCRIPTIONS | {"segmentMembershipChanged"}
                                                    | OFFER_OPERATIONS["subscriptions"]
                                                    | campaigns.SUBSCRIPTIONS | conversations.SUBSCRIPTIONS
                                                    | ai.SUBSCRIPTIONS)


# Proven elsewhere: automations in tests/automations/test_automations.py
# (test_another_tenant_cannot_see_or_change_automations,
# test_a_member_of_another_brand_cannot_see_or_change_its_automations,
# test_an_analyst_cannot_create_automations, test_webhook_signature_verifies_with_the_rotated_secret); member
# uploads in tests/segments/test_segments.py (test_static_members_from_a_csv_upload); accepting an invitation (no
# arguments: the caller's own, in the tenant of its credential) in tests/tenancy/test_invitations.py
# (test_an_invitation_grants_nothing_until_the_person_accepts: another tenant's member, or the owner, gets
# INVALID_STATE and nothing changes); client apps in tests/clients/test_client_apps.py
# (test_another_tenant_sees_and_changes_no_client_app, test_roles_below_admin_and_brand_limited_principals_are_refused);
# offers in tests/offers/test_recommendations.py (test_another_tenant_sees_and_changes_nothing_of_recommendations,
# test_a_member_of_another_brand_sees_and_changes_nothing, test_an_analyst_reads_but_cannot_make_segments_or_set_weights);
# the dashboard in tests/offers/test_dashboard.py (test_another_tenant_or_brand_sees_no_dashboard); customer
# overrides and relationship in tests/offers/test_overrides.py
# (test_only_owners_and_admins_override_and_only_visible_customers); alerts and alert rules in
# tests/offers/test_alerts.py (test_another_tenant_or_brand_or_role_sees_and_changes_no_alerts); stored
# recommendations in tests/offers/test_stored_recommendations.py (test_another_tenant_or_brand_sees_no_stats).
OFFER_OPERATIONS = {
    "queries": {"recommendedCustomers", "recommendationWeights", "dashboard", "alerts", "alertRules",
                "recommendationStats"},
    "mutations": {"createSegmentFromRecommendations", "setRecommendationWeights", "setCustomerOverride",
                  "setCustomerRelationship", "createAlertRule", "deleteAlertRule", "markAlertsRead"},
    "subscriptions": {"alerts"},
}
CLIENT_APP_OPERATIONS = {
    "queries": {"clientApps", "clientApp"},
    "mutations": {"createClientApp", "updateClientApp", "deleteClientApp", "assignApiKeysToClientApp",
                  "uploadTrustedDocuments", "removeTrustedDocuments"},
}
AUTOMATION_OPERATIONS = {
    "queries": {"segmentAutomations"} | CLIENT_APP_OPERATIONS["queries"] | OFFER_OPERATIONS["queries"],
    "mutations": {"createSegmentAutomation", "updateSegmentAutomation", "deleteSegmentAutomation",
                  "rotateWebhookSecret", "importSegmentMembers", "acceptInvitation"} | CLIENT_APP_OPERATIONS["mutations"]
                 | OFFER_OPERATIONS["mutations"],
}


# --- the same tenant, without a grant on brand "b" -------------------------------------

LIMITED = ["marketer", "agent", "marketer-key", "admin-key"]


@dataclass
class Limited:
    kind: str
    token: str
    may_update_voice: bool


async def limited_principal(t: TenantFixture, kind: str) -> Limited:
    role, _, key = kind.partition("-")
    if key:
        _, token = await t.api_key(role, brands=["a"])
    else:
        _, token = await t.member(role, brands=["a"])
    return Limited(kind, token, may_update_voice=role in ("marketer", "admin"))


@pytest.fixture(params=LIMITED)
async def limited(request: pytest.FixtureRequest, tenant: TenantFixture) -> Limited:
    return await limited_principal(tenant, request.param)


def _b_markers(t: TenantFixture) -> list[str]:
    return [t.brand_gid("b"), str(t.brands["b"]), "brand-b", "Brand B"]


async def test_brand_limited_principal_sees_only_brand_a(api: Api, tenant: TenantFixture, limited: Limited) -> None:
    query = """query($a: ID!, $b: ID!) {
      viewer { allBrands brands { id } }
      brands(includeArchived: true) { id slug }
      brandA: brand(id: $a) { id }  brandB: brand(id: $b) { id }
      nodeA: node(id: $a) { id }  nodeB: node(id: $b) { id }
    }"""
    variables = {"a": tenant.brand_gid("a"), "b": tenant.brand_gid("b")}
    owner = await api.data(query, variables, token=tenant.owner_token)
    assert owner["brandB"] == owner["nodeB"] == {"id": tenant.brand_gid("b")}

    body = await api.gql(query, variables, token=limited.token)
    assert not body.get("errors"), body
    d = body["data"]
    assert d["viewer"] == {"allBrands": False, "brands": [{"id": tenant.brand_gid("a")}]}
    assert d["brands"] == [{"id": tenant.brand_gid("a"), "slug": "brand-a"}]
    assert d["brandA"] == d["nodeA"] == {"id": tenant.brand_gid("a")}
    assert d["brandB"] is None and d["nodeB"] is None
    text = json.dumps(body)
    assert [m for m in _b_markers(tenant) if m in text] == []


@pytest.mark.parametrize("as_gid", [True, False], ids=["global-id", "raw-uuid"])
async def test_brand_limited_principal_cannot_select_brand_b(
    api: Api, tenant: TenantFixture, limited: Limited, as_gid: bool
) -> None:
    def header(name: str) -> str:
        return tenant.brand_gid(name) if as_gid else str(tenant.brands[name])

    query = "{ viewer { activeBrand { id } } }"
    ok = await api.data(query, token=limited.token, brand=header("a"))
    assert ok["viewer"]["activeBrand"] == {"id": tenant.brand_gid("a")}
    r = await api.post(query, token=limited.token, brand=header("b"))
    assert r.status_code == 403, r.text
    assert r.json()["errors"][0]["extensions"]["code"] == "BRAND_NOT_ACCESSIBLE"


async def test_brand_limited_principal_cannot_change_brand_b(api: Api, tenant: TenantFixture, limited: Limited) -> None:
    op = WRITES[2]  # updateBrandVoice
    before = await snapshot(api, tenant)

    def voice(name: str) -> dict[str, Any]:
        return {"input": {"brandId": tenant.brand_gid(name), "tone": f"tone-{name}", "wordsToAvoid": ["x"]}}

    on_b = await run_write(api, op, voice("b"), limited.token)
    assert on_b["brand"] is None
    assert await snapshot(api, tenant) == before
    on_a = await run_write(api, op, voice("a"), limited.token)
    if limited.may_update_voice:
        assert payload_codes(on_b) == ["NOT_FOUND"], on_b
        assert on_a["errors"] == [] and on_a["brand"] == {"id": tenant.brand_gid("a")}
        assert await audit_count(tenant.id) == before[1] + 1
    else:  # refused for the role, the same way on either brand: b's existence does not leak
        assert payload_codes(on_b) == ["FORBIDDEN"], on_b
        assert on_a == on_b
        assert await snapshot(api, tenant) == before


@pytest.mark.parametrize(("op", "variables"), BRAND_SCOPED, ids=[str(o) for o, _ in BRAND_SCOPED])
async def test_brand_limited_admin_key_cannot_change_brand_b(
    api: Api, tenant: TenantFixture, op: Write, variables: Callable[[TenantFixture, str, str], dict[str, Any]]
) -> None:
    _, key = await tenant.api_key("admin", brands=["a"])
    member_id, _ = await tenant.member("marketer", brands=["a"])
    member = gid("Member", member_id)
    before = await snapshot(api, tenant)
    result = await run_write(api, op, variables(tenant, member, "b"), key)
    # people and keys are managed by principals who see every brand: a brand-limited key is refused
    # outright (it could otherwise mint an every-brand admin); brand changes get NOT_FOUND on brand b
    tenant_wide = op.name in ("addMember", "grantBrandAccess", "revokeBrandAccess", "createApiKey",
                              "changeMemberRole", "removeMember", "revokeApiKey")
    assert payload_codes(result) == ["FORBIDDEN" if tenant_wide else "NOT_FOUND"], result
    assert result[op.result] is None
    assert await snapshot(api, tenant) == before
    ok = await run_write(api, op, variables(tenant, member, "a"), key)
    if tenant_wide:
        assert payload_codes(ok) == ["FORBIDDEN"], ok
        assert await audit_count(tenant.id) == before[1]
        return
    assert ok["errors"] == [], ok
    assert await audit_count(tenant.id) == before[1] + 1


async def test_brand_limited_admin_key_lists_name_no_brand_b(api: Api, tenant: TenantFixture) -> None:
    """Members and keys are tenant-wide, but their brand lists leave out brand "b"."""
    _, key = await tenant.api_key("admin", brands=["a"])
    await tenant.member("marketer", brands=["a", "b"])
    await tenant.api_key("agent", brands=["b"])
    query = "{ members { id brands { id slug } } }"
    owner = await api.data(query + " ", token=tenant.owner_token)
    keys = await api.data("{ apiKeys { id brands { id slug } } }", token=tenant.owner_token)
    assert tenant.brand_gid("b") in json.dumps(owner) and tenant.brand_gid("b") in json.dumps(keys)
    body = await api.gql(query, token=key)
    assert not body.get("errors"), body
    text = json.dumps(body)
    assert [m for m in _b_markers(tenant) if m in text] == []
    # keys are managed only by principals who see every brand
    refused = await api.gql("{ apiKeys { id } }", token=key)
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_brand_limited_admin_key_audit_trail_names_no_brand_b(api: Api, tenant: TenantFixture) -> None:
    """The audit trail of a key limited to brand "a" holds nothing about brand "b"."""
    _, key = await tenant.api_key("admin", brands=["a"])
    await api.data(VOICE, {"input": {"brandId": tenant.brand_gid("b"), "tone": "secret plans"}},
                   token=tenant.owner_token)
    query = """query($id: ID!) {
      auditLog(first: 100) { edges { node { id action targetId summary brand { id } } } }
      node(id: $id) { id }
    }"""
    owner = await api.data(
        "{ auditLog(first: 1, action: \"brand.update_voice\") { edges { node { id targetId } } } }",
        token=tenant.owner_token)
    entry = owner["auditLog"]["edges"][0]["node"]
    assert entry["targetId"] == str(tenant.brands["b"])
    mine = await api.data(query, {"id": entry["id"]}, token=tenant.owner_token)
    assert mine["node"] == {"id": entry["id"]} and "secret plans" in json.dumps(mine)
    body = await api.gql(query, {"id": entry["id"]}, token=key)
    assert not body.get("errors"), body
    assert body["data"]["node"] is None
    text = json.dumps(body)
    assert [m for m in _b_markers(tenant) + ["secret plans"] if m in text] == []


# --- roles below admin ----------------------------------------------------------------

LOW = ["analyst", "agent", "marketer", "analyst-key", "agent-key", "marketer-key"]


async def low_principal(t: TenantFixture, kind: str) -> str:
    role, _, key = kind.partition("-")
    if key:
        return (await t.api_key(role))[1]
    return (await t.member(role))[1]


ROLE_CASES = [(kind, op) for kind in LOW for op in WRITES
              if op.admin or not kind.startswith("marketer")]


@pytest.mark.parametrize(("kind", "op"), ROLE_CASES, ids=[f"{k}-{o}" for k, o in ROLE_CASES])
async def test_role_below_admin_cannot_run_admin_mutation(api: Api, world: World, kind: str, op: Write) -> None:
    token = await low_principal(world.t, kind)
    before = await snapshot(api, world.t)
    variables = op.variables(world)
    result = await run_write(api, op, variables, token)
    assert payload_codes(result) == ["FORBIDDEN"], result
    assert result[op.result] is None
    assert await snapshot(api, world.t) == before
    await assert_control_succeeds(api, op, variables, world, before[1])


ADMIN_READS: list[tuple[str, str]] = [
    ("members", "{ members { id email } }"),
    ("apiKeys", "{ apiKeys(includeRevoked: true) { id name } }"),
    ("auditLog", "{ auditLog { edges { node { id action } } } }"),
]


@pytest.mark.parametrize("kind", LOW)
@pytest.mark.parametrize(("name", "query"), ADMIN_READS, ids=[n for n, _ in ADMIN_READS])
async def test_role_below_admin_cannot_read_admin_lists(
    api: Api, world: World, kind: str, name: str, query: str
) -> None:
    _, admin = await world.t.member("admin")
    for token in (world.t.owner_token, admin):  # control: owners and admins do read them
        assert (await api.data(query, token=token))[name]
    token = await low_principal(world.t, kind)
    body = await api.gql(query, token=token)
    assert body["data"] is None, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body


@pytest.mark.parametrize("kind", LOW)
async def test_role_below_admin_gets_no_admin_objects_by_node(api: Api, world: World, kind: str) -> None:
    query = "query($m: ID!, $k: ID!, $e: ID!) { m: node(id: $m) { id } k: node(id: $k) { id } e: node(id: $e) { id } }"
    variables = {"m": world.target, "k": world.key, "e": world.entry_gid}
    owner = await api.data(query, variables, token=world.t.owner_token)
    assert owner == {"m": {"id": world.target}, "k": {"id": world.key}, "e": {"id": world.entry_gid}}
    token = await low_principal(world.t, kind)
    body = await api.gql(query, variables, token=token)
    assert body["data"] == {"m": None, "k": None, "e": None}, body
    for error in body.get("errors") or []:  # refusing loudly is fine; leaking is not
        assert error["extensions"]["code"] == "FORBIDDEN", body


# --- the subscription -----------------------------------------------------------------

AUDIT_SUB = "subscription { auditEvents { action targetId } }"
VOICE = WRITES[2].doc


async def open_ws(api: Api, token: str, **params: Any) -> ClientConnection:
    """A bare socket, initialised: for the refusals, which close it."""
    ws = await connect(ws_url(api), subprotocols=[PROTOCOL], open_timeout=5)
    await ws.send(json.dumps({"type": "connection_init", "payload": {**bearer(token), **params}}))
    return ws


async def subscribe(api: Api, token: str, query: str = AUDIT_SUB) -> Client:
    ws = await Client.open(api, bearer(token))
    await ws.subscribe(query)
    return ws


async def touch_voice(api: Api, t: TenantFixture, brand: str = "a") -> None:
    data = await api.data(VOICE, {"input": {"brandId": t.brand_gid(brand), "tone": uuid.uuid4().hex}},
                          token=t.owner_token)
    assert data["updateBrandVoice"]["errors"] == []


async def until_live(api: Api, ws: Client, t: TenantFixture) -> None:
    """Subscribing is asynchronous: change brand "a" until an event of it arrives."""
    for _ in range(20):
        await touch_voice(api, t)
        msg = await ws.receive(0.5)
        if msg is not None:
            assert msg["type"] == "next", msg
            assert msg["payload"]["data"]["auditEvents"]["targetId"] == str(t.brands["a"]), msg
            return
    raise AssertionError("the subscription never delivered an event")


async def heard_besides(ws: Client, brand_id: uuid.UUID, seconds: float) -> list[dict[str, Any]]:
    """What ``ws`` hears over ``seconds`` seconds, events of brand ``brand_id`` (its warm-up) aside."""
    return [m for m in await ws.collect(seconds)
            if not (m["type"] == "next" and m["payload"]["data"]["auditEvents"]["targetId"] == str(brand_id))]


async def test_audit_events_reach_only_the_tenants_own_subscribers(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    a, b = tenant, other_tenant
    ws_a = await subscribe(api, a.owner_token)
    ws_b = await subscribe(api, b.owner_token)
    try:
        await until_live(api, ws_a, a)
        await until_live(api, ws_b, b)  # B's subscription is live and gets B's own events
        await ws_a.collect(0.2)  # late warm-up events, if any

        # A's owner changes brand "b" of A
        await touch_voice(api, a, "b")
        got = await ws_a.receive(5)
        assert got is not None and got["type"] == "next", got
        assert got["payload"]["data"]["auditEvents"] == {
            "action": "brand.update_voice", "targetId": str(a.brands["b"])}

        # B's subscriber hears nothing of it (its own warm-up events aside)
        assert await heard_besides(ws_b, b.brands["a"], 1.5) == []
    finally:
        await ws_a.close()
        await ws_b.close()


@pytest.mark.parametrize("kind", ["marketer", "analyst-key"])
async def test_audit_events_refused_below_admin(api: Api, tenant: TenantFixture, kind: str) -> None:
    token = await low_principal(tenant, kind)
    ws = await subscribe(api, token)
    try:
        msg = await ws.receive(5)
        assert msg is not None, "no answer to the subscription"
        if msg["type"] == "next":
            assert msg["payload"].get("data") is None, msg
            errors = msg["payload"]["errors"]
        else:
            assert msg["type"] == "error", msg
            errors = msg["payload"]
        assert errors and any("may not" in e["message"] or e.get("extensions", {}).get("code") == "FORBIDDEN"
                              for e in errors), msg
        await touch_voice(api, tenant)
        after = await ws.collect(0.5)
        assert [m for m in after if m["type"] == "next" and m["payload"].get("data")] == []
    finally:
        await ws.close()


async def test_subscription_cannot_pick_a_brand_of_another_tenant(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture
) -> None:
    ok = await Client.open(api, {**bearer(other_tenant.owner_token),
                                 "brandId": other_tenant.brand_gid("a")})
    await ok.close()
    ws = await open_ws(api, other_tenant.owner_token, brandId=tenant.brand_gid("a"))
    try:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


async def test_audit_events_of_brand_b_skip_a_key_limited_to_brand_a(api: Api, tenant: TenantFixture) -> None:
    _, key = await tenant.api_key("admin", brands=["a"])
    ws_owner = await subscribe(api, tenant.owner_token)
    ws_key = await subscribe(api, key)
    try:
        await until_live(api, ws_owner, tenant)
        await until_live(api, ws_key, tenant)  # events of brand "a" do reach the key
        await ws_owner.collect(0.2)
        await touch_voice(api, tenant, "b")
        got = await ws_owner.receive(5)
        assert got is not None and got["payload"]["data"]["auditEvents"]["targetId"] == str(tenant.brands["b"])
        assert await heard_besides(ws_key, tenant.brands["a"], 1.5) == []
    finally:
        await ws_owner.close()
        await ws_key.close()
