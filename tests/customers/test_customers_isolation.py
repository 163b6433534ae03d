"""Tenant and brand isolation of customers, commerce, timeline and jobs.

The rows of the customer area, in the manner of ``test_isolation.py`` (whose
``test_every_operation_of_the_schema_has_isolation_rows`` counts the rows of both files):

* :data:`READS` and :data:`WRITES`: every query and mutation of the area, aimed at tenant A's
  objects by the owner of ANOTHER tenant: it sees none of A and changes none of A;
* :data:`LIMITED_WRITES` and the read tests: a principal of the same tenant limited to brand "a"
  (marketer, agent, API key) never sees nor touches what only brand "b" knows;
* the roles below admin (analyst, agent, marketer) against every mutation;
* ``jobProgress`` over graphql-transport-ws, and the signed ``/downloads/<token>`` links.

Each refusal is paired with a control, the same request made by someone who may (or the same
principal aimed at what it may see), so that the ids are known to be live and the assertion can
fail. "Nothing written" is checked on every row tenant A has in the area's tables (:data:`TABLES`),
its audit trail included.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from strawberry.relay import GlobalID

from conftest import Api, Process, TenantFixture, create_tenant_fixture, gid
from support.graphql import found, perrs
from support.isolation.customers import (
    CREATE_TAG,
    EXPORT,
    LIMITED_WRITES,
    OP,
    READS,
    REBUILD,
    UPSERT_CUSTOMER,
    WRITES,
    Read,
    Shop,
    Write,
    edge_ids,
    event_input,
    make_shop,
    order_input,
    run_write,
    wait_job,
)
from support.ws import Client, bearer

IMPORTS_PENDING: tuple = ()  # no marks: the import rows run like every other


# --- tenant A: a shop with something of every kind --------------------------------------------


@pytest.fixture
async def shop(tenant: TenantFixture) -> Shop:
    """A quick shop, for the mutation tests."""
    return await make_shop(tenant, full=False)


@pytest.fixture
async def full_shop(tenant: TenantFixture) -> Shop:
    return await make_shop(tenant)


@pytest.fixture(scope="module")
async def read_shop() -> Shop:
    """A shop nobody changes: the read-only tests share it."""
    return await make_shop(await create_tenant_fixture())


# every table of the customer area (and the audit trail): "nothing written" is checked on all of it
TABLES = ("customers", "customer_brands", "tags", "customer_tags", "customer_notes", "customer_consents", "orders",
          "order_items", "products", "tracked_events", "timeline_events", "customer_profiles", "jobs", "job_files",
          "audit_log")


@dataclass(frozen=True)
class Rows:
    """Every row tenant A has in :data:`TABLES`."""

    tables: dict[str, list[tuple[str, ...]]]

    @property
    def audit(self) -> int:
        return len(self.tables["audit_log"])

    def changed(self, other: Rows) -> list[str]:
        """The tables (audit trail aside) whose rows differ."""
        return [t for t in TABLES if t != "audit_log" and self.tables[t] != other.tables[t]]


async def snapshot(t: TenantFixture) -> Rows:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    out: dict[str, list[tuple[str, ...]]] = {}
    async with tenant_session(t.id) as s:
        for table in TABLES:
            result = await s.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": t.id})
            out[table] = sorted(tuple(str(v) for v in row) for row in result)
    return Rows(out)


def _uuid(global_id: str) -> str:
    return str(uuid.UUID(GlobalID.from_id(global_id).node_id))


# --- queries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("read", READS, ids=str)
async def test_another_tenants_owner_reads_nothing_of_a_customers(
    api: Api, read_shop: Shop, other_tenant: TenantFixture, read: Read
) -> None:
    variables = read.variables(read_shop)
    mine = await api.data(read.doc, variables, token=read_shop.token)
    read.own(mine, read_shop)  # the legitimate owner does see it: the ids are live
    body = await api.gql(read.doc, variables, token=other_tenant.owner_token)
    assert not body.get("errors"), body
    read.foreign(body["data"], read_shop, other_tenant)
    assert found(json.dumps(body), read_shop.markers(), variables) == []


# --- mutations ----------------------------------------------------------------------------------

# what each role below admin may do, by mutation (docs/security.md, "Roles and permissions")
MAY: dict[str, set[str]] = {
    "analyst": {"exportTimeline"},
    "agent": {"upsertCustomer", "updateCustomer", "tagCustomers", "untagCustomers", "addCustomerNote", "setConsent"},
    "marketer": {"upsertCustomer", "updateCustomer", "createTag", "updateTag", "deleteTag", "tagCustomers",
                 "untagCustomers", "addCustomerNote", "setConsent", "recordOrder", "trackEvent", "upsertProduct",
                 "importCustomers", "importOrders", "exportTimeline"},
}


# nothing of A in the input, but A's natural keys: the matching is per tenant, so these land in B
WRITES_IN_OWN_TENANT: list[Write] = [
    Write("upsertCustomer(A's email, no brand)", UPSERT_CUSTOMER,
          lambda s: {"input": {"email": s.email("only_b"), "externalId": "ext-only-b", "firstName": "Changed"}},
          None, "customer"),
    Write("createTag(A's tag name)", CREATE_TAG, lambda s: {"input": {"name": "vip"}}, None, "tag"),
]


def _params(ops: list[Any], name: Callable[[Any], str] = lambda op: op.name) -> list[Any]:
    """pytest params, the import rows marked as pending."""
    return [pytest.param(op, marks=IMPORTS_PENDING) if name(op).startswith("import") else op for op in ops]


def assert_refused(payload: dict[str, Any], op: Write, expected: tuple[str | None, str]) -> None:
    assert perrs(payload) == [expected], payload
    assert all(e["message"] for e in payload["errors"]), payload
    if op.result is None:
        assert payload["changed"] == 0, payload
    else:
        assert payload[op.result] is None, payload


def assert_done(payload: dict[str, Any], op: Write) -> None:
    assert payload["errors"] == [], payload
    if op.result is None:
        assert payload["changed"] > 0, payload
    else:
        assert payload[op.result] is not None, payload


def assert_wrote(before: Rows, after: Rows, op: Write) -> None:
    assert after.changed(before), "nothing was written"
    if op.audited:
        assert after.audit == before.audit + 1
    else:
        assert after.audit in (before.audit, before.audit + 1)


async def assert_control_succeeds(api: Api, op: Write, variables: dict[str, Any], token: str,
                                  t: TenantFixture, before: Rows) -> None:
    """The very same mutation, by someone who may, does change tenant A."""
    assert_done(await run_write(api, op, variables, token), op)
    assert_wrote(before, await snapshot(t), op)


@pytest.mark.parametrize("op", _params(WRITES), ids=str)
async def test_another_tenants_owner_changes_nothing_of_a_customers(
    api: Api, shop: Shop, other_tenant: TenantFixture, op: Write
) -> None:
    before = await snapshot(shop.t)
    b_before = await snapshot(other_tenant)
    variables = op.variables(shop)
    result = await run_write(api, op, variables, other_tenant.owner_token)
    if op.foreign is None:  # nothing of A in the input: it lands in the caller's tenant
        assert_done(result, op)
        assert (await snapshot(other_tenant)).changed(b_before)
    else:
        assert_refused(result, op, op.foreign)
        assert await snapshot(other_tenant) == b_before
    assert found(json.dumps(result), shop.markers(), variables) == []
    assert await snapshot(shop.t) == before
    await assert_control_succeeds(api, op, variables, shop.token, shop.t, before)


@pytest.mark.parametrize("op", WRITES_IN_OWN_TENANT, ids=str)
async def test_another_tenants_natural_keys_do_not_match_a(
    api: Api, shop: Shop, other_tenant: TenantFixture, op: Write
) -> None:
    """Matching on e-mail, external id or tag name stays inside the caller's tenant."""
    before = await snapshot(shop.t)
    variables = op.variables(shop)
    result = await run_write(api, op, variables, other_tenant.owner_token)
    assert_done(result, op)
    if op.name == "upsertCustomer":
        assert result["created"] is True, result  # a new customer of B, not A's
    assert _uuid(result[op.result]["id"]) not in json.dumps(before.tables)
    assert found(json.dumps(result), shop.markers(), variables) == []
    assert await snapshot(shop.t) == before
    # control: in A the same key does match A's own object
    mine = await run_write(api, op, variables, shop.token)
    if op.name == "upsertCustomer":
        assert mine["errors"] == [] and mine["created"] is False and mine["customer"]["id"] == shop.c("only_b"), mine
    else:
        assert perrs(mine) == [("input.name", "DUPLICATE")], mine


