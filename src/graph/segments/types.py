"""GraphQL types of segments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.segments import dsl, membership, models
from domain.segments.models import Segment as SegmentModel
from graph.core import ids
from graph.core.batch import now, wanted
from graph.core.connection import Connection, TotalCount, page_request
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.customers.types import Customer, customer_or_none
from graph.segments.inputs import (
    CustomAttributeType,
    SegmentMatch,
    SegmentOperator,
    SegmentRuleKind,
    SegmentValueType,
)
from graph.tenancy.types import Brand, brand_of

SegmentKind = strawberry.enum(models.SegmentKind, name="SegmentKind")


@strawberry.enum
class MembershipChange(Enum):
    ENTERED = "entered"
    EXITED = "exited"


@strawberry.enum(description="Why a customer entered or left a segment.")
class MembershipCause(Enum):
    REFRESH = "refresh"
    CHANGE = "change"
    TIME = "time"
    MANUAL = "manual"


@strawberry.enum(description="How a segment's members follow the data.")
class SegmentEvaluationMode(Enum):
    LIVE = "live"
    SCHEDULED = "scheduled"
    MANUAL = "manual"


@strawberry.type
class SegmentStaleness:
    stale: bool = strawberry.field(description="Something its rules read changed since the last refresh began and "
                                               "was not evaluated live, or the rules changed.")
    stale_since: datetime | None
    seconds_since_refresh: int | None


@strawberry.type
class SegmentMember:
    entered_at: datetime
    score: float | None = strawberry.field(description="Similarity to the source (lookalike segments).")
    customer: Customer


@strawberry.type(description="A page of a segment's current members; totalCount is its member count.")
class SegmentMemberConnection(Connection[SegmentMember], TotalCount):
    pass


@strawberry.type
class SegmentHistoryEvent:
    change: MembershipChange
    at: datetime
    cause: MembershipCause
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    def customer(self, info: Info) -> Customer | None:
        return now(info.context.loaders.customer, self.customer_id, customer_or_none)


@strawberry.type
class SegmentOverlap:
    both: int
    only_this: int
    only_other: int


@strawberry.type
class SegmentOverlapSize:
    segment: Segment
    size: int = strawberry.field(description="Current members.")
    unique: int = strawberry.field(description="Current members in none of the other segments asked about.")


@strawberry.type
class SegmentPairOverlap:
    first: Segment
    second: Segment
    both: int = strawberry.field(description="Current members of both.")


@strawberry.type(description="How the current members of several segments overlap.")
class SegmentsOverlap:
    segments: list[SegmentOverlapSize] = strawberry.field(description="In the order asked.")
    pairs: list[SegmentPairOverlap] = strawberry.field(description="Every pair, in the order asked.")
    union: int = strawberry.field(description="Current members of at least one of them.")

    @classmethod
    def from_report(cls, r: membership.OverlapReport) -> SegmentsOverlap:
        nodes = {x.id: Segment.from_model(x) for x in r.segments}
        return cls(segments=[SegmentOverlapSize(segment=nodes[x.id], size=r.sizes[x.id], unique=r.unique[x.id])
                             for x in r.segments],
                   pairs=[SegmentPairOverlap(first=nodes[a], second=nodes[b], both=n) for (a, b), n in r.pairs.items()],
                   union=r.union)


@strawberry.type(description="Something that uses a segment: the campaign's, automation's or segment's global "
                              "id (node(id) resolves it) and its name.")
class SegmentUser:
    node_id: relay.GlobalID
    name: str


@strawberry.type(description="Where a segment is used (docs/segments.md, Usage).")
class SegmentUsage:
    campaigns: list[SegmentUser] = strawberry.field(description="Campaigns that target or exclude it.")
    automations: list[SegmentUser]
    segments: list[SegmentUser] = strawberry.field(description="Segments whose rules refer to it.")

    @classmethod
    def from_domain(cls, u: Any) -> SegmentUsage:
        def refs(type_name: str, rows: list) -> list[SegmentUser]:
            return [SegmentUser(node_id=ids.encode(type_name, i), name=n) for i, n in rows]

        if u is None:
            return cls(campaigns=[], automations=[], segments=[])
        return cls(campaigns=refs("Campaign", u.campaigns), automations=refs("SegmentAutomation", u.automations),
                   segments=refs("Segment", u.segments))


@strawberry.type(description="An audience of one brand: rule-based (dynamic), hand-picked (static) or lookalike.")
class Segment(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str | None
    kind: SegmentKind
    definition: JSON = strawberry.field(description="The stored rule tree (dynamic segments).")
    definition_version: int
    lookalike_size: int | None
    is_active: bool
    archived_at: datetime | None
    member_count: int = strawberry.field(description="Cached at the last refresh.")
    last_refreshed_at: datetime | None
    last_refresh_duration_ms: int | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    brand_id: strawberry.Private[uuid.UUID]
    lookalike_source_id: strawberry.Private[uuid.UUID | None]
    stale_since: strawberry.Private[datetime | None]
    stale: strawberry.Private[bool]
    evaluation_mode: SegmentEvaluationMode = strawberry.field(description=(
        "LIVE: a dynamic segment whose customers are evaluated within moments of each change; SCHEDULED: a dynamic "
        "segment that opted out of live evaluation, or a lookalike, refreshed when stale; MANUAL: a static segment."))

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @strawberry.field
    async def lookalike_source(self, info: Info) -> Segment | None:
        if self.lookalike_source_id is None:
            return None
        found = await info.context.loaders.segment.load(self.lookalike_source_id)
        return Segment.from_model(found) if found else None

    @strawberry.field(description="Where it is used: campaigns, automations, other segments' rules.")
    def usage(self, info: Info) -> SegmentUsage:
        return now(info.context.loaders.segment_usage, uuid.UUID(self.id), SegmentUsage.from_domain)

    @strawberry.field
    def staleness(self) -> SegmentStaleness:
        since = None
        if self.last_refreshed_at is not None:
            since = int((datetime.now(UTC) - self.last_refreshed_at).total_seconds())
        return SegmentStaleness(stale=self.stale or self.last_refreshed_at is None,
                                stale_since=self.stale_since, seconds_since_refresh=since)

    @strawberry.field(description="Current members, newest first.")
    async def members(self, info: Info, first: int | None = 20, after: str | None = None, last: int | None = None,
                      before: str | None = None) -> SegmentMemberConnection:
        page = await info.context.loaders.segment_members.load(
            (uuid.UUID(self.id), page_request(info, first, after, last, before)))
        return SegmentMemberConnection.of(page, lambda r: SegmentMember(entered_at=r[0].entered_at, score=r[0].score,
                                                          customer=Customer.from_model(r[1])))

    @strawberry.field(description="Enter and exit events, newest first.")
    async def history(self, info: Info, first: int | None = 20, after: str | None = None, last: int | None = None,
                      before: str | None = None) -> Connection[SegmentHistoryEvent]:
        selected = frozenset(wanted(info, "edges", "node").keys() & {"customer"})
        page = await info.context.loaders.segment_history.load(
            (uuid.UUID(self.id), page_request(info, first, after, last, before), selected))
        return Connection.of(page, lambda e: SegmentHistoryEvent(change=MembershipChange(e.change), at=e.at,
                                                                 cause=MembershipCause(e.cause),
                                                                 customer_id=e.customer_id))

    @strawberry.field(description="Current members in both, only in this one, only in the other.")
    async def overlap(self, info: Info, other_segment_id: relay.GlobalID) -> SegmentOverlap:
        o = await membership.overlap(info.context.principal, uuid.UUID(self.id),
                                  ids.decode(other_segment_id, "Segment", "otherSegmentId"))
        return SegmentOverlap(both=o.both, only_this=o.only_this, only_other=o.only_other)

    @classmethod
    def from_model(cls, s: SegmentModel) -> Segment:
        return cls(id=str(s.id), name=s.name, description=s.description, kind=models.SegmentKind(s.kind),
                   definition=s.definition or {}, definition_version=s.definition_version,
                   lookalike_size=s.lookalike_size, is_active=s.is_active, archived_at=s.archived_at,
                   member_count=s.member_count, last_refreshed_at=s.last_refreshed_at,
                   last_refresh_duration_ms=s.last_refresh_ms, created_by=s.created_by, created_at=s.created_at,
                   updated_at=s.updated_at, brand_id=s.brand_id, lookalike_source_id=s.lookalike_source_id,
                   stale_since=s.stale_since if s.change_seq > s.refreshed_seq else None,
                   stale=s.change_seq > s.refreshed_seq, evaluation_mode=_mode(s))

    resolve_nodes = node_resolver(lambda info, keys: info.context.loaders.segment.load_many(keys))


@strawberry.type(description="A page of segments.")
class SegmentConnection(Connection[Segment], TotalCount):
    pass


def _mode(s: SegmentModel) -> SegmentEvaluationMode:
    if s.kind == models.SegmentKind.STATIC.value:
        return SegmentEvaluationMode.MANUAL
    if s.kind == models.SegmentKind.DYNAMIC.value and s.live:
        return SegmentEvaluationMode.LIVE
    return SegmentEvaluationMode.SCHEDULED


@strawberry.type(description="A field a rule can use, as an SPA's condition builder needs it.")
class SegmentField:
    kind: SegmentRuleKind
    field: str
    label: str
    value_type: SegmentValueType
    operators: list[SegmentOperator]
    enum_values: list[str]
    suggestions: list[str]


@strawberry.type(description="The customers a definition matches, newest first; totalCount is how many.")
class SegmentPreviewConnection(Connection[Customer], TotalCount):
    pass


@strawberry.type
class SegmentDryRun:
    count_before: int
    count_after: int
    entering: int
    exiting: int


@strawberry.type(description="One group or rule of an explained definition.")
class SegmentExplanationNode:
    path: str
    matched: bool
    match: SegmentMatch | None = strawberry.field(description="ALL or ANY, for groups.")
    rule: JSON | None = strawberry.field(description="The rule as stored, for rules.")
    actual: JSON | None = strawberry.field(description="The customer's value the rule looked at.")
    children: list[SegmentExplanationNode]


@strawberry.type
class SegmentExplanation:
    matched: bool
    in_brand: bool = strawberry.field(description="False when the customer is not a customer of the segment's brand.")
    root: SegmentExplanationNode


def explanation_node(e) -> SegmentExplanationNode:
    return SegmentExplanationNode(path=e.path, matched=e.matched, match=dsl.Match(e.match) if e.match else None,
                                  rule=e.rule, actual=e.actual, children=[explanation_node(c) for c in e.children])


@strawberry.type
class CustomAttribute:
    name: str
    type: CustomAttributeType
    label: str | None


@strawberry.type
class SegmentMembershipChanged:
    segment_id: strawberry.ID
    entered: int
    exited: int
    total: int
    at: datetime
