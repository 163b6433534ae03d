"""A brand's delivery providers, messaging settings and suppressions."""

from __future__ import annotations

import strawberry
from strawberry import relay

from domain.delivery import service as delivery
from domain.delivery.base import Channel as DomainChannel
from domain.pagination import clamp_first
from graph.core import ids
from graph.core.context import Info
from graph.delivery.types import Channel, DeliveryProvider, MessagingSettings, Suppression


@strawberry.type
class DeliveryQuery:
    @strawberry.field(description="The providers a brand sends through, per channel (credentials never shown).")
    async def delivery_providers(self, info: Info, brand_id: relay.GlobalID) -> list[DeliveryProvider]:
        rows = await delivery.providers_of(info.context.principal, ids.decode(brand_id, "Brand", "brandId"))
        return [DeliveryProvider.from_model(r) for r in rows]

    @strawberry.field
    async def messaging_settings(self, info: Info, brand_id: relay.GlobalID) -> MessagingSettings:
        m = await delivery.messaging_settings(info.context.principal, ids.decode(brand_id, "Brand", "brandId"))
        return MessagingSettings.from_model(m)

    @strawberry.field(description="Addresses the brand does not send to, newest first.")
    async def suppressions(self, info: Info, brand_id: relay.GlobalID, channel: Channel | None = None,
                           first: int = 50) -> list[Suppression]:
        rows = await delivery.list_suppressions(info.context.principal, ids.decode(brand_id, "Brand", "brandId"),
                                                DomainChannel(channel.value) if channel else None, clamp_first(first))
        return [Suppression.from_model(r) for r in rows]
