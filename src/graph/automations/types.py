"""GraphQL types of segment automations: the automation (a Node), its runs and executions, and
the enums of triggers, actions and statuses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.automations import models, service
from domain.automations.models import AutomationExecution as ExecutionModel
from domain.automations.models import AutomationRun as RunModel
from domain.automations.models import SegmentAutomation as AutomationModel
from graph.core import ids
from domain.campaigns.stats import Figures
from graph.campaigns.types import CampaignStats
from graph.core.batch import now, wanted
from graph.core.connection import Connection, page_request
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.customers.types import Customer, customer_or_none
from graph.segments.types import Segment

AutomationTrigger = strawberry.enum(
    models.Trigger, name="AutomationTrigger",
    description="ENTER and EXIT run after a refresh for those who entered or left; PERIODIC every "
                "config.everyHours for the current members.")
AutomationAction = strawberry.enum(
    models.ActionKind, name="AutomationAction",
    description="ADD_TAG / REMOVE_TAG (config.tagId), WEBHOOK (config.url), EVENT (config.eventName, "
                "config.properties: a tracked event on the customer) or UPDATE_CUSTOMER (config.attribute with "
                "config.value or config.clear: a custom attribute), MESSAGE (config.channel, config.content, "
                "config.delayMinutes: one message to the customer through the campaign pipeline, after an optional "
                "wait). CAMPAIGN is reserved for campaigns and refused "
                "for now.")
AutomationExecutionStatus = strawberry.enum(models.ExecutionStatus, name="AutomationExecutionStatus")
AutomationRunStatus = strawberry.enum(models.RunStatus, name="AutomationRunStatus")


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
    if "event_name" in config:
        out["eventName"] = config["event_name"]
    for key in ("properties", "attribute", "value", "clear", "content"):
        if key in config:
            out[key] = config[key]
    if "channel" in config:
        out["channel"] = config["channel"].upper()
    if "delay_minutes" in config:
        out["delayMinutes"] = config["delay_minutes"]
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
    def customer(self, info: Info) -> Customer | None:
        return now(info.context.loaders.customer, self.customer_id, customer_or_none)

    @classmethod
    def from_row(cls, row: tuple[ExecutionModel, datetime]) -> AutomationExecution:
        e, started = row
        return cls(occurrence=e.occurrence, status=models.ExecutionStatus(e.status), attempts=e.attempts,
                   error=e.error, updated_at=e.updated_at, run_started_at=started, customer_id=e.customer_id)


@strawberry.type(description="One run of an automation: the customers it claimed and how their executions went.")
class AutomationRun(relay.Node):
    id: relay.NodeID[str]
    started_at: datetime
    finished_at: datetime | None = strawberry.field(description="Null while webhook deliveries are being retried.")
    status: AutomationRunStatus
    customers: int
    succeeded: int
    failed: int

    @strawberry.field(description="A MESSAGE automation's run: its messages' stats, kept as a campaign's (sent, "
                                  "delivered, opens, clicks, conversions); null for other actions.")
    async def message_stats(self, info: Info) -> CampaignStats | None:
        row = await info.context.loaders.campaign_stats.load(uuid.UUID(self.id))
        return CampaignStats.of(Figures.of(row, 0)) if row is not None else None

    @classmethod
    def from_model(cls, r: RunModel) -> AutomationRun:
        return cls(id=str(r.id), started_at=r.started_at, finished_at=r.finished_at,
                   status=models.RunStatus(r.status), customers=r.customers, succeeded=r.succeeded,
                   failed=r.failed)

    resolve_nodes = node_resolver(lambda info, keys: service.runs_by_ids(info.context.principal, keys))


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
    async def executions(self, info: Info, first: int | None = 20, after: str | None = None,
                         last: int | None = None, before: str | None = None) -> Connection[AutomationExecution]:
        selected = frozenset(wanted(info, "edges", "node").keys() & {"customer"})
        page = await info.context.loaders.automation_executions.load(
            (uuid.UUID(self.id), page_request(info, first, after, last, before), selected))
        return Connection.of(page, AutomationExecution.from_row)

    @strawberry.field(description="Runs, newest first.")
    async def runs(self, info: Info, first: int | None = 20, after: str | None = None, last: int | None = None,
                   before: str | None = None) -> Connection[AutomationRun]:
        page = await info.context.loaders.automation_runs.load((uuid.UUID(self.id), page_request(info, first, after, last, before)))
        return Connection.of(page, AutomationRun.from_model)

    @classmethod
    def from_model(cls, a: AutomationModel) -> SegmentAutomation:
        return cls(id=str(a.id), name=a.name, trigger=models.Trigger(a.trigger),
                   action=models.ActionKind(a.action), config=config_out(a.config or {}), is_active=a.is_active,
                   last_run_at=a.last_run_at, created_at=a.created_at, updated_at=a.updated_at,
                   segment_id=a.segment_id)

    resolve_nodes = node_resolver(lambda info, keys: service.automations_by_ids(info.context.principal, keys))
