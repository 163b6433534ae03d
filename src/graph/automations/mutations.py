"""Segment automation mutations: each translates its input, calls one domain service, and
returns a payload with the result or typed errors."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import UNSET, relay
from strawberry.scalars import JSON

from domain.automations import service
from domain.automations.models import SegmentAutomation as AutomationModel
from graph.automations.types import AutomationAction, AutomationTrigger, SegmentAutomation
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given
from graph.delivery.types import Channel as MessageChannel


@strawberry.input(description="The settings the trigger and action need, and no others.")
class SegmentAutomationConfigInput:
    tag_id: relay.GlobalID | None = strawberry.field(default=None, description="ADD_TAG and REMOVE_TAG.")
    url: str | None = strawberry.field(
        default=None, description="WEBHOOK: https only (http://127.0.0.1 or localhost outside production), at most "
                                  "2 KB, no credentials; deliveries are signed (X-Brandgraph-Signature).")
    every_hours: int | None = strawberry.field(default=None, description="PERIODIC: 1 to 168.")
    event_name: str | None = strawberry.field(default=None, description="EVENT: the tracked event's name.")
    properties: JSON | None = strawberry.field(default=None, description="EVENT: its properties (an object, 4 KB).")
    attribute: str | None = strawberry.field(default=None, description="UPDATE_CUSTOMER: a declared custom attribute.")
    value: JSON | None = strawberry.field(default=None, description="UPDATE_CUSTOMER: the value to set (of the "
                                                                      "attribute's declared type).")
    clear: bool | None = strawberry.field(default=None, description="UPDATE_CUSTOMER: true removes the attribute.")
    channel: MessageChannel | None = strawberry.field(default=None, description="MESSAGE: EMAIL, SMS or PUSH.")
    content: JSON | None = strawberry.field(
        default=None, description="MESSAGE: the channel's template fields, as a campaign's content (EMAIL: subject, "
                                  "preheader, html, text; SMS: text; PUSH: title, body, data), with the same "
                                  "sandboxed templates and variables.")
    delay_minutes: int | None = strawberry.field(
        default=None, description="MESSAGE: a wait before the message, in minutes (0 to 43200, 30 days).")


@strawberry.input
class CreateSegmentAutomationInput:
    segment_id: relay.GlobalID
    name: str
    trigger: AutomationTrigger
    action: AutomationAction
    config: SegmentAutomationConfigInput
    is_active: bool = True


@strawberry.input
class UpdateSegmentAutomationInput:
    id: relay.GlobalID
    name: str | None = UNSET
    trigger: AutomationTrigger | None = UNSET
    action: AutomationAction | None = UNSET
    config: SegmentAutomationConfigInput | None = strawberry.field(
        default=UNSET, description="Replaces the whole config. Omitted with a new trigger or action: the settings "
                                   "that still apply are kept.")
    is_active: bool | None = UNSET


@strawberry.input
class DeleteSegmentAutomationInput:
    id: relay.GlobalID


@strawberry.type
class SegmentAutomationPayload:
    automation: SegmentAutomation | None = None
    errors: list[UserError]


@strawberry.type
class DeleteSegmentAutomationPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


def _config_in(c: SegmentAutomationConfigInput | None) -> dict[str, Any] | None:
    if c is None:
        return None
    out: dict[str, Any] = {}
    if c.tag_id is not None:
        out["tag_id"] = str(ids.decode(c.tag_id, "Tag", "config.tagId"))
    if c.url is not None:
        out["url"] = c.url
    if c.every_hours is not None:
        out["every_hours"] = c.every_hours
    for key in ("event_name", "properties", "attribute", "value", "clear", "content", "delay_minutes"):
        if getattr(c, key) is not None:
            out[key] = getattr(c, key)
    if c.channel is not None:
        out["channel"] = c.channel.value
    return out


def _automation(a: AutomationModel) -> dict[str, Any]:
    return {"automation": SegmentAutomation.from_model(a)}


@strawberry.type
class AutomationMutation:
    @strawberry.mutation(description="Add an automation to a segment (enter, exit or periodic; tag or webhook).")
    async def create_segment_automation(self, info: Info, input: CreateSegmentAutomationInput) -> SegmentAutomationPayload:
        async def run():
            return await service.create_automation(
                info.context.principal, ids.decode(input.segment_id, "Segment", "segmentId"), input.name,
                input.trigger, input.action, _config_in(input.config) or {}, is_active=input.is_active)

        return await payload(SegmentAutomationPayload, run, _automation)

    @strawberry.mutation
    async def update_segment_automation(self, info: Info, input: UpdateSegmentAutomationInput) -> SegmentAutomationPayload:
        async def run():
            data = given(name=input.name, trigger=input.trigger, action=input.action, is_active=input.is_active)
            if input.config is not UNSET:
                data["config"] = _config_in(input.config) or {}
            return await service.update_automation(
                info.context.principal, ids.decode(input.id, "SegmentAutomation"), data)

        return await payload(SegmentAutomationPayload, run, _automation)

    @strawberry.mutation(description="Delete an automation with its execution history.")
    async def delete_segment_automation(self, info: Info, input: DeleteSegmentAutomationInput) -> DeleteSegmentAutomationPayload:
        return await payload(DeleteSegmentAutomationPayload, lambda: service.delete_automation(
            info.context.principal, ids.decode(input.id, "SegmentAutomation")),
            lambda a: {"deleted_id": strawberry.ID(str(ids.encode("SegmentAutomation", a.id)))})
