"""The rows of the segment isolation tests: tenant A (:class:`World`), tenant B (:class:`Other`), the
fresh segments a write aims at (:class:`Victims`), every segment query (:data:`READS`) and
mutation (:data:`WRITES`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conftest import TenantFixture, gid
from support.graphql import check, errs

ERRORS = "errors { field code message }"


A_SPEND = 100  # spenders(100) in brand a: big (500), again (300), mid (200)


def spend(value: float) -> dict[str, Any]:
    """A definition input (GraphQL shape): total order value of at least ``value``."""
    return {"match": "ALL", "rules": [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL",
                                                   "value": value}}]}


@dataclass
class World:
    """Tenant A: the shop of ``support.segments.make_shop`` in brand "a" (big, mid, small, none, again; VIP
    tag on big and again), plus customers known only to brand "b" and segments of both brands."""

    t: TenantFixture
    people: dict[str, uuid.UUID]  # "big", "mid", "small", "none", "again": brand a only
    b_only: uuid.UUID  # brand b only: country IS, buyer type "bsecretbuyer", VIP, a brand-less "signup"
    b_two: uuid.UUID  # brand b only
    vip: uuid.UUID
    secret_attr: str  # a custom attribute declared in A
    seg: dict[str, uuid.UUID]  # dynamic, refreshed: "a" spenders(100) (3 members), "b" everyone of b
    static: dict[str, uuid.UUID]  # static: "a" holds big, "b" holds b_only
    names: list[str]  # A's segment names

    def brand(self, side: str) -> str:
        return self.t.brand_gid(side)

    def markers(self) -> list[tuple[str, ...]]:
        """Each thing of A as the forms it may take in an answer (raw uuid, global id, name)."""
        out: list[tuple[str, ...]] = [(str(self.t.id), gid("Tenant", self.t.id), self.t.slug)]
        out += [(str(b), gid("Brand", b)) for b in self.t.brands.values()]
        out += [(str(c), gid("Customer", c)) for c in [*self.people.values(), self.b_only, self.b_two]]
        out += [(str(s), gid("Segment", s)) for s in [*self.seg.values(), *self.static.values()]]
        out += [(str(self.vip), gid("Tag", self.vip)), (self.secret_attr,), ("bsecretbuyer",)]
        out += [("big@x.test",), ("again@x.test",), ("brand-b-only@x.test",)]
        return out + [(n,) for n in self.names]


@dataclass
class Other:
    """Tenant B, with a customer and segments of its own (in its brand "a")."""

    t: TenantFixture
    customer: uuid.UUID
    seg: uuid.UUID  # dynamic, everyone
    static: uuid.UUID

    @property
    def home(self) -> Home:
        return Home(self.t.brand_gid("a"), gid("Segment", self.seg), gid("Segment", self.static))


@dataclass
class Victims:
    """Fresh segments of A for one test: a write aimed at them cannot disturb other tests."""

    w: World
    seg: dict[str, uuid.UUID]  # dynamic spenders(100) of each brand
    seg2: uuid.UUID  # another dynamic segment of brand a
    static: dict[str, uuid.UUID]  # static: "a" holds small, "b" holds b_only
    member: dict[str, uuid.UUID]  # the static segment's member
    addable: dict[str, uuid.UUID]  # a customer of the brand not in its static segment

    def brand(self, side: str) -> str:
        return self.w.brand(side)

    def seg_gid(self, side: str) -> str:
        return gid("Segment", self.seg[side])

    def static_gid(self, side: str) -> str:
        return gid("Segment", self.static[side])

    @property
    def home(self) -> Home:
        """A's own brand "a" with a dynamic and a static segment, as a caller's own objects."""
        return Home(self.w.brand("a"), gid("Segment", self.seg2), self.static_gid("a"))

    def refs(self, side: str) -> Refs:
        return Refs(seg=self.seg_gid(side), tag=gid("Tag", self.w.vip), customer=gid("Customer", self.addable[side]))


def _m(name: str, params: str, args: str, result: str) -> str:
    return f"mutation({params}) {{ {name}({args}) {{ {result} {ERRORS} }} }}"


CREATE = _m("createSegment", "$input: CreateSegmentInput!", "input: $input", "segment { id name brand { id } }")


UPDATE = _m("updateSegment", "$input: UpdateSegmentInput!", "input: $input",
            "segment { id name definition } dryRun { countAfter }")


DRY_RUN = _m("updateSegment", "$input: UpdateSegmentInput!", "input: $input",
             "segment { id } dryRun { countBefore countAfter entering exiting }")


ARCHIVE = _m("archiveSegment", "$id: ID!", "input: {id: $id}", "segment { id archivedAt }")


DUPLICATE = _m("duplicateSegment", "$id: ID!", 'input: {id: $id, name: "Copied"}', "segment { id name }")


REFRESH = _m("refreshSegment", "$id: ID!", "input: {id: $id}", "job { id kind }")


ADD = _m("addSegmentMembers", "$s: ID!, $c: [ID!]!", "input: {segmentId: $s, customerIds: $c}", "entered exited memberCount")


REMOVE = _m("removeSegmentMembers", "$s: ID!, $c: [ID!]!", "input: {segmentId: $s, customerIds: $c}",
            "entered exited memberCount")


DECLARE = _m("declareCustomAttribute", "$input: DeclareCustomAttributeInput!", "input: $input",
             "customAttribute { name type }")


@dataclass(frozen=True)
class Write:
    """A mutation aimed at an object of A's brand ``side``.

    ``field``: where another tenant's owner (and a principal without the brand) gets NOT_FOUND;
    None when the mutation takes no object of A (it then lands in the caller's own tenant).
    ``done``: the control's payload shows the change; ``audit``: entries the control adds.
    """

    name: str
    op: str
    doc: str
    variables: Callable[[Victims, str], dict[str, Any]]
    field: str | None
    done: Callable[[dict[str, Any]], bool]
    audit: int = 1
    refreshes: bool = False
    brand_scoped: bool = True

    def __str__(self) -> str:
        return self.name


WRITES: list[Write] = [
    Write("createSegment", "createSegment", CREATE,
          lambda v, side: {"input": {"brandId": v.brand(side), "name": "New", "definition": spend(50)}},
          "input.brandId", lambda p: p["segment"] is not None),
    Write("createSegment(lookalike)", "createSegment", CREATE,
          lambda v, side: {"input": {"brandId": v.brand(side), "name": "Alike", "kind": "LOOKALIKE",
                                     "lookalikeSourceId": v.seg_gid(side), "lookalikeSize": 2}},
          "input.brandId", lambda p: p["segment"] is not None),
    Write("updateSegment", "updateSegment", UPDATE,
          lambda v, side: {"input": {"id": v.seg_gid(side), "name": "Renamed", "definition": spend(250)}},
          "input.id", lambda p: p["segment"] is not None and p["segment"]["name"] == "Renamed"),
    Write("updateSegment(dryRun)", "updateSegment", DRY_RUN,
          lambda v, side: {"input": {"id": v.seg_gid(side), "definition": spend(250), "dryRun": True}},
          "input.id", lambda p: p["dryRun"] is not None and p["segment"] is None, audit=0),
    Write("archiveSegment", "archiveSegment", ARCHIVE, lambda v, side: {"id": v.seg_gid(side)},
          "input.id", lambda p: p["segment"] is not None and p["segment"]["archivedAt"] is not None),
    Write("duplicateSegment", "duplicateSegment", DUPLICATE, lambda v, side: {"id": v.seg_gid(side)},
          "input.id", lambda p: p["segment"] is not None and p["segment"]["name"] == "Copied"),
    Write("refreshSegment", "refreshSegment", REFRESH, lambda v, side: {"id": v.seg_gid(side)},
          "input.id", lambda p: p["job"] is not None and p["job"]["kind"] == "REFRESH_SEGMENT", audit=1, refreshes=True),
    Write("addSegmentMembers", "addSegmentMembers", ADD,
          lambda v, side: {"s": v.static_gid(side), "c": [gid("Customer", v.addable[side])]},
          "input.segmentId", lambda p: (p["entered"], p["memberCount"]) == (1, 2)),
    Write("removeSegmentMembers", "removeSegmentMembers", REMOVE,
          lambda v, side: {"s": v.static_gid(side), "c": [gid("Customer", v.member[side])]},
          "input.segmentId", lambda p: (p["exited"], p["memberCount"]) == (1, 0)),
    Write("declareCustomAttribute", "declareCustomAttribute", DECLARE,
          lambda v, side: {"input": {"name": f"declared_{v.seg[side].hex[:8]}", "type": "NUMBER"}},
          None, lambda p: p["customAttribute"] is not None, brand_scoped=False),
]


@dataclass(frozen=True)
class Home:
    """The caller's own brand, dynamic segment and static segment."""

    brand: str
    seg: str
    static: str


@dataclass(frozen=True)
class Refs:
    """What the caller tries to refer to: a segment, a tag, a customer."""

    seg: str
    tag: str
    customer: str


@dataclass(frozen=True)
class Read:
    """A query: A's owner's request and what it sees (``own``); the other tenant's owner's request
    (the same, or aimed from its own brand at A's things) and what it gets instead (``foreign``)."""

    name: str
    doc: str
    own_vars: Callable[[World, Other], dict[str, Any]]
    own: Callable[[dict[str, Any], World], None]
    foreign_vars: Callable[[World, Other], dict[str, Any]] | None
    foreign: Callable[[dict[str, Any], World, Other], None]

    def __str__(self) -> str:
        return self.name


def edge_ids(conn: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in conn["edges"]]


def _brands_of(d: dict[str, Any]) -> set[str]:
    return {e["node"]["brand"]["id"] for e in d["segments"]["edges"]}


def _refused(code: str, field: str, key: str) -> Callable[[dict[str, Any], World, Other], None]:
    def check(body: dict[str, Any], w: World, b: Other) -> None:
        assert errs(body) == [(code, field)], body
        assert body["data"] is None or body["data"].get(key) is None, body

    return check


def segment_gid(w: World, side: str = "a") -> str:
    return gid("Segment", w.seg[side])


def customer_gid(w: World, name: str = "big") -> str:
    return gid("Customer", w.people[name])


SEGMENTS = """query($b: ID, $after: String) { segments(brandId: $b, includeArchived: true, first: 100, after: $after) {
  edges { node { id name brand { id } } } pageInfo { hasNextPage endCursor } } }"""


SEGMENT = """query($id: ID!) { segment(id: $id) { id name definition memberCount
  members(first: 50) { edges { node { customer { id } } } } history(first: 50) { edges { node { change } } } } }"""


NODE = "query($id: ID!) { node(id: $id) { id ... on Segment { name memberCount } } }"


OVERLAP_MANY = """query($ids: [ID!]!) { segmentOverlap(segmentIds: $ids) { union
  segments { segment { id } size unique } pairs { first { id } second { id } both } } }"""
FIELDS = "query($b: ID!) { segmentFields(brandId: $b) { kind field suggestions } }"


PREVIEW = """query($b: ID!, $d: SegmentDefinitionInput!) { previewSegment(brandId: $b, definition: $d) {
  totalCount edges { node { id email } } } }"""


EXPLAIN_SEGMENT = """query($s: ID!, $c: ID!) { explainSegment(segmentId: $s, customerId: $c) {
  matched inBrand root { matched children { path matched actual } } } }"""


EXPLAIN_DEFINITION = """query($b: ID!, $d: SegmentDefinitionInput!, $c: ID!) {
  explainSegment(brandId: $b, definition: $d, customerId: $c) { matched inBrand root { matched } } }"""


CUSTOM_ATTRIBUTES = "{ customAttributes { name type } }"


OVERLAP = "query($id: ID!, $o: ID!) { segment(id: $id) { id overlap(otherSegmentId: $o) { both onlyThis onlyOther } } }"


def tag_def(w: World) -> dict[str, Any]:
    return {"match": "ALL", "rules": [{"tag": {"operator": "INCLUDES", "tagIds": [gid("Tag", w.vip)]}}]}


def seg_def(w: World, side: str = "a") -> dict[str, Any]:
    return {"match": "ALL", "rules": [{"segment": {"operator": "INCLUDES", "segmentIds": [segment_gid(w, side)]}}]}


READS: list[Read] = [
    Read("segments(brandId)", SEGMENTS, lambda w, b: {"b": w.brand("a")},
         lambda d, w: check(_brands_of(d) == {w.brand("a")}, d),
         None, lambda body, w, b: check(not body.get("errors") and body["data"]["segments"]["edges"] == [], body)),
    Read("segments", SEGMENTS, lambda w, b: {},
         lambda d, w: check(_brands_of(d) <= {w.brand("a"), w.brand("b")} and _brands_of(d), d),
         None, lambda body, w, b: check(
             not body.get("errors")
             and set(edge_ids(body["data"]["segments"])) == {gid("Segment", b.seg), gid("Segment", b.static)}, body)),
    Read("segment", SEGMENT, lambda w, b: {"id": segment_gid(w)},
         lambda d, w: check(d["segment"]["memberCount"] == 3 and len(d["segment"]["members"]["edges"]) == 3, d),
         None, lambda body, w, b: check(not body.get("errors") and body["data"] == {"segment": None}, body)),
    Read("node(Segment)", NODE, lambda w, b: {"id": segment_gid(w, "b")},
         lambda d, w: check(d["node"]["id"] == segment_gid(w, "b") and d["node"]["memberCount"] == 3, d),
         None, lambda body, w, b: check(not body.get("errors") and body["data"] == {"node": None}, body)),
    Read("node(static Segment)", NODE, lambda w, b: {"id": gid("Segment", w.static["a"])},
         lambda d, w: check(d["node"]["memberCount"] == 1, d),
         None, lambda body, w, b: check(not body.get("errors") and body["data"] == {"node": None}, body)),
    Read("segment.overlap(otherSegmentId)", OVERLAP, lambda w, b: {"id": segment_gid(w), "o": gid("Segment", w.static["a"])},
         lambda d, w: check(d["segment"]["overlap"] == {"both": 1, "onlyThis": 2, "onlyOther": 0}, d),
         lambda w, b: {"id": gid("Segment", b.seg), "o": segment_gid(w)},
         _refused("NOT_FOUND", "otherSegmentId", "segment")),
    Read("segmentOverlap", OVERLAP_MANY, lambda w, b: {"ids": [segment_gid(w), gid("Segment", w.static["a"])]},
         lambda d, w: check(d["segmentOverlap"] == {"union": 3, "segments": [
             {"segment": {"id": segment_gid(w)}, "size": 3, "unique": 2},
             {"segment": {"id": gid("Segment", w.static["a"])}, "size": 1, "unique": 0}], "pairs": [
             {"first": {"id": segment_gid(w)}, "second": {"id": gid("Segment", w.static["a"])}, "both": 1}]}, d),
         lambda w, b: {"ids": [gid("Segment", b.seg), segment_gid(w)]},
         _refused("NOT_FOUND", "segmentIds[1]", "segmentOverlap")),
    Read("segmentFields", FIELDS, lambda w, b: {"b": w.brand("a")},
         lambda d, w: check(gid("Tag", w.vip) in json.dumps(d) or str(w.vip) in json.dumps(d), d),
         None, _refused("NOT_FOUND", "brandId", "segmentFields")),
    Read("previewSegment(A's brand)", PREVIEW, lambda w, b: {"b": w.brand("a"), "d": {"match": "ALL"}},
         lambda d, w: check(d["previewSegment"]["totalCount"] == 5, d),
         None, _refused("NOT_FOUND", "brandId", "previewSegment")),
    Read("previewSegment(A's tag)", PREVIEW, lambda w, b: {"b": w.brand("a"), "d": tag_def(w)},
         lambda d, w: check(d["previewSegment"]["totalCount"] == 2, d),
         lambda w, b: {"b": b.t.brand_gid("a"), "d": tag_def(w)},
         _refused("INVALID", "definition", "previewSegment")),
    Read("previewSegment(A's segment)", PREVIEW, lambda w, b: {"b": w.brand("a"), "d": seg_def(w)},
         lambda d, w: check(d["previewSegment"]["totalCount"] == 3, d),
         lambda w, b: {"b": b.t.brand_gid("a"), "d": seg_def(w)},
         _refused("INVALID", "definition", "previewSegment")),
    Read("explainSegment(A's segment)", EXPLAIN_SEGMENT, lambda w, b: {"s": segment_gid(w), "c": customer_gid(w)},
         lambda d, w: check(d["explainSegment"]["matched"] is True, d),
         lambda w, b: {"s": segment_gid(w), "c": gid("Customer", b.customer)},
         _refused("NOT_FOUND", "segmentId", "explainSegment")),
    Read("explainSegment(A's customer)", EXPLAIN_DEFINITION,
         lambda w, b: {"b": w.brand("a"), "d": spend(A_SPEND), "c": customer_gid(w)},
         lambda d, w: check(d["explainSegment"] == {"matched": True, "inBrand": True, "root": {"matched": True}}, d),
         lambda w, b: {"b": b.t.brand_gid("a"), "d": spend(A_SPEND), "c": customer_gid(w)},
         _refused("NOT_FOUND", "customerId", "explainSegment")),
    Read("explainSegment(A's brand)", EXPLAIN_DEFINITION,
         lambda w, b: {"b": w.brand("a"), "d": spend(A_SPEND), "c": customer_gid(w)},
         lambda d, w: check(d["explainSegment"]["matched"] is True, d),
         lambda w, b: {"b": w.brand("a"), "d": spend(A_SPEND), "c": gid("Customer", b.customer)},
         _refused("NOT_FOUND", "brandId", "explainSegment")),
    Read("customAttributes", CUSTOM_ATTRIBUTES, lambda w, b: {},
         lambda d, w: check(w.secret_attr in {c["name"] for c in d["customAttributes"]}, d),
         None, lambda body, w, b: check(not body.get("errors") and w.secret_attr not in json.dumps(body), body)),
]


BRAND_WRITES = [w for w in WRITES if w.brand_scoped]

