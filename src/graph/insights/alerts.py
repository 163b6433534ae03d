"""Alerts: rules per brand, the alerts connection with unread counts, markAlertsRead, and the
``alerts`` subscription (docs/insights.md "Alerts")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.relay import GlobalID, PageInfo

from domain.insights import alerts as service
from domain.insights.models import Alert as AlertModel
from domain.insights.models import AlertKind as DomainAlertKind
from domain.insights.models import AlertRule as AlertRuleModel
from domain.pagination import Page
from graph.core import ids
from graph.core.brands import brand_or_active
from graph.core.connection import page_request
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.nodes import node_resolver
from graph.core.scalars import BigInt
from graph.customers.types import Customer


@strawberry.enum(description="What an alert rule watches.")
class AlertKind(Enum):
    LIFETIME_VALUE = "lifetime_value"
    CHURN_RISK = "churn_risk"
    SEGMENT_ENTERED = "segment_entered"



@strawberry.type(description="A brand's alert rule: lifetime value reaches threshold (BigInt cents), churn risk "
                             "reaches threshold (0-100), or the customer entered a segment.")
class AlertRule(relay.Node):
    id: relay.NodeID[str]
    name: str
    kind: AlertKind
    threshold: BigInt | None = strawberry.field(
        description="Cents for LIFETIME_VALUE, 0-100 for CHURN_RISK; null for SEGMENT_ENTERED.")
    segment_id: GlobalID | None
    created_by: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, r: AlertRuleModel) -> AlertRule:
        return cls(id=str(r.id), name=r.name, kind=AlertKind(r.kind), threshold=r.threshold,
                   segment_id=GlobalID("Segment", str(r.segment_id)) if r.segment_id else None,
                   created_by=r.created_by, created_at=r.created_at)

    resolve_nodes = node_resolver(lambda info, keys: service.rules_by_id(info.context.principal, keys))


@strawberry.type(description="A customer crossed an alert rule: recorded once per crossing.")
class Alert(relay.Node):
    id: relay.NodeID[str]
    kind: AlertKind
    value: BigInt | None = strawberry.field(
        description="The value that crossed (cents or 0-100); null for SEGMENT_ENTERED.")
    crossed_at: datetime
    read_at: datetime | None
    read_by: str | None
    rule_id: GlobalID
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        found = await info.context.loaders.customer.load(self.customer_id)
        return Customer.from_model(found) if found else None

    @classmethod
    def from_model(cls, a: AlertModel) -> Alert:
        return cls(id=str(a.id), kind=AlertKind(a.kind), value=a.value, crossed_at=a.crossed_at, read_at=a.read_at,
                   read_by=a.read_by, rule_id=GlobalID("AlertRule", str(a.rule_id)), customer_id=a.customer_id)

    resolve_nodes = node_resolver(lambda info, keys: service.alerts_by_id(info.context.principal, keys))


def _page_info(page: Page) -> PageInfo:
    return PageInfo(has_next_page=page.has_next, has_previous_page=page.has_previous,
                    start_cursor=page.cursors[0] if page.cursors else None,
                    end_cursor=page.cursors[-1] if page.cursors else None)


@strawberry.type
class AlertEdge:
    cursor: str
    node: Alert


@strawberry.type
class AlertConnection:
    edges: list[AlertEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Alerts of the brand (unread only, when asked).")
    unread_count: int = strawberry.field(description="Unread alerts of the brand.")


@strawberry.type
class AlertRuleEdge:
    cursor: str
    node: AlertRule


@strawberry.type
class AlertRuleConnection:
    edges: list[AlertRuleEdge]
    page_info: PageInfo


@strawberry.type
class AlertQuery:
    @strawberry.field(description="A brand's alerts, newest first, with unread counts; brandId falls back to "
                                  "X-Brand-Id.")
    async def alerts(self, info: Info, brand_id: GlobalID | None = None, unread_only: bool = False, first: int = 20,
                     after: str | None = None, last: int | None = None, before: str | None = None) -> AlertConnection:
        r = await service.list_alerts(info.context.principal, brand_or_active(info, brand_id), unread_only,
                                      page_request(info, first, after, last, before))
        return AlertConnection(edges=[AlertEdge(cursor=c, node=Alert.from_model(a))
                                      for a, c in zip(r.page.items, r.page.cursors, strict=True)],
                               page_info=_page_info(r.page), total_count=r.total_count,
                               unread_count=r.unread_count)

    @strawberry.field(description="A brand's alert rules, oldest first.")
    async def alert_rules(self, info: Info, brand_id: GlobalID | None = None, first: int = 20,
                          after: str | None = None, last: int | None = None,
                          before: str | None = None) -> AlertRuleConnection:
        page = await service.list_rules(info.context.principal, brand_or_active(info, brand_id),
                                        page_request(info, first, after, last, before))
        return AlertRuleConnection(edges=[AlertRuleEdge(cursor=c, node=AlertRule.from_model(x))
                                          for x, c in zip(page.items, page.cursors, strict=True)],
                                   page_info=_page_info(page))


@strawberry.input
class CreateAlertRuleInput:
    name: str
    kind: AlertKind
    brand_id: GlobalID | None = None
    threshold: BigInt | None = strawberry.field(default=None, description="Cents (LIFETIME_VALUE) or 0-100 "
                                                                       "(CHURN_RISK).")
    segment_id: GlobalID | None = strawberry.field(default=None, description="For SEGMENT_ENTERED.")


@strawberry.input
class DeleteAlertRuleInput:
    id: GlobalID


@strawberry.input
class MarkAlertsReadInput:
    brand_id: GlobalID | None = None
    alert_ids: list[GlobalID] | None = strawberry.field(default=None, description="Omitted: every unread alert "
                                                                                  "of the brand.")


@strawberry.type
class AlertRulePayload:
    alert_rule: AlertRule | None = None
    errors: list[UserError]


@strawberry.type
class DeleteAlertRulePayload:
    deleted_id: GlobalID | None = None
    errors: list[UserError]


@strawberry.type
class MarkAlertsReadPayload:
    marked: int | None = None
    unread_count: int | None = None
    errors: list[UserError]


@strawberry.type
class AlertMutation:
    @strawberry.mutation(description="Add an alert rule to a brand (marketers, admins, owners).")
    async def create_alert_rule(self, info: Info, input: CreateAlertRuleInput) -> AlertRulePayload:
        async def run():
            segment = ids.decode(input.segment_id, "Segment", "segmentId") if input.segment_id else None
            return await service.create_rule(info.context.principal, brand_or_active(info, input.brand_id), input.name,
                                                   DomainAlertKind(input.kind.value), input.threshold, segment)

        return await payload(AlertRulePayload, run, lambda r: {"alert_rule": AlertRule.from_model(r)})

    @strawberry.mutation(description="Delete an alert rule with its alerts.")
    async def delete_alert_rule(self, info: Info, input: DeleteAlertRuleInput) -> DeleteAlertRulePayload:
        async def run():
            return await service.delete_rule(info.context.principal, ids.decode(input.id, "AlertRule", "id"))

        return await payload(DeleteAlertRulePayload, run, lambda x: {"deleted_id": GlobalID("AlertRule", str(x))})

    @strawberry.mutation(description="Mark a brand's alerts read (the read state is the brand's, shared by its "
                                     "members).")
    async def mark_alerts_read(self, info: Info, input: MarkAlertsReadInput) -> MarkAlertsReadPayload:
        async def run():
            chosen = ids.decode_many(input.alert_ids, "Alert", "alertIds")
            return await service.mark_read(info.context.principal, brand_or_active(info, input.brand_id), chosen)

        return await payload(MarkAlertsReadPayload, run, lambda r: {"marked": r[0], "unread_count": r[1]})


@strawberry.type
class AlertSubscription:
    @strawberry.subscription(description="Each new alert of a brand, from any process.")
    async def alerts(self, info: Info, brand_id: GlobalID | None = None) -> AsyncGenerator[Alert, None]:
        principal = info.context.principal
        brand = brand_or_active(info, brand_id)
        await service.subscription_brand(principal, brand)  # visible, or NOT_FOUND
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, service.TOPIC) as queue:
            while True:
                event = await queue.get()
                if event.get("brand_id") != str(brand):
                    continue
                await info.context.recheck()
                found = await service.alerts_by_id(info.context.principal, [uuid.UUID(x) for x in event["ids"]])
                info.context.fresh_loaders()
                for alert in sorted(found.values(), key=lambda a: (a.crossed_at, a.id)):
                    if alert.brand_id == brand:
                        yield Alert.from_model(alert)
