"""Campaign mutations: definitions and the status machine."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.campaigns import service
from graph.campaigns.types import Campaign, ScheduleMode
from graph.core import ids, inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given
from graph.core.scalars import BigInt
from graph.delivery.types import Channel


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
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    name: str
    channel: Channel
    content: CampaignContentInput | None = None
    segment_ids: list[GlobalID] = strawberry.field(default_factory=list)
    exclusion_segment_ids: list[GlobalID] = strawberry.field(default_factory=list)
    priority: int | None = None
    event_ref: str | None = None
    product_id: GlobalID | None = None
    cost_cents: BigInt | None = None
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
    cost_cents: BigInt | None = UNSET
    send_window_hours: int | None = UNSET


@strawberry.input
class ScheduleCampaignInput:
    id: GlobalID
    mode: ScheduleMode = service.ScheduleMode.AT
    local_time: str = strawberry.field(description="Wall-clock date and time without offset, e.g. 2026-12-01T09:00.")


@strawberry.input
class CampaignIdInput:
    id: GlobalID


@strawberry.input
class LaunchCampaignInput:
    id: GlobalID
    idempotency_key: str = strawberry.field(description="The same key twice launches once.")


@strawberry.type
class CampaignPayload:
    campaign: Campaign | None = None
    errors: list[UserError]


@strawberry.type
class DeleteCampaignPayload:
    deleted_id: GlobalID | None = None
    errors: list[UserError]


def _campaign(c: Any) -> dict[str, Any]:
    return {"campaign": Campaign.from_model(c)}


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
            return await service.create_campaign(info.context.principal, inputs.brand(info, input.brand_id),
                                                 data)

        return await payload(CampaignPayload, run, _campaign)

    @strawberry.mutation
    async def update_campaign(self, info: Info, input: UpdateCampaignInput) -> CampaignPayload:
        async def run():
            data = given(name=input.name, priority=input.priority, event_ref=input.event_ref,
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
    async def delete_campaign(self, info: Info, input: CampaignIdInput) -> DeleteCampaignPayload:
        return await payload(DeleteCampaignPayload, lambda: service.delete_campaign(
            info.context.principal, ids.decode(input.id, "Campaign")), lambda _: {"deleted_id": input.id})

    @strawberry.mutation(description="Schedule a draft: at a time in the brand's timezone, or at a local time in "
                                     "each recipient's.")
    async def schedule_campaign(self, info: Info, input: ScheduleCampaignInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.schedule_campaign(
            info.context.principal, ids.decode(input.id, "Campaign"), service.ScheduleMode(input.mode.value),
            input.local_time), _campaign)

    @strawberry.mutation(description="Back to draft.")
    async def unschedule_campaign(self, info: Info, input: CampaignIdInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.unschedule_campaign(
            info.context.principal, ids.decode(input.id, "Campaign")), _campaign)

    @strawberry.mutation(description="Start sending now. The same idempotency key twice launches once.")
    async def launch_campaign(self, info: Info, input: LaunchCampaignInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.launch_campaign(
            info.context.principal, ids.decode(input.id, "Campaign"), input.idempotency_key), _campaign)

    @strawberry.mutation(description="Stop sending new messages within seconds; resume continues where it stopped.")
    async def pause_campaign(self, info: Info, input: CampaignIdInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.pause_campaign(
            info.context.principal, ids.decode(input.id, "Campaign")), _campaign)

    @strawberry.mutation
    async def resume_campaign(self, info: Info, input: CampaignIdInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.resume_campaign(
            info.context.principal, ids.decode(input.id, "Campaign")), _campaign)

    @strawberry.mutation(description="Nothing more is sent.")
    async def cancel_campaign(self, info: Info, input: CampaignIdInput) -> CampaignPayload:
        return await payload(CampaignPayload, lambda: service.cancel_campaign(
            info.context.principal, ids.decode(input.id, "Campaign")), _campaign)
