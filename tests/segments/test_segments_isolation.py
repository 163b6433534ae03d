"""Isolation of segments: who may see, preview, explain, change, refresh and follow which segment.

Every segment operation of the schema (queries ``segments``, ``segment``, ``node`` on a Segment,
``segmentFields``, ``previewSegment``, ``explainSegment``, ``customAttributes``; mutations
``createSegment``, ``updateSegment`` (also with ``dryRun``), ``archiveSegment``,
``duplicateSegment``, ``refreshSegment``, ``addSegmentMembers``, ``removeSegmentMembers``,
``declareCustomAttribute``; subscription ``segmentMembershipChanged``) is aimed, in the manner of
``test_isolation.py``, by:

* the owner of ANOTHER tenant (every right in its own tenant) at tenant A's segments, brands,
  customers and tags: it sees none of A, changes none of A (A's segments, memberships, custom
  attributes, jobs and audit trail are compared row by row), cannot use A's brand or customer in a
  preview or an explanation, cannot put A's segment or tag in a definition of its own, and its
  subscription to A's segment gets an error and no event;
* a principal of A limited to brand "a" (marketer user and marketer API key) at brand "b": it
  neither sees nor touches a brand-"b" segment, creates nothing for brand "b", previews nothing of
  it, and a brand-"a" segment never holds a customer known only to brand "b";
* the read-only roles (analyst, agent, analyst API key): they read, preview and explain exactly what
  the owner does, and every segment mutation is FORBIDDEN with nothing written.

Each refusal is paired with a control: the same request by someone who may (A's owner, or the same
limited principal aimed at brand "a"), so that the ids are known to be live and the assertion can
fail. Then: the manual-refresh throttle, and bad definitions through the API (each error names its
path; nothing is written).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture, create_tenant_fixture, gid
from domain.commerce.service import EventInput, OrderInput, record_order, track_event
from domain.customers.service import upsert_customer
from domain.customers.tags import tag_customers
from domain.pagination import PageRequest
from domain.platform.db import tenant_session
from domain.segments import catalogue, inspection, membership, refresh, service
from domain.segments.models import SegmentKind
from support.graphql import errs, form_leaks, perrs
from support.isolation import refused_unchanged, two_tenants
from support.isolation.segments import (
    A_SPEND,
    ADD,
    BRAND_WRITES,
    CREATE,
    DRY_RUN,
    EXPLAIN_DEFINITION,
    EXPLAIN_SEGMENT,
    FIELDS,
    NODE,
    OVERLAP,
    OVERLAP_MANY,
    PREVIEW,
    READS,
    REFRESH,
    SEGMENT,
    SEGMENTS,
    UPDATE,
    WRITES,
    Home,
    Other,
    Read,
    Refs,
    Victims,
    World,
    Write,
    customer_gid,
    edge_ids,
    seg_def,
    segment_gid,
    spend,
)
from support.segments import make_shop, settle
from support.ws import Client, bearer, poll

STORED_SPEND = {"rules": [{"kind": "profile", "field": "total_order_value", "operator": "greater_than_or_equal",
                           "value": A_SPEND}]}


# --- tenant A ----------------------------------------------------------------------------------


async def _make_world() -> World:
    t = await create_tenant_fixture()
    shop = await make_shop(t)
    people = {e.split("@")[0]: c.id for e, c in shop["people"].items()}
    a, b = t.brands["a"], t.brands["b"]
    b_only, _ = await upsert_customer(t.owner, {"email": f"b-only@{t.slug}.test", "country": "IS",
                                                "buyer_type": "bsecretbuyer"}, brand_id=b)
    b_two, _ = await upsert_customer(t.owner, {"email": f"b-two@{t.slug}.test"}, brand_id=b)
    await tag_customers(t.owner, [b_only.id], [shop["vip"].id])
    await track_event(t.owner, EventInput(event_id=f"signup-{b_only.id}", name="signup", customer_id=b_only.id,
                                          occurred_at=datetime.now(UTC) - timedelta(days=1)))  # no brand
    await record_order(t.owner, OrderInput(brand_id=b, external_order_id="b-only-1", total_cents=80_000,
                                           currency="EUR", placed_at=datetime.now(UTC), customer_id=b_only.id))
    secret = f"a_secret_{uuid.uuid4().hex[:8]}"
    await catalogue.declare_custom_attribute(t.owner, secret, "string", None)
    tag = uuid.uuid4().hex[:6]
    names = [f"A spenders {tag}", f"A brand b {tag}", f"A static a {tag}", f"A static b {tag}"]
    seg_a = await service.create_segment(t.owner, a, SegmentKind.DYNAMIC, {"name": names[0]}, definition=STORED_SPEND)
    seg_b = await service.create_segment(t.owner, b, SegmentKind.DYNAMIC, {"name": names[1]}, definition={})
    static_a = await service.create_segment(t.owner, a, SegmentKind.STATIC, {"name": names[2]})
    static_b = await service.create_segment(t.owner, b, SegmentKind.STATIC, {"name": names[3]})
    assert (await refresh.refresh(t.id, seg_a.id)).total == 3
    assert (await refresh.refresh(t.id, seg_b.id)).total == 3  # b_only, b_two, brand-b-only@x.test
    await membership.change_static_members(t.owner, static_a.id, [people["big"]], [])
    await membership.change_static_members(t.owner, static_b.id, [b_only.id], [])
    return World(t=t, people=people, b_only=b_only.id, b_two=b_two.id, vip=shop["vip"].id, secret_attr=secret,
                 seg={"a": seg_a.id, "b": seg_b.id}, static={"a": static_a.id, "b": static_b.id}, names=names)


async def _make_other() -> Other:
    t = await create_tenant_fixture()
    c, _ = await upsert_customer(t.owner, {"email": f"own@{t.slug}.test", "country": "NO"}, brand_id=t.brands["a"])
    seg = await service.create_segment(t.owner, t.brands["a"], SegmentKind.DYNAMIC, {"name": "B everyone"},
                                       definition={})
    static = await service.create_segment(t.owner, t.brands["a"], SegmentKind.STATIC, {"name": "B picked"})
    await refresh.refresh(t.id, seg.id)
    return Other(t=t, customer=c.id, seg=seg.id, static=static.id)


# tenant A, tenant B, and tokens of A's principals (read-only roles; principals limited to brand "a")
world, other, tokens = two_tenants(_make_world, _make_other, (
    "analyst", "agent", "analyst-key", "marketer-a", "marketer-key-a"))


# --- what "changes nothing" compares ------------------------------------------------------------

# segments a refresh job was queued for: when a worker runs in the session (other test modules),
# it may refresh them at any moment, so their refresh bookkeeping and memberships are not compared
REFRESH_QUEUED: set[uuid.UUID] = set()
BOOKKEEPING = ("member_count", "last_refreshed_at", "last_refresh_ms", "stale_since", "updated_at", "inputs",
               "refreshed_seq")


async def state(t: TenantFixture) -> dict[str, Any]:
    """Every row of ``t`` the segment operations may write, and the length of its audit trail;
    after the live evaluations of earlier changes have settled (a worker may run them at any moment)."""
    await settle(t.id)
    async with tenant_session(t.id) as s:
        async def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r) for r in (await s.execute(text(sql), {"t": t.id})).mappings()]

        segments = await rows("SELECT * FROM segments WHERE tenant_id = :t ORDER BY id")
        members = await rows("SELECT segment_id, customer_id, entered_at, exited_at, score FROM segment_memberships"
                             " WHERE tenant_id = :t ORDER BY segment_id, customer_id, entered_at")
        attrs = await rows("SELECT name, type, label FROM custom_attributes WHERE tenant_id = :t ORDER BY name")
        jobs = await rows("SELECT id, kind, params FROM jobs WHERE tenant_id = :t ORDER BY id")
        audit = await rows("SELECT count(*) AS n FROM audit_log WHERE tenant_id = :t")
    for seg in segments:
        if seg["id"] in REFRESH_QUEUED:
            for key in BOOKKEEPING:
                seg.pop(key)
    members = [m for m in members if m["segment_id"] not in REFRESH_QUEUED]
    return {"segments": segments, "members": members, "attributes": attrs, "jobs": jobs, "audit": audit[0]["n"]}


def leaks(body: Any, w: World, variables: dict[str, Any] | None = None) -> list[str]:
    """A's things named in ``body``, except those the caller itself put in the request (an error
    may echo the id it was given)."""
    return form_leaks(body, w.markers(), variables)


# --- the objects a write aims at: fresh for each test -------------------------------------------


async def victims(w: World) -> Victims:
    t, tag = w.t, uuid.uuid4().hex[:6]
    seg, static = {}, {}
    for side in ("a", "b"):
        seg[side] = (await service.create_segment(t.owner, t.brands[side], SegmentKind.DYNAMIC,
                                                  {"name": f"victim {side} {tag}"}, definition=STORED_SPEND)).id
        static[side] = (await service.create_segment(t.owner, t.brands[side], SegmentKind.STATIC,
                                                     {"name": f"victim static {side} {tag}"})).id
    seg2 = (await service.create_segment(t.owner, t.brands["a"], SegmentKind.DYNAMIC, {"name": f"victim 2 {tag}"},
                                         definition={})).id
    member = {"a": w.people["small"], "b": w.b_only}
    for side in ("a", "b"):
        await membership.change_static_members(t.owner, static[side], [member[side]], [])
    return Victims(w=w, seg=seg, seg2=seg2, static=static, member=member,
                   addable={"a": w.people["mid"], "b": w.b_two})


# --- mutations aimed at a brand of A ------------------------------------------------------------


def _refused_payload(p: dict[str, Any]) -> bool:
    """No object and no count in a refused payload."""
    return all(p.get(k) in (None, 0) for k in ("segment", "dryRun", "job", "customAttribute", "entered", "exited",
                                                "memberCount"))


async def _refused_unchanged(api: Api, world: World, op: Write | Cross, variables: dict[str, Any],
                             token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return await refused_unchanged(api, world.t, state, _refused_payload, op, variables, token)


async def control(api: Api, op: Write, variables: dict[str, Any], token: str, t: TenantFixture,
                  aimed_at: uuid.UUID | None) -> None:
    """Someone who may runs the very same mutation, and it does change A."""
    before = await state(t)
    if op.refreshes and aimed_at is not None:
        REFRESH_QUEUED.add(aimed_at)
    mine = (await api.data(op.doc, variables, token=token))[op.op]
    assert mine["errors"] == [], mine
    assert op.done(mine), mine
    after = await state(t)
    assert after["audit"] == before["audit"] + op.audit
    assert len(after["jobs"]) == len(before["jobs"]) + (1 if op.refreshes else 0)
    rows = ("segments", "members", "attributes", "jobs")
    if op.audit == 0:  # a dry run: its answer, and not a row written
        assert after == before
    else:  # the write landed in A's rows
        assert [after[k] for k in rows] != [before[k] for k in rows], op


def _aimed(v: Victims, op: Write, side: str) -> uuid.UUID | None:
    return v.seg[side] if op.refreshes else None


@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_another_tenants_owner_changes_nothing_of_a(api: Api, world: World, other: Other, op: Write) -> None:
    v = await victims(world)
    variables = op.variables(v, "a")
    before_a, before_b = await state(world.t), await state(other.t)
    result = (await api.data(op.doc, variables, token=other.t.owner_token))[op.op]
    if op.field is None:  # nothing of A in the input: it lands in the caller's own tenant, and only there
        assert result["errors"] == [] and op.done(result), result
        after_b = await state(other.t)
        assert after_b["audit"] == before_b["audit"] + 1
        assert len(after_b["attributes"]) == len(before_b["attributes"]) + 1
    else:
        assert perrs(result) == [(op.field, "NOT_FOUND")], result
        assert _refused_payload(result), result
        assert await state(other.t) == before_b
    assert leaks(result, world, variables) == []
    assert await state(world.t) == before_a

    await control(api, op, variables, world.t.owner_token, world.t, _aimed(v, op, "a"))


# --- a caller's own objects holding a reference to A's -------------------------------------------


@dataclass(frozen=True)
class Cross:
    name: str
    op: str
    doc: str
    variables: Callable[[Home, Refs], dict[str, Any]]
    field: str
    code: str
    done: Callable[[dict[str, Any]], bool]
    audit: int = 1
    brand_scoped: bool = True  # tags are tenant-wide: no brand rule for them

    def __str__(self) -> str:
        return self.name


def _ref_segment(refs: Refs) -> dict[str, Any]:
    return {"match": "ALL", "rules": [{"segment": {"operator": "INCLUDES", "segmentIds": [refs.seg]}}]}


CROSS: list[Cross] = [
    Cross("createSegment(definition: segment)", "createSegment", CREATE,
          lambda h, r: {"input": {"brandId": h.brand, "name": "Ref", "definition": _ref_segment(r)}},
          "input.definition", "INVALID", lambda p: p["segment"] is not None),
    Cross("createSegment(definition: tag)", "createSegment", CREATE,
          lambda h, r: {"input": {"brandId": h.brand, "name": "Tagged", "definition": {
              "rules": [{"tag": {"operator": "INCLUDES", "tagIds": [r.tag]}}]}}},
          "input.definition", "INVALID", lambda p: p["segment"] is not None, brand_scoped=False),
    Cross("createSegment(lookalikeSourceId)", "createSegment", CREATE,
          lambda h, r: {"input": {"brandId": h.brand, "name": "Alike", "kind": "LOOKALIKE",
                                  "lookalikeSourceId": r.seg, "lookalikeSize": 3}},
          "input.lookalikeSourceId", "NOT_FOUND", lambda p: p["segment"] is not None),
    Cross("updateSegment(definition: segment)", "updateSegment", UPDATE,
          lambda h, r: {"input": {"id": h.seg, "definition": _ref_segment(r)}},
          "input.definition", "INVALID", lambda p: p["segment"] is not None),
    Cross("updateSegment(dryRun, definition: segment)", "updateSegment", DRY_RUN,
          lambda h, r: {"input": {"id": h.seg, "definition": _ref_segment(r), "dryRun": True}},
          "input.definition", "INVALID", lambda p: p["dryRun"] is not None, audit=0),
    Cross("addSegmentMembers(customer)", "addSegmentMembers", ADD,
          lambda h, r: {"s": h.static, "c": [r.customer]},
          "input.customerIds[0]", "NOT_FOUND", lambda p: p["entered"] == 1),
]


@pytest.mark.parametrize("op", CROSS, ids=str)
async def test_another_tenants_owner_cannot_refer_to_a_in_its_own_segments(
    api: Api, world: World, other: Other, op: Cross
) -> None:
    v = await victims(world)
    variables = op.variables(other.home, v.refs("a"))
    before_a, before_b = await state(world.t), await state(other.t)
    result = (await api.data(op.doc, variables, token=other.t.owner_token))[op.op]
    assert perrs(result) == [(op.field, op.code)], result
    assert _refused_payload(result), result
    assert leaks(result, world, variables) == []
    assert await state(other.t) == before_b
    assert await state(world.t) == before_a

    # control: A's owner refers to the same things from A's own brand "a"
    mine = (await api.data(op.doc, op.variables(v.home, v.refs("a")), token=world.t.owner_token))[op.op]
    assert mine["errors"] == [] and op.done(mine), mine
    assert (await state(world.t))["audit"] == before_a["audit"] + op.audit


# --- queries ----------------------------------------------------------------------------------


async def all_segments(api: Api, token: str, brand: str | None = None) -> set[str]:
    """Every segment id the list gives ``token``, page after page."""
    out: set[str] = set()
    after = None
    while True:
        page = (await api.data(SEGMENTS, {"b": brand, "after": after}, token=token))["segments"]
        out |= set(edge_ids(page))
        if not page["pageInfo"]["hasNextPage"]:
            return out
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("read", READS, ids=str)
async def test_another_tenants_owner_reads_nothing_of_a(api: Api, world: World, other: Other, read: Read) -> None:
    mine = await api.data(read.doc, read.own_vars(world, other), token=world.t.owner_token)
    read.own(mine, world)  # the legitimate owner does see it: the ids are live
    variables = (read.foreign_vars or read.own_vars)(world, other)
    before = await state(world.t)
    body = await api.gql(read.doc, variables, token=other.t.owner_token)
    read.foreign(body, world, other)
    assert leaks(body, world, variables) == []
    assert await state(world.t) == before


# --- the subscription ----------------------------------------------------------------------------

MEMBERSHIP = "subscription($id: ID!) { segmentMembershipChanged(segmentId: $id) { segmentId entered exited total } }"
CHANGED = "segmentMembershipChanged"


async def follow(api: Api, token: str, segment: str) -> Client:
    """One segmentMembershipChanged subscription (operation "1")."""
    client = await Client.open(api, bearer(token))
    await client.subscribe(MEMBERSHIP, {"id": segment})
    return client


@pytest.mark.parametrize("who", ["other-tenant-owner", "marketer-limited-to-a"])
async def test_membership_changes_reach_only_who_may_see_the_segment(
    api: Api, world: World, other: Other, tokens: dict[str, str], who: str
) -> None:
    side = "a" if who == "other-tenant-owner" else "b"
    token = other.t.owner_token if who == "other-tenant-owner" else tokens["marketer-a"]
    t = world.t
    seg = await service.create_segment(t.owner, t.brands[side], SegmentKind.DYNAMIC, {"name": f"followed {side}"},
                                       definition=STORED_SPEND if side == "a" else {})
    seg_gid = gid("Segment", seg.id)
    own = await follow(api, t.owner_token, seg_gid)
    intruder = await follow(api, token, seg_gid)
    try:
        assert await poll(intruder.ended), intruder.messages
        assert intruder.data(CHANGED) == [], intruder.messages
        assert [(e.get("extensions") or {}).get("code") for e in intruder.errors()] == ["NOT_FOUND"], intruder.messages

        # control: A's owner does get the changes; refresh until the subscription is live
        for _ in range(40):
            await refresh.refresh(t.id, seg.id)
            if await poll(lambda: bool(own.data(CHANGED)), 0.25):
                break
        assert own.data(CHANGED), own.messages
        assert own.data(CHANGED)[0]["segmentId"] == seg_gid and own.data(CHANGED)[0]["total"] == 3, own.data(CHANGED)
        await asyncio.sleep(0.3)
        assert intruder.data(CHANGED) == [], intruder.messages
        assert leaks(intruder.messages, world, {"id": seg_gid}) == []
    finally:
        await own.close()
        await intruder.close()


# --- the same tenant, limited to brand "a" -----------------------------------------------------

LIMITED = ["marketer-a", "marketer-key-a"]


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize("op", BRAND_WRITES, ids=str)
async def test_brand_limited_principal_cannot_touch_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, op: Write
) -> None:
    v = await victims(world)
    token = tokens[kind]
    variables = op.variables(v, "b")
    result, _ = await _refused_unchanged(api, world, op, variables, token)
    assert perrs(result) == [(op.field, "NOT_FOUND")], result
    # control: the same principal, the same mutation on brand "a"
    await control(api, op, op.variables(v, "a"), token, world.t, _aimed(v, op, "a"))


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize("op", [c for c in CROSS if c.brand_scoped], ids=str)
async def test_brand_limited_principal_cannot_refer_to_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, op: Cross
) -> None:
    v = await victims(world)
    token = tokens[kind]
    variables = op.variables(v.home, v.refs("b"))
    result, before = await _refused_unchanged(api, world, op, variables, token)
    assert perrs(result) == [(op.field, op.code)], result
    mine = (await api.data(op.doc, op.variables(v.home, v.refs("a")), token=token))[op.op]
    assert mine["errors"] == [] and op.done(mine), mine
    assert (await state(world.t))["audit"] == before["audit"] + op.audit


def _b_markers(w: World) -> list[tuple[str, ...]]:
    """What only brand "b" knows, each in the forms it may take in an answer."""
    return [(w.brand("b"), str(w.t.brands["b"]), "brand-b", "Brand B"),
            (segment_gid(w, "b"), str(w.seg["b"]), w.names[1]), (gid("Segment", w.static["b"]), str(w.static["b"]), w.names[3]),
            (gid("Customer", w.b_only), str(w.b_only), "bsecretbuyer"), (gid("Customer", w.b_two), str(w.b_two)),
            ("brand-b-only@x.test",)]


def b_leaks(body: Any, w: World, variables: dict[str, Any]) -> list[str]:
    """Brand b's things named in ``body``, except those the caller put in the request."""
    return form_leaks(body, _b_markers(w), variables)