@dataclass
class Other:
    """Tenant B's own customer and tag, to mix with A's ids."""

    t: TenantFixture
    customer: uuid.UUID
    tag: uuid.UUID  # assigned to the customer
    spare: uuid.UUID  # assigned to nobody

    def c(self) -> str:
        return gid("Customer", self.customer)


async def make_other(t: TenantFixture) -> Other:
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers

    c, _ = await upsert_customer(t.owner, {"email": f"mine@{t.slug}.test"}, brand_id=t.brands["a"])
    tag = await create_tag(t.owner, {"name": "Mine"})
    spare = await create_tag(t.owner, {"name": "Mine too"})
    await tag_customers(t.owner, [c.id], [tag.id])
    return Other(t=t, customer=c.id, tag=tag.id, spare=spare.id)


# (label, mutation, variables with A's id, the same with B's own id instead, the field at fault)
MIXED: list[tuple[str, Write, Callable[[Shop, Other], dict[str, Any]], Callable[[Shop, Other], dict[str, Any]], str]] = [
    ("tagCustomers(A's customer, own tag)", OP["tagCustomers"],
     lambda s, o: {"c": [o.c(), s.c("both")], "t": [gid("Tag", o.spare)]},
     lambda s, o: {"c": [o.c()], "t": [gid("Tag", o.spare)]}, "input.customerIds[1]"),
    ("tagCustomers(own customer, A's tag)", OP["tagCustomers"],
     lambda s, o: {"c": [o.c()], "t": [gid("Tag", o.spare), gid("Tag", s.spare)]},
     lambda s, o: {"c": [o.c()], "t": [gid("Tag", o.spare)]}, "input.tagIds[1]"),
    ("untagCustomers(A's customer, own tag)", OP["untagCustomers"],
     lambda s, o: {"c": [s.c("both")], "t": [gid("Tag", o.tag)]},
     lambda s, o: {"c": [o.c()], "t": [gid("Tag", o.tag)]}, "input.customerIds[0]"),
    ("addCustomerNote(A's customer, own brand)", OP["addCustomerNote"],
     lambda s, o: {"input": {"customerId": s.c("both"), "body": "x", "brandId": o.t.brand_gid("a")}},
     lambda s, o: {"input": {"customerId": o.c(), "body": "x", "brandId": o.t.brand_gid("a")}}, "input.customerId"),
    ("setConsent(A's customer, own brand)", OP["setConsent"],
     lambda s, o: {"input": {"customerId": s.c("both"), "brandId": o.t.brand_gid("a"), "channel": "SMS",
                             "granted": True}},
     lambda s, o: {"input": {"customerId": o.c(), "brandId": o.t.brand_gid("a"), "channel": "SMS",
                             "granted": True}}, "input.customerId"),
    ("recordOrder(own brand, A's customer)", OP["recordOrder"],
     lambda s, o: {"input": {**order_input(s)["input"], "brandId": o.t.brand_gid("a")}},
     lambda s, o: {"input": {**order_input(s)["input"], "brandId": o.t.brand_gid("a"), "customerId": o.c()}},
     "input.customerId"),
    ("trackEvent(own brand, A's customer)", OP["trackEvent"],
     lambda s, o: {"input": {**event_input(s)["input"], "brandId": o.t.brand_gid("a")}},
     lambda s, o: {"input": {**event_input(s)["input"], "brandId": o.t.brand_gid("a"), "customerId": o.c()}},
     "input.customerId"),
    ("trackEvent(no brand, A's customer)", OP["trackEvent"],
     lambda s, o: event_input(s, brand=None),
     lambda s, o: {"input": {**event_input(s, brand=None)["input"], "customerId": o.c()}}, "input.customerId"),
    ("exportTimeline(A's customer, own brand)", OP["exportTimeline"],
     lambda s, o: {"input": {"customerId": s.c("both"), "brandId": o.t.brand_gid("a")}},
     lambda s, o: {"input": {"customerId": o.c(), "brandId": o.t.brand_gid("a")}}, "input.customerId"),
]


