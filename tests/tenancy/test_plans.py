"""Plans and quotas: the tenant's plan over the API, the active segments quota (under
concurrency too), monthly quotas, the operator's ``set-plan`` and a downgrade while requests run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from conftest import ROOT, Api, TenantFixture, create_tenant_fixture, gid
from domain.audit.models import AuditEntry
from domain.plans import quotas
from domain.plans.limits import Quota, next_month_start
from domain.platform.db import tenant_session
from domain.segments.models import Segment
from domain.tenancy.models import Tenant

PLAN = """{ viewer { tenant { plan { name api { maximumAvailable restoreRate maxQueryCost }
  limits { quota limit addOn used resetsAt } } } } }"""
CREATE = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id } errors { field code message } } }"""
UPDATE = """mutation($input: UpdateSegmentInput!) { updateSegment(input: $input) {
  segment { id } errors { field code message } } }"""



@pytest.fixture
async def tenant() -> TenantFixture:
    """A tenant on the free plan (the suite's tenants are on enterprise)."""
    return await create_tenant_fixture(plan="free")

async def _segments(t: TenantFixture, n: int, *, active: bool = True) -> list[uuid.UUID]:
    """``n`` static segments written directly (the setup, not the behaviour under test)."""
    made = [Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=t.brands["a"], name=f"seg {i}", kind="static",
                    is_active=active) for i in range(n)]
    async with tenant_session(t.id) as s:
        s.add_all(made)
    return [m.id for m in made]


async def _active(t: TenantFixture) -> int:
    async with tenant_session(t.id) as s:
        return await s.scalar(select(func.count()).select_from(Segment).where(
            Segment.tenant_id == t.id, Segment.is_active, Segment.archived_at.is_(None)))


async def _plan_row(t: TenantFixture) -> tuple[str, dict]:
    async with tenant_session(t.id) as s:
        row = (await s.execute(select(Tenant.plan, Tenant.add_ons).where(Tenant.id == t.id))).one()
    return row.plan, row.add_ons


def _create(api: Api, t: TenantFixture, name: str):
    return api.data(CREATE, {"input": {"brandId": t.brand_gid("a"), "name": name}}, token=t.owner_token)


async def test_the_plan_its_limits_and_their_use(api: Api, tenant: TenantFixture) -> None:
    await _segments(tenant, 3)
    await _segments(tenant, 2, active=False)  # inactive segments do not count
    plan = (await api.data(PLAN, token=tenant.owner_token))["viewer"]["tenant"]["plan"]
    assert plan["name"] == "FREE"
    assert plan["api"] == {"maximumAvailable": 1000, "restoreRate": 50, "maxQueryCost": 1000}
    limits = {x["quota"]: x for x in plan["limits"]}
    assert limits["ACTIVE_SEGMENTS"] == {"quota": "ACTIVE_SEGMENTS", "limit": 10, "addOn": 0, "used": 3,
                                         "resetsAt": None}
    exports = limits["AUDIENCE_EXPORTS"]
    assert (exports["limit"], exports["used"]) == (5, 0)
    assert datetime.fromisoformat(exports["resetsAt"]) == next_month_start()
    assert set(limits) == {"ACTIVE_SEGMENTS", "AUDIENCE_EXPORTS", "COPILOT_TOKENS", "MESSAGES"}

    await quotas.set_plan(tenant.id, "growth", {"active_segments": 5})
    plan = (await api.data(PLAN, token=tenant.owner_token))["viewer"]["tenant"]["plan"]
    limits = {x["quota"]: x for x in plan["limits"]}
    assert plan["name"] == "GROWTH" and plan["api"]["maximumAvailable"] == 2000
    assert (limits["ACTIVE_SEGMENTS"]["limit"], limits["ACTIVE_SEGMENTS"]["addOn"]) == (105, 5)
    await quotas.set_plan(tenant.id, "enterprise", {})
    plan = (await api.data(PLAN, token=tenant.owner_token))["viewer"]["tenant"]["plan"]
    assert {x["quota"]: x["limit"] for x in plan["limits"]}["ACTIVE_SEGMENTS"] is None  # unlimited


async def test_the_free_plan_holds_ten_active_segments(api: Api, tenant: TenantFixture) -> None:
    ids = await _segments(tenant, 9)
    assert (await _create(api, tenant, "tenth"))["createSegment"]["errors"] == []
    refused = (await _create(api, tenant, "eleventh"))["createSegment"]
    assert refused["segment"] is None
    (error,) = refused["errors"]
    assert error["code"] == "QUOTA_EXCEEDED"
    assert "active segments" in error["message"] and "10" in error["message"], error
    assert await _active(tenant) == 10
    # an inactive segment does not count, and activating one is checked too
    (inactive,) = await _segments(tenant, 1, active=False)
    activate = (await api.data(UPDATE, {"input": {"id": gid("Segment", inactive), "isActive": True}},
                               token=tenant.owner_token))["updateSegment"]
    assert [(e["field"], e["code"]) for e in activate["errors"]] == [("input.isActive", "QUOTA_EXCEEDED")]
    assert await _active(tenant) == 10
    # deactivating one frees a place
    off = (await api.data(UPDATE, {"input": {"id": gid("Segment", ids[0]), "isActive": False}},
                          token=tenant.owner_token))["updateSegment"]
    assert off["errors"] == []
    assert (await _create(api, tenant, "again"))["createSegment"]["errors"] == []
    assert await _active(tenant) == 10