# (name, doc, variables aimed at brand b, variables aimed at brand a, (code, field) refused with)
LIMITED_READS: list[tuple[str, str, Callable[[World], dict[str, Any]], Callable[[World], dict[str, Any]],
                          tuple[str, str] | None]] = [
    ("segments(brandId)", SEGMENTS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")},
     ("NOT_FOUND", "brandId")),
    ("segment", SEGMENT, lambda w: {"id": segment_gid(w, "b")}, lambda w: {"id": segment_gid(w, "a")}, None),
    ("segment(static)", SEGMENT, lambda w: {"id": gid("Segment", w.static["b"])},
     lambda w: {"id": gid("Segment", w.static["a"])}, None),
    ("node(Segment)", NODE, lambda w: {"id": segment_gid(w, "b")}, lambda w: {"id": segment_gid(w, "a")}, None),
    ("segment.overlap", OVERLAP, lambda w: {"id": segment_gid(w, "a"), "o": segment_gid(w, "b")},
     lambda w: {"id": segment_gid(w, "a"), "o": gid("Segment", w.static["a"])}, ("NOT_FOUND", "otherSegmentId")),
    ("segmentFields", FIELDS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, ("NOT_FOUND", "brandId")),
    ("segmentOverlap", OVERLAP_MANY, lambda w: {"ids": [segment_gid(w, "a"), segment_gid(w, "b")]},
     lambda w: {"ids": [segment_gid(w, "a"), gid("Segment", w.static["a"])]}, ("NOT_FOUND", "segmentIds[1]")),
    ("previewSegment", PREVIEW, lambda w: {"b": w.brand("b"), "d": {"match": "ALL"}},
     lambda w: {"b": w.brand("a"), "d": {"match": "ALL"}}, ("NOT_FOUND", "brandId")),
    ("previewSegment(brand b segment)", PREVIEW, lambda w: {"b": w.brand("a"), "d": seg_def(w, "b")},
     lambda w: {"b": w.brand("a"), "d": seg_def(w, "a")}, ("INVALID", "definition")),
    ("explainSegment(brand b segment)", EXPLAIN_SEGMENT, lambda w: {"s": segment_gid(w, "b"), "c": customer_gid(w)},
     lambda w: {"s": segment_gid(w, "a"), "c": customer_gid(w)}, ("NOT_FOUND", "segmentId")),
    ("explainSegment(brand b customer)", EXPLAIN_SEGMENT, lambda w: {"s": segment_gid(w, "a"), "c": gid("Customer", w.b_only)},
     lambda w: {"s": segment_gid(w, "a"), "c": customer_gid(w)}, ("NOT_FOUND", "customerId")),
    ("explainSegment(brand b)", EXPLAIN_DEFINITION,
     lambda w: {"b": w.brand("b"), "d": {"match": "ALL"}, "c": gid("Customer", w.b_only)},
     lambda w: {"b": w.brand("a"), "d": {"match": "ALL"}, "c": customer_gid(w)}, ("NOT_FOUND", "brandId")),
]


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize(("name", "doc", "on_b", "on_a", "refusal"), LIMITED_READS, ids=[r[0] for r in LIMITED_READS])
async def test_brand_limited_principal_sees_nothing_of_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, name: str, doc: str,
    on_b: Callable[[World], dict[str, Any]], on_a: Callable[[World], dict[str, Any]], refusal: tuple[str, str] | None,
) -> None:
    token = tokens[kind]
    if refusal is None or refusal[0] == "NOT_FOUND":  # the brand b ids are live: the owner gets an answer
        owner = await api.data(doc, on_b(world), token=world.t.owner_token)
        assert all(value is not None for value in owner.values()), owner
    control = await api.data(doc, on_a(world), token=token)  # and the principal does read brand a
    assert all(value is not None for value in control.values()), control

    body = await api.gql(doc, on_b(world), token=token)
    if refusal is None:
        assert not body.get("errors") and all(value is None for value in body["data"].values()), body
    else:
        assert errs(body) == [refusal], body
    assert b_leaks(body, world, on_b(world)) == [], body


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_limited_principal_lists_only_brand_a_segments(
    api: Api, world: World, tokens: dict[str, str], kind: str
) -> None:
    owner = await all_segments(api, world.t.owner_token)
    assert {segment_gid(world, "a"), segment_gid(world, "b")} <= owner
    mine = await all_segments(api, tokens[kind])
    async with tenant_session(world.t.id) as s:
        brand_a = {gid("Segment", r[0]) for r in (await s.execute(text(
            "SELECT id FROM segments WHERE tenant_id = :t AND brand_id = :b"),
            {"t": world.t.id, "b": world.t.brands["a"]})).all()}
    assert {segment_gid(world, "a"), gid("Segment", world.static["a"])} <= mine
    assert mine == owner & brand_a
    assert await all_segments(api, tokens[kind], world.brand("a")) == brand_a


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_limited_field_catalogue_suggests_nothing_only_brand_b_knows(
    api: Api, world: World, tokens: dict[str, str], kind: str
) -> None:
    """Suggested values come from the brand's data: a country, a buyer type or an event name
    (a brand-less event) found only among brand "b"'s customers is not offered to a principal
    limited to brand "a"."""

    def suggestions(d: dict[str, Any], field: str) -> list[str]:
        return next(f["suggestions"] for f in d["segmentFields"] if f["field"] == field)

    only_b = {"country": "IS", "buyer_type": "bsecretbuyer", "count": "signup"}  # "count": the event names
    owner_b = await api.data(FIELDS, {"b": world.brand("b")}, token=world.t.owner_token)
    assert all(value in suggestions(owner_b, field) for field, value in only_b.items()), owner_b
    mine = await api.data(FIELDS, {"b": world.brand("a")}, token=tokens[kind])
    assert {"DE", "FR"} <= set(suggestions(mine, "country"))  # brand a's own customers' countries
    assert "product_viewed" in suggestions(mine, "count")  # brand a's own events
    leaked = {field: value for field, value in only_b.items() if value in suggestions(mine, field)}
    assert leaked == {}, leaked


