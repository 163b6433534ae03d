"""The segment compiler against an independent oracle (tests/support/segment_oracle.py): a seeded shop
written row by row, seeded rule trees over every rule kind and operator, and for each tree the
members of preview, refresh and explain compared with what the oracle computes from the same rows.

The seed is printed (shown with a failure); ``BRANDGRAPH_ORACLE_SEED`` replays one, and
``BRANDGRAPH_ORACLE_TREES`` (default 60) sets how many random trees a run checks: a longer sweep is
``BRANDGRAPH_ORACLE_TREES=2000 pytest tests/segments/test_segment_operators.py``.
"""

from __future__ import annotations

import os
import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from conftest import TenantFixture, create_tenant_fixture
from domain.commerce.models import Order, OrderItem, Product, TrackedEvent
from domain.commerce.service import EventInput, track_event
from domain.customers.models import Consent, Customer, CustomerBrand, CustomerTag, Tag
from domain.customers.service import upsert_customer
from domain.pagination import PageRequest
from domain.platform.db import tenant_session
from domain.profiles.models import ALL_BRANDS, CustomerProfile
from domain.segments import catalogue, compiler, dsl, inspection, refresh, service
from domain.segments.models import SegmentKind, SegmentMembership
from support import segment_oracle as oracle
from support.segments import make_shop

SEED = int(os.environ.get("BRANDGRAPH_ORACLE_SEED") or random.SystemRandom().randrange(2**32))
TREES = int(os.environ.get("BRANDGRAPH_ORACLE_TREES") or 60)
THROUGH_SERVICE = 4  # of them, also through preview, refresh and explain
CUSTOMERS = 40


def _say(what: str) -> str:
    return f"{what} (replay: BRANDGRAPH_ORACLE_SEED={SEED})"


async def _write_world(t: TenantFixture, rnd: random.Random) -> tuple[oracle.World, list, list, list]:
    """A shop of brand a (and some of brand b), every row written as it is stored, and the same
    rows as Python values for the oracle."""
    now = rnd.choice(oracle.CLOCKS)
    a, b = t.brands["a"], t.brands["b"]
    world = oracle.World(now=now, brand=a)
    for name, type_ in oracle.CUSTOM.items():
        await catalogue.declare_custom_attribute(t.owner, name, type_, None)
    statics = [(await service.create_segment(t.owner, a, SegmentKind.STATIC, {"name": f"static {i}"})).id
               for i in range(3)]
    async with tenant_session(t.id) as s:
        tags = [Tag(tenant_id=t.id, id=uuid.uuid4(), name=f"tag {i}") for i in range(3)]
        s.add_all(tags)
        products = []
        for i, sku in enumerate(oracle.SKUS):
            products.append(Product(tenant_id=t.id, id=uuid.uuid4(), sku=sku, name=f"product {i}",
                                    category=rnd.choice(oracle.CATEGORIES), brand_id=rnd.choice([a, b, None])))
        s.add_all(products)
        await s.flush()
        for i, row in enumerate(oracle.plan_customers(rnd, now, CUSTOMERS)):
            cid = uuid.uuid4()
            s.add(Customer(tenant_id=t.id, id=cid, **row))
            world.customers[cid] = row
            brands = rnd.choice([[a], [a], [a, b], [b]])
            for brand in brands:
                s.add(CustomerBrand(tenant_id=t.id, brand_id=brand, customer_id=cid, source="import"))
            if a in brands:
                world.in_brand.add(cid)
            await s.flush()
            for brand in (a, b, ALL_BRANDS):  # other brands' profiles are there for the compiler to ignore
                if rnd.random() < 0.75:
                    profile = oracle.plan_profile(rnd, now)
                    s.add(CustomerProfile(tenant_id=t.id, brand_id=brand, customer_id=cid, **profile))
                    if brand == a:
                        world.profiles[cid] = profile
            for k in range(rnd.choice([0, 0, 1, 2, 4])):
                order = {"id": uuid.uuid4(), "customer_id": cid, "brand_id": rnd.choice([a, a, b]),
                         "status": rnd.choice(["placed", "paid", "fulfilled", "cancelled", "refunded"]),
                         "placed_at": oracle._near(now, rnd), "items": []}
                s.add(Order(tenant_id=t.id, id=order["id"], brand_id=order["brand_id"], customer_id=cid,
                            external_order_id=f"o-{i}-{k}", status=order["status"], total_cents=1000,
                            currency="EUR", placed_at=order["placed_at"]))
                await s.flush()
                for line in range(rnd.randint(1, 3)):
                    product = rnd.choice(products + [None])
                    item = {"sku": product.sku if product is not None else rnd.choice(oracle.SKUS),
                            "category": rnd.choice(oracle.CATEGORIES),
                            "product_brand": product.brand_id if product is not None else None}
                    s.add(OrderItem(tenant_id=t.id, order_id=order["id"], line_no=line + 1,
                                    product_id=product.id if product is not None else None, sku=item["sku"],
                                    category=item["category"], quantity=1, unit_price_cents=1000))
                    order["items"].append(item)
                world.orders.append(order)
            for k in range(rnd.choice([0, 1, 2, 3, 6])):
                event = {"customer_id": cid, "name": rnd.choice(oracle.EVENT_NAMES), "brand_id": rnd.choice([a, b, None]),
                         "occurred_at": oracle._near(now, rnd), "properties": oracle.plan_event_properties(rnd)}
                s.add(TrackedEvent(tenant_id=t.id, id=uuid.uuid4(), idempotency_key=f"e-{i}-{k}",
                                   customer_id=cid, name=event["name"], brand_id=event["brand_id"],
                                   occurred_at=event["occurred_at"], properties=event["properties"]))
                world.events.append(event)
            for tag in tags:
                if rnd.random() < 0.3:
                    s.add(CustomerTag(tenant_id=t.id, customer_id=cid, tag_id=tag.id))
                    world.tags.setdefault(cid, set()).add(tag.id)
            for brand in (a, b):
                for channel in ("email", "sms", "push", "ads"):
                    granted = rnd.choice([None, True, False])
                    if granted is not None:
                        s.add(Consent(tenant_id=t.id, customer_id=cid, brand_id=brand, channel=channel,
                                      granted=granted, source="import"))
                        if granted:
                            world.consents.add((cid, brand, channel))
            for seg in statics:
                state = rnd.choice([None, None, "open", "closed"])
                if state is not None:
                    s.add(SegmentMembership(tenant_id=t.id, segment_id=seg, customer_id=cid,
                                            entered_at=now - timedelta(days=3),
                                            exited_at=now - timedelta(days=1) if state == "closed" else None))
                    if state == "open":
                        world.segments.setdefault(seg, set()).add(cid)
    return world, [x.id for x in tags], statics, [a, b]


