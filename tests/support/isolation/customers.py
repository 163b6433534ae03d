"""The rows of the customer area's isolation tests: tenant A's shop, every query (:data:`READS`) and
mutation (:data:`WRITES`) of customers, commerce, timeline and jobs, and the writes a principal
limited to brand "a" aims at what only brand "b" knows (:data:`LIMITED_WRITES`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import Api, TenantFixture, gid
from support.graphql import check, upload
from support.isolation import Read

ERRORS = "errors { field code message }"


def _ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


@dataclass
class Shop:
    """Tenant A (brands "a" and "b") with customers, orders, events, consents, notes, tags,
    products and jobs.

    ``both`` is known to brands a and b and has something of each brand and something of no
    brand; ``only_a`` is known to brand a alone, ``only_b`` to brand b alone.
    """

    t: TenantFixture
    both: uuid.UUID
    only_a: uuid.UUID
    only_b: uuid.UUID
    vip: uuid.UUID  # assigned to both and only_b
    spare: uuid.UUID  # assigned to nobody
    order_a: uuid.UUID  # both, brand a
    order_b: uuid.UUID  # both, brand b (the latest order of both)
    order_ob: uuid.UUID  # only_b, brand b
    product_a: uuid.UUID  # SKU-A, brand a
    product_b: uuid.UUID  # SKU-B, brand b
    job_a: uuid.UUID  # a job of brand a
    job_b: uuid.UUID  # a job of brand b
    job_all: uuid.UUID  # a job of no brand (tenant-wide)

    def brand(self, name: str) -> str:
        return self.t.brand_gid(name)

    def c(self, name: str) -> str:
        return gid("Customer", getattr(self, name))

    def email(self, name: str) -> str:
        return f"{name.replace('_', '-')}@{self.t.slug}.test"

    @property
    def token(self) -> str:
        return self.t.owner_token

    def markers(self) -> list[str]:
        """Strings that appear only in answers revealing something of tenant A."""
        typed = [("Customer", self.both), ("Customer", self.only_a), ("Customer", self.only_b),
                 ("Tag", self.vip), ("Tag", self.spare), ("Order", self.order_a), ("Order", self.order_b),
                 ("Order", self.order_ob), ("Product", self.product_a), ("Product", self.product_b),
                 ("Job", self.job_a), ("Job", self.job_b), ("Job", self.job_all)]
        raw = [self.t.id, self.t.owner_id, self.t.owner_member_id, *self.t.brands.values(), *(v for _, v in typed)]
        return ([str(r) for r in raw] + [gid(n, v) for n, v in typed] + [self.brand("a"), self.brand("b")]
                + [self.t.slug, "seen_in_a", "seen_in_b", "seen_anywhere", "A-100", "B-200", "B-300"])

    def b_markers(self) -> list[str]:
        """Strings that appear only in answers revealing something only brand b knows."""
        b = self.t.brands["b"]
        return [str(b), self.brand("b"), "brand-b", "Brand B",
                str(self.only_b), self.c("only_b"), self.email("only_b"), "Secretia", "ext-only-b",
                str(self.order_b), gid("Order", self.order_b), "B-200",
                str(self.order_ob), gid("Order", self.order_ob), "B-300",
                "seen_in_b", "b-only-property", "note of brand b",
                str(self.product_b), gid("Product", self.product_b), "SKU-B",
                str(self.job_b), gid("Job", self.job_b)]


async def make_shop(t: TenantFixture, *, full: bool = True) -> Shop:
    """The shop; without ``full``, only its customers, tags, products and the orders of ``both``
    (what the mutation tests aim at), which is quicker to make. Independent writes run side by
    side; those that refresh the profile of ``both`` run one after the other."""
    from domain.commerce.service import EventInput, OrderInput, OrderLine, record_order, track_event
    from domain.customers.consent import Channel, set_consent
    from domain.customers.notes import add_note
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers
    from domain.jobs.models import Job
    from domain.platform.db import tenant_session

    owner, a, b = t.owner, t.brands["a"], t.brands["b"]
    now = datetime.now(UTC)
    (both, _), (only_a, _), (only_b, _), vip, spare = await asyncio.gather(
        upsert_customer(owner, {"email": f"both@{t.slug}.test", "first_name": "Bo"}, brand_id=a),
        upsert_customer(owner, {"email": f"only-a@{t.slug}.test", "external_id": "ext-only-a"}, brand_id=a),
        upsert_customer(owner, {"email": f"only-b@{t.slug}.test", "external_id": "ext-only-b",
                                "first_name": "Secretia", "phone": "+15550001111"}, brand_id=b),
        create_tag(owner, {"name": "VIP", "color": "#aa0000"}),
        create_tag(owner, {"name": "Spare"}),
    )

    async def order(brand: uuid.UUID, ext: str, cents: int, customer: uuid.UUID, sku: str, days: int) -> uuid.UUID:
        o, created = await record_order(owner, OrderInput(
            brand_id=brand, external_order_id=ext, total_cents=cents, currency="EUR",
            placed_at=now - timedelta(days=days), customer_id=customer,
            items=[OrderLine(sku=sku, quantity=1, unit_price_cents=cents, name=f"Product {sku}")]))
        assert created
        return o.id

    async def activity_of_both() -> tuple[uuid.UUID, uuid.UUID]:
        order_a = await order(a, "A-100", 1_000, both.id, "SKU-A", 3)
        order_b = await order(b, "B-200", 7_000, both.id, "SKU-B", 1)
        if full:
            for event_id, name, brand, props in (("ev-a", "seen_in_a", a, {"where": "a"}),
                                                 ("ev-b", "seen_in_b", b, {"secret": "b-only-property"}),
                                                 ("ev-any", "seen_anywhere", None, {"where": "anywhere"})):
                await track_event(owner, EventInput(event_id=event_id, name=name, brand_id=brand, customer_id=both.id,
                                                    properties=props, occurred_at=now - timedelta(hours=1)))
        return order_a, order_b

    jobs = {name: uuid.uuid4() for name in ("a", "b", "all")}

    async def add_jobs() -> None:
        async with tenant_session(t.id) as s:
            s.add_all([Job(id=jobs[name], tenant_id=t.id, kind=kind, status="succeeded", brand_id=brand,
                           created_by=f"owner@{t.slug}.test", params={}, progress_done=1, progress_total=1,
                           result={"rows": 1}, started_at=now, finished_at=now)
                       for name, kind, brand in (("a", "import_customers", a), ("b", "import_customers", b),
                                                 ("all", "rebuild_profiles", None))])

    extras = [order(b, "B-300", 5_000, only_b.id, "SKU-B", 2), set_consent(owner, both.id, a, Channel.EMAIL, True),
              set_consent(owner, both.id, b, Channel.SMS, True), add_note(owner, both.id, "note of brand b", brand_id=b),
              add_note(owner, both.id, "note for everyone"), add_jobs()] if full else []
    (order_a, order_b), _, *done = await asyncio.gather(
        activity_of_both(), tag_customers(owner, [both.id, only_b.id], [vip.id]), *extras)
    products = await _product_ids(t.id)
    missing = uuid.uuid4()  # what the quick shop does not have: an id nothing answers to
    return Shop(t=t, both=both.id, only_a=only_a.id, only_b=only_b.id, vip=vip.id, spare=spare.id,
                order_a=order_a, order_b=order_b, order_ob=done[0] if full else missing,
                product_a=products["SKU-A"], product_b=products["SKU-B"],
                **({f"job_{k}": v for k, v in jobs.items()} if full else dict.fromkeys(("job_a", "job_b", "job_all"),
                                                                                         missing)))


async def _product_ids(tenant_id: uuid.UUID) -> dict[str, uuid.UUID]:
    from sqlalchemy import select

    from domain.commerce.models import Product
    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        return dict((await s.execute(select(Product.sku, Product.id).where(Product.tenant_id == tenant_id))).all())


def edge_ids(conn: dict[str, Any]) -> set[str]:
    return {e["node"]["id"] for e in conn["edges"]}


def _node_read(type_name: str, attr: str) -> Read:
    def own(d: dict[str, Any], s: Shop) -> None:
        assert d["node"] == {"id": gid(type_name, getattr(s, attr)), "__typename": type_name}, d

    def foreign(d: dict[str, Any], s: Shop, b: TenantFixture) -> None:
        assert d["node"] is None, d

    return Read(f"node({type_name})", "query($id: ID!) { node(id: $id) { id __typename } }",
                lambda s: {"id": gid(type_name, getattr(s, attr))}, own, foreign)


def _empty(field_name: str) -> Callable[[dict[str, Any], Shop, TenantFixture], None]:
    return lambda d, s, b: check(d[field_name]["edges"] == [], d)


CUSTOMERS = "query($b: ID, $s: String, $t: [ID!]) { customers(brandId: $b, search: $s, tagIds: $t, first: 100) { edges { node { id email } } } }"


READS: list[Read] = [
    Read("customers", CUSTOMERS, lambda s: {},
         lambda d, s: check(edge_ids(d["customers"]) == {s.c("both"), s.c("only_a"), s.c("only_b")}, d),
         _empty("customers")),
    Read("customers(brandId: A's b)", CUSTOMERS, lambda s: {"b": s.brand("b")},
         lambda d, s: check(edge_ids(d["customers"]) == {s.c("both"), s.c("only_b")}, d),
         _empty("customers")),
    Read("customers(search)", CUSTOMERS, lambda s: {"s": "only"},
         lambda d, s: check(edge_ids(d["customers"]) == {s.c("only_a"), s.c("only_b")}, d),
         _empty("customers")),
    Read("customers(tagIds: A's tag)", CUSTOMERS, lambda s: {"t": [gid("Tag", s.vip)]},
         lambda d, s: check(edge_ids(d["customers"]) == {s.c("both"), s.c("only_b")}, d),
         _empty("customers")),
    Read("customer", "query($id: ID!) { customer(id: $id) { id email orders { edges { node { id } } } } }",
         lambda s: {"id": s.c("both")},
         lambda d, s: check(d["customer"]["id"] == s.c("both")
                             and edge_ids(d["customer"]["orders"]) == {gid("Order", s.order_a),
                                                                         gid("Order", s.order_b)}, d),
         lambda d, s, b: check(d["customer"] is None, d)),
    Read("tags", "{ tags { id name } }", lambda s: {},
         lambda d, s: check({t["id"] for t in d["tags"]} == {gid("Tag", s.vip), gid("Tag", s.spare)}, d),
         lambda d, s, b: check(d["tags"] == [], d)),
    Read("products", "query($b: ID) { products(brandId: $b, first: 100) { edges { node { id sku } } } }",
         lambda s: {},
         lambda d, s: check(edge_ids(d["products"]) == {gid("Product", s.product_a), gid("Product", s.product_b)}, d),
         _empty("products")),
    Read("products(brandId: A's a)", "query($b: ID) { products(brandId: $b, first: 100) { edges { node { id sku } } } }",
         lambda s: {"b": s.brand("a")},
         lambda d, s: check(edge_ids(d["products"]) == {gid("Product", s.product_a)}, d),
         _empty("products")),
    Read("orders", "query($b: ID, $c: ID) { orders(brandId: $b, customerId: $c, first: 100) { edges { node { id } } } }",
         lambda s: {},
         lambda d, s: check(edge_ids(d["orders"]) == {gid("Order", o) for o in (s.order_a, s.order_b, s.order_ob)}, d),
         _empty("orders")),
    Read("orders(customerId: A's)",
         "query($b: ID, $c: ID) { orders(brandId: $b, customerId: $c, first: 100) { edges { node { id } } } }",
         lambda s: {"c": s.c("only_b")},
         lambda d, s: check(edge_ids(d["orders"]) == {gid("Order", s.order_ob)}, d),
         _empty("orders")),
    Read("orders(brandId: A's b)",
         "query($b: ID, $c: ID) { orders(brandId: $b, customerId: $c, first: 100) { edges { node { id } } } }",
         lambda s: {"b": s.brand("b")},
         lambda d, s: check(edge_ids(d["orders"]) == {gid("Order", s.order_b), gid("Order", s.order_ob)}, d),
         _empty("orders")),
    Read("job", "query($id: ID!) { job(id: $id) { id kind status result } }", lambda s: {"id": gid("Job", s.job_b)},
         lambda d, s: check(d["job"]["id"] == gid("Job", s.job_b) and d["job"]["status"] == "SUCCEEDED", d),
         lambda d, s, b: check(d["job"] is None, d)),
    Read("jobs", "{ jobs(first: 100) { edges { node { id kind } } } }", lambda s: {},
         lambda d, s: check(edge_ids(d["jobs"]) == {gid("Job", j) for j in (s.job_a, s.job_b, s.job_all)}, d),
         _empty("jobs")),
    _node_read("Customer", "only_b"),
    _node_read("Tag", "vip"),
    _node_read("Order", "order_b"),
    _node_read("Product", "product_b"),
    _node_read("Job", "job_all"),
]


@dataclass(frozen=True)
class Write:
    """A mutation aimed at tenant A's objects.

    ``foreign``: the (field, code) another tenant's owner gets; None when the input names nothing
    of A (the mutation then succeeds, inside the caller's own tenant). ``result``: the payload
    field that holds the object (None for tag assignments, which count). ``audited``: a success
    writes one audit entry (when False, none is required: tracked events and jobs are not audited
    today). ``upload``: the file sent as ``$file`` (multipart).
    """

    label: str
    doc: str
    variables: Callable[[Shop], dict[str, Any]]
    foreign: tuple[str | None, str] | None
    result: str | None
    audited: bool = True
    upload: bytes | None = None

    @property
    def name(self) -> str:
        return self.doc.split("{", 2)[1].split("(")[0].strip()

    def __str__(self) -> str:
        return self.label


def _m(name: str, params: str, args: str, result: str) -> str:
    return f"mutation({params}) {{ {name}({args}) {{ {result} {ERRORS} }} }}"


UPSERT_CUSTOMER = _m("upsertCustomer", "$input: UpsertCustomerInput!", "input: $input", "created customer { id email }")


UPDATE_CUSTOMER = _m("updateCustomer", "$input: UpdateCustomerInput!", "input: $input", "customer { id }")


CREATE_TAG = _m("createTag", "$input: TagInput!", "input: $input", "tag { id name }")


UPDATE_TAG = _m("updateTag", "$input: UpdateTagInput!", "input: $input", "tag { id }")


DELETE_TAG = _m("deleteTag", "$id: ID!", "input: {id: $id}", "tag { id }")


TAG = _m("tagCustomers", "$c: [ID!]!, $t: [ID!]!", "input: {customerIds: $c, tagIds: $t}", "changed")


UNTAG = _m("untagCustomers", "$c: [ID!]!, $t: [ID!]!", "input: {customerIds: $c, tagIds: $t}", "changed")


NOTE = _m("addCustomerNote", "$input: AddCustomerNoteInput!", "input: $input", "note { id body }")


CONSENT = _m("setConsent", "$input: SetConsentInput!", "input: $input", "consent { channel granted brand { id } }")


RECORD_ORDER = _m("recordOrder", "$input: RecordOrderInput!", "input: $input",
                  "created order { id externalOrderId customer { id email } }")


TRACK = _m("trackEvent", "$input: TrackEventInput!", "input: $input", "created event { id name properties brand { id } }")


PRODUCT = _m("upsertProduct", "$input: UpsertProductInput!", "input: $input", "product { id sku name }")


IMPORT_CUSTOMERS = _m("importCustomers", "$brandId: ID!, $file: Upload!", "input: {brandId: $brandId, file: $file}",
                      "job { id kind status }")


IMPORT_ORDERS = _m("importOrders", "$brandId: ID!, $file: Upload!", "input: {brandId: $brandId, file: $file}",
                   "job { id kind status }")


REBUILD = "mutation { rebuildProfiles { job { id kind status } " + ERRORS + " } }"


EXPORT = _m("exportTimeline", "$input: ExportTimelineInput!", "input: $input", "job { id kind status }")


CUSTOMERS_CSV = b"email,firstName\nimported@example.com,Imported\n"


ORDERS_CSV = (b"externalOrderId,customerEmail,totalCents,currency,placedAt\n"
              b"IMP-1,imported@example.com,1200,EUR,2024-01-02T10:00:00+00:00\n")


def order_input(s: Shop, brand: str = "a", customer: str | None = "both", **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"brandId": s.brand(brand), "externalOrderId": f"N-{uuid.uuid4().hex[:8]}",
                           "totalCents": 500, "currency": "EUR", "placedAt": _ago(hours=2),
                           "items": [{"sku": "SKU-A", "quantity": 1, "unitPriceCents": 500}]}
    if customer:
        out["customerId"] = s.c(customer)
    return {"input": {**out, **more}}


def event_input(s: Shop, brand: str | None = "a", customer: str = "both", **more: Any) -> dict[str, Any]:
    out = {"eventId": f"ev-{uuid.uuid4().hex[:8]}", "name": "clicked", "customerId": s.c(customer),
           "properties": {"k": "v"}}
    if brand:
        out["brandId"] = s.brand(brand)
    return {"input": {**out, **more}}


WRITES: list[Write] = [
    Write("upsertCustomer", UPSERT_CUSTOMER,
          lambda s: {"input": {"email": s.email("both"), "firstName": "Changed", "brandId": s.brand("a")}},
          ("input.brandId", "NOT_FOUND"), "customer"),
    Write("updateCustomer", UPDATE_CUSTOMER,
          lambda s: {"input": {"id": s.c("both"), "firstName": "Changed", "attributes": {"tier": "gold"}}},
          ("input.id", "NOT_FOUND"), "customer"),
    Write("createTag", CREATE_TAG, lambda s: {"input": {"name": "Newcomers", "color": "#112233"}}, None, "tag"),
    Write("updateTag", UPDATE_TAG, lambda s: {"input": {"id": gid("Tag", s.vip), "name": "Renamed"}},
          ("input.id", "NOT_FOUND"), "tag"),
    Write("deleteTag", DELETE_TAG, lambda s: {"id": gid("Tag", s.vip)}, ("input.id", "NOT_FOUND"), "tag"),
    Write("tagCustomers", TAG, lambda s: {"c": [s.c("both")], "t": [gid("Tag", s.spare)]},
          ("input.tagIds[0]", "NOT_FOUND"), None),
    Write("untagCustomers", UNTAG, lambda s: {"c": [s.c("both")], "t": [gid("Tag", s.vip)]},
          ("input.tagIds[0]", "NOT_FOUND"), None),
    Write("addCustomerNote", NOTE,
          lambda s: {"input": {"customerId": s.c("both"), "body": "called them", "brandId": s.brand("a")}},
          ("input.customerId", "NOT_FOUND"), "note"),
    Write("setConsent", CONSENT,
          lambda s: {"input": {"customerId": s.c("both"), "brandId": s.brand("a"), "channel": "SMS", "granted": True}},
          ("input.brandId", "NOT_FOUND"), "consent"),
    Write("recordOrder", RECORD_ORDER, lambda s: order_input(s), ("input.brandId", "NOT_FOUND"), "order"),
    Write("trackEvent", TRACK, lambda s: event_input(s), ("input.brandId", "NOT_FOUND"), "event", audited=False),
    Write("upsertProduct", PRODUCT, lambda s: {"input": {"sku": "SKU-A", "name": "Renamed", "brandId": s.brand("a")}},
          ("input.brandId", "NOT_FOUND"), "product"),
    Write("importCustomers", IMPORT_CUSTOMERS, lambda s: {"brandId": s.brand("a")}, ("input.brandId", "NOT_FOUND"), "job",
          audited=False, upload=CUSTOMERS_CSV),
    Write("importOrders", IMPORT_ORDERS, lambda s: {"brandId": s.brand("a")}, ("input.brandId", "NOT_FOUND"), "job",
          audited=False, upload=ORDERS_CSV),
    Write("rebuildProfiles", REBUILD, lambda s: {}, None, "job", audited=False),
    Write("exportTimeline", EXPORT, lambda s: {"input": {"customerId": s.c("both")}},
          ("input.customerId", "NOT_FOUND"), "job", audited=False),
]


OP = {w.name: w for w in WRITES}


async def run_write(api: Api, op: Write, variables: dict[str, Any], token: str) -> dict[str, Any]:
    """The mutation's payload; the operation itself must not fail at the GraphQL level."""
    if op.upload is None:
        data = await api.data(op.doc, variables, token=token)
    else:
        r = await upload(api, op.doc, variables, "file", op.upload, token=token)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("errors"), body
        data = body["data"]
    return data[op.name]


# (label, mutation, variables aimed at what only brand b knows, the same aimed at what brand a sees,
#  the field at fault)
LimitedRow = tuple[str, Write, Callable[[Shop], dict[str, Any]], Callable[[Shop], dict[str, Any]], str]


LIMITED_WRITES: list[LimitedRow] = [
    ("upsertCustomer(brandId: b)", OP["upsertCustomer"],
     lambda s: {"input": {"email": "new@example.com", "brandId": s.brand("b")}},
     lambda s: {"input": {"email": "new@example.com", "brandId": s.brand("a")}}, "input.brandId"),
    ("updateCustomer(b-only)", OP["updateCustomer"],
     lambda s: {"input": {"id": s.c("only_b"), "firstName": "Changed"}},
     lambda s: {"input": {"id": s.c("only_a"), "firstName": "Changed"}}, "input.id"),
    ("tagCustomers(b-only)", OP["tagCustomers"],
     lambda s: {"c": [s.c("only_a"), s.c("only_b")], "t": [gid("Tag", s.spare)]},
     lambda s: {"c": [s.c("only_a")], "t": [gid("Tag", s.spare)]}, "input.customerIds[1]"),
    ("untagCustomers(b-only)", OP["untagCustomers"],
     lambda s: {"c": [s.c("only_b")], "t": [gid("Tag", s.vip)]},
     lambda s: {"c": [s.c("both")], "t": [gid("Tag", s.vip)]}, "input.customerIds[0]"),
    ("addCustomerNote(b-only)", OP["addCustomerNote"],
     lambda s: {"input": {"customerId": s.c("only_b"), "body": "x", "brandId": s.brand("a")}},
     lambda s: {"input": {"customerId": s.c("only_a"), "body": "x", "brandId": s.brand("a")}}, "input.customerId"),
    ("addCustomerNote(brandId: b)", OP["addCustomerNote"],
     lambda s: {"input": {"customerId": s.c("both"), "body": "x", "brandId": s.brand("b")}},
     lambda s: {"input": {"customerId": s.c("both"), "body": "x", "brandId": s.brand("a")}}, "input.brandId"),
    ("setConsent(b-only)", OP["setConsent"],
     lambda s: {"input": {"customerId": s.c("only_b"), "brandId": s.brand("a"), "channel": "SMS", "granted": True}},
     lambda s: {"input": {"customerId": s.c("only_a"), "brandId": s.brand("a"), "channel": "SMS", "granted": True}},
     "input.customerId"),
    ("setConsent(brandId: b)", OP["setConsent"],
     lambda s: {"input": {"customerId": s.c("both"), "brandId": s.brand("b"), "channel": "EMAIL", "granted": True}},
     lambda s: {"input": {"customerId": s.c("both"), "brandId": s.brand("a"), "channel": "SMS", "granted": True}},
     "input.brandId"),
    ("recordOrder(brandId: b)", OP["recordOrder"], lambda s: order_input(s, "b"), lambda s: order_input(s, "a"), "input.brandId"),
    ("recordOrder(b-only customer)", OP["recordOrder"],
     lambda s: order_input(s, "a", "only_b"), lambda s: order_input(s, "a", "only_a"), "input.customerId"),
    ("trackEvent(brandId: b)", OP["trackEvent"], lambda s: event_input(s, "b"), lambda s: event_input(s, "a"), "input.brandId"),
    ("trackEvent(b-only customer)", OP["trackEvent"],
     lambda s: event_input(s, "a", "only_b"), lambda s: event_input(s, "a", "only_a"), "input.customerId"),
    ("upsertProduct(brandId: b)", OP["upsertProduct"],
     lambda s: {"input": {"sku": "SKU-NEW", "name": "New", "brandId": s.brand("b")}},
     lambda s: {"input": {"sku": "SKU-NEW", "name": "New", "brandId": s.brand("a")}}, "input.brandId"),
    ("upsertProduct(brand b's SKU)", OP["upsertProduct"],
     lambda s: {"input": {"sku": "SKU-B", "name": "Mine now", "brandId": s.brand("a")}},
     lambda s: {"input": {"sku": "SKU-A", "name": "Renamed", "brandId": s.brand("a")}}, "input.sku"),
    ("importCustomers(brandId: b)", OP["importCustomers"], lambda s: {"brandId": s.brand("b")},
     lambda s: {"brandId": s.brand("a")}, "input.brandId"),
    ("importOrders(brandId: b)", OP["importOrders"], lambda s: {"brandId": s.brand("b")},
     lambda s: {"brandId": s.brand("a")}, "input.brandId"),
    ("exportTimeline(b-only)", OP["exportTimeline"], lambda s: {"input": {"customerId": s.c("only_b")}},
     lambda s: {"input": {"customerId": s.c("both")}}, "input.customerId"),
    ("exportTimeline(brandId: b)", OP["exportTimeline"], lambda s: {"input": {"customerId": s.c("both"), "brandId": s.brand("b")}},
     lambda s: {"input": {"customerId": s.c("both"), "brandId": s.brand("a")}}, "input.brandId"),
]


async def wait_job(api: Api, token: str, job_id: str, within: float = 20) -> dict[str, Any]:
    q = "query($id: ID!) { job(id: $id) { id kind status result resultUrl errorSummary progress { done total } } }"
    deadline = time.monotonic() + within
    while True:
        job = (await api.data(q, {"id": job_id}, token=token))["job"]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            assert job["status"] == "SUCCEEDED", job
            return job
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        await asyncio.sleep(0.05)


SUBSCRIPTIONS = {"jobProgress"}

