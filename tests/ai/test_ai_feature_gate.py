"""The copilot module gate: operators switch it per tenant (audited), the tenant's features say
so, and every copilot operation is refused with FEATURE_DISABLED while it is off."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from conftest import ROOT, Api, TenantFixture
from domain.audit.models import AuditEntry
from domain.platform.db import tenant_session

FEATURES = "{ viewer { tenant { features { copilotEnabled } } } }"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "brandgraph", *args], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=60)


async def _enabled(api: Api, tenant: TenantFixture) -> bool:
    return (await api.data(FEATURES, token=tenant.owner_token))["viewer"]["tenant"]["features"]["copilotEnabled"]


async def test_set_feature_switches_the_module_and_is_audited(api: Api, tenant: TenantFixture) -> None:
    assert await _enabled(api, tenant) is False
    done = _cli("set-feature", "--tenant", tenant.slug, "copilot", "on")
    assert done.returncode == 0, done.stderr
    assert await _enabled(api, tenant) is True
    again = _cli("set-feature", "--tenant", tenant.slug, "copilot", "on")
    assert again.returncode == 0 and "unchanged" in again.stdout
    assert _cli("set-feature", "--tenant", tenant.slug, "copilot", "off").returncode == 0
    assert await _enabled(api, tenant) is False
    async with tenant_session(tenant.id) as s:
        rows = (await s.scalars(select(AuditEntry).where(
            AuditEntry.tenant_id == tenant.id, AuditEntry.action == "tenant.set_feature")
            .order_by(AuditEntry.occurred_at))).all()
    assert [r.summary["enabled"]["after"] for r in rows] == [True, False]
    assert all(r.principal_type == "system" for r in rows)


async def test_set_feature_refuses_an_unknown_tenant() -> None:
    done = _cli("set-feature", "--tenant", "no-such-tenant-xyz", "copilot", "on")
    assert done.returncode == 2 and "no tenant" in done.stderr
