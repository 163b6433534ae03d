"""Isolation of AI settings: another tenant's owner, principals of A limited to brand "a", and the
roles below admin, against every AI query and mutation (tests/support/isolation/ai.py).

AI settings belong to the tenant of the credential: another tenant reaches only its own (and
never sees A's connection, hint or choices); a brand-limited principal, even an admin key, may
not manage them (tenant-wide); marketers, agents and analysts read the status without the hint
and change nothing. Each refusal has a control: A's owner does the same and it takes effect.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture, create_tenant_fixture
from domain.ai import service as ai_service
from domain.platform.db import tenant_session
from support.ai import ai_fakes, ai_server, enable_copilot  # noqa: F401  (fixtures)
from support.isolation import principals
from support.isolation.ai import READS, WRITES, Write

KEY_A = "sk-tenant-a-secret-0123456789wxyz"


@pytest.fixture
async def ai(ai_server) -> AsyncIterator[Api]:  # noqa: ANN001
    client = Api(ai_server.url)
    yield client
    await client.http.aclose()


async def _world() -> TenantFixture:
    t = await create_tenant_fixture()
    await enable_copilot(t)
    await ai_service.set_connection(t.owner, "openai", credentials={"api_key": KEY_A},
                                    settings_by_provider={"openai": {"organization": "org-tenant-a"}})
    await ai_service.update_settings(t.owner, ("openai", "gpt-4.1"), {"rewrite": ("anthropic", "claude-haiku-4-5")})
    return t


async def rows(t: TenantFixture) -> dict[str, list[str]]:
    out = {}
    async with tenant_session(t.id) as s:
        for table in ("ai_connections", "ai_settings", "ai_usage", "copilot_runs"):
            found = (await s.execute(text(f"select * from {table} where tenant_id = :t"), {"t": t.id})).mappings()
            out[table] = sorted(json.dumps({k: str(v) for k, v in r.items()}, sort_keys=True) for r in found)
    return out


def markers() -> list[str]:
    return [KEY_A, "sk-…wxyz", "org-tenant-a", "claude-haiku-4-5"]


async def _run(api: Api, w: Write, token: str) -> dict:
    body = await api.data(w.doc, w.variables(), token=token)
    return body[w.name]


async def test_another_tenant_sees_and_changes_nothing_of_a(ai: Api) -> None:
    a, b = await _world(), await create_tenant_fixture()
    await enable_copilot(b)
    for read in READS:
        body = json.dumps(await ai.data(read.doc, token=b.owner_token), ensure_ascii=False)
        assert [m for m in markers() if m in body] == [], read.name
        control = json.dumps(await ai.data(read.doc, token=a.owner_token), ensure_ascii=False)
        assert any(m in control for m in markers()), read.name
    before = await rows(a)
    for w in WRITES:
        await _run(ai, w, b.owner_token)  # acts on B's own settings, whatever it comes to
    assert await rows(a) == before
    # control: A's owner's writes change A
    for w in WRITES:
        got = await _run(ai, w, a.owner_token)
        assert got["errors"] == [], (w.name, got)
    assert await rows(a) != before


@pytest.mark.parametrize("kind", ["analyst", "agent", "marketer", "marketer-a", "admin-key-a", "analyst-key"])
async def test_roles_below_admin_and_brand_limited_principals_read_without_the_hint_and_change_nothing(
        ai: Api, kind: str) -> None:
    a = await _world()
    token = (await principals(a, kind))[kind]
    connections = await ai.data(READS[0].doc, token=token)
    openai = next(c for c in connections["aiConnections"] if c["provider"] == "OPENAI")
    assert openai["credentialsSet"] is True and openai["credentialHint"] is None
    assert [m for m in markers()[:2] if m in json.dumps(connections, ensure_ascii=False)] == []
    before = await rows(a)
    for w in WRITES:
        got = await _run(ai, w, token)
        assert [e["code"] for e in got["errors"]] == ["FORBIDDEN"], (w.name, got)
    assert await rows(a) == before
    # control: A's owner may
    got = await _run(ai, WRITES[2], a.owner_token)
    assert got["errors"] == [] and await rows(a) != before
