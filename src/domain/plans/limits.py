"""The one definition of each plan's limits: the API's leaky bucket (maximum and restore rate),
the largest single operation, and the quotas capabilities meter. Add-ons raise a quota.

A quota is either a **count** (how many of something exist now, e.g. active segments: it never
resets, it frees up when one is removed) or **monthly** (how much was used this calendar month
in UTC, e.g. audience exports: it resets at 00:00 UTC on the first of the next month).
``None`` as a limit means unlimited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum


class PlanName(str, Enum):
    FREE = "free"
    GROWTH = "growth"
    ENTERPRISE = "enterprise"


class QuotaKind(str, Enum):
    COUNT = "count"
    MONTHLY = "monthly"


class Quota(str, Enum):
    ACTIVE_SEGMENTS = "active_segments"
    AUDIENCE_EXPORTS = "audience_exports"
    COPILOT_TOKENS = "copilot_tokens"
    MESSAGES = "messages"

    @property
    def kind(self) -> QuotaKind:
        return QuotaKind.COUNT if self is Quota.ACTIVE_SEGMENTS else QuotaKind.MONTHLY

    @property
    def label(self) -> str:
        return {Quota.ACTIVE_SEGMENTS: "active segments", Quota.AUDIENCE_EXPORTS: "audience exports per month",
                Quota.COPILOT_TOKENS: "copilot tokens per month", Quota.MESSAGES: "messages per month"}[self]


@dataclass(frozen=True)
class Plan:
    name: str
    bucket_maximum: int  # cost points the API bucket holds
    restore_rate: int  # cost points restored per second
    max_query_cost: int  # the largest single operation
    quotas: Mapping[Quota, int | None] = field(default_factory=dict)

    def limit(self, quota: Quota, add_ons: Mapping[str, int] | None = None) -> int | None:
        base = self.quotas.get(quota)
        if base is None:
            return None
        return base + int((add_ons or {}).get(quota.value, 0))


PLAN_LIMITS: dict[str, Plan] = {
    "free": Plan("free", bucket_maximum=1000, restore_rate=50, max_query_cost=1000, quotas={
        Quota.ACTIVE_SEGMENTS: 10, Quota.AUDIENCE_EXPORTS: 5, Quota.COPILOT_TOKENS: 50_000,
        Quota.MESSAGES: 1_000}),
    "growth": Plan("growth", bucket_maximum=2000, restore_rate=100, max_query_cost=2000, quotas={
        Quota.ACTIVE_SEGMENTS: 100, Quota.AUDIENCE_EXPORTS: 100, Quota.COPILOT_TOKENS: 2_000_000,
        Quota.MESSAGES: 100_000}),
    "enterprise": Plan("enterprise", bucket_maximum=10_000, restore_rate=500, max_query_cost=5000, quotas={
        Quota.ACTIVE_SEGMENTS: None, Quota.AUDIENCE_EXPORTS: None, Quota.COPILOT_TOKENS: 50_000_000,
        Quota.MESSAGES: None}),
}
PLANS = tuple(PLAN_LIMITS)  # free, growth, enterprise, from the smallest up

# an add-on is named after the quota it raises; its amount is added to the plan's limit
ADD_ONS = tuple(q.value for q in Quota)
MAX_ADD_ON = 1_000_000_000


def plan(name: str | None) -> Plan:
    """A plan by name; an unknown name (a row written by hand) reads as the free plan."""
    return PLAN_LIMITS.get(name or "free", PLAN_LIMITS["free"])


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime | None = None) -> datetime:
    start = month_start(now)
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def resets_at(quota: Quota, now: datetime | None = None) -> datetime | None:
    """When a quota's use starts again from zero: the next month for monthly ones, never for counts."""
    return next_month_start(now) if quota.kind is QuotaKind.MONTHLY else None