async def test_brand_a_segment_never_holds_a_customer_known_only_to_brand_b(world: World) -> None:
    """b_only matches every rule below (country, VIP tag, a brand-less event, a big brand-b
    order); as a segment of brand "b" it is a member, as a segment of brand "a" never."""
    t, w = world.t, world
    lure = {"match": "any", "rules": [
        {"kind": "attribute", "field": "country", "operator": "in", "value": ["IS"]},
        {"kind": "tag", "operator": "includes", "value": [str(w.vip)]},
        {"kind": "event", "name": "signup", "operator": "greater_than_or_equal", "value": 1},
        {"kind": "profile", "field": "total_order_value", "operator": "greater_than_or_equal", "value": 700},
        {"kind": "attribute", "field": "buyer_type", "operator": "equals", "value": "bsecretbuyer"},
    ]}
    brand_a = set(w.people.values())

    async def members(seg_id: uuid.UUID) -> set[uuid.UUID]:
        async with tenant_session(t.id) as s:
            return set((await s.scalars(text(
                "SELECT customer_id FROM segment_memberships WHERE tenant_id = :t AND segment_id = :s"
                " AND exited_at IS NULL"), {"t": t.id, "s": seg_id})).all())

    made = {}
    for side in ("a", "b"):
        for name, definition in (("lure", lure), ("everyone", {})):
            seg = await service.create_segment(t.owner, t.brands[side], SegmentKind.DYNAMIC,
                                               {"name": f"{name} {side}"}, definition=definition)
            result = await refresh.refresh(t.id, seg.id)
            made[side, name] = (await members(seg.id), result.total)
    assert w.b_only in made["b", "lure"][0]  # control: the rules do match it
    assert made["a", "lure"][0] == {w.people["big"], w.people["again"]}  # VIP in brand a
    assert made["a", "everyone"][0] == brand_a
    assert made["a", "lure"][1] == 2 and made["a", "everyone"][1] == 5
    preview = await inspection.preview(t.owner, t.brands["a"], lure, page=PageRequest(50))
    assert preview.total == 2 and {c.id for c in preview.items} == made["a", "lure"][0]

    # a lookalike of brand a (ranking brand a's customers only), even asked for more than there are
    look = await service.create_segment(t.owner, t.brands["a"], SegmentKind.LOOKALIKE, {"name": "like big"},
                                        lookalike_source_id=w.static["a"], lookalike_size=100)
    await refresh.refresh(t.id, look.id)
    alike = await members(look.id)
    assert alike and alike <= brand_a - {w.people["big"]}
    assert w.b_only not in alike and w.b_two not in alike
    # a static segment of brand a refuses a brand-b-only customer
    from domain.errors import DomainError

    with pytest.raises(DomainError) as refused:
        await membership.change_static_members(t.owner, w.static["a"], [w.b_only], [])
    assert (refused.value.code.value, refused.value.field) == ("NOT_FOUND", "customerIds[0]")
    assert await members(w.static["a"]) == {w.people["big"]}