@pytest.mark.parametrize(("label", "op", "variables", "own", "fault"), MIXED, ids=[m[0] for m in MIXED])
async def test_another_tenants_owner_cannot_mix_in_a_customers(
    api: Api, shop: Shop, other_tenant: TenantFixture, label: str, op: Write,
    variables: Callable[[Shop, Other], dict[str, Any]], own: Callable[[Shop, Other], dict[str, Any]], fault: str,
) -> None:
    other = await make_other(other_tenant)
    before_a, before_b = await snapshot(shop.t), await snapshot(other_tenant)
    result = await run_write(api, op, variables(shop, other), other_tenant.owner_token)
    assert_refused(result, op, (fault, "NOT_FOUND"))
    assert await snapshot(shop.t) == before_a
    assert await snapshot(other_tenant) == before_b
    # control: the same call with B's own ids goes through, in B
    ok = await run_write(api, op, own(shop, other), other_tenant.owner_token)
    assert_done(ok, op)
    assert await snapshot(shop.t) == before_a


async def test_replayed_ids_of_a_do_not_return_a_objects(api: Api, full_shop: Shop, other_tenant: TenantFixture) -> None:
    """Idempotency keys (event id, a brand's order id) are per tenant: B re-sending A's keys
    records B's own event and order and gets nothing of A's back."""
    shop = full_shop
    other = await make_other(other_tenant)
    before = await snapshot(shop.t)
    event = await run_write(api, OP["trackEvent"], {"input": {"eventId": "ev-b", "name": "mine", "customerId": other.c(),
                                                        "brandId": other_tenant.brand_gid("b")}},
                            other_tenant.owner_token)
    assert event["errors"] == [] and event["created"] is True and event["event"]["name"] == "mine", event
    order = await run_write(api, OP["recordOrder"], {"input": {**order_input(shop)["input"], "externalOrderId": "A-100",
                                                       "brandId": other_tenant.brand_gid("a"),
                                                       "customerId": other.c()}}, other_tenant.owner_token)
    assert order["errors"] == [] and order["created"] is True, order
    assert found(json.dumps([event, order]), shop.markers(), ["A-100"]) == []
    assert await snapshot(shop.t) == before
    # control: in A the same keys return A's own event and order, unchanged
    mine = await run_write(api, OP["trackEvent"], {"input": {"eventId": "ev-b", "name": "other", "customerId": shop.c("both")}},
                           shop.token)
    assert mine["created"] is False and mine["event"]["name"] == "seen_in_b", mine
    mine = await run_write(api, OP["recordOrder"], {"input": {**order_input(shop)["input"], "externalOrderId": "A-100"}}, shop.token)
    assert mine["created"] is False and mine["order"]["id"] == gid("Order", shop.order_a), mine


