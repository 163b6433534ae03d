"""A brand's delivery settings: its providers, its sending rules, lifting suppressions."""

from __future__ import annotations

from datetime import time

import strawberry
from strawberry import UNSET
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.delivery import service as delivery
from domain.delivery.base import Channel as DomainChannel
from graph.core import inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given
from graph.delivery.types import Channel, DeliveryProvider, DeliveryProviderKind, MessagingSettings


@strawberry.input(description="Credentials are write-only: send them to set or replace them, omit them to keep "
                               "the stored ones.")
class SetDeliveryProviderInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    channel: Channel
    provider: DeliveryProviderKind
    settings: JSON | None = None
    credentials: JSON | None = None


@strawberry.input(description="Only the fields sent change (null clears quiet hours or the frequency cap).")
class UpdateMessagingSettingsInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    quiet_hours_start: time | None = UNSET
    quiet_hours_end: time | None = UNSET
    frequency_cap_count: int | None = UNSET
    frequency_cap_hours: int | None = UNSET
    send_rate_per_second: int | None = UNSET
    attribution_days: int | None = UNSET


@strawberry.input
class RemoveDeliveryProviderInput:
    channel: Channel
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")


@strawberry.input
class RemoveSuppressionInput:
    channel: Channel
    address: str
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")


@strawberry.type
class DeliveryProviderPayload:
    delivery_provider: DeliveryProvider | None = None
    errors: list[UserError]


@strawberry.type
class MessagingSettingsPayload:
    messaging_settings: MessagingSettings | None = None
    errors: list[UserError]


@strawberry.type
class DoneMessagingPayload:
    ok: bool = False
    errors: list[UserError]


@strawberry.type
class DeliveryMutation:
    @strawberry.mutation(description="Choose the provider a brand sends a channel through (owners and admins).")
    async def set_delivery_provider(self, info: Info, input: SetDeliveryProviderInput) -> DeliveryProviderPayload:
        async def run():
            return await delivery.set_provider(info.context.principal, inputs.brand(info, input.brand_id),
                                               DomainChannel(input.channel.value), input.provider.value, input.settings,
                                               input.credentials)

        return await payload(DeliveryProviderPayload, run,
                             lambda r: {"delivery_provider": DeliveryProvider.from_model(r)})

    @strawberry.mutation
    async def remove_delivery_provider(self, info: Info, input: RemoveDeliveryProviderInput) -> DoneMessagingPayload:
        async def run():
            await delivery.remove_provider(info.context.principal, inputs.brand(info, input.brand_id),
                                           DomainChannel(input.channel.value))

        return await payload(DoneMessagingPayload, run, lambda _: {"ok": True})

    @strawberry.mutation
    async def update_messaging_settings(self, info: Info, input: UpdateMessagingSettingsInput) -> MessagingSettingsPayload:
        async def run():
            data = given(quiet_hours_start=input.quiet_hours_start, quiet_hours_end=input.quiet_hours_end,
                         frequency_cap_count=input.frequency_cap_count,
                         frequency_cap_hours=input.frequency_cap_hours,
                         send_rate_per_second=input.send_rate_per_second, attribution_days=input.attribution_days)
            return await delivery.update_messaging_settings(
                info.context.principal, inputs.brand(info, input.brand_id), data)

        return await payload(MessagingSettingsPayload, run,
                             lambda m: {"messaging_settings": MessagingSettings.from_model(m)})

    @strawberry.mutation(description="Lift a suppression; consent is not granted again by this.")
    async def remove_suppression(self, info: Info, input: RemoveSuppressionInput) -> DoneMessagingPayload:
        async def run():
            await delivery.remove_suppression(info.context.principal, inputs.brand(info, input.brand_id),
                                              DomainChannel(input.channel.value), input.address)

        return await payload(DoneMessagingPayload, run, lambda _: {"ok": True})
