"""A brand's dashboard (docs/insights.md): customers, revenue and orders against the previous
period, segments with sizes, campaigns sending and the last ones' results, open and unassigned
conversations, the tenant's plan. One statement reads it all, from indexes and kept counters
(segment member counts, campaign stats), after the statement that checks the brand: the count
does not grow with the data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import text

from domain.errors import DomainError, ErrorCode
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

SEGMENTS = 10  # the largest segments shown
CAMPAIGNS = 5  # the latest launched campaigns shown


class Period(str, Enum):
    LAST_7_DAYS = "last_7_days"
    LAST_30_DAYS = "last_30_days"
    LAST_90_DAYS = "last_90_days"
    LAST_365_DAYS = "last_365_days"

    @property
    def days(self) -> int:
        return {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90, "last_365_days": 365}[self.value]


@dataclass(frozen=True)
class Dashboard:
    brand_id: uuid.UUID
    period: Period
    starts_at: datetime
    ends_at: datetime
    customers_total: int
    customers_new: int
    customers_active: int
    revenue_cents: int
    previous_revenue_cents: int
    orders: int
    previous_orders: int
    campaigns_sending: int
    conversations_open: int
    conversations_unassigned: int
    plan: str
    segments: list[dict[str, Any]]
    campaigns: list[dict[str, Any]]


DASHBOARD_SQL = f"""
SELECT
  (SELECT count(*) FROM customer_brands cb WHERE cb.tenant_id = :t AND cb.brand_id = :b) AS customers_total,
  (SELECT count(*) FROM customer_brands cb
    WHERE cb.tenant_id = :t AND cb.brand_id = :b AND cb.first_seen_at >= :start) AS customers_new,
  (SELECT count(*) FROM customer_profiles p
    WHERE p.tenant_id = :t AND p.brand_id = :b AND (p.last_order_at >= :start OR p.last_event_at >= :start))
    AS customers_active,
  o.revenue, o.previous_revenue, o.orders, o.previous_orders,
  (SELECT count(*) FROM campaigns c WHERE c.tenant_id = :t AND c.brand_id = :b AND c.status = 'sending'
      AND c.automation_id IS NULL)
    AS campaigns_sending,
  (SELECT count(*) FROM conversations v WHERE v.tenant_id = :t AND v.brand_id = :b AND v.status = 'open')
    AS conversations_open,
  (SELECT count(*) FROM conversations v
    WHERE v.tenant_id = :t AND v.brand_id = :b AND v.status = 'open' AND v.assignee_id IS NULL)
    AS conversations_unassigned,
  (SELECT tn.plan FROM tenants tn WHERE tn.id = :t) AS plan,
  (SELECT coalesce(json_agg(json_build_object('id', s.id, 'name', s.name, 'kind', s.kind,
                                              'memberCount', s.member_count, 'lastRefreshedAt', s.last_refreshed_at)
                            ORDER BY s.member_count DESC, s.id), '[]')
     FROM (SELECT * FROM segments s WHERE s.tenant_id = :t AND s.brand_id = :b AND s.archived_at IS NULL
            ORDER BY s.member_count DESC, s.id LIMIT {SEGMENTS}) s) AS segments,
  (SELECT coalesce(json_agg(json_build_object('id', c.id, 'name', c.name, 'status', c.status, 'channel', c.channel,
                                              'launchedAt', c.launched_at, 'sent', coalesce(st.sent, 0),
                                              'delivered', coalesce(st.delivered, 0), 'opens', coalesce(st.opens, 0),
                                              'clicks', coalesce(st.clicks, 0),
                                              'conversions', coalesce(st.conversions, 0),
                                              'revenueCents', coalesce(st.revenue_cents, 0))
                            ORDER BY c.launched_at DESC, c.id), '[]')
     FROM (SELECT * FROM campaigns c WHERE c.tenant_id = :t AND c.brand_id = :b AND c.launched_at IS NOT NULL
                    AND c.automation_id IS NULL
            ORDER BY c.launched_at DESC, c.id LIMIT {CAMPAIGNS}) c
     LEFT JOIN campaign_stats st ON st.tenant_id = c.tenant_id AND st.campaign_id = c.id) AS campaigns
FROM (
  SELECT coalesce(sum(x.total_cents) FILTER (WHERE x.placed_at >= :start), 0)::bigint AS revenue,
         coalesce(sum(x.total_cents) FILTER (WHERE x.placed_at < :start), 0)::bigint AS previous_revenue,
         count(*) FILTER (WHERE x.placed_at >= :start) AS orders,
         count(*) FILTER (WHERE x.placed_at < :start) AS previous_orders
    FROM orders x
   WHERE x.tenant_id = :t AND x.brand_id = :b AND x.placed_at >= :previous AND x.placed_at < :end
     AND x.status NOT IN ('cancelled', 'refunded')
) o
"""


async def dashboard(principal: Principal, brand_id: uuid.UUID | None, period: Period = Period.LAST_30_DAYS,
                    *, now: datetime | None = None) -> Dashboard:
    """The brand's figures over ``period`` (ending now) and the period before it."""
    authorize(principal, Action.CUSTOMER_READ)
    if brand_id is None:
        raise DomainError("brandId is required (or X-Brand-Id)", field="brandId", code=ErrorCode.REQUIRED)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=period.days)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        row = (await s.execute(text(DASHBOARD_SQL), {
            "t": principal.tenant_id, "b": brand_id, "start": start, "previous": start - timedelta(days=period.days),
            "end": end})).one()
    return Dashboard(
        brand_id=brand_id, period=period, starts_at=start, ends_at=end, customers_total=row.customers_total,
        customers_new=row.customers_new, customers_active=row.customers_active, revenue_cents=row.revenue,
        previous_revenue_cents=row.previous_revenue, orders=row.orders, previous_orders=row.previous_orders,
        campaigns_sending=row.campaigns_sending, conversations_open=row.conversations_open,
        conversations_unassigned=row.conversations_unassigned, plan=row.plan, segments=list(row.segments),
        campaigns=list(row.campaigns))