# --- the same tenant, limited to brand "a" -------------------------------------------------------

LIMITED = ["marketer", "agent", "marketer-key"]


@dataclass
class Limited:
    kind: str
    role: str
    token: str

    def may(self, mutation: str) -> bool:
        return mutation in MAY[self.role]


async def limited_principal(t: TenantFixture, kind: str, brands: list[str] | None = ["a"]) -> Limited:  # noqa: B006
    """A principal of ``kind`` (a role, "-key" for an API key) limited to ``brands`` (None: all)."""
    role, _, key = kind.partition("-")
    if key:
        _, token = await t.api_key(role, brands=brands)
    else:
        _, token = await t.member(role, brands=brands)
    return Limited(kind, role, token)


EVERYTHING = """query($both: ID!, $onlyB: ID!, $orderB: ID!, $jobB: ID!, $productB: ID!, $a: ID!, $vip: ID!) {
  customers(first: 100) { edges { node { id email } } }
  vip: customers(tagIds: [$vip], first: 100) { edges { node { id } } }
  both: customer(id: $both) {
    id email firstName
    consents { channel granted brand { id slug } }
    notes { edges { node { body brand { id } } } }
    brands { source brand { id slug } }
    lastOrder { id externalOrderId }
    orders(first: 50) { edges { node { id externalOrderId brand { id } } } }
    timeline(first: 100) { edges { node { kind brand { id }
      ... on EventTrackedEvent { name properties }
      ... on OrderPlacedEvent { externalOrderId }
      ... on NoteAddedEvent { excerpt }
      ... on ConsentChangedEvent { channel } } } }
    brandA: profile(brandId: $a) { totalOrderCount }
  }
  onlyB: customer(id: $onlyB) { id email }
  nodeOnlyB: node(id: $onlyB) { id }
  nodeOrderB: node(id: $orderB) { id }
  nodeJobB: node(id: $jobB) { id }
  nodeProductB: node(id: $productB) { id }
  orders(first: 100) { edges { node { id externalOrderId customer { id } } } }
  ordersOfOnlyB: orders(customerId: $onlyB, first: 100) { edges { node { id } } }
  products(first: 100) { edges { node { id sku } } }
  tags { id name }
  jobs(first: 100) { edges { node { id kind } } }
  jobB: job(id: $jobB) { id }
}"""


def everything_vars(s: Shop) -> dict[str, Any]:
    return {"both": s.c("both"), "onlyB": s.c("only_b"), "orderB": gid("Order", s.order_b),
            "jobB": gid("Job", s.job_b), "productB": gid("Product", s.product_b), "a": s.brand("a"),
            "vip": gid("Tag", s.vip)}


