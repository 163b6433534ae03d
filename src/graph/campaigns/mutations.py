"""Campaign mutations (definitions and the status machine) and brands' delivery settings."""

from __future__ import annotations

from datetime import time
from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.campaigns import service
from domain.delivery import service as delivery
from domain.delivery.base import Channel as DomainChannel
from graph.campaigns.types import (
    Campaign,
    Channel,
    DeliveryProvider,
    MessagingSettings,
    ScheduleMode,
)
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import UserError, payload


@strawberry.input(description="Channel content; each text field is a template. E-mail: subject (required), "
                               "preheader, html and/or text. SMS: text. Push: title, body, data.")
class CampaignContentInput:
    subject: str | None = None
    preheader: str | None = None
    html: str | None = None
    text: str | None = None
    title: str | None = None
    body: str | None = None
    data: JSON | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"subject": self.subject, "preheader": self.preheader, "html": self.html,
                                  "text": self.text, "title": self.title, "body": self.body,
                                  "data": self.data}.items() if v is not None}


@strawberry.input
class CreateCampaignInput:
    brand_id: GlobalID
    name: str
    channel: Channel
    content: CampaignContentInput | None = None
    segment_ids: list[GlobalID] = strawberry.field(default_factory=list)
    exclusion_segment_ids: list[GlobalID] = strawberry.field(default_factory=list)
    priority: int | None = None
    event_ref: str | None = None
    product_id: GlobalID | None = None
    cost_cents: int | None = None
    send_window_hours: int | None = None


@strawberry.input(description="Only the fields sent change. Drafts and scheduled campaigns only.")
class UpdateCampaignInput:
    id: GlobalID
    name: str | None = UNSET
    content: CampaignContentInput | None = UNSET
    segment_ids: list[GlobalID] | None = UNSET
    exclusion_segment_ids: list[GlobalID] | None = UNSET
    priority: int | None = UNSET
    event_ref: str | None = UNSET
    product_id: GlobalID | None = UNSET
    cost_cents: int | None = UNSET
    send_window_hours: int | None = UNSET


@strawberry.input
class ScheduleCampaignInput:
    id: GlobalID
    mode: ScheduleMode = service.ScheduleMode.AT
    local_time: str = strawberry.field(description="Wall-clock date and time without offset, e.g. 2026-12-01T09:00.")


@strawberry.input(description="Credentials are write-only: send them to set or replace them, omit them to keep "
                               "the stored ones.")
class SetDeliveryProviderInput:
    brand_id: GlobalID
    channel: Channel
    provider: str = strawberry.field(description="log, smtp, brevo, sendgrid, twilio or fcm.")
    settings: JSON | None = None
    credentials: JSON | None = None


@strawberry.input(description="Only the fields sent change (null clears quiet hours or the frequency cap).")
class UpdateMessagingSettingsInput:
    brand_id: GlobalID
    quiet_hours_start: time | None = UNSET
    quiet_hours_end: time | None = UNSET
    frequency_cap_count: int | None = UNSET
    frequency_cap_hours: int | None = UNSET
    send_rate_per_second: int | None = UNSET
    attribution_days: int | None = UNSET


@strawberry.type
class CampaignPayload:
    campaign: Campaign | None = None
    errors: list[UserError]


@strawberry.type
class DeleteCampaignPayload:
    deleted_id: GlobalID | None = None
    errors: list[UserError]


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


def _campaign(c: Any) -> dict[str, Any]:
    return {"campaign": Campaign.from_model(c)}


def provider_type(row: Any) -> DeliveryProvider:
    return DeliveryProvider(channel=DomainChannel(row.channel), provider=row.provider, settings=row.settings or {},
                            credentials_set=bool(row.credentials_encrypted),
                            webhook_url=delivery.webhook_url(row.tenant_id, row.brand_id, row.provider),
                            updated_by=row.updated_by, updated_at=row.updated_at)


def settings_type(m: Any) -> MessagingSettings:
    return MessagingSettings(quiet_hours_start=m.quiet_hours_start, quiet_hours_end=m.quiet_hours_end,
                             frequency_cap_count=m.frequency_cap_count, frequency_cap_hours=m.frequency_cap_hours,
                             send_rate_per_second=m.send_rate_per_second, attribution_days=m.attribution_days)


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not UNSET}


