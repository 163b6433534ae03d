"""Test connection against each provider's loopback fake (its real wire format): OK, a refused
key, rate limiting with the provider's retry hint, a server error, an unreachable provider; the
live model list merged into the configured one; Canva's tokens refreshed before expiry; and the
test keys nowhere in a response, the audit log or the API process's log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture
from domain.platform.db import tenant_session
from support.ai import AiFakes

SET = """mutation($input: SetAiConnectionInput!) { setAiConnection(input: $input) { connection { provider }
  errors { field code message } } }"""
TEST = """mutation($p: AiProvider!) { testAiConnection(input: {provider: $p}) {
  connection { provider credentialHint needs models { id configured }
               lastTest { status message latencyMs testedAt retryAfterSeconds } }
  errors { field code message } } }"""
SUMMARY = "{ aiConnections { provider needs lastTest { status } } }"

pytest_plugins = ["support.ai"]  # the AI fakes and the API pointed at them


@pytest.fixture
async def ai(ai_server) -> AsyncIterator[Api]:  # noqa: ANN001
    client = Api(ai_server.url)
    yield client
    await client.http.aclose()


def _credentials(provider: str, fakes: AiFakes, *, wrong: bool = False) -> dict:
    if provider == "CANVA":
        token = "canva-wrong-token-0123456789" if wrong else fakes.canva.api_key
        return {"canvaTokens": {"accessToken": token, "refreshToken": fakes.canva.refresh_token, "expiresIn": 14400}}
    fake = getattr(fakes, provider.lower())
    return {"apiKey": "sk-wrong-key-0123456789abcdef" if wrong else fake.api_key}


async def _connect(api: Api, t: TenantFixture, provider: str, fakes: AiFakes, **kw) -> None:  # noqa: ANN003
    got = (await api.data(SET, {"input": {"provider": provider, **_credentials(provider, fakes, **kw)}},
                          token=t.owner_token))["setAiConnection"]
    assert got["errors"] == [], got


async def _test(api: Api, t: TenantFixture, provider: str) -> tuple[dict, str]:
    r = await api.post(TEST, {"p": provider}, token=t.owner_token)
    assert r.status_code == 200, r.text
    got = r.json()["data"]["testAiConnection"]
    assert got["errors"] == [], got
    return got["connection"], r.text


PROVIDERS = ["OPENAI", "ANTHROPIC", "PERPLEXITY", "JASPER", "CANVA"]
LIVE_ONLY = {"OPENAI": "o4-mini", "ANTHROPIC": "claude-3-5-haiku-latest"}  # in the fakes' lists, not models.toml
PATHS = {"OPENAI": "/v1/models", "ANTHROPIC": "/v1/models", "PERPLEXITY": "/chat/completions",
         "JASPER": "/v1/templates", "CANVA": "/rest/v1/users/me"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_working_connection_tests_ok_with_the_cheapest_call(
        ai: Api, copilot_tenant: TenantFixture, fakes_ai: AiFakes, provider: str) -> None:
    await _connect(ai, copilot_tenant, provider, fakes_ai)
    connection, body = await _test(ai, copilot_tenant, provider)
    last = connection["lastTest"]
    assert last["status"] == "OK" and last["latencyMs"] >= 0 and last["testedAt"], connection
    assert connection["needs"] is None
    fake = getattr(fakes_ai, provider.lower())
    assert [path for path, _ in fake.calls] == [PATHS[provider]]
    if provider == "PERPLEXITY":  # one token of sonar
        assert fake.calls[0][1]["model"] == "sonar" and fake.calls[0][1]["max_tokens"] == 1
    if provider in ("OPENAI", "ANTHROPIC"):  # the live list joins the configured models
        models = {m["id"]: m["configured"] for m in connection["models"]}
        assert models[LIVE_ONLY[provider]] is False
        assert models["gpt-4.1-mini" if provider == "OPENAI" else "claude-sonnet-4-5"] is True
    assert all(k not in body for k in fakes_ai.keys())


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refused_key_is_auth_failed_and_the_summary_says_so(
        ai: Api, copilot_tenant: TenantFixture, fakes_ai: AiFakes, provider: str) -> None:
    await _connect(ai, copilot_tenant, provider, fakes_ai, wrong=True)
    connection, body = await _test(ai, copilot_tenant, provider)
    assert connection["lastTest"]["status"] == "AUTH_FAILED", connection
    assert "sk-wrong-key-0123456789abcdef" not in body and "canva-wrong-token-0123456789" not in body
    summary = {c["provider"]: c for c in (await ai.data(SUMMARY, token=copilot_tenant.owner_token))["aiConnections"]}
    assert "auth_failed" in summary[provider]["needs"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limited_carries_the_providers_retry_hint(
        ai: Api, copilot_tenant: TenantFixture, fakes_ai: AiFakes, provider: str) -> None:
    await _connect(ai, copilot_tenant, provider, fakes_ai)
    getattr(fakes_ai, provider.lower()).fail_next(1, status=429, retry_after=7)
    connection, _ = await _test(ai, copilot_tenant, provider)
    assert connection["lastTest"]["status"] == "RATE_LIMITED", connection
    assert connection["lastTest"]["retryAfterSeconds"] == 7
    # the fake is not retried by the test: one call, one answer
    assert getattr(fakes_ai, provider.lower()).requests == 1


@pytest.mark.parametrize(("provider", "status"), [("OPENAI", 500), ("ANTHROPIC", 529), ("JASPER", 500)])
async def test_server_errors_and_overload_are_errors_with_the_providers_message(
        ai: Api, copilot_tenant: TenantFixture, fakes_ai: AiFakes, provider: str, status: int) -> None:
    await _connect(ai, copilot_tenant, provider, fakes_ai)
    getattr(fakes_ai, provider.lower()).fail_next(1, status=status)
    connection, _ = await _test(ai, copilot_tenant, provider)
    assert connection["lastTest"]["status"] == "ERROR", connection
    assert str(status) in connection["lastTest"]["message"]
    if provider == "ANTHROPIC":
        assert "Overloaded" in connection["lastTest"]["message"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unreachable_provider_is_recorded_as_such(unreachable_server, copilot_tenant: TenantFixture,  # noqa: ANN001
                                                           fakes_ai: AiFakes, provider: str) -> None:
    api = Api(unreachable_server.url)
    try:
        await _connect(api, copilot_tenant, provider, fakes_ai)
        connection, _ = await _test(api, copilot_tenant, provider)
    finally:
        await api.http.aclose()
    assert connection["lastTest"]["status"] == "UNREACHABLE", connection


async def test_canva_tokens_are_refreshed_before_expiry_and_stored_encrypted(
        ai: Api, copilot_tenant: TenantFixture, fakes_ai: AiFakes) -> None:
    old_access, old_refresh = fakes_ai.canva.api_key, fakes_ai.canva.refresh_token
    got = (await ai.data(SET, {"input": {"provider": "CANVA", "canvaTokens": {
        "accessToken": old_access, "refreshToken": old_refresh, "expiresIn": 60}}},  # within the 5-minute margin
        token=copilot_tenant.owner_token))["setAiConnection"]
    assert got["errors"] == []
    try:
        connection, body = await _test(ai, copilot_tenant, "CANVA")
        assert connection["lastTest"]["status"] == "OK", connection
        assert fakes_ai.canva.refreshes == 1
        assert connection["credentialHint"] == "can…" + fakes_ai.canva.api_key[-4:]
        async with tenant_session(copilot_tenant.id) as s:
            stored = await s.scalar(text("select credentials_encrypted from ai_connections where provider = 'canva'"))
        assert fakes_ai.canva.api_key not in stored and fakes_ai.canva.refresh_token not in stored
        assert fakes_ai.canva.api_key not in body
    finally:  # the next tests' Canva credentials
        fakes_ai.canva.api_key, fakes_ai.canva.refresh_token = old_access, old_refresh


async def test_no_test_key_reaches_responses_audit_or_logs(ai_server, ai: Api, copilot_tenant: TenantFixture,  # noqa: ANN001
                                                           fakes_ai: AiFakes) -> None:
    for provider in PROVIDERS:
        await _connect(ai, copilot_tenant, provider, fakes_ai)
        await _test(ai, copilot_tenant, provider)
        await _connect(ai, copilot_tenant, provider, fakes_ai, wrong=True)
        await _test(ai, copilot_tenant, provider)
    body = json.dumps(await ai.data("""{ aiConnections { provider credentialHint lastTest { message } }
                                         aiSettings { default { model } } }""", token=copilot_tenant.owner_token))
    async with tenant_session(copilot_tenant.id) as s:
        audit = json.dumps((await s.scalars(text("select summary::text from audit_log"))).all())
    secrets = [*fakes_ai.keys(), "sk-wrong-key-0123456789abcdef", "canva-wrong-token-0123456789"]
    logs = ai_server.logs()
    assert '"path": "/graphql"' in logs  # the API process's log (at DEBUG), with these requests
    for secret in secrets:
        assert secret not in body and secret not in audit and secret not in logs, secret