# --- the read-only roles ---------------------------------------------------------------------

READ_ONLY = ["analyst", "agent", "analyst-key"]
EVERYTHING = """query($a: ID!, $s: ID!, $c: ID!, $d: SegmentDefinitionInput!, $st: ID!) {
  segments(brandId: $a, first: 100) { edges { node { id name memberCount } } }
  segment(id: $s) { id name definition memberCount
    members(first: 50) { edges { node { customer { id } } } }
    history(first: 50) { edges { node { change customer { id } } } }
    overlap(otherSegmentId: $st) { both onlyThis onlyOther } }
  node(id: $st) { id ... on Segment { name memberCount } }
  segmentFields(brandId: $a) { kind field operators suggestions }
  previewSegment(brandId: $a, definition: $d) { totalCount edges { node { id } } }
  explainSegment(segmentId: $s, customerId: $c) { matched inBrand root { matched children { path matched actual } } }
  explainDefinition: explainSegment(brandId: $a, definition: $d, customerId: $c) { matched }
  customAttributes { name type }
}"""


@pytest.mark.parametrize("kind", READ_ONLY)
async def test_read_only_roles_read_preview_and_explain_what_the_owner_does(
    api: Api, world: World, tokens: dict[str, str], kind: str
) -> None:
    variables = {"a": world.brand("a"), "s": segment_gid(world), "c": customer_gid(world, "mid"), "d": spend(250),
                 "st": gid("Segment", world.static["a"])}
    owner = await api.data(EVERYTHING, variables, token=world.t.owner_token)
    assert owner["segment"]["memberCount"] == 3 and owner["previewSegment"]["totalCount"] == 2
    assert owner["explainSegment"]["matched"] is True and owner["explainDefinition"]["matched"] is False
    before = await state(world.t)
    assert await api.data(EVERYTHING, variables, token=tokens[kind]) == owner
    assert await state(world.t) == before


