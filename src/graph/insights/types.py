"""GraphQL types of the brand dashboard (docs/insights.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay

from domain.campaigns.models import Status as DomainCampaignStatus
from domain.delivery.base import Channel as DomainChannel
from domain.insights import dashboard as domain
from domain.segments.models import SegmentKind as DomainSegmentKind
from graph.campaigns.types import CampaignStatus
from graph.core import ids
from graph.core.scalars import BigInt
from graph.delivery.types import Channel
from graph.segments.types import SegmentKind

DashboardPeriod = strawberry.enum(domain.Period, name="DashboardPeriod")


@strawberry.type
class DashboardCustomers:
    total: int = strawberry.field(description="Customers known to the brand.")
    new: int = strawberry.field(description="First seen by the brand in the period.")
    active: int = strawberry.field(description="Ordered or did something tracked with the brand in the period.")


@strawberry.type(description="A figure of the period and of the period before it, for comparison.")
class DashboardComparison:
    current: BigInt
    previous: BigInt


@strawberry.type(description="A segment on the dashboard (a summary; segmentId is the Segment's global id).")
class DashboardSegment:
    segment_id: relay.GlobalID
    name: str
    kind: SegmentKind
    member_count: int
    last_refreshed_at: datetime | None


@strawberry.type(description="A campaign on the dashboard (a summary; campaignId is the Campaign's global id).")
class DashboardCampaign:
    campaign_id: relay.GlobalID
    name: str
    status: CampaignStatus
    channel: Channel
    launched_at: datetime | None
    sent: int
    delivered: int
    opens: int
    clicks: int
    conversions: int
    revenue_cents: BigInt


@strawberry.type
class DashboardConversations:
    open: int
    unassigned: int = strawberry.field(description="Open and assigned to nobody.")


@strawberry.type(description="A brand's summary over a period (docs/insights.md).")
class Dashboard:
    period: DashboardPeriod
    starts_at: datetime
    ends_at: datetime
    customers: DashboardCustomers
    revenue_cents: DashboardComparison = strawberry.field(description="Orders that count (not cancelled or refunded).")
    orders: DashboardComparison
    segments: list[DashboardSegment] = strawberry.field(description="The 10 largest active segments.")
    campaigns_sending: int
    campaigns: list[DashboardCampaign] = strawberry.field(description="The 5 latest launched campaigns and results.")
    conversations: DashboardConversations
    plan: str

    @classmethod
    def from_domain(cls, d: domain.Dashboard) -> Dashboard:
        def seg(x: dict[str, Any]) -> DashboardSegment:
            return DashboardSegment(segment_id=ids.encode("Segment", uuid.UUID(x["id"])), name=x["name"],
                                    kind=DomainSegmentKind(x["kind"]),
                                    member_count=x["memberCount"], last_refreshed_at=_when(x["lastRefreshedAt"]))

        def camp(x: dict[str, Any]) -> DashboardCampaign:
            return DashboardCampaign(campaign_id=ids.encode("Campaign", uuid.UUID(x["id"])), name=x["name"],
                                     status=DomainCampaignStatus(x["status"]),
                                     channel=DomainChannel(x["channel"]), launched_at=_when(x["launchedAt"]), sent=x["sent"],
                                     delivered=x["delivered"], opens=x["opens"], clicks=x["clicks"],
                                     conversions=x["conversions"], revenue_cents=x["revenueCents"])

        return cls(period=d.period, starts_at=d.starts_at, ends_at=d.ends_at,
                   customers=DashboardCustomers(total=d.customers_total, new=d.customers_new,
                                                active=d.customers_active),
                   revenue_cents=DashboardComparison(current=d.revenue_cents, previous=d.previous_revenue_cents),
                   orders=DashboardComparison(current=d.orders, previous=d.previous_orders),
                   segments=[seg(x) for x in d.segments], campaigns_sending=d.campaigns_sending,
                   campaigns=[camp(x) for x in d.campaigns],
                   conversations=DashboardConversations(open=d.conversations_open,
                                                        unassigned=d.conversations_unassigned), plan=d.plan)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
