"""A brand's delivery providers, messaging settings and suppressions."""

from __future__ import annotations

import strawberry
from strawberry import relay

from domain.delivery import service as delivery
from domain.delivery.base import Channel as DomainChannel
from graph.core.brands import required_brand
from graph.core.connection import page_request
from graph.core.context import Info
from graph.delivery.types import (
    Channel,
    DeliveryProvider,
    MessagingSettings,
    Suppression,
    SuppressionConnection,
)


@strawberry.type
class DeliveryQuery:
    @strawberry.field(description="The providers a brand sends through, per channel (credentials never shown).")
    async def delivery_providers(self, info: Info, brand_id: relay.GlobalID | None = None) -> list[DeliveryProvider]:
        rows = await delivery.providers_of(info.context.principal, required_brand(info, brand_id))
        return [DeliveryProvider.from_model(r) for r in rows]

    @strawberry.field
    async def messaging_settings(self, info: Info, brand_id: relay.GlobalID | None = None) -> MessagingSettings:
        m = await delivery.messaging_settings(info.context.principal, required_brand(info, brand_id))
        return MessagingSettings.from_model(m)

    @strawberry.field(description="Addresses the brand does not send to, newest first.")
    async def suppressions(self, info: Info, brand_id: relay.GlobalID | None = None, channel: Channel | None = None,
                           first: int | None = 50, after: str | None = None, last: int | None = None,
                           before: str | None = None) -> SuppressionConnection:
        brand = required_brand(info, brand_id)
        on = DomainChannel(channel.value) if channel else None
        page = await delivery.list_suppressions(info.context.principal, brand, on,
                                                page_request(info, first, after, last, before, default=50))
        return SuppressionConnection.of(page, Suppression.from_model,
                                        lambda: delivery.count_suppressions(info.context.principal, brand, on))