@pytest.mark.parametrize("kind", READ_ONLY)
@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_read_only_roles_change_no_segment(
    api: Api, world: World, tokens: dict[str, str], kind: str, op: Write
) -> None:
    v = await victims(world)
    variables = op.variables(v, "a")
    result, _ = await _refused_unchanged(api, world, op, variables, tokens[kind])
    assert [e["code"] for e in result["errors"]] == ["FORBIDDEN"], result
    await control(api, op, variables, world.t.owner_token, world.t, _aimed(v, op, "a"))


# --- the manual refresh throttle ------------------------------------------------------------------


async def test_a_second_manual_refresh_within_a_minute_says_when_the_next_is_allowed(
    api: Api, world: World, tokens: dict[str, str]
) -> None:
    t = world.t
    seg = await service.create_segment(t.owner, t.brands["a"], SegmentKind.DYNAMIC, {"name": "throttled"},
                                       definition=STORED_SPEND)
    spare = await service.create_segment(t.owner, t.brands["a"], SegmentKind.DYNAMIC, {"name": "not throttled"},
                                         definition=STORED_SPEND)
    REFRESH_QUEUED.update({seg.id, spare.id})
    started = datetime.now(UTC)
    first = (await api.data(REFRESH, {"id": gid("Segment", seg.id)}, token=t.owner_token))["refreshSegment"]
    finished = datetime.now(UTC)
    assert first["errors"] == [] and first["job"]["kind"] == "REFRESH_SEGMENT", first
    before = await state(t)

    # within the minute, whoever asks (the owner again, a marketer of the brand): refused
    for token in (t.owner_token, tokens["marketer-a"]):
        again = (await api.data(REFRESH, {"id": gid("Segment", seg.id)}, token=token))["refreshSegment"]
        assert again["job"] is None, again
        assert perrs(again) == [("input.id", "LIMIT_EXCEEDED")], again
        found = re.search(r"next manual refresh is allowed at (\S+)$", again["errors"][0]["message"])
        assert found, again
        allowed = datetime.fromisoformat(found[1])
        assert allowed.tzinfo is not None, found[1]
        assert started.replace(microsecond=0) + timedelta(seconds=60) <= allowed <= finished + timedelta(seconds=60)
    assert await state(t) == before  # no second job, nothing else either

    # control: the throttle is per segment
    ok = (await api.data(REFRESH, {"id": gid("Segment", spare.id)}, token=t.owner_token))["refreshSegment"]
    assert ok["errors"] == [] and ok["job"] is not None, ok