async def test_two_creates_for_the_last_place_one_wins(api: Api, tenant: TenantFixture) -> None:
    await _segments(tenant, 9)
    results = await asyncio.gather(*(_create(api, tenant, f"race {i}") for i in range(4)))
    outcomes = sorted(tuple(e["code"] for e in r["createSegment"]["errors"]) for r in results)
    assert outcomes == [(), ("QUOTA_EXCEEDED",), ("QUOTA_EXCEEDED",), ("QUOTA_EXCEEDED",)], results
    assert await _active(tenant) == 10


async def test_a_monthly_quota_is_consumed_in_the_transaction(tenant: TenantFixture) -> None:
    async def one() -> bool:
        try:
            async with tenant_session(tenant.id) as s:
                await quotas.consume(s, tenant.id, Quota.AUDIENCE_EXPORTS, 1)
        except quotas.QuotaExceeded as e:
            assert (e.quota, e.limit, e.used, e.resets_at) == (Quota.AUDIENCE_EXPORTS, 5, 5, next_month_start())
            assert e.extensions["quota"] == "AUDIENCE_EXPORTS"
            return False
        return True

    # a rolled-back transaction uses nothing
    with pytest.raises(RuntimeError):
        async with tenant_session(tenant.id) as s:
            await quotas.consume(s, tenant.id, Quota.AUDIENCE_EXPORTS, 3)
            raise RuntimeError("the work failed")
    results = await asyncio.gather(*(one() for _ in range(8)))
    assert sorted(results) == [False] * 3 + [True] * 5
    async with tenant_session(tenant.id) as s:
        used = await s.scalar(text("select used from quota_usage where tenant_id = :t and quota = 'audience_exports'"),
                              {"t": tenant.id})
    assert used == 5


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brandgraph", *args], env=dict(os.environ), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


async def _audits(t: TenantFixture, action: str) -> list[dict]:
    async with tenant_session(t.id) as s:
        return [e.summary for e in await s.scalars(select(AuditEntry).where(
            AuditEntry.tenant_id == t.id, AuditEntry.action == action))]


async def test_set_plan_from_the_command_line(tenant: TenantFixture) -> None:
    done = await asyncio.to_thread(_cli, "set-plan", "--tenant", tenant.slug, "--plan", "growth",
                                   "--add-on", "active_segments=20", "--add-on", "messages=5000")
    assert done.returncode == 0, done.stderr
    assert await _plan_row(tenant) == ("growth", {"active_segments": 20, "messages": 5000})
    (summary,) = await _audits(tenant, "tenant.set_plan")
    assert summary["before"]["plan"] == "free" and summary["after"]["plan"] == "growth"

    for bad in (("--plan", "platinum"), ("--plan", "free", "--add-on", "seats=3"),
                ("--plan", "free", "--add-on", "messages=-1")):
        refused = await asyncio.to_thread(_cli, "set-plan", "--tenant", tenant.slug, *bad)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr and refused.stderr.strip(), refused
    assert await _plan_row(tenant) == ("growth", {"active_segments": 20, "messages": 5000})
    unknown = await asyncio.to_thread(_cli, "set-plan", "--tenant", "no-such-tenant", "--plan", "free")
    assert unknown.returncode != 0 and "no-such-tenant" in unknown.stderr


async def test_a_downgrade_below_what_is_in_use_is_refused_whole(tenant: TenantFixture) -> None:
    await quotas.set_plan(tenant.id, "growth", {"messages": 10})
    await _segments(tenant, 12)
    refused = await asyncio.to_thread(_cli, "set-plan", "--tenant", tenant.slug, "--plan", "free")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "10 active segments" in refused.stderr and "12" in refused.stderr, refused.stderr
    assert await _plan_row(tenant) == ("growth", {"messages": 10})  # nothing changed, add-ons neither
    assert len(await _audits(tenant, "tenant.set_plan")) == 1
    # an add-on makes room
    await quotas.set_plan(tenant.id, "free", {"active_segments": 2})
    assert await _plan_row(tenant) == ("free", {"active_segments": 2})


async def test_a_downgrade_while_segments_are_created(api: Api, tenant: TenantFixture) -> None:
    """Each round: at 10 active segments on growth, a downgrade to free (limit 10) races a create.
    Either the create lands first and the downgrade is refused, or the downgrade lands first and
    the create is refused: never 11 active segments on the free plan, never a half-applied plan."""
    await quotas.set_plan(tenant.id, "growth", {})
    await _segments(tenant, 10)
    for i in range(4):
        async def downgrade() -> bool:
            try:
                await quotas.set_plan(tenant.id, "free", {})
            except quotas.QuotaExceeded:
                return False
            return True

        downgraded, created = await asyncio.gather(downgrade(), _create(api, tenant, f"during {i}"))
        landed = created["createSegment"]["errors"] == []
        plan, _ = await _plan_row(tenant)
        active = await _active(tenant)
        assert downgraded != landed, (downgraded, created)
        assert (plan, active) == (("free", 10) if downgraded else ("growth", 11)), (plan, active)
        # back to the start of the round
        await quotas.set_plan(tenant.id, "growth", {})
        if landed:
            async with tenant_session(tenant.id) as s:
                seg = await s.scalar(select(Segment).where(Segment.tenant_id == tenant.id, Segment.name == f"during {i}"))
                seg.archived_at, seg.is_active = datetime.now(UTC), False
