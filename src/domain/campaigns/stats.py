"""Campaign stats: counters changed in the same transaction as what they count, published live.

Every change is one ``UPDATE campaign_stats SET x = x + n, version = version + 1 ... RETURNING``;
the returned row is published on the campaign's topic after the transaction commits, so live
readers (the ``campaignStats`` subscription, in any API process) get the new figures without
reading the database. ``version`` orders snapshots: a reader drops one older than what it showed.

Formulas (docs/campaigns.md): rates are percentages with two decimals over delivered messages
(open_rate = opens / delivered, click_rate = clicks / delivered), conversion_rate = conversions /
clicks, roas = revenue / cost; each is null when its denominator is zero.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.campaigns.models import Campaign, CampaignStats
from domain.platform import outbox

COUNTERS = ("audience", "excluded", "queued", "sent", "failed", "delivered", "bounced", "opens", "clicks",
            "unsubscribes", "complaints", "conversions", "revenue_cents")


def _rate(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


@dataclass(frozen=True)
class Figures:
    """Stats as read or as published: the counters, the campaign's cost, and when they changed."""

    campaign_id: uuid.UUID
    counters: dict[str, int]
    version: int
    cost_cents: int
    first_sent_at: datetime | None
    updated_at: datetime

    def __getattr__(self, name: str) -> int:
        try:
            return self.counters[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def open_rate(self) -> float | None:
        return _rate(self.counters["opens"], self.counters["delivered"])

    @property
    def click_rate(self) -> float | None:
        return _rate(self.counters["clicks"], self.counters["delivered"])

    @property
    def conversion_rate(self) -> float | None:
        return _rate(self.counters["conversions"], self.counters["clicks"])

    @property
    def roas(self) -> float | None:
        cost = self.cost_cents
        return round(self.counters["revenue_cents"] / cost, 2) if cost else None

    def seconds_left(self, now: datetime | None = None) -> int | None:
        """Queued messages at the rate sent so far; None before the first send or when done."""
        queued = self.counters["queued"]
        done = self.counters["sent"] + self.counters["failed"]
        if not queued or not done or self.first_sent_at is None:
            return 0 if not queued else None
        elapsed = ((now or datetime.now(UTC)) - self.first_sent_at).total_seconds()
        if elapsed <= 0:
            return None
        return int(queued / (done / elapsed)) + 1

    def to_event(self) -> dict[str, Any]:
        return {"campaign_id": str(self.campaign_id), "counters": self.counters, "version": self.version,
                "cost_cents": self.cost_cents, "first_sent_at": self.first_sent_at.isoformat() if self.first_sent_at else None,
                "updated_at": self.updated_at.isoformat()}

    @staticmethod
    def version_of(e: dict[str, Any]) -> int:
        """The version an event carries, without reading the rest of it."""
        return int(e["version"])

    @classmethod
    def from_event(cls, e: dict[str, Any]) -> Figures:
        return cls(campaign_id=uuid.UUID(e["campaign_id"]), counters=dict(e["counters"]), version=int(e["version"]),
                   cost_cents=int(e["cost_cents"]),
                   first_sent_at=datetime.fromisoformat(e["first_sent_at"]) if e.get("first_sent_at") else None,
                   updated_at=datetime.fromisoformat(e["updated_at"]))

    @classmethod
    def of(cls, row: CampaignStats | Any, cost_cents: int) -> Figures:
        return cls(campaign_id=row.campaign_id, counters={c: int(getattr(row, c)) for c in COUNTERS},
                   version=int(row.version), cost_cents=cost_cents, first_sent_at=row.first_sent_at,
                   updated_at=row.updated_at)


async def bump(s: AsyncSession, tenant_id: uuid.UUID, campaign_id: uuid.UUID, *, cost_cents: int | None = None,
               sent_now: bool = False, **deltas: int) -> Figures | None:
    """Add ``deltas`` to the counters; publish the new figures once the transaction commits."""
    deltas = {k: v for k, v in deltas.items() if v}
    unknown = set(deltas) - set(COUNTERS)
    if unknown:
        raise ValueError(f"not campaign counters: {sorted(unknown)}")
    if not deltas and not sent_now:
        return None
    t = CampaignStats
    values: dict[str, Any] = {k: getattr(t, k) + v for k, v in deltas.items()}
    values["version"] = t.version + 1
    values["updated_at"] = func.clock_timestamp()
    if sent_now:
        values["first_sent_at"] = func.coalesce(t.first_sent_at, func.clock_timestamp())
    row = (await s.execute(update(t).where(t.tenant_id == tenant_id, t.campaign_id == campaign_id)
                           .values(**values).returning(t))).scalar_one_or_none()
    if row is None:
        return None
    if cost_cents is None:
        cost_cents = await s.scalar(select(Campaign.cost_cents).where(Campaign.tenant_id == tenant_id,
                                                                      Campaign.id == campaign_id)) or 0
    figures = Figures.of(row, cost_cents)
    outbox.publish(s, tenant_id, f"campaign:{campaign_id}", figures.to_event())
    return figures
