"""AI settings through the API: connections per provider with write-only, encrypted credentials,
typed provider settings, model choices, and the module gate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture
from domain.platform import crypto
from domain.platform.db import tenant_session

CONNECTIONS = """{ aiConnections { provider credentialsSet credentialHint defaultModel needs tokensThisMonth
  models { id configured priceInPerMillion features }
  lastTest { status message latencyMs testedAt }
  ... on OpenAiConnection { organization project }
  ... on PerplexityConnection { searchRecency keepCitations }
  ... on JasperConnection { toneId knowledgeIds }
  ... on CanvaConnection { brandTemplateIds } } }"""
SET = """mutation($input: SetAiConnectionInput!) { setAiConnection(input: $input) {
  connection { provider credentialsSet credentialHint defaultModel ... on OpenAiConnection { organization project }
               ... on PerplexityConnection { searchRecency keepCitations } }
  errors { field code message } } }"""
REMOVE = """mutation($p: AiProvider!) { removeAiConnection(input: {provider: $p}) { removedProvider
  errors { field code } } }"""
SETTINGS = """mutation($input: UpdateAiSettingsInput!) { updateAiSettings(input: $input) {
  settings { default { provider endpoint model } features { feature choice { provider endpoint model } }
             endpoints { name models } }
  errors { field code message } } }"""

pytest_plugins = ["support.ai"]  # the AI fakes and the API pointed at them


@pytest.fixture
async def ai(ai_server) -> AsyncIterator[Api]:  # noqa: ANN001
    client = Api(ai_server.url)
    yield client
    await client.http.aclose()


def _by_provider(data: dict) -> dict[str, dict]:
    return {c["provider"]: c for c in data["aiConnections"]}


async def test_every_copilot_operation_is_refused_while_the_module_is_off(ai: Api, tenant: TenantFixture) -> None:
    for query in (CONNECTIONS, "{ aiSettings { default { model } } }"):
        body = await ai.gql(query, token=tenant.owner_token)
        assert body["errors"][0]["extensions"]["code"] == "FEATURE_DISABLED", body
    body = await ai.data(SET, {"input": {"provider": "OPENAI", "apiKey": "sk-test-openai-0123456789abcd"}},
                         token=tenant.owner_token)
    assert body["setAiConnection"]["errors"][0]["code"] == "FEATURE_DISABLED"
    for query, variables in ((REMOVE, {"p": "OPENAI"}), (SETTINGS, {"input": {"default": None}})):
        data = await ai.data(query, variables, token=tenant.owner_token)
        assert next(iter(data.values()))["errors"][0]["code"] == "FEATURE_DISABLED"
    async with tenant_session(tenant.id) as s:
        assert await s.scalar(text("select count(*) from ai_connections")) == 0


async def test_connections_summary_says_what_to_configure(ai: Api, copilot_tenant: TenantFixture) -> None:
    found = _by_provider(await ai.data(CONNECTIONS, token=copilot_tenant.owner_token))
    assert list(found) == ["OPENAI", "ANTHROPIC", "PERPLEXITY", "JASPER", "CANVA"]
    for provider, c in found.items():
        assert c["credentialsSet"] is False and c["lastTest"] is None and c["tokensThisMonth"] == 0
        assert "add" in c["needs"] and provider.lower() in c["needs"]
    assert "OAuth" in found["CANVA"]["needs"] and "API key" in found["OPENAI"]["needs"]
    # models come from the configuration file, with prices and suited features
    assert found["OPENAI"]["defaultModel"] == "gpt-4.1-mini"
    mini = next(m for m in found["OPENAI"]["models"] if m["id"] == "gpt-4.1-mini")
    assert mini["configured"] and mini["priceInPerMillion"] == 0.4 and "CAMPAIGN_COPY" in mini["features"]


async def test_credentials_are_write_only_masked_and_encrypted_at_rest(ai: Api, copilot_tenant: TenantFixture) -> None:
    key = "sk-test-writeonly-0123456789a1b2"
    r = await ai.post(SET, {"input": {"provider": "OPENAI", "apiKey": key, "openai": {"organization": "org-1"}}},
                      token=copilot_tenant.owner_token)
    assert key not in r.text
    got = r.json()["data"]["setAiConnection"]
    assert got["errors"] == []
    assert got["connection"] == {"provider": "OPENAI", "credentialsSet": True, "credentialHint": "sk-…a1b2",
                                 "defaultModel": "gpt-4.1-mini", "organization": "org-1", "project": None}
    async with tenant_session(copilot_tenant.id) as s:
        row = (await s.execute(text("select credentials_encrypted, credential_hint, settings::text as settings "
                                    "from ai_connections where provider = 'openai'"))).one()
    assert key not in row.credentials_encrypted and key not in row.settings
    assert row.credentials_encrypted.startswith("v1:") and key in crypto.decrypt(row.credentials_encrypted)
    # settings alone keep the stored key
    got = (await ai.data(SET, {"input": {"provider": "OPENAI", "openai": {"project": "proj_9"},
                                         "defaultModel": "gpt-4.1"}}, token=copilot_tenant.owner_token))["setAiConnection"]
    assert got["errors"] == [] and got["connection"]["credentialsSet"] is True
    assert got["connection"]["organization"] is None and got["connection"]["project"] == "proj_9"
    assert got["connection"]["defaultModel"] == "gpt-4.1"
    # other roles see that a key is set, never its hint
    _, analyst = await copilot_tenant.member("analyst")
    found = _by_provider(await ai.data(CONNECTIONS, token=analyst))["OPENAI"]
    assert found["credentialsSet"] is True and found["credentialHint"] is None
    # the audit log names what changed, never the key
    async with tenant_session(copilot_tenant.id) as s:
        summaries = (await s.scalars(text("select summary::text from audit_log where action like 'ai.%'"))).all()
    assert summaries and not any(key in x or "a1b2" in x for x in summaries)
    removed = (await ai.data(REMOVE, {"p": "OPENAI"}, token=copilot_tenant.owner_token))["removeAiConnection"]
    assert removed == {"removedProvider": "OPENAI", "errors": []}
    assert _by_provider(await ai.data(CONNECTIONS, token=copilot_tenant.owner_token))["OPENAI"]["credentialsSet"] is False


async def test_settings_are_typed_per_provider_and_checked(ai: Api, copilot_tenant: TenantFixture) -> None:
    token = copilot_tenant.owner_token
    got = (await ai.data(SET, {"input": {"provider": "PERPLEXITY", "apiKey": "pplx-test-0123456789abcdef",
                                         "perplexity": {"searchRecency": "WEEK", "keepCitations": False}}},
                         token=token))["setAiConnection"]
    assert got["errors"] == [] and got["connection"]["searchRecency"] == "WEEK"
    assert got["connection"]["keepCitations"] is False
    wrong = (await ai.data(SET, {"input": {"provider": "ANTHROPIC", "apiKey": "sk-ant-test-0123456789abcdef",
                                           "openai": {"organization": "x"}}}, token=token))["setAiConnection"]
    assert wrong["connection"] is None and wrong["errors"][0]["field"] == "input.openai"
    bad = (await ai.data(SET, {"input": {"provider": "ANTHROPIC", "apiKey": "short", "defaultModel": "gpt-4.1"}},
                         token=token))["setAiConnection"]
    assert {e["field"] for e in bad["errors"]} == {"input.credentials.apiKey", "input.defaultModel"}
    missing = (await ai.data(SET, {"input": {"provider": "JASPER"}}, token=token))["setAiConnection"]
    assert missing["errors"][0]["field"] == "input.credentials"
    async with tenant_session(copilot_tenant.id) as s:
        assert await s.scalar(text("select count(*) from ai_connections")) == 1  # nothing partial


async def test_model_choices_default_per_feature_and_operator_endpoints(ai: Api, copilot_tenant: TenantFixture) -> None:
    token = copilot_tenant.owner_token
    got = (await ai.data(SETTINGS, {"input": {
        "default": {"provider": "ANTHROPIC", "model": "claude-sonnet-4-5"},
        "features": [{"feature": "REWRITE", "choice": {"endpoint": "house-llm", "model": "house-7b"}}]}},
        token=token))["updateAiSettings"]
    assert got["errors"] == []
    assert got["settings"]["default"] == {"provider": "ANTHROPIC", "endpoint": None, "model": "claude-sonnet-4-5"}
    assert got["settings"]["features"] == [{"feature": "REWRITE", "choice": {
        "provider": None, "endpoint": "house-llm", "model": "house-7b"}}]
    assert got["settings"]["endpoints"] == [{"name": "house-llm", "models": ["house-7b"]}]
    assert "base" not in str(got)  # the endpoint's address is the operator's, never shown
    bad = (await ai.data(SETTINGS, {"input": {"default": {"provider": "OPENAI", "model": "no-such-model"},
                                              "features": [{"feature": "SUMMARY", "choice": {"endpoint": "elsewhere",
                                                                                            "model": "x"}}]}},
                         token=token))["updateAiSettings"]
    assert {e["field"] for e in bad["errors"]} == {"input.default.model", "input.features[0].provider"}
    cleared = (await ai.data(SETTINGS, {"input": {"features": [{"feature": "REWRITE", "choice": None}]}},
                             token=token))["updateAiSettings"]
    assert cleared["settings"]["features"] == [] and cleared["settings"]["default"]["model"] == "claude-sonnet-4-5"


async def test_only_owners_and_admins_of_every_brand_manage(ai: Api, copilot_tenant: TenantFixture) -> None:
    _, marketer = await copilot_tenant.member("marketer")
    _, limited_admin = await copilot_tenant.api_key("admin", brands=["a"])
    _, admin = await copilot_tenant.member("admin")
    for token in (marketer, limited_admin):
        got = (await ai.data(SET, {"input": {"provider": "OPENAI", "apiKey": "sk-test-openai-0123456789abcd"}},
                             token=token))["setAiConnection"]
        assert got["errors"][0]["code"] == "FORBIDDEN"
    got = (await ai.data(SET, {"input": {"provider": "OPENAI", "apiKey": "sk-test-openai-0123456789abcd"}},
                         token=admin))["setAiConnection"]
    assert got["errors"] == []


def test_encryption_keys_rotate_without_downtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from domain.config import get_settings

    try:
        monkeypatch.setenv("BRANDGRAPH_ENCRYPTION_KEY", "old-key-0123456789")
        get_settings.cache_clear()
        old = crypto.encrypt("sk-secret")
        monkeypatch.setenv("BRANDGRAPH_ENCRYPTION_KEY", "new-key-0123456789,old-key-0123456789")
        get_settings.cache_clear()
        assert crypto.decrypt(old) == "sk-secret" and crypto.needs_rotation(old)
        new = crypto.rotate(old)
        assert new != old and not crypto.needs_rotation(new)
        monkeypatch.setenv("BRANDGRAPH_ENCRYPTION_KEY", "new-key-0123456789")
        get_settings.cache_clear()
        assert crypto.decrypt(new) == "sk-secret"
        with pytest.raises(Exception, match="cannot decrypt"):
            crypto.decrypt(old)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