def _kinds(timeline: dict[str, Any]) -> list[tuple[str, str | None]]:
    return sorted((e["node"]["kind"], (e["node"].get("name") or e["node"].get("externalOrderId")
                                       or e["node"].get("excerpt") or e["node"].get("channel")))
                  for e in timeline["edges"])


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_limited_principal_sees_nothing_only_brand_b_knows(api: Api, read_shop: Shop, kind: str) -> None:
    s = read_shop
    variables = everything_vars(s)
    owner = await api.data(EVERYTHING, variables, token=s.token)  # control: all of it is there
    assert edge_ids(owner["customers"]) == {s.c("both"), s.c("only_a"), s.c("only_b")}
    assert owner["onlyB"] == {"id": s.c("only_b"), "email": s.email("only_b")}
    assert owner["nodeOnlyB"] == {"id": s.c("only_b")}
    assert owner["nodeOrderB"] and owner["nodeJobB"] and owner["nodeProductB"] and owner["jobB"]
    assert edge_ids(owner["ordersOfOnlyB"]) == {gid("Order", s.order_ob)}
    assert len(owner["both"]["consents"]) == 2 and owner["both"]["lastOrder"]["externalOrderId"] == "B-200"
    assert ("EVENT_TRACKED", "seen_in_b") in _kinds(owner["both"]["timeline"])
    assert found(json.dumps(owner), s.b_markers()) != []

    p = await limited_principal(s.t, kind)
    body = await api.gql(EVERYTHING, variables, token=p.token)
    assert not body.get("errors"), body
    d = body["data"]
    assert edge_ids(d["customers"]) == {s.c("both"), s.c("only_a")}
    assert edge_ids(d["vip"]) == {s.c("both")}
    assert d["onlyB"] is None and d["nodeOnlyB"] is None
    assert d["nodeOrderB"] is None and d["nodeJobB"] is None and d["nodeProductB"] is None and d["jobB"] is None
    assert edge_ids(d["ordersOfOnlyB"]) == set()
    assert edge_ids(d["orders"]) == {gid("Order", s.order_a)}
    assert {e["node"]["sku"] for e in d["products"]["edges"]} == {"SKU-A"}
    # brand-less jobs (an export, a rebuild) are seen by their starter and unlimited principals only
    assert edge_ids(d["jobs"]) == {gid("Job", s.job_a)}
    assert {t["name"] for t in d["tags"]} == {"VIP", "Spare"}  # tags are tenant-wide
    both = d["both"]
    assert both["id"] == s.c("both") and both["email"] == s.email("both")
    assert [(c["channel"], c["brand"]["slug"]) for c in both["consents"]] == [("EMAIL", "brand-a")]
    assert [n["node"]["body"] for n in both["notes"]["edges"]] == ["note for everyone"]
    assert [b["brand"]["slug"] for b in both["brands"]] == ["brand-a"]
    assert both["lastOrder"]["externalOrderId"] == "A-100"
    assert [e["node"]["externalOrderId"] for e in both["orders"]["edges"]] == ["A-100"]
    assert _kinds(both["timeline"]) == sorted([
        ("CUSTOMER_CREATED", None), ("ORDER_PLACED", "A-100"), ("EVENT_TRACKED", "seen_in_a"),
        ("EVENT_TRACKED", "seen_anywhere"),  # brand-less: the customer's, visible to every brand
        ("CONSENT_CHANGED", "EMAIL"), ("NOTE_ADDED", "note for everyone"), ("TAG_ADDED", None),
    ]), both["timeline"]
    assert both["brandA"] == {"totalOrderCount": 1}
    assert found(json.dumps(body), s.b_markers()) == []


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_limited_principal_gets_no_brand_b_totals_in_a_profile(api: Api, read_shop: Shop, kind: str) -> None:
    """The profile of a customer known to both brands, read by a principal of brand a, must not
    count brand b's orders (their number, value and dates are brand b's business)."""
    s = read_shop
    q = """query($id: ID!, $a: ID!, $b: ID!) { customer(id: $id) {
      all: profile { totalOrderCount totalOrderValueCents lastOrderAt }
      a: profile(brandId: $a) { totalOrderCount totalOrderValueCents lastOrderAt }
      b: profile(brandId: $b) { totalOrderCount totalOrderValueCents lastOrderAt } } }"""
    variables = {"id": s.c("both"), "a": s.brand("a"), "b": s.brand("b")}
    owner = (await api.data(q, variables, token=s.token))["customer"]
    assert owner["all"]["totalOrderCount"] == 2 and owner["all"]["totalOrderValueCents"] == 8_000
    assert owner["a"]["totalOrderValueCents"] == 1_000 and owner["b"]["totalOrderValueCents"] == 7_000
    p = await limited_principal(s.t, kind)
    mine = (await api.data(q, variables, token=p.token))["customer"]
    assert mine["b"] == {"totalOrderCount": 0, "totalOrderValueCents": 0, "lastOrderAt": None}, mine
    assert mine["a"] == owner["a"], mine
    assert mine["all"] == owner["a"], f"brand b's orders are counted in what a brand-a principal sees: {mine}"