# --- bad definitions through the API ------------------------------------------------------------


def _nested(levels: int) -> dict[str, Any]:
    group: dict[str, Any] = {"match": "ALL", "rules": [{"attribute": {"field": "city", "operator": "EXISTS"}}]}
    for _ in range(levels - 1):
        group = {"match": "ANY", "groups": [group]}
    return group


@dataclass(frozen=True)
class Bad:
    """A definition refused, the path its error names (both forms: the stored rule's, or the
    GraphQL input's with the rule kind), the code, and which operations it is sent through."""

    name: str
    definition: Callable[[Victims], dict[str, Any]]
    paths: tuple[str, ...]  # relative to the definition; "" for the definition as a whole
    code: str
    ops: tuple[str, ...] = ("create", "update", "dry_run")

    def __str__(self) -> str:
        return self.name


BAD: list[Bad] = [
    Bad("operator-not-for-field",
        lambda v: {"rules": [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "CONTAINS", "value": 1}}]},
        ("rules[0].operator", "rules[0].profile.operator"), "INVALID"),
    Bad("value-of-wrong-type",
        lambda v: {"groups": [{"match": "ANY", "rules": [
            {"profile": {"field": "ENGAGEMENT_SCORE", "operator": "GREATER_THAN", "value": "high"}}]}]},
        ("groups[0].rules[0].value", "groups[0].rules[0].profile.value"), "INVALID"),
    Bad("six-levels", lambda v: _nested(6),
        ("groups[0].groups[0].groups[0].groups[0].groups[0]",), "LIMIT_EXCEEDED"),
    Bad("51-rules", lambda v: {"rules": [{"attribute": {"field": "city", "operator": "EXISTS"}}] * 51},
        ("rules",), "LIMIT_EXCEEDED"),
    Bad("undeclared-custom-attribute",
        lambda v: {"rules": [{"attribute": {"field": "attributes.never_declared", "operator": "EQUALS", "value": "x"}}]},
        ("rules[0].field", "rules[0].attribute.field"), "INVALID"),
    Bad("unknown-tag", lambda v: {"rules": [{"tag": {"operator": "INCLUDES", "tagIds": [gid("Tag", uuid.uuid4())]}}]},
        ("",), "INVALID"),
    Bad("segment-of-another-brand", lambda v: {"rules": [{"segment": {"operator": "INCLUDES",
                                                                      "segmentIds": [v.seg_gid("b")]}}]},
        ("",), "INVALID"),
    Bad("self-reference", lambda v: {"rules": [{"segment": {"operator": "INCLUDES", "segmentIds": [v.seg_gid("a")]}}]},
        ("",), "INVALID", ops=("update", "dry_run")),
    Bad("two-segment-cycle", lambda v: {"rules": [{"segment": {"operator": "NOT_IN", "segmentIds": [
        gid("Segment", v.seg2)]}}]}, ("",), "INVALID", ops=("update", "dry_run")),
]


