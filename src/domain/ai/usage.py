"""The copilot's usage meter and its quota.

Every finished run adds its tokens to ``ai_usage`` (tenant, UTC month, provider, model, feature,
who asked), and to the plan's monthly quota ``copilot_tokens`` ("copilot tokens per month",
``domain/plans``: the plan's limit plus add-ons). :func:`check_quota` is the one place a run
asks whether the tenant may use more: when this month's tokens have reached the limit it raises
the plans module's ``QuotaExceeded`` (``QUOTA_EXCEEDED``, with the quota, limit, use and reset in
its extensions). A run in progress is not cut off: its tokens are counted when it ends, even past
the limit (they were spent).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from domain.ai.models import AiUsage
from domain.plans.limits import Quota as PlanQuota
from domain.plans.limits import plan
from domain.plans.models import QuotaUsage
from domain.plans.quotas import QuotaExceeded
from domain.tenancy.models import Tenant

QUOTA = PlanQuota.COPILOT_TOKENS


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_of(now: datetime | None = None) -> date:
    return month_start(now).date()


async def tokens_by_provider(s, tenant_id: uuid.UUID, since: datetime) -> dict[str, int]:  # noqa: ANN001
    rows = await s.execute(select(AiUsage.provider, func.sum(AiUsage.tokens_in + AiUsage.tokens_out))
                           .where(AiUsage.tenant_id == tenant_id, AiUsage.month == since.date())
                           .group_by(AiUsage.provider))
    return {p: int(n or 0) for p, n in rows.all()}


async def tokens_this_month(s, tenant_id: uuid.UUID) -> int:  # noqa: ANN001
    total = await s.scalar(select(func.sum(AiUsage.tokens_in + AiUsage.tokens_out)).where(
        AiUsage.tenant_id == tenant_id, AiUsage.month == month_of()))
    return int(total or 0)


@dataclass(frozen=True)
class Quota:
    limit: int | None
    used: int


async def quota(s, tenant_id: uuid.UUID) -> Quota:  # noqa: ANN001
    """The plan's copilot tokens per month (with add-ons) and this month's use."""
    row = (await s.execute(select(Tenant.plan, Tenant.add_ons).where(Tenant.id == tenant_id))).one()
    used = await s.scalar(select(QuotaUsage.used).where(
        QuotaUsage.tenant_id == tenant_id, QuotaUsage.quota == QUOTA.value, QuotaUsage.period_start == month_of()))
    return Quota(plan(row.plan).limit(QUOTA, row.add_ons or {}), int(used or 0))


async def check_quota(s, tenant_id: uuid.UUID) -> None:  # noqa: ANN001
    """Raise QUOTA_EXCEEDED when the tenant has used its plan's copilot tokens for this month."""
    q = await quota(s, tenant_id)
    if q.limit is not None and q.used >= q.limit:
        raise QuotaExceeded(QUOTA, q.limit, q.used)


async def record(s, tenant_id: uuid.UUID, *, provider: str, model: str, feature: str, principal_id: str,  # noqa: ANN001
                 tokens_in: int, tokens_out: int, cost_micro_usd: int | None) -> None:
    """Add one run's tokens to this month's meter and to the plan's quota use (in the run's
    finishing transaction)."""
    values = dict(tenant_id=tenant_id, month=month_of(), provider=provider, model=model, feature=feature,
                  principal_id=principal_id, runs=1, tokens_in=tokens_in, tokens_out=tokens_out,
                  cost_micro_usd=cost_micro_usd or 0)
    spent = insert(QuotaUsage).values(tenant_id=tenant_id, quota=QUOTA.value, period_start=month_of(),
                                      used=tokens_in + tokens_out)
    await s.execute(spent.on_conflict_do_update(
        index_elements=[QuotaUsage.tenant_id, QuotaUsage.quota, QuotaUsage.period_start],
        set_={"used": QuotaUsage.used + spent.excluded.used}))
    stmt = insert(AiUsage).values(**values)
    await s.execute(stmt.on_conflict_do_update(
        index_elements=["tenant_id", "month", "provider", "model", "feature", "principal_id"],
        set_={"runs": AiUsage.runs + 1, "tokens_in": AiUsage.tokens_in + stmt.excluded.tokens_in,
              "tokens_out": AiUsage.tokens_out + stmt.excluded.tokens_out,
              "cost_micro_usd": AiUsage.cost_micro_usd + stmt.excluded.cost_micro_usd}))
