"""Quotas, checked inside the transaction that consumes them, and the tenant's plan.

A capability that consumes a quota calls :func:`consume` (monthly quotas) or
:func:`check_count` (count quotas) in the transaction that writes what uses it. Both take a
transaction-scoped advisory lock per tenant and quota first, so two requests for the last unit
take turns: the second one sees the first's row (or its committed use) and is refused with
:class:`QuotaExceeded`. :func:`set_plan` takes every quota's lock before it changes the plan,
so a request that consumes waits for the change and is judged by the new limits, and a
downgrade is judged against use that nothing can change meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.plans.limits import (
    ADD_ONS,
    MAX_ADD_ON,
    PLANS,
    Plan,
    Quota,
    QuotaKind,
    month_start,
    plan,
    resets_at,
)
from domain.plans.models import QuotaUsage
from domain.platform.db import tenant_session
from domain.tenancy import principal_cache
from domain.tenancy.models import Tenant
from domain.tenancy.policies import Action, Principal, authorize


class QuotaExceeded(DomainError):
    """A quota has no room for what a request would use. ``extensions`` name the quota, its
    limit, the use and when it resets (null for a count quota: it frees up as things go)."""

    code = ErrorCode.QUOTA_EXCEEDED

    def __init__(self, quota: Quota, limit: int, used: int, *, field: str | None = None,
                 message: str | None = None) -> None:
        reset = resets_at(quota)
        when = f"; it resets at {reset.isoformat()}" if reset else "; it frees up as they are removed"
        super().__init__(message or f"quota exceeded: {quota.label} is limited to {limit} on this plan "
                         f"and {used} are used{when}", field=field)
        self.quota, self.limit, self.used, self.resets_at = quota, limit, used, reset

    @property
    def extensions(self) -> dict[str, Any]:
        return {"quota": self.quota.name, "limit": self.limit, "used": self.used,
                "resetsAt": self.resets_at.isoformat() if self.resets_at else None}


# What a count quota counts, in the tenant's transaction (row-level security applies).
_COUNTS: dict[Quota, str] = {
    Quota.ACTIVE_SEGMENTS: "SELECT count(*) FROM segments WHERE tenant_id = :t AND is_active AND archived_at IS NULL",
}


async def _lock(s: AsyncSession, tenant_id: uuid.UUID, quota: Quota) -> None:
    await s.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                    {"k": f"quota:{tenant_id}:{quota.value}"})


async def _plan_of(s: AsyncSession, tenant_id: uuid.UUID) -> tuple[Plan, dict[str, int]]:
    row = (await s.execute(select(Tenant.plan, Tenant.add_ons).where(Tenant.id == tenant_id))).one()
    return plan(row.plan), dict(row.add_ons or {})


async def _used(s: AsyncSession, tenant_id: uuid.UUID, quota: Quota, now: datetime | None = None) -> int:
    if quota.kind is QuotaKind.COUNT:
        return int(await s.scalar(text(_COUNTS[quota]), {"t": tenant_id}) or 0)
    found = await s.scalar(select(QuotaUsage.used).where(
        QuotaUsage.tenant_id == tenant_id, QuotaUsage.quota == quota.value,
        QuotaUsage.period_start == month_start(now).date()))
    return int(found or 0)


async def check_count(s: AsyncSession, tenant_id: uuid.UUID, quota: Quota, adding: int = 1, *,
                      field: str | None = None) -> None:
    """Before adding ``adding`` things a count quota counts (in the same transaction, before the
    write): refuse with :class:`QuotaExceeded` when they would not fit. The lock is held until
    the transaction ends, so the write that follows is counted by the next request."""
    assert quota.kind is QuotaKind.COUNT
    await _lock(s, tenant_id, quota)
    p, add_ons = await _plan_of(s, tenant_id)
    limit = p.limit(quota, add_ons)
    if limit is None:
        return
    used = await _used(s, tenant_id, quota)
    if used + adding > limit:
        raise QuotaExceeded(quota, limit, used, field=field)


async def consume(s: AsyncSession, tenant_id: uuid.UUID, quota: Quota, amount: int = 1, *,
                  field: str | None = None) -> int:
    """Use ``amount`` of a monthly quota in the transaction ``s`` (rolled back with it), or
    refuse with :class:`QuotaExceeded` when this month's use would pass the limit. Returns the
    month's use after it."""
    assert quota.kind is QuotaKind.MONTHLY and amount >= 0
    await _lock(s, tenant_id, quota)
    p, add_ons = await _plan_of(s, tenant_id)
    limit = p.limit(quota, add_ons)
    used = await _used(s, tenant_id, quota)
    if limit is not None and used + amount > limit:
        raise QuotaExceeded(quota, limit, used, field=field)
    stmt = insert(QuotaUsage).values(tenant_id=tenant_id, quota=quota.value,
                                     period_start=month_start().date(), used=amount)
    await s.execute(stmt.on_conflict_do_update(index_elements=[QuotaUsage.tenant_id, QuotaUsage.quota,
                                                               QuotaUsage.period_start],
                                               set_={"used": QuotaUsage.used + amount}))
    return used + amount


