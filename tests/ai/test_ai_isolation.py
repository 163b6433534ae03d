"""Isolation of AI settings and copilot runs: another tenant's owner, principals of A limited to
brand "a", and the roles below admin, against every AI query, mutation and the copilotRun
subscription (tests/support/isolation/ai.py). Runs belong to a brand: a brand-limited principal
neither drafts from brand b's data nor sees brand b's runs.

AI settings belong to the tenant of the credential: another tenant reaches only its own (and
never sees A's connection, hint or choices); a brand-limited principal, even an admin key, may
not manage them (tenant-wide); marketers, agents and analysts read the status without the hint
and change nothing. Each refusal has a control: A's owner does the same and it takes effect.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture, create_tenant_fixture, gid
from domain.ai import service as ai_service
from domain.platform.db import tenant_session
from support.ai import AiFakes, enable_copilot
from support.isolation import principals
from support.isolation.ai import BRAND_WRITES, FOLLOW, NODE, READS, WRITES, Write
from support.ws import Client, bearer

KEY_A = "sk-tenant-a-secret-0123456789wxyz"

pytest_plugins = ["support.ai"]  # the AI fakes and the API pointed at them


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
    for read in READS[:2]:  # the settings; copilotUsage is checked with the runs below
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


# --- copilot runs ---------------------------------------------------------------------------------


@dataclass
class RunWorld:
    t: TenantFixture
    campaigns: dict[str, uuid.UUID]
    runs: dict[str, str]  # a finished run of each brand (global ids)
    conversations: dict[str, uuid.UUID]
    customers: dict[str, uuid.UUID]

    def campaign_gid(self, side: str) -> str:
        return gid("Campaign", self.campaigns[side])

    def customer_gid(self, side: str) -> str:
        return gid("Customer", self.customers[side])

    def conversation_gid(self, side: str) -> str:
        return gid("Conversation", self.conversations[side])


async def _run_world(api: Api, fakes: AiFakes) -> RunWorld:
    from domain.campaigns import service as campaigns

    t = await create_tenant_fixture()
    await enable_copilot(t)
    await ai_service.set_connection(t.owner, "openai", credentials={"api_key": fakes.openai.api_key})
    await ai_service.set_connection(t.owner, "canva", credentials={"access_token": fakes.canva.api_key},
                                    settings_by_provider={"canva": {"brand_template_ids": ["DAFtemplate1"]}})
    made = {side: (await campaigns.create_campaign(t.owner, t.brands[side], {
        "name": f"Campaign {side}", "channel": "email"})).id for side in ("a", "b")}
    from domain.conversations import inbound
    from domain.customers.service import upsert_customer

    talks, people = {}, {}
    for side in ("a", "b"):
        customer, _ = await upsert_customer(t.owner, {"email": f"c-{side}-{t.slug}@example.test"}, brand_id=t.brands[side])
        people[side] = customer.id
        talks[side] = (await inbound.receive_chat(t.owner, t.brands[side], customer.id, f"help {side}",
                                                  uuid.uuid4().hex))[0].id
    w = RunWorld(t, made, {}, talks, people)
    for side in ("a", "b"):
        body = await api.data(BRAND_WRITES[0].doc, BRAND_WRITES[0].variables(w, side), token=t.owner_token)
        w.runs[side] = body["rewriteText"]["run"]["id"]
    return w


async def _follow_errors(api: Api, token: str, run_id: str) -> tuple[list, list]:
    client = await Client.open(api.base_url, bearer(token))
    try:
        op = await client.subscribe(FOLLOW, {"id": run_id})
        for _ in range(200):
            if client.ended(op):
                break
            await client.receive(0.05)
        return client.data("copilotRun", op), [e.get("extensions", {}).get("code") for e in client.errors(op)]
    finally:
        await client.close()


async def test_another_tenant_never_reaches_a_run_nor_drafts_from_a_data(ai: Api, fakes_ai: AiFakes) -> None:
    w = await _run_world(ai, fakes_ai)
    b = await create_tenant_fixture()
    await enable_copilot(b)
    await ai_service.set_connection(b.owner, "openai", credentials={"api_key": fakes_ai.openai.api_key})
    before = await rows(w.t)
    for side in ("a", "b"):
        assert (await ai.data(NODE, {"id": w.runs[side]}, token=b.owner_token))["node"] is None
        frames, errors = await _follow_errors(ai, b.owner_token, w.runs[side])
        assert frames == [] and errors == ["NOT_FOUND"]
        for bw in BRAND_WRITES:
            got = (await ai.data(bw.doc, bw.variables(w, side), token=b.owner_token))[bw.name]
            assert got[bw.result] is None and [e["code"] for e in got["errors"]] == ["NOT_FOUND"], got
    usage_b = json.dumps(await ai.data(READS[2].doc, token=b.owner_token))
    assert str(w.t.owner_member_id) not in usage_b
    assert str(w.t.owner_member_id) in json.dumps(await ai.data(READS[2].doc, token=w.t.owner_token))  # control
    assert await rows(w.t) == before
    # control: A's owner reaches both runs
    for side in ("a", "b"):
        assert (await ai.data(NODE, {"id": w.runs[side]}, token=w.t.owner_token))["node"]["output"]


@pytest.mark.parametrize("kind", ["marketer-a", "admin-key-a"])
async def test_brand_limited_principal_drafts_nothing_of_brand_b(ai: Api, fakes_ai: AiFakes, kind: str) -> None:
    w = await _run_world(ai, fakes_ai)
    token = (await principals(w.t, kind))[kind]
    before = await rows(w.t)
    for bw in BRAND_WRITES:
        got = (await ai.data(bw.doc, bw.variables(w, "b"), token=token))[bw.name]
        assert got[bw.result] is None and [(e["field"], e["code"]) for e in got["errors"]] == [(bw.field, "NOT_FOUND")]
    assert await rows(w.t) == before
    assert (await ai.data(NODE, {"id": w.runs["b"]}, token=token))["node"] is None
    frames, errors = await _follow_errors(ai, token, w.runs["b"])
    assert frames == [] and errors == ["NOT_FOUND"]
    # control: the same principal on brand a
    assert (await ai.data(NODE, {"id": w.runs["a"]}, token=token))["node"]["output"]
    frames, errors = await _follow_errors(ai, token, w.runs["a"])
    assert errors == [] and frames[-1]["run"]["output"]
    for bw in BRAND_WRITES:
        got = (await ai.data(bw.doc, bw.variables(w, "a"), token=token))[bw.name]
        assert got["errors"] == [] and got[bw.result]["id"], got


@pytest.mark.parametrize("kind", ["analyst", "agent"])
async def test_roles_without_the_action_draft_nothing_but_analysts_read_runs(ai: Api, fakes_ai: AiFakes,
                                                                             kind: str) -> None:
    w = await _run_world(ai, fakes_ai)
    token = (await principals(w.t, kind))[kind]
    before = await rows(w.t)
    refused = BRAND_WRITES if kind == "analyst" else [bw for bw in BRAND_WRITES
                                                              if bw.name in ("draftCampaignCopy", "draftSegment", "designWithCanva")]
    for bw in refused:
        got = (await ai.data(bw.doc, bw.variables(w, "a"), token=token))[bw.name]
        assert [e["code"] for e in got["errors"]] == ["FORBIDDEN"], got
    assert await rows(w.t) == before
    assert (await ai.data(NODE, {"id": w.runs["a"]}, token=token))["node"]["output"]  # runs are readable
    assert (await ai.data(READS[2].doc, token=token))["copilotUsage"]["tokensUsed"] > 0