@pytest.fixture(scope="module")
async def world() -> tuple[TenantFixture, oracle.World, oracle.RuleMaker, uuid.UUID]:
    print(f"segment oracle seed {SEED}, {TREES} random trees")
    rnd = random.Random(SEED)
    t = await create_tenant_fixture()
    w, tags, statics, brands = await _write_world(t, rnd)
    dynamic = await service.create_segment(t.owner, t.brands["a"], SegmentKind.DYNAMIC, {"name": "under test"},
                                           definition={"match": "all"})
    return t, w, oracle.RuleMaker(rnd, w, tags, statics, brands), dynamic.id


@pytest.fixture
def clock(world, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments read the shop's clock: rows sit on window edges to the second."""
    _, w, _, _ = world
    real = service.scope_for

    def at_the_shops_clock(seg_or_brand, tenant_id):
        scope = real(seg_or_brand, tenant_id)
        scope.now = w.now
        return scope

    monkeypatch.setattr(service, "scope_for", at_the_shops_clock)


async def _preview(t: TenantFixture, definition: dict) -> set[uuid.UUID]:
    p = await inspection.preview(t.owner, t.brands["a"], definition, page=PageRequest(CUSTOMERS + 1))
    members = {c.id for c in p.items}
    assert p.total == len(members)
    return members


async def _refresh(t: TenantFixture, segment_id: uuid.UUID, definition: dict) -> set[uuid.UUID]:
    await service.update_segment(t.owner, segment_id, {}, definition=definition)
    result = await refresh.refresh(t.id, segment_id)
    async with tenant_session(t.id) as s:
        members = set(await s.scalars(select(SegmentMembership.customer_id).where(
            SegmentMembership.tenant_id == t.id, SegmentMembership.segment_id == segment_id,
            SegmentMembership.exited_at.is_(None))))
    assert result.total == len(members)
    return members


async def _explain(t: TenantFixture, w: oracle.World, definition: dict, customer: uuid.UUID) -> None:
    """The explained tree agrees with the oracle on every rule and every group."""
    e = await inspection.explain(t.owner, customer, brand_id=t.brands["a"], definition=definition)
    assert e.in_brand == (customer in w.in_brand), _say(f"in_brand of {customer}")

    def walk(g: dict, node) -> None:
        rules, groups = g.get("rules", []), g.get("groups", [])
        assert len(node.children) == len(rules) + len(groups)
        for r, child in zip(rules, node.children, strict=False):
            expected = e.in_brand and w.rule(r, customer)
            assert child.matched == expected, _say(f"explain {child.path} {r} for {w.customers[customer]}, "
                                                   f"actual {child.actual!r}: oracle says {expected}")
        for sub, child in zip(groups, node.children[len(rules):], strict=True):
            walk(sub, child)
        assert node.matched == (e.in_brand and w.group(g, customer)), _say(f"explain {node.path} of {g}")

    walk(definition, e.root)
    assert e.matched == (customer in w.members(definition))


async def _check(t: TenantFixture, w: oracle.World, segment_id: uuid.UUID, definition: dict) -> set[uuid.UUID]:
    expected = w.members(definition)
    previewed = await _preview(t, definition)
    assert previewed == expected, _diff("preview", w, definition, previewed, expected)
    refreshed = await _refresh(t, segment_id, definition)
    assert refreshed == expected, _diff("refresh", w, definition, refreshed, expected)
    return expected


def _diff(what: str, w: oracle.World, definition: dict, got: set, expected: set) -> str:
    rows = {str(c): w.customers[c] for c in (got ^ expected)}
    return _say(f"{what} of {definition}: extra {sorted(map(str, got - expected))}, "
                f"missing {sorted(map(str, expected - got))}; rows {rows}")


async def _matrix(t: TenantFixture, w: oracle.World, definitions: list[dict]) -> None:
    """Each definition's truth for each customer of the brand, in one query of the compiled rules
    (the columns explain reads), against the oracle's."""
    async with tenant_session(t.id) as s:
        ctx = await service.dsl_context(s, t.id)
        scope = service.scope_for(t.brands["a"], t.id)
        groups = [dsl.parse(d, ctx) for d in definitions]
        cols = [compiler.compile_group(g, scope).label(f"d{i}") for i, g in enumerate(groups)]
        rows = (await s.execute(compiler.base_select(scope, Customer.id, *cols))).all()
    assert {row[0] for row in rows} == w.in_brand
    for row in rows:
        for i, d in enumerate(definitions):
            expected = w.group(d, row[0])
            assert bool(row[i + 1]) == expected, _say(
                f"{d} for customer {w.customers[row[0]]}: compiled {row[i + 1]}, oracle {expected}")


async def test_every_operator_of_every_field_agrees_with_the_oracle(world, clock) -> None:
    """Each field x operator (the catalogue's shapes, every property filter on every property),
    for every customer; then a wide tree through preview, refresh and explain."""
    t, w, maker, segment_id = world
    shapes = maker.all_shapes()
    assert len(shapes) > 200
    singles = [{"match": "all", "rules": [rule]} for rule in shapes]
    await _matrix(t, w, singles)
    distinct = sum(0 < len(w.members(d)) < len(w.in_brand) for d in singles)
    assert distinct > len(shapes) // 3, _say(f"only {distinct} rules tell customers apart")
    start = maker.rnd.randrange(0, len(shapes) - 24)  # one wide tree, 24 rules, through the service
    chunk = shapes[start:start + 24]
    definition = {"match": "any", "rules": chunk[:12], "groups": [{"match": "all", "rules": chunk[12:], "groups": []}]}
    await _check(t, w, segment_id, definition)
    await _explain(t, w, definition, maker.rnd.choice(sorted(w.customers)))


async def test_random_trees_agree_with_the_oracle(world, clock) -> None:
    """Seeded random trees, nested ALL/ANY down to the depth limit, for every customer; the first
    few also through preview, refresh and explain."""
    t, w, maker, segment_id = world
    trees = [maker.deep() if n % 5 == 0 else maker.tree() for n in range(TREES)] + [maker.full(), maker.full()]
    for start in range(0, len(trees), 20):
        await _matrix(t, w, trees[start:start + 20])
    sizes = [len(w.members(d)) for d in trees]
    assert sum(0 < n < len(w.in_brand) for n in sizes) > len(trees) // 5, _say(f"member counts {sizes}")
    for definition in trees[:THROUGH_SERVICE]:
        expected = await _check(t, w, segment_id, definition)
        inside, outside = sorted(expected), sorted(set(w.customers) - expected)
        for customer in maker.rnd.sample(inside, min(1, len(inside))) + maker.rnd.sample(outside, min(1, len(outside))):
            await _explain(t, w, definition, customer)


async def test_a_date_attribute_that_is_no_calendar_date_reads_as_missing(tenant: TenantFixture) -> None:
    """Attribute values are not checked against the declared type: a stored "2026-02-30" under a
    date attribute is a missing date for rules, not a failing query."""
    await catalogue.declare_custom_attribute(tenant.owner, "renewal", "date", None)
    people = {}
    for email, value in (("real@x.test", "2026-02-20"), ("impossible@x.test", "2026-02-30"),
                         ("month13@x.test", "2026-13-01T10:00:00Z"), ("none@x.test", None)):
        people[email], _ = await upsert_customer(tenant.owner, {"email": email, "attributes": {"renewal": value}},
                                                 brand_id=tenant.brands["a"])
    for operator, value, expected in (("exists", None, {"real@x.test"}), ("not_exists", None, set(people) - {"real@x.test"}),
                                      ("greater_than", "2026-01-01", {"real@x.test"}),
                                      ("older_than_days", 0, {"real@x.test"})):
        rule = {"kind": "attribute", "field": "attributes.renewal", "operator": operator, "value": value}
        found = await inspection.preview(tenant.owner, tenant.brands["a"], {"rules": [rule]}, page=PageRequest(10))
        assert {c.email for c in found.items} == expected, operator


async def test_a_boolean_property_filter_matches_json_booleans_only(tenant: TenantFixture) -> None:
    """As a number filter matches JSON numbers only: the text "true" is not the boolean true."""
    people = {}
    for i, gift in enumerate((True, "true", "TRUE", False, None)):
        people[gift], _ = await upsert_customer(tenant.owner, {"email": f"p{i}@x.test"}, brand_id=tenant.brands["a"])
        await track_event(tenant.owner, EventInput(event_id=f"e{i}", name="ordered", customer_id=people[gift].id,
                                                   brand_id=tenant.brands["a"], properties={"gift": gift}))

    async def who(operator: str, value: bool) -> set:
        rule = {"kind": "event", "name": "ordered", "operator": "greater_than_or_equal", "value": 1,
                "properties": [{"property": "gift", "operator": operator, "value": value}]}
        found = await inspection.preview(tenant.owner, tenant.brands["a"], {"rules": [rule]}, page=PageRequest(10))
        return {c.id for c in found.items}

    assert await who("equals", True) == {people[True].id}
    assert await who("equals", False) == {people[False].id}
    assert await who("not_equals", True) == {people[g].id for g in ("true", "TRUE", False, None)}


@pytest.fixture(scope="module")
async def shop() -> tuple[TenantFixture, dict]:
    t = await create_tenant_fixture()
    data = await make_shop(t)
    await catalogue.declare_custom_attribute(t.owner, "plan", "string", "Plan")
    return t, data


@pytest.mark.parametrize(("definition", "expected"), [
    ({"match": "all"}, 5),  # an empty ALL group: everyone of the brand
    ({"match": "any"}, 0),  # an empty ANY group: no one
    ({"match": "any", "rules": [], "groups": [{"match": "all"}]}, 5),
    ({"match": "all", "groups": [{"match": "any"}]}, 0),
    # ANY inside ALL, and ALL inside ANY
    ({"match": "all", "rules": [{"kind": "profile", "field": "total_order_count", "operator": "greater_than_or_equal",
                                 "value": 1}],
      "groups": [{"match": "any", "rules": [
          {"kind": "attribute", "field": "country", "operator": "equals", "value": "fr"},
          {"kind": "profile", "field": "total_order_value", "operator": "greater_than", "value": 400}]}]}, 2),
    ({"match": "any", "rules": [{"kind": "attribute", "field": "email", "operator": "contains", "value": "none"}],
      "groups": [{"match": "all", "rules": [
          {"kind": "attribute", "field": "country", "operator": "equals", "value": "DE"},
          {"kind": "profile", "field": "total_order_value", "operator": "greater_than", "value": 100}]}]}, 3),
])
async def test_group_semantics(shop, definition: dict, expected: int) -> None:
    t, _ = shop
    assert (await inspection.preview(t.owner, t.brands["a"], definition, page=PageRequest(1))).total == expected