@dataclass(frozen=True)
class QuotaStatus:
    quota: Quota
    limit: int | None
    add_on: int
    used: int
    resets_at: datetime | None


@dataclass(frozen=True)
class TenantPlan:
    plan: Plan
    add_ons: dict[str, int]


async def tenant_plan(tenant_id: uuid.UUID) -> TenantPlan:
    """The tenant's plan and add-ons, from the process's authentication cache when it holds them
    (dropped with the tenant's credentials on every change, see ``principal_cache``)."""
    cache = principal_cache.cache
    found = cache.plan(tenant_id)
    if found is not None:
        return found
    generation = cache.generation
    async with tenant_session(tenant_id) as s:
        p, add_ons = await _plan_of(s, tenant_id)
    found = TenantPlan(p, add_ons)
    cache.put_plan(tenant_id, found, generation)
    return found


async def usage(principal: Principal) -> tuple[TenantPlan, list[QuotaStatus]]:
    """The tenant's plan with each quota's limit (add-ons included), use and reset."""
    authorize(principal, Action.TENANT_READ)
    async with tenant_session(principal.tenant_id) as s:
        p, add_ons = await _plan_of(s, principal.tenant_id)
        statuses = [QuotaStatus(q, p.limit(q, add_ons), int(add_ons.get(q.value, 0)),
                                await _used(s, principal.tenant_id, q), resets_at(q)) for q in Quota]
    return TenantPlan(p, add_ons), statuses


def parse_add_ons(pairs: list[str]) -> dict[str, int]:
    """``NAME=N`` pairs (NAME a quota, N a whole number ≥ 0) as a mapping; a bad pair is a
    ValidationFailed naming it."""
    v = Validator()
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, amount = pair.partition("=")
        name = name.strip().lower()
        if not sep or name not in ADD_ONS or not amount.strip().isdigit() or int(amount) > MAX_ADD_ON:
            v.add("addOns", f"add-on {pair!r} must be NAME=N with NAME one of {', '.join(ADD_ONS)} "
                            f"and N a whole number up to {MAX_ADD_ON}")
            continue
        if int(amount):
            out[name] = int(amount)
    v.check()
    return out


async def set_plan(tenant_id: uuid.UUID, plan_name: str, add_ons: dict[str, int], *,
                   actor: str = "operator") -> Tenant:
    """An operator's change of a tenant's plan and add-ons (replacing them), audited. Every
    quota's lock is taken first, so requests consuming a quota wait for the change and see the
    new limits; a change that leaves a count quota below what is in use now (a downgrade with
    15 active segments to a plan of 10) is refused with QuotaExceeded and changes nothing."""
    if plan_name not in PLANS:
        raise DomainError(f"plan must be one of {', '.join(PLANS)}", field="plan")
    new = plan(plan_name)
    async with tenant_session(tenant_id) as s:
        for quota in sorted(Quota, key=lambda q: q.value):  # one order everywhere: no deadlock
            await _lock(s, tenant_id, quota)
        tenant = await s.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
        if tenant is None:
            raise NotFound("tenant not found", field="tenant")
        for quota in Quota:
            limit = new.limit(quota, add_ons)
            if quota.kind is QuotaKind.COUNT and limit is not None:
                used = await _used(s, tenant_id, quota)
                if used > limit:
                    raise QuotaExceeded(quota, limit, used, field="plan", message=(
                        f"the {plan_name} plan allows {limit} {quota.label} and {used} are in use: "
                        f"remove {used - limit} first or add the add-on {quota.value}={used - limit}"))
        before = {"plan": tenant.plan, "addOns": dict(tenant.add_ons or {})}
        tenant.plan, tenant.add_ons = plan_name, dict(add_ons)
        await s.flush()
        audit.record(s, None, "tenant.set_plan", "Tenant", tenant_id, tenant_id=tenant_id,
                     summary={"before": before, "after": {"plan": plan_name, "addOns": dict(add_ons)}, "by": actor})
        principal_cache.invalidate(s, tenant_id)  # every API process reads the plan again
    return tenant
