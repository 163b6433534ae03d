"""GraphQL types of campaigns and their stats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.campaigns import service
from domain.campaigns.models import Campaign as CampaignModel
from domain.campaigns.models import Status as DomainStatus
from domain.campaigns.stats import COUNTERS, Figures
from domain.delivery.base import Channel as DomainChannel
from domain.pagination import Page, PageRequest
from graph.campaigns import dataloaders
from graph.core.batch import now, now_many, wanted
from graph.core.connection import Connection, Count, TotalCount
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.core.scalars import BigInt
from graph.delivery.types import Channel
from graph.segments.types import Segment
from graph.tenancy.types import Brand, brand_of

CampaignStatus = strawberry.enum(DomainStatus, name="CampaignStatus")
ScheduleMode = strawberry.enum(service.ScheduleMode, name="ScheduleMode",
                               description="NOW, AT (a wall-clock time in the brand's timezone) or LOCAL (in each "
                                           "recipient's timezone, the brand's when unknown).")


@strawberry.type(description="What the campaign sends; which fields apply depends on the channel. Text fields are "
                             "templates over customer, brand, profile and campaign variables.")
class CampaignContent:
    subject: str | None
    preheader: str | None
    html: str | None
    text: str | None = strawberry.field(description="E-mail text part, or the SMS body.")
    title: str | None
    body: str | None
    data: JSON | None = strawberry.field(description="Push data payload (text values).")


@strawberry.type(description="Live progress of a sending campaign.")
class CampaignProgress:
    queued: int = strawberry.field(description="Recipients not yet sent to (including deferred ones).")
    sent: int
    failed: int
    seconds_left: int | None = strawberry.field(description="At the rate sent so far; null before the first send.")


@strawberry.type(description="Results, kept incrementally. Rates are percentages over delivered messages "
                             "(conversion rate: over unique clicks); null when the denominator is zero.")
class CampaignStats:
    audience: int
    excluded: int
    sent: int
    failed: int
    delivered: int
    bounced: int
    opens: int = strawberry.field(description="Unique opens.")
    clicks: int = strawberry.field(description="Unique clicks.")
    unsubscribes: int
    complaints: int
    conversions: int
    revenue_cents: BigInt
    open_rate: float | None = strawberry.field(
        description="Percent (0 to 100, two decimals) of delivered messages opened; null before any delivery.")
    click_rate: float | None = strawberry.field(
        description="Percent (0 to 100, two decimals) of delivered messages clicked; null before any delivery.")
    conversion_rate: float | None = strawberry.field(
        description="Percent (0 to 100, two decimals) of unique clicks that led to an order; null before any click.")
    roas: float | None = strawberry.field(description="Revenue divided by the campaign's cost.")
    progress: CampaignProgress
    version: BigInt = strawberry.field(description="Grows with every change.")
    updated_at: datetime

    @classmethod
    def of(cls, f: Figures) -> CampaignStats:
        c = f.counters
        return cls(audience=c["audience"], excluded=c["excluded"], sent=c["sent"], failed=c["failed"],
                   delivered=c["delivered"], bounced=c["bounced"], opens=c["opens"], clicks=c["clicks"],
                   unsubscribes=c["unsubscribes"], complaints=c["complaints"], conversions=c["conversions"],
                   revenue_cents=c["revenue_cents"], open_rate=f.open_rate, click_rate=f.click_rate,
                   conversion_rate=f.conversion_rate, roas=f.roas,
                   progress=CampaignProgress(queued=c["queued"], sent=c["sent"], failed=c["failed"],
                                             seconds_left=f.seconds_left()),
                   version=f.version, updated_at=f.updated_at)


@strawberry.type(description="A brand's email, SMS or push send to segment audiences.")
class Campaign(relay.Node):
    id: relay.NodeID[str]
    name: str
    channel: Channel
    status: CampaignStatus
    priority: int = strawberry.field(description="1 (low) to 10 (urgent): due campaigns start in this order.")
    content: CampaignContent
    schedule_mode: ScheduleMode
    scheduled_at: datetime | None = strawberry.field(description="When sending starts (or started).")
    local_send_time: str | None = strawberry.field(description="The wall-clock time scheduled (AT and LOCAL).")
    send_window_hours: int
    event_ref: str | None
    cost_cents: BigInt
    launched_at: datetime | None
    completed_at: datetime | None
    failure_reason: str | None
    audience_snapshot: JSON | None = strawberry.field(
        description="The segments (definitions and counts) and audience counts as the launch used them.")
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    brand_id: strawberry.Private[uuid.UUID]
    segment_ids: strawberry.Private[list[uuid.UUID]]
    exclusion_segment_ids: strawberry.Private[list[uuid.UUID]]
    cost: strawberry.Private[int]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @strawberry.field(description="Target segments (their union, deduplicated, is the audience).")
    def segments(self, info: Info) -> list[Segment]:
        return now_many(info.context.loaders.segment, self.segment_ids, _segments)

    @strawberry.field(description="Members of these are left out.")
    def exclusion_segments(self, info: Info) -> list[Segment]:
        return now_many(info.context.loaders.segment, self.exclusion_segment_ids, _segments)

    @strawberry.field
    def stats(self, info: Info) -> CampaignStats:
        return now(info.context.loaders.campaign_stats, uuid.UUID(self.id), self._stats)

    def _stats(self, row: Any) -> CampaignStats:
        if row is None:
            return CampaignStats.of(Figures(uuid.UUID(self.id), {k: 0 for k in COUNTERS}, 0, self.cost, None,
                                            self.updated_at))
        return CampaignStats.of(Figures.of(row, self.cost))

    @classmethod
    def from_model(cls, c: CampaignModel) -> Campaign:
        content = c.content or {}
        return cls(id=str(c.id), name=c.name, channel=DomainChannel(c.channel), status=DomainStatus(c.status),
                   priority=c.priority,
                   content=CampaignContent(subject=content.get("subject"), preheader=content.get("preheader"),
                                           html=content.get("html"), text=content.get("text"),
                                           title=content.get("title"), body=content.get("body"),
                                           data=content.get("data")),
                   schedule_mode=service.ScheduleMode(c.schedule_mode), scheduled_at=c.scheduled_at,
                   local_send_time=c.local_send_at.isoformat(timespec="minutes") if c.local_send_at else None,
                   send_window_hours=c.send_window_hours, event_ref=c.event_ref, cost_cents=c.cost_cents,
                   launched_at=c.launched_at, completed_at=c.completed_at, failure_reason=c.failure_reason,
                   audience_snapshot=c.audience_snapshot, created_by=c.created_by, created_at=c.created_at,
                   updated_at=c.updated_at, brand_id=c.brand_id, segment_ids=list(c.segment_ids or []),
                   exclusion_segment_ids=list(c.exclusion_segment_ids or []), cost=c.cost_cents)

    resolve_nodes = node_resolver(lambda info, keys: info.context.loaders.campaign.load_many(keys))


@strawberry.type(description="A page of campaigns.")
class CampaignConnection(Connection[Campaign], TotalCount):
    pass


def _segments(found: list[Any]) -> list[Segment]:
    return [Segment.from_model(s) for s in found if s is not None]


async def campaign_page(info: Info, page: Page[CampaignModel], count: Count) -> CampaignConnection:
    """A root page of campaigns, with the stats and segments its nodes select loaded."""
    await dataloaders.prefetch(page.items, wanted(info, "edges", "node").keys() & dataloaders.PREFETCHED,
                               stats=info.context.loaders.campaign_stats, segments=info.context.loaders.segment)
    return CampaignConnection.of(page, Campaign.from_model, count)


async def brand_campaigns(info: Info, brand_id: uuid.UUID, statuses: list[DomainStatus] | None,
                          request: PageRequest) -> CampaignConnection:
    """One brand's page through the page loader: every brand of a list in one query (and their
    counts in one more, when ``totalCount`` is selected)."""
    selected = frozenset(wanted(info, "edges", "node").keys() & dataloaders.PREFETCHED)
    page = await info.context.loaders.brand_campaigns.load(
        (brand_id, tuple(statuses or ()), request, selected, "totalCount" in wanted(info)))
    return CampaignConnection.of(page, Campaign.from_model)


@strawberry.type(description="Recipients excluded at launch, per reason.")
class ExclusionCounts:
    excluded_segment: int
    no_address: int
    suppressed: int
    no_consent: int
    frequency_cap: int


@strawberry.type(description="Who a launch now would reach; nothing is sent or written.")
class CampaignAudiencePreview:
    count: int = strawberry.field(description="Recipients who would get the message.")
    deferred: int = strawberry.field(description="Of those, how many would wait (quiet hours, cap, local time).")
    excluded: ExclusionCounts
    total: int = strawberry.field(description="Everyone in the target segments.")

    @classmethod
    def of(cls, p: dict[str, Any]) -> CampaignAudiencePreview:
        return cls(count=p["count"], deferred=p["deferred"], excluded=ExclusionCounts(**p["excluded"]),
                   total=p["total"])


@strawberry.type(description="One customer's rendered message.")
class CampaignMessagePreview:
    to: str | None
    subject: str | None
    preheader: str | None
    html: str | None
    text: str | None
    title: str | None
    body: str | None
    data: JSON | None
    headers: JSON
