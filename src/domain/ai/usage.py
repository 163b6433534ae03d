"""The copilot's usage meter and its quota.

Every finished run adds its tokens to ``ai_usage`` (tenant, UTC month, provider, model, feature,
who asked). :func:`check_quota` is the one place a run asks whether the tenant may use more: it
compares this month's tokens with the plan's limit. The limits are :data:`PLAN_TOKEN_LIMITS`
until the plans module's quota API ("copilot tokens per month") is wired in here; nothing else
reads them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from domain.ai.models import AiUsage
from domain.errors import QuotaExceeded
from domain.tenancy.models import Tenant

# Copilot tokens (input + output) per calendar month by plan; None: no limit.
PLAN_TOKEN_LIMITS: dict[str, int | None] = {"free": 200_000, "growth": 5_000_000, "enterprise": None}


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
    plan = await s.scalar(select(Tenant.plan).where(Tenant.id == tenant_id))
    return Quota(PLAN_TOKEN_LIMITS.get(plan or "free", PLAN_TOKEN_LIMITS["free"]), await tokens_this_month(s, tenant_id))


async def check_quota(s, tenant_id: uuid.UUID) -> None:  # noqa: ANN001
    """Raise QUOTA_EXCEEDED when the tenant has used its plan's copilot tokens for this month."""
    q = await quota(s, tenant_id)
    if q.limit is not None and q.used >= q.limit:
        raise QuotaExceeded(f"this month's copilot tokens ({q.limit:,}) are used up; the quota renews on the 1st "
                            "(UTC) or with a larger plan")


async def record(s, tenant_id: uuid.UUID, *, provider: str, model: str, feature: str, principal_id: str,  # noqa: ANN001
                 tokens_in: int, tokens_out: int, cost_micro_usd: int | None) -> None:
    """Add one run's tokens to this month's meter (in the run's finishing transaction)."""
    values = dict(tenant_id=tenant_id, month=month_of(), provider=provider, model=model, feature=feature,
                  principal_id=principal_id, runs=1, tokens_in=tokens_in, tokens_out=tokens_out,
                  cost_micro_usd=cost_micro_usd or 0)
    stmt = insert(AiUsage).values(**values)
    await s.execute(stmt.on_conflict_do_update(
        index_elements=["tenant_id", "month", "provider", "model", "feature", "principal_id"],
        set_={"runs": AiUsage.runs + 1, "tokens_in": AiUsage.tokens_in + stmt.excluded.tokens_in,
              "tokens_out": AiUsage.tokens_out + stmt.excluded.tokens_out,
              "cost_micro_usd": AiUsage.cost_micro_usd + stmt.excluded.cost_micro_usd}))
