"""GraphQL types of plans: the tenant's plan, each quota's limit and use, and the API's usage."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.plans import api_usage, quotas
from domain.plans.limits import PlanName as DomainPlanName
from domain.plans.limits import Quota as DomainQuota
from domain.plans.models import ConsumerKind as DomainConsumerKind
from graph.core import ids
from graph.core.scalars import BigInt

PlanName = strawberry.enum(DomainPlanName, name="PlanName", description="A tenant's plan.")
Quota = strawberry.enum(
    DomainQuota, name="Quota",
    description="What a plan limits. ACTIVE_SEGMENTS counts what exists now (it never resets); the others "
                "count use in the calendar month (UTC) and reset at its end.",
)


@strawberry.type(description="The API's leaky bucket on this plan (docs/partners.md, \"Throttling\").")
class ApiLimits:
    maximum_available: int = strawberry.field(description="Cost points the bucket holds.")
    restore_rate: int = strawberry.field(description="Cost points restored each second.")
    max_query_cost: int = strawberry.field(description="The most one operation may cost.")


@strawberry.type(description="One quota: its limit on the tenant's plan (add-ons included), its use and reset.")
class QuotaLimit:
    quota: Quota
    limit: BigInt | None = strawberry.field(description="Null: unlimited.")
    add_on: BigInt = strawberry.field(description="What add-ons add to the plan's limit.")
    used: BigInt
    resets_at: datetime | None = strawberry.field(
        description="When use starts again from zero (the next month, UTC); null for a count quota.")


@strawberry.type(description="The tenant's plan: its API limits and its quotas with their use.")
class TenantPlan:
    name: PlanName
    api: ApiLimits
    limits: list[QuotaLimit]

    @classmethod
    def of(cls, tp: quotas.TenantPlan, statuses: list[quotas.QuotaStatus]) -> TenantPlan:
        p = tp.plan
        return cls(
            name=DomainPlanName(p.name),
            api=ApiLimits(maximum_available=p.bucket_maximum, restore_rate=p.restore_rate,
                          max_query_cost=p.max_query_cost),
            limits=[QuotaLimit(quota=s.quota, limit=s.limit, add_on=s.add_on, used=s.used, resets_at=s.resets_at)
                    for s in statuses],
        )


ApiConsumerKind = strawberry.enum(DomainConsumerKind, name="ApiConsumerKind",
                                  description="Whose bucket an operation drew from.")
_NODE_TYPE = {DomainConsumerKind.CLIENT_APP: "ClientApp", DomainConsumerKind.API_KEY: "ApiKey",
              DomainConsumerKind.USER: "Member"}


@strawberry.type(description="One consumer's use of the API in one hour (UTC).")
class ApiUsageHour:
    hour: datetime = strawberry.field(description="The hour's start.")
    consumer_kind: ApiConsumerKind
    consumer_id: strawberry.ID = strawberry.field(
        description="The global id of the client app, API key or member (Member id for a person).")
    requests: int = strawberry.field(description="Operations asked for, throttled ones included.")
    cost: BigInt = strawberry.field(description="Cost points spent.")
    throttled: int = strawberry.field(description="Operations refused with THROTTLED or MAX_COST_EXCEEDED.")

    @classmethod
    def from_row(cls, r: api_usage.UsageRow) -> ApiUsageHour:
        kind = DomainConsumerKind(r.consumer_kind)
        return cls(hour=r.hour, consumer_kind=kind, consumer_id=strawberry.ID(str(ids.encode(_NODE_TYPE[kind],
                                                                                          r.consumer_id))),
                   requests=r.requests, cost=r.cost, throttled=r.throttled)