BRAND_B_QUERIES: list[tuple[str, str, Callable[[Shop], dict[str, Any]]]] = [
    ("customers(brandId: b)", "query($b: ID!) { customers(brandId: $b) { edges { node { id email } } } }",
     lambda s: {"b": s.brand("b")}),
    ("orders(brandId: b)", "query($b: ID!) { orders(brandId: $b) { edges { node { id externalOrderId } } } }",
     lambda s: {"b": s.brand("b")}),
    ("products(brandId: b)", "query($b: ID!) { products(brandId: $b) { edges { node { id sku } } } }",
     lambda s: {"b": s.brand("b")}),
    ("customer.timeline(brandId: b)",
     """query($c: ID!, $b: ID!) { customer(id: $c) { timeline(brandId: $b) { edges { node { kind
        ... on EventTrackedEvent { name } ... on OrderPlacedEvent { externalOrderId } } } } } }""",
     lambda s: {"c": s.c("both"), "b": s.brand("b")}),
    ("customer.orders(brandId: b)",
     "query($c: ID!, $b: ID!) { customer(id: $c) { orders(brandId: $b) { edges { node { id externalOrderId } } } } }",
     lambda s: {"c": s.c("both"), "b": s.brand("b")}),
    ("customer.consents/lastOrder(brandId: b)",
     """query($c: ID!, $b: ID!) { customer(id: $c) { consents(brandId: $b) { channel }
        lastOrder(brandId: $b) { id externalOrderId } } }""",
     lambda s: {"c": s.c("both"), "b": s.brand("b")}),
]


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize(("label", "query", "variables"), BRAND_B_QUERIES, ids=[q[0] for q in BRAND_B_QUERIES])
async def test_brand_limited_principal_cannot_filter_on_brand_b(
    api: Api, read_shop: Shop, kind: str, label: str, query: str, variables: Callable[[Shop], dict[str, Any]]
) -> None:
    s = read_shop
    owner = await api.data(query, variables(s), token=s.token)
    assert found(json.dumps(owner), s.b_markers(), variables(s)) != []  # control: there is brand-b data
    p = await limited_principal(s.t, kind)
    body = await api.gql(query, variables(s), token=p.token)
    for error in body.get("errors") or []:  # refusing is fine (as not found); leaking is not
        assert error["extensions"]["code"] == "NOT_FOUND", body
    assert found(json.dumps(body), s.b_markers(), variables(s)) == [], body
    # and brand a, through the same query, does answer
    mine = await api.data(query, {**variables(s), "b": s.brand("a")}, token=p.token)
    assert found(json.dumps(mine), ["A-100", "seen_in_a", "SKU-A", s.c("both"), "EMAIL"])


LIMITED_CASES = [pytest.param(kind, *row, marks=IMPORTS_PENDING, id=f"{kind}-{row[0]}")
                 if row[1].name.startswith("import") else pytest.param(kind, *row, id=f"{kind}-{row[0]}")
                 for kind in LIMITED for row in LIMITED_WRITES]


@pytest.mark.parametrize(("kind", "label", "op", "on_b", "on_a", "fault"), LIMITED_CASES)
async def test_brand_limited_principal_touches_nothing_only_brand_b_knows(
    api: Api, shop: Shop, kind: str, label: str, op: Write, on_b: Callable[[Shop], dict[str, Any]],
    on_a: Callable[[Shop], dict[str, Any]], fault: str,
) -> None:
    p = await limited_principal(shop.t, kind)
    before = await snapshot(shop.t)
    refused = await run_write(api, op, on_b(shop), p.token)
    expected = (fault, "NOT_FOUND") if p.may(op.name) else (None, "FORBIDDEN")
    assert_refused(refused, op, expected)
    assert found(json.dumps(refused), shop.b_markers(), on_b(shop)) == []
    assert await snapshot(shop.t) == before
    result = await run_write(api, op, on_a(shop), p.token)
    if p.may(op.name):  # control: the same principal, aimed at what brand a sees, goes through
        assert_done(result, op)
        assert_wrote(before, await snapshot(shop.t), op)
    else:  # refused for the role, the same way on either brand: b's data does not leak
        assert_refused(result, op, (None, "FORBIDDEN"))
        assert await snapshot(shop.t) == before


