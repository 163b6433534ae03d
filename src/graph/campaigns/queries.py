from __future__ import annotations

import strawberry
from strawberry import relay

from domain.campaigns import service
from domain.campaigns.models import Status as DomainStatus
from graph.campaigns.types import (
    Campaign,
    CampaignAudiencePreview,
    CampaignConnection,
    CampaignMessagePreview,
    CampaignStatus,
    campaign_page,
)
from graph.core import ids
from graph.core.brands import brand_or_active
from graph.core.connection import page_request
from graph.core.context import Info
from graph.core.nodes import load_node


@strawberry.type
class CampaignQuery:
    @strawberry.field(description="Campaigns, newest first; a brand's with brandId (or X-Brand-Id).")
    async def campaigns(self, info: Info, brand_id: relay.GlobalID | None = None,
                        status: list[CampaignStatus] | None = None, first: int | None = 20,
                        after: str | None = None, last: int | None = None,
                        before: str | None = None) -> CampaignConnection:
        brand = brand_or_active(info, brand_id)
        statuses = [DomainStatus(s.value) for s in status] if status else None
        page = await service.list_campaigns(info.context.principal, brand, statuses=statuses,
                                            page=page_request(info, first, after, last, before))
        return await campaign_page(info, page, lambda: service.count_campaigns(info.context.principal, brand,
                                                                                statuses=statuses))

    @strawberry.field
    async def campaign(self, info: Info, id: relay.GlobalID) -> Campaign | None:
        return await load_node(id, "Campaign", info.context.loaders.campaign, Campaign.from_model)

    @strawberry.field(description="The message as this customer would get it; nothing is sent.")
    async def preview_campaign(self, info: Info, campaign_id: relay.GlobalID,
                               customer_id: relay.GlobalID) -> CampaignMessagePreview:
        m = await service.preview_message(info.context.principal, ids.decode(campaign_id, "Campaign", "campaignId"),
                                          ids.decode(customer_id, "Customer", "customerId"))
        return CampaignMessagePreview(**m)

    @strawberry.field(description="How many a launch now would reach, and how many it would exclude, per reason.")
    async def preview_campaign_audience(self, info: Info, campaign_id: relay.GlobalID) -> CampaignAudiencePreview:
        p = await service.preview_audience(info.context.principal, ids.decode(campaign_id, "Campaign", "campaignId"))
        return CampaignAudiencePreview.of(p)