@strawberry.type
class CampaignMutation:
    @strawberry.mutation
    async def create_campaign(self, info: Info, input: CreateCampaignInput) -> CampaignPayload:
        async def run():
            data: dict[str, Any] = {
                "name": input.name, "channel": input.channel.value, "priority": input.priority,
                "event_ref": input.event_ref, "cost_cents": input.cost_cents,
                "send_window_hours": input.send_window_hours,
                "segment_ids": ids.decode_many(input.segment_ids, "Segment", "segmentIds"),
                "exclusion_segment_ids": ids.decode_many(input.exclusion_segment_ids, "Segment", "exclusionSegmentIds"),
                "product_id": ids.optional(input.product_id, "Product", "productId"),
            }
            if input.content is not None:
                data["content"] = input.content.to_dict()
            return await service.create_campaign(info.context.principal, ids.decode(input.brand_id, "Brand", "brandId"),
                                                 data)

        return await payload(CampaignPayload, run, _campaign)

    @strawberry.mutation
    async def update_campaign(self, info: Info, input: UpdateCampaignInput) -> CampaignPayload:
        async def run():
            data = _given(name=input.name, priority=input.priority, event_ref=input.event_ref,
                          cost_cents=input.cost_cents, send_window_hours=input.send_window_hours)
            if input.content is not UNSET:
                data["content"] = input.content.to_dict() if input.content else {}
            if input.segment_ids is not UNSET:
                data["segment_ids"] = ids.decode_many(input.segment_ids or [], "Segment", "segmentIds")
            if input.exclusion_segment_ids is not UNSET:
                data["exclusion_segment_ids"] = ids.decode_many(input.exclusion_segment_ids or [], "Segment",
                                                                "exclusionSegmentIds")
            if input.product_id is not UNSET:
                data["product_id"] = ids.optional(input.product_id, "Product", "productId")
            return await service.update_campaign(info.context.principal, ids.decode(input.id, "Campaign"), data)

        return await payload(CampaignPayload, run, _campaign)

    @strawberry.mutation(description="Delete a draft.")
    async def delete_campaign(self, info: Info, id: GlobalID) -> DeleteCampaignPayload:
        return await payload(DeleteCampaignPayload, lambda: service.delete_campaign(
            info.context.principal, ids.decode(id, "Campaign")), lambda _: {"deleted_id": id}, prefix=None)

    @strawberry.mutation(description="Schedule a draft: at a time in the brand's timezone, or at a local time in "
                                     "each recipient's.")
    async def schedule_campaign(self, info: Info, input: ScheduleCampaignInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.schedule_campaign(
            info.context.principal, ids.decode(input.id, "Campaign"), service.ScheduleMode(input.mode.value),
            input.local_time), _campaign)

    @strawberry.mutation(description="Back to draft.")
    async def unschedule_campaign(self, info: Info, id: GlobalID) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.unschedule_campaign(
            info.context.principal, ids.decode(id, "Campaign")), _campaign, prefix=None)

    @strawberry.mutation(description="Start sending now. The same idempotency key twice launches once.")
    async def launch_campaign(self, info: Info, id: GlobalID, idempotency_key: str) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.launch_campaign(
            info.context.principal, ids.decode(id, "Campaign"), idempotency_key), _campaign, prefix=None)

    @strawberry.mutation(description="Stop sending new messages within seconds; resume continues where it stopped.")
    async def pause_campaign(self, info: Info, id: GlobalID) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.pause_campaign(
            info.context.principal, ids.decode(id, "Campaign")), _campaign, prefix=None)

    @strawberry.mutation
    async def resume_campaign(self, info: Info, id: GlobalID) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.resume_campaign(
            info.context.principal, ids.decode(id, "Campaign")), _campaign, prefix=None)

    @strawberry.mutation(description="Nothing more is sent.")
    async def cancel_campaign(self, info: Info, id: GlobalID) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.cancel_campaign(
            info.context.principal, ids.decode(id, "Campaign")), _campaign, prefix=None)

    @strawberry.mutation(description="Choose the provider a brand sends a channel through (owners and admins).")
    async def set_delivery_provider(self, info: Info, input: SetDeliveryProviderInput) -> DeliveryProviderPayload:
        async def run():
            return await delivery.set_provider(info.context.principal, ids.decode(input.brand_id, "Brand", "brandId"),
                                               DomainChannel(input.channel.value), input.provider, input.settings,
                                               input.credentials)

        return await payload(DeliveryProviderPayload, run, lambda r: {"delivery_provider": provider_type(r)})

    @strawberry.mutation
    async def remove_delivery_provider(self, info: Info, brand_id: GlobalID, channel: Channel) -> DoneMessagingPayload:
        async def run():
            await delivery.remove_provider(info.context.principal, ids.decode(brand_id, "Brand", "brandId"),
                                           DomainChannel(channel.value))

        return await payload(DoneMessagingPayload, run, lambda _: {"ok": True}, prefix=None)

    @strawberry.mutation
    async def update_messaging_settings(self, info: Info, input: UpdateMessagingSettingsInput) -> MessagingSettingsPayload:
        async def run():
            data = _given(quiet_hours_start=input.quiet_hours_start, quiet_hours_end=input.quiet_hours_end,
                          frequency_cap_count=input.frequency_cap_count,
                          frequency_cap_hours=input.frequency_cap_hours,
                          send_rate_per_second=input.send_rate_per_second, attribution_days=input.attribution_days)
            return await delivery.update_messaging_settings(
                info.context.principal, ids.decode(input.brand_id, "Brand", "brandId"), data)

        return await payload(MessagingSettingsPayload, run, lambda m: {"messaging_settings": settings_type(m)})

    @strawberry.mutation(description="Lift a suppression; consent is not granted again by this.")
    async def remove_suppression(self, info: Info, brand_id: GlobalID, channel: Channel,
                                 address: str) -> DoneMessagingPayload:
        async def run():
            await delivery.remove_suppression(info.context.principal, ids.decode(brand_id, "Brand", "brandId"),
                                              DomainChannel(channel.value), address)

        return await payload(DoneMessagingPayload, run, lambda _: {"ok": True}, prefix=None)