async def test_brand_limited_principal_cannot_replay_a_brand_b_event(api: Api, full_shop: Shop) -> None:
    """Event ids are idempotency keys across the tenant; re-sending brand b's event id from
    brand a must not hand brand b's event (its name and properties) back."""
    shop = full_shop
    p = await limited_principal(shop.t, "marketer")
    before = await snapshot(shop.t)
    replay = {"input": {"eventId": "ev-b", "name": "clicked", "brandId": shop.brand("a"), "customerId": shop.c("only_a")}}
    result = await run_write(api, OP["trackEvent"], replay, p.token)
    assert found(json.dumps(result), shop.b_markers(), replay) == [], result
    assert await snapshot(shop.t) == before


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_b_job_is_invisible_to_a_brand_a_principal_by_subscription(
    api: Api, read_shop: Shop, kind: str
) -> None:
    s = read_shop
    job_b = gid("Job", s.job_b)
    frames, end = await follow(api, s.token, job_b)  # control: the owner gets brand b's job
    assert [f["data"]["jobProgress"]["id"] for f in frames] == [job_b] and end == "complete", frames
    p = await limited_principal(s.t, kind)
    frames, end = await follow(api, p.token, job_b)
    assert_not_found(frames, end)
    assert found(json.dumps(frames), s.b_markers(), [job_b]) == []


# --- roles below admin ---------------------------------------------------------------------------

ROLES = ["analyst", "agent", "marketer"]
ROLE_CASES = [pytest.param(role, op, marks=IMPORTS_PENDING, id=f"{role}-{op.name}") if op.name.startswith("import")
              else pytest.param(role, op, id=f"{role}-{op.name}") for role in ROLES for op in WRITES]


@pytest.mark.parametrize(("role", "op"), ROLE_CASES)
async def test_roles_below_admin_write_only_what_they_may(api: Api, shop: Shop, role: str, op: Write) -> None:
    _, token = await shop.t.member(role)
    before = await snapshot(shop.t)
    variables = op.variables(shop)
    result = await run_write(api, op, variables, token)
    if op.name in MAY[role]:
        assert_done(result, op)
        assert_wrote(before, await snapshot(shop.t), op)
    else:
        assert_refused(result, op, (None, "FORBIDDEN"))
        assert await snapshot(shop.t) == before
        await assert_control_succeeds(api, op, variables, shop.token, shop.t, before)


@pytest.mark.parametrize("kind", ["analyst", "agent", "marketer", "analyst-key"])
async def test_roles_below_admin_read_the_customer_area(api: Api, read_shop: Shop, kind: str) -> None:
    s = read_shop
    owner = await api.data(EVERYTHING, everything_vars(s), token=s.token)
    p = await limited_principal(s.t, kind, brands=None) if kind.endswith("-key") else None
    token = p.token if p else (await s.t.member(kind))[1]
    assert await api.data(EVERYTHING, everything_vars(s), token=token) == owner


# --- jobProgress over graphql-transport-ws ---------------------------------------------------------

JOB_PROGRESS = "subscription($id: ID!) { jobProgress(id: $id) { id kind status progress { done total percent } result } }"


async def follow(api: Api, token: str, job_id: str, within: float = 15) -> tuple[list[dict[str, Any]], str]:
    """Subscribe to jobProgress: the payloads received, and how the operation ended
    ("complete", "error", or "timeout")."""
    ws = await Client.open(api, bearer(token))
    frames: list[dict[str, Any]] = []
    try:
        await ws.subscribe(JOB_PROGRESS, {"id": job_id})
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            msg = await ws.receive(left)
            if msg is None:
                break
            if msg["type"] == "next":
                frames.append(msg["payload"])
            elif msg["type"] == "error":
                frames.append({"errors": msg["payload"]})
                return frames, "error"
            elif msg["type"] == "complete":
                return frames, "complete"
        return frames, "timeout"
    finally:
        await ws.close()


def assert_not_found(frames: list[dict[str, Any]], end: str) -> None:
    """One error, NOT_FOUND, and no job data."""
    assert end in ("complete", "error"), (frames, end)
    assert frames and all(not f.get("data") for f in frames), frames
    errors = [e for f in frames for e in f.get("errors") or []]
    assert errors and all((e.get("extensions") or {}).get("code") == "NOT_FOUND" for e in errors), frames