def _full(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if path else prefix


@pytest.mark.parametrize("bad", BAD, ids=str)
async def test_bad_definition_is_refused_naming_its_path_and_nothing_is_written(
    api: Api, world: World, bad: Bad
) -> None:
    v = await victims(world)
    t = world.t
    if bad.name == "two-segment-cycle":  # seg2 refers to seg["a"]; seg["a"] may not refer back to seg2
        await service.update_segment(t.owner, v.seg2, {}, definition={
            "rules": [{"kind": "segment", "operator": "includes", "value": [str(v.seg["a"])]}]})
    definition = bad.definition(v)
    calls = {
        "create": (CREATE, "createSegment", {"input": {"brandId": v.brand("a"), "name": "Bad", "definition": definition}}),
        "update": (UPDATE, "updateSegment", {"input": {"id": v.seg_gid("a"), "name": "Bad", "definition": definition}}),
        "dry_run": (DRY_RUN, "updateSegment", {"input": {"id": v.seg_gid("a"), "definition": definition, "dryRun": True}}),
    }
    got = {}
    for op in bad.ops:
        doc, name, variables = calls[op]
        before = await state(t)
        result = (await api.data(doc, variables, token=t.owner_token))[name]
        assert _refused_payload(result), (op, result)
        assert await state(t) == before, op  # nothing written
        got[op] = perrs(result)
    # control: the same calls with a good definition go through
    if bad.name in ("self-reference", "two-segment-cycle"):
        ok = (await api.data(UPDATE, {"input": {"id": v.seg_gid("a"), "definition": spend(10)}},
                             token=t.owner_token))["updateSegment"]
    else:
        ok = (await api.data(CREATE, {"input": {"brandId": v.brand("a"), "name": "Good", "definition": spend(10)}},
                             token=t.owner_token))["createSegment"]
    assert ok["errors"] == [] and ok["segment"] is not None, ok

    # one error, its code, and the full path of the input at fault
    expected = {_full("input.definition", p) for p in bad.paths}
    assert all(len(e) == 1 and e[0][1] == bad.code for e in got.values()), got
    assert all(e[0][0] in expected for e in got.values()), (got, expected)


@pytest.mark.parametrize("bad", [b for b in BAD if "create" in b.ops], ids=str)
async def test_bad_definition_in_a_preview_names_its_path(api: Api, world: World, bad: Bad) -> None:
    v = await victims(world)
    before = await state(world.t)
    body = await api.gql(PREVIEW, {"b": v.brand("a"), "d": bad.definition(v)}, token=world.t.owner_token)
    assert body["data"] is None, body
    assert [code for code, _ in errs(body)] == [bad.code], body
    assert errs(body)[0][1] in {_full("definition", p) for p in bad.paths}, body
    assert await state(world.t) == before
