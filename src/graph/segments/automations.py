"""GraphQL for segment automations: types, the query and the mutations (with the tenant's
webhook signing secret rotation)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import UNSET, relay
from strawberry.scalars import JSON

from domain.pagination import clamp_first
from domain.segments import automations
from domain.segments.models import AutomationExecution as ExecutionModel
from domain.segments.models import AutomationRun as RunModel
from domain.segments.models import SegmentAutomation as AutomationModel
from graph.core import ids
from graph.core.connection import Connection
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.ids import node_uuids
from graph.customers.types import Customer
from graph.segments.types import Segment

AutomationTrigger = strawberry.enum(
    automations.Trigger, name="AutomationTrigger",
    description="ENTER and EXIT run after a refresh for those who entered or left; PERIODIC every "
                "config.everyHours for the current members.")
AutomationAction = strawberry.enum(
    automations.ActionKind, name="AutomationAction",
    description="ADD_TAG / REMOVE_TAG (config.tagId) or WEBHOOK (config.url). CAMPAIGN is reserved for "
                "campaigns and refused for now.")
AutomationExecutionStatus = strawberry.enum(automations.ExecutionStatus, name="AutomationExecutionStatus")
AutomationRunStatus = strawberry.enum(automations.RunStatus, name="AutomationRunStatus")


def config_out(config: dict[str, Any]) -> dict[str, Any]:
    """The stored config as GraphQL clients write it (camelCase, global tag id). It never
    holds a secret: the signing secret belongs to the tenant."""
    out: dict[str, Any] = {}
    if "tag_id" in config:
        out["tagId"] = str(ids.encode("Tag", uuid.UUID(config["tag_id"])))
    if "url" in config:
        out["url"] = config["url"]
    if "every_hours" in config:
        out["everyHours"] = config["every_hours"]
    return out


@strawberry.type(description="One automation for one customer and one occurrence (an entry, an exit or a period).")
class AutomationExecution:
    occurrence: str = strawberry.field(description="The entry time, exit:<time> or periodic:<period start>.")
    status: AutomationExecutionStatus
    attempts: int
    error: str | None
    updated_at: datetime
    run_started_at: datetime
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        found = await info.context.loaders.customer.load(self.customer_id)
        return Customer.from_model(found) if found else None

    @classmethod
    def from_row(cls, row: tuple[ExecutionModel, datetime]) -> AutomationExecution:
        e, started = row
        return cls(occurrence=e.occurrence, status=automations.ExecutionStatus(e.status), attempts=e.attempts,
                   error=e.error, updated_at=e.updated_at, run_started_at=started, customer_id=e.customer_id)


@strawberry.type(description="One run of an automation: the customers it claimed and how their executions went.")
class AutomationRun:
    id: strawberry.ID
    started_at: datetime
    finished_at: datetime | None = strawberry.field(description="Null while webhook deliveries are being retried.")
    status: AutomationRunStatus
    customers: int
    succeeded: int
    failed: int

    @classmethod
    def from_model(cls, r: RunModel) -> AutomationRun:
        return cls(id=strawberry.ID(str(r.id)), started_at=r.started_at, finished_at=r.finished_at,
                   status=automations.RunStatus(r.status), customers=r.customers, succeeded=r.succeeded,
                   failed=r.failed)


@strawberry.type(description="What happens when customers enter or leave a segment, or periodically to its members.")
class SegmentAutomation(relay.Node):
    id: relay.NodeID[str]
    name: str
    trigger: AutomationTrigger
    action: AutomationAction
    config: JSON = strawberry.field(description="tagId, url or everyHours, as given; never a secret.")
    is_active: bool
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime
    segment_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def segment(self, info: Info) -> Segment | None:
        found = await info.context.loaders.segment.load(self.segment_id)
        return Segment.from_model(found) if found else None

    @strawberry.field(description="Executions, newest run first.")
    async def executions(self, info: Info, first: int = 20, after: str | None = None) -> Connection[AutomationExecution]:
        page = await automations.executions(info.context.principal, uuid.UUID(self.id), first=clamp_first(first),
                                            after=after)
        return Connection.of(page, AutomationExecution.from_row)

    @strawberry.field(description="Runs, newest first.")
    async def runs(self, info: Info, first: int = 20) -> list[AutomationRun]:
        page = await automations.runs(info.context.principal, uuid.UUID(self.id), first=clamp_first(first))
        return [AutomationRun.from_model(r) for r in page.items]

    @classmethod
    def from_model(cls, a: AutomationModel) -> SegmentAutomation:
        return cls(id=str(a.id), name=a.name, trigger=automations.Trigger(a.trigger),
                   action=automations.ActionKind(a.action), config=config_out(a.config or {}), is_active=a.is_active,
                   last_run_at=a.last_run_at, created_at=a.created_at, updated_at=a.updated_at,
                   segment_id=a.segment_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        ids_ = node_uuids(node_ids)
        found = await automations.automations_by_ids(info.context.principal, [i for i in ids_ if i is not None])
        return [cls.from_model(found[i]) if i in found else None for i in ids_]


@strawberry.type
class SegmentAutomationQuery:
    @strawberry.field(description="The segment's automations, oldest first.")
    async def segment_automations(self, info: Info, segment_id: relay.GlobalID) -> list[SegmentAutomation]:
        found = await automations.list_automations(info.context.principal,
                                                   ids.decode(segment_id, "Segment", "segmentId"))
        return [SegmentAutomation.from_model(a) for a in found]


@strawberry.input(description="The settings the trigger and action need, and no others.")
class SegmentAutomationConfigInput:
    tag_id: relay.GlobalID | None = strawberry.field(default=None, description="ADD_TAG and REMOVE_TAG.")
    url: str | None = strawberry.field(
        default=None, description="WEBHOOK: https only (http://127.0.0.1 or localhost outside production), at most "
                                  "2 KB, no credentials; deliveries are signed (X-Brandgraph-Signature).")
    every_hours: int | None = strawberry.field(default=None, description="PERIODIC: 1 to 168.")


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


@strawberry.type
class SegmentAutomationPayload:
    automation: SegmentAutomation | None = None
    errors: list[UserError]


@strawberry.type
class DeleteSegmentAutomationPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.type
class RotateWebhookSecretPayload:
    secret: str | None = strawberry.field(
        default=None, description="The new signing secret, shown this once. Deliveries are signed with it from now on.")
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
    return out


def _automation(a: AutomationModel) -> dict[str, Any]:
    return {"automation": SegmentAutomation.from_model(a)}


@strawberry.type
class SegmentAutomationMutation:
    @strawberry.mutation(description="Add an automation to a segment (enter, exit or periodic; tag or webhook).")
    async def create_segment_automation(self, info: Info, input: CreateSegmentAutomationInput) -> SegmentAutomationPayload:
        async def run():
            return await automations.create_automation(
                info.context.principal, ids.decode(input.segment_id, "Segment", "segmentId"), input.name,
                input.trigger, input.action, _config_in(input.config) or {}, is_active=input.is_active)

        return await payload(SegmentAutomationPayload, run, _automation)

    @strawberry.mutation
    async def update_segment_automation(self, info: Info, input: UpdateSegmentAutomationInput) -> SegmentAutomationPayload:
        async def run():
            data: dict[str, Any] = {}
            for key in ("name", "trigger", "action", "is_active"):
                value = getattr(input, key)
                if value is not UNSET:
                    data[key] = value
            if input.config is not UNSET:
                data["config"] = _config_in(input.config) or {}
            return await automations.update_automation(
                info.context.principal, ids.decode(input.id, "SegmentAutomation"), data)

        return await payload(SegmentAutomationPayload, run, _automation)

    @strawberry.mutation(description="Delete an automation with its execution history.")
    async def delete_segment_automation(self, info: Info, id: relay.GlobalID) -> DeleteSegmentAutomationPayload:
        return await payload(DeleteSegmentAutomationPayload, lambda: automations.delete_automation(
            info.context.principal, ids.decode(id, "SegmentAutomation")),
            lambda a: {"deleted_id": strawberry.ID(str(ids.encode("SegmentAutomation", a.id)))}, prefix=None)

    @strawberry.mutation(description="A new webhook signing secret for the tenant, returned this once (owners and admins).")
    async def rotate_webhook_secret(self, info: Info) -> RotateWebhookSecretPayload:
        return await payload(RotateWebhookSecretPayload, lambda: automations.rotate_webhook_secret(info.context.principal),
                             lambda secret: {"secret": secret}, prefix=None)
