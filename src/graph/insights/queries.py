from __future__ import annotations

import strawberry
from strawberry import relay

from domain.insights import dashboard as domain
from graph.core import ids
from graph.core.context import Info
from graph.insights.types import Dashboard, DashboardPeriod


@strawberry.type
class InsightQuery:
    @strawberry.field(description="A brand's summary over a period and the one before it; brandId falls back to "
                                  "X-Brand-Id (docs/insights.md).")
    async def dashboard(self, info: Info, brand_id: relay.GlobalID | None = None,
                        period: DashboardPeriod = domain.Period.LAST_30_DAYS) -> Dashboard:
        brand = ids.decode(brand_id, "Brand", "brandId") if brand_id else info.context.brand_id
        return Dashboard.from_domain(await domain.dashboard(info.context.principal, brand, domain.Period(period.value)))