async def test_job_progress_reaches_only_the_tenants_own_principals(
    api: Api, shop: Shop, other_tenant: TenantFixture, worker: Process
) -> None:
    started = await api.data(REBUILD, token=shop.token)
    assert started["rebuildProfiles"]["errors"] == [], started
    job_id = started["rebuildProfiles"]["job"]["id"]

    # tenant B, following A's job: an error, no job, and nothing later either
    b_task = asyncio.create_task(follow(api, other_tenant.owner_token, job_id, within=3))
    frames, end = await follow(api, shop.token, job_id)
    assert end == "complete", (frames, end)
    jobs = [f["data"]["jobProgress"] for f in frames]
    assert all(not f.get("errors") for f in frames), frames
    assert {j["id"] for j in jobs} == {job_id} and jobs[0]["kind"] == "REBUILD_PROFILES"
    order = ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert [order.index(j["status"]) for j in jobs] == sorted(order.index(j["status"]) for j in jobs), jobs
    assert jobs[-1]["status"] == "SUCCEEDED"
    assert jobs[-1]["progress"] == {"done": 3, "total": 3, "percent": 100.0}, jobs[-1]
    assert "profiles" in jobs[-1]["result"], jobs[-1]

    b_frames, b_end = await b_task
    assert_not_found(b_frames, b_end)
    assert found(json.dumps(b_frames), shop.markers(), [job_id]) == []
    # and afterwards, asked again, B still gets nothing
    frames, end = await follow(api, other_tenant.owner_token, job_id, within=3)
    assert_not_found(frames, end)


# --- download links ----------------------------------------------------------------------------------


async def export(api: Api, token: str, customer: str, **more: Any) -> dict[str, Any]:
    started = await api.data(EXPORT, {"input": {"customerId": customer, **more}}, token=token)
    assert started["exportTimeline"]["errors"] == [], started
    return await wait_job(api, token, started["exportTimeline"]["job"]["id"])


async def test_download_links_are_signed_for_one_tenant_and_job(
    api: Api, full_shop: Shop, other_tenant: TenantFixture, worker: Process
) -> None:
    shop = full_shop
    from domain.exports.downloads import make_token

    job = await export(api, shop.token, shop.c("both"))
    url = job["resultUrl"]
    job_id = uuid.UUID(_uuid(job["id"]))
    base = api.base_url + "/downloads/"
    assert url.startswith(base), url
    async with httpx.AsyncClient(timeout=10) as http:  # no credentials: the link is the credential
        ok = await http.get(url)
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"].startswith("text/csv")
        assert ok.headers["cache-control"] == "private, no-store"
        assert "seen_in_b" in ok.text and "seen_anywhere" in ok.text  # the owner's export has it all

        tenant_hex, job_hex, expires, signature = url.removeprefix(base).split(".")
        fresh = make_token(shop.t.id, job_id)  # control: a link minted here is as good as the server's
        assert (await http.get(base + fresh)).content == ok.content
        b_hex = other_tenant.id.hex
        bad = {
            "tampered signature": f"{tenant_hex}.{job_hex}.{expires}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
            "extended expiry": f"{tenant_hex}.{job_hex}.{int(expires) + 3600}.{signature}",
            "expired": make_token(shop.t.id, job_id, ttl=-1),
            "B's tenant id swapped in": f"{b_hex}.{job_hex}.{expires}.{signature}",
            "signed for B's tenant and A's job": make_token(other_tenant.id, job_id),
            "another job of A": make_token(shop.t.id, shop.job_a),
            "garbage": "not-a-token",
        }
        for label, token in bad.items():
            r = await http.get(base + token)
            assert r.status_code == 404, (label, r.status_code, r.text[:200])
            assert r.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND", (label, r.text)
            assert "seen_" not in r.text and shop.email("both") not in r.text, (label, r.text)


async def test_a_brand_a_export_leaves_out_brand_b(api: Api, full_shop: Shop, worker: Process) -> None:
    shop = full_shop
    p = await limited_principal(shop.t, "marketer")
    job = await export(api, p.token, shop.c("both"))
    async with httpx.AsyncClient(timeout=10) as http:
        csv = (await http.get(job["resultUrl"])).text
    assert "seen_in_a" in csv and "seen_anywhere" in csv and "A-100" in csv, csv
    assert found(csv, shop.b_markers()) == [], csv


async def test_an_export_of_a_brand_b_customer_stays_out_of_brand_a_reach(
    api: Api, full_shop: Shop, worker: Process
) -> None:
    """The owner exports the timeline of a customer only brand b knows: a principal of brand a
    must not find that job, follow it, or get its file."""
    shop = full_shop
    job = await export(api, shop.token, shop.c("only_b"))
    async with httpx.AsyncClient(timeout=10) as http:
        assert "B-300" in (await http.get(job["resultUrl"])).text  # control: the file has brand b's data
    p = await limited_principal(shop.t, "marketer")
    q = "query($id: ID!) { job(id: $id) { id resultUrl } node(id: $id) { id } jobs(first: 100) { edges { node { id resultUrl } } } }"
    seen = await api.data(q, {"id": job["id"]}, token=p.token)
    assert seen["job"] is None and seen["node"] is None, seen
    assert job["id"] not in json.dumps(seen["jobs"]), seen
