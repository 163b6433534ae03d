"""Client apps over the API: create, read, update, delete, keys that belong to them; owners and
admins only; audited; another tenant, roles below admin and brand-limited principals see and
change nothing (the isolation of the area's root fields, named in tests/tenancy/test_isolation.py)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from conftest import Api, TenantFixture, audit_count, create_tenant_fixture, gid

ERRORS = "errors { field code message }"
APP_FIELDS = "id name persistedOnly ratePlan apiKeys { id name } documentCount currentManifest { version }"
CREATE = f"""mutation($input: CreateClientAppInput!) {{
  createClientApp(input: $input) {{ clientApp {{ {APP_FIELDS} }} {ERRORS} }} }}"""
UPDATE = f"""mutation($input: UpdateClientAppInput!) {{
  updateClientApp(input: $input) {{ clientApp {{ {APP_FIELDS} }} {ERRORS} }} }}"""
DELETE = f"""mutation($input: DeleteClientAppInput!) {{ deleteClientApp(input: $input) {{ deletedId {ERRORS} }} }}"""
ASSIGN = f"""mutation($input: AssignApiKeysInput!) {{
  assignApiKeysToClientApp(input: $input) {{ clientApp {{ id apiKeys {{ id }} }} {ERRORS} }} }}"""
UPLOAD = f"""mutation($input: UploadTrustedDocumentsInput!) {{
  uploadTrustedDocuments(input: $input) {{ manifest {{ version }} {ERRORS} }} }}"""
REMOVE = f"""mutation($input: RemoveTrustedDocumentsInput!) {{
  removeTrustedDocuments(input: $input) {{ removedIds {ERRORS} }} }}"""
LIST = f"""query($first: Int, $after: String) {{
  clientApps(first: $first, after: $after) {{ totalCount edges {{ cursor node {{ {APP_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }} }} }}"""
ONE = f"""query($id: ID!) {{ clientApp(id: $id) {{ {APP_FIELDS} }} node(id: $id) {{ id }} }}"""

DOC = "query Partner { viewer { role } }"
DOC_ID = hashlib.sha256(DOC.encode()).hexdigest()


async def create(api: Api, token: str, **fields: Any) -> dict[str, Any]:
    return (await api.data(CREATE, {"input": {"name": "Partner", **fields}}, token=token))["createClientApp"]


async def state(api: Api, t: TenantFixture) -> tuple[Any, int]:
    """Every client app of ``t`` with its keys and manifests, and the length of its audit trail."""
    return (await api.data(LIST, {"first": 100}, token=t.owner_token))["clientApps"], await audit_count(t.id)


async def test_create_read_update_delete(api: Api, tenant: TenantFixture) -> None:
    key_id, _ = await tenant.api_key("analyst")
    other_key, _ = await tenant.api_key("agent")
    audit = await audit_count(tenant.id)
    made = await create(api, tenant.owner_token, persistedOnly=True, ratePlan="GROWTH",
                        apiKeyIds=[gid("ApiKey", key_id)])
    assert made["errors"] == [], made
    app = made["clientApp"]
    assert (app["name"], app["persistedOnly"], app["ratePlan"]) == ("Partner", True, "GROWTH")
    assert app["apiKeys"] == [{"id": gid("ApiKey", key_id), "name": "analyst key"}]
    assert app["documentCount"] == 0 and app["currentManifest"] is None
    assert await audit_count(tenant.id) == audit + 1

    one = await api.data(ONE, {"id": app["id"]}, token=tenant.owner_token)
    assert one["clientApp"] == app and one["node"] == {"id": app["id"]}

    changed = (await api.data(UPDATE, {"input": {"id": app["id"], "name": "Partner 2", "ratePlan": None,
                                                 "apiKeyIds": [gid("ApiKey", other_key)]}},
                              token=tenant.owner_token))["updateClientApp"]
    assert changed["errors"] == [], changed
    assert changed["clientApp"]["name"] == "Partner 2" and changed["clientApp"]["ratePlan"] is None
    assert changed["clientApp"]["persistedOnly"] is True
    assert [k["id"] for k in changed["clientApp"]["apiKeys"]] == [gid("ApiKey", other_key)]

    bad = (await api.data(UPDATE, {"input": {"id": app["id"], "name": " "}}, token=tenant.owner_token))
    assert [(e["field"], e["code"]) for e in bad["updateClientApp"]["errors"]] == [("input.name", "REQUIRED")]

    await api.data(UPLOAD, {"input": {"clientAppId": app["id"], "manifest": {DOC_ID: DOC}}}, token=tenant.owner_token)
    deleted = (await api.data(DELETE, {"input": {"id": app["id"]}}, token=tenant.owner_token))["deleteClientApp"]
    assert deleted == {"deletedId": app["id"], "errors": []}
    assert (await api.data(ONE, {"id": app["id"]}, token=tenant.owner_token)) == {"clientApp": None, "node": None}
    # its keys stay, belonging to no app
    keys = await api.data("{ apiKeys { id } }", token=tenant.owner_token)
    assert {"id": gid("ApiKey", other_key)} in keys["apiKeys"]
    assert await audit_count(tenant.id) == audit + 4


async def test_pages_and_total_count(api: Api, tenant: TenantFixture) -> None:
    for i in range(3):
        assert (await create(api, tenant.owner_token, name=f"App {i}"))["errors"] == []
    first = (await api.data(LIST, {"first": 2}, token=tenant.owner_token))["clientApps"]
    assert first["totalCount"] == 3 and [e["node"]["name"] for e in first["edges"]] == ["App 2", "App 1"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await api.data(LIST, {"first": 2, "after": first["pageInfo"]["endCursor"]},
                           token=tenant.owner_token))["clientApps"]
    assert [e["node"]["name"] for e in rest["edges"]] == ["App 0"] and rest["pageInfo"]["hasNextPage"] is False


async def test_rate_plan_must_be_a_plan_and_keys_must_exist(api: Api, tenant: TenantFixture) -> None:
    body = await api.gql(CREATE, {"input": {"name": "x", "ratePlan": "PLATINUM"}}, token=tenant.owner_token)
    assert body["errors"] and body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    revoked, _ = await tenant.api_key("analyst")
    await api.data("mutation($id: ID!) { revokeApiKey(input: {id: $id}) { errors { code } } }",
                   {"id": gid("ApiKey", revoked)}, token=tenant.owner_token)
    before = await state(api, tenant)
    made = await create(api, tenant.owner_token, apiKeyIds=[gid("ApiKey", uuid.uuid4()), gid("ApiKey", revoked)])
    assert made["clientApp"] is None
    assert [(e["field"], e["code"]) for e in made["errors"]] == [
        ("input.apiKeyIds[0]", "NOT_FOUND"), ("input.apiKeyIds[1]", "NOT_FOUND")]
    assert await state(api, tenant) == before


async def test_a_key_belongs_to_one_app_and_moving_it_reaches_its_next_request(api: Api, tenant: TenantFixture) -> None:
    key_id, secret = await tenant.api_key("admin")
    first = (await create(api, tenant.owner_token, name="First", persistedOnly=True,
                          apiKeyIds=[gid("ApiKey", key_id)]))["clientApp"]
    second = (await create(api, tenant.owner_token, name="Second"))["clientApp"]
    adhoc = await api.post("{ viewer { role } }", token=secret)
    assert adhoc.status_code == 400, adhoc.text  # persisted-only
    moved = (await api.data(ASSIGN, {"input": {"clientAppId": second["id"], "apiKeyIds": [gid("ApiKey", key_id)]}},
                            token=tenant.owner_token))["assignApiKeysToClientApp"]
    assert moved == {"clientApp": {"id": second["id"], "apiKeys": [{"id": gid("ApiKey", key_id)}]}, "errors": []}
    one = await api.data(ONE, {"id": first["id"]}, token=tenant.owner_token)
    assert one["clientApp"]["apiKeys"] == []
    assert (await api.data("{ viewer { role } }", token=secret)) == {"viewer": {"role": "ADMIN"}}
    # detached from every app
    none = (await api.data(ASSIGN, {"input": {"clientAppId": None, "apiKeyIds": [gid("ApiKey", key_id)]}},
                           token=tenant.owner_token))["assignApiKeysToClientApp"]
    assert none == {"clientApp": None, "errors": []}
    assert (await api.data(ONE, {"id": second["id"]}, token=tenant.owner_token))["clientApp"]["apiKeys"] == []


# --- isolation -----------------------------------------------------------------------------------


async def world(api: Api, t: TenantFixture) -> tuple[dict[str, Any], uuid.UUID]:
    key_id, _ = await t.api_key("analyst")
    app = (await create(api, t.owner_token, apiKeyIds=[gid("ApiKey", key_id)]))["clientApp"]
    up = await api.data(UPLOAD, {"input": {"clientAppId": app["id"], "manifest": {DOC_ID: DOC}}},
                        token=t.owner_token)
    assert up["uploadTrustedDocuments"]["errors"] == []
    return app, key_id


def writes(app: dict[str, Any], key_id: uuid.UUID) -> list[tuple[str, str, dict[str, Any], str]]:
    """(mutation, document, variables, payload field) aimed at tenant A's app and key."""
    key = gid("ApiKey", key_id)
    return [
        ("updateClientApp", UPDATE, {"input": {"id": app["id"], "name": "Taken"}}, "clientApp"),
        ("deleteClientApp", DELETE, {"input": {"id": app["id"]}}, "deletedId"),
        ("assignApiKeysToClientApp", ASSIGN, {"input": {"clientAppId": app["id"], "apiKeyIds": [key]}}, "clientApp"),
        ("uploadTrustedDocuments", UPLOAD, {"input": {"clientAppId": app["id"], "manifest": {DOC_ID: DOC}}},
         "manifest"),
        ("removeTrustedDocuments", REMOVE, {"input": {"clientAppId": app["id"], "documentIds": [f"sha256:{DOC_ID}"]}},
         "removedIds"),
        ("createClientApp", CREATE, {"input": {"name": "Mine", "apiKeyIds": [key]}}, "clientApp"),
    ]


async def test_another_tenant_sees_and_changes_no_client_app(api: Api, tenant: TenantFixture) -> None:
    app, key_id = await world(api, tenant)
    other = await create_tenant_fixture()
    mine = await api.data(ONE, {"id": app["id"]}, token=tenant.owner_token)
    assert mine["clientApp"]["id"] == app["id"]  # the id is live
    foreign = await api.data(ONE, {"id": app["id"]}, token=other.owner_token)
    assert foreign == {"clientApp": None, "node": None}
    listed = (await api.data(LIST, {"first": 100}, token=other.owner_token))["clientApps"]
    assert listed["edges"] == [] and listed["totalCount"] == 0
    before = await state(api, tenant)
    for name, doc, variables, field in writes(app, key_id):
        result = (await api.data(doc, variables, token=other.owner_token))[name]
        assert result[field] is None and [e["code"] for e in result["errors"]] == ["NOT_FOUND"], (name, result)
        assert await state(api, tenant) == before, name
    # control: A's owner does update its app
    done = (await api.data(UPDATE, writes(app, key_id)[0][2], token=tenant.owner_token))["updateClientApp"]
    assert done["errors"] == [] and done["clientApp"]["name"] == "Taken"


@pytest.mark.parametrize("kind", ["analyst", "agent", "marketer", "marketer-key", "admin-key-a"])
async def test_roles_below_admin_and_brand_limited_principals_are_refused(
        api: Api, tenant: TenantFixture, kind: str) -> None:
    from support.isolation import principals

    app, key_id = await world(api, tenant)
    token = (await principals(tenant, kind))[kind]
    for query in (LIST, ONE):
        body = await api.gql(query, {"id": app["id"], "first": 5} if query is ONE else {"first": 5}, token=token)
        assert body["data"] is None or body["data"].get("clientApp") is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
    before = await state(api, tenant)
    for name, doc, variables, field in writes(app, key_id):
        result = (await api.data(doc, variables, token=token))[name]
        assert result[field] is None and [e["code"] for e in result["errors"]] == ["FORBIDDEN"], (name, result)
        assert await state(api, tenant) == before, name
    # the node lookup answers null rather than the app
    assert (await api.data("query($id: ID!) { node(id: $id) { id } }", {"id": app["id"]}, token=token)) == {"node": None}


async def test_an_admin_manages_client_apps(api: Api, tenant: TenantFixture) -> None:
    _, admin = await tenant.member("admin")
    made = await create(api, admin, name="By admin")
    assert made["errors"] == [] and made["clientApp"]["name"] == "By admin"


async def test_a_page_of_apps_with_their_keys_and_manifests_costs_the_same_at_every_size(api: Api) -> None:
    """No N+1: the page, its apps' keys, current manifests and document counts are one statement each."""
    from domain.clients import service as clients
    from domain.tenancy.api_keys import create_api_key
    from support.graphql import warm

    t = await create_tenant_fixture()
    for i in range(21):
        key, _ = await create_api_key(t.owner, f"key {i}", "analyst")
        app = await clients.create_client_app(t.owner, f"App {i}", api_key_ids=[key.id])
        doc = f"query App{i} {{ viewer {{ role }} }}"
        await clients.upload_manifest(t.owner, app.app.id, {hashlib.sha256(doc.encode()).hexdigest(): doc})
    query = """query($n: Int!) { clientApps(first: $n) { edges { node {
      id apiKeys { id name } currentManifest { version documentIds } documentCount } } } }"""
    await warm(api, t.owner_token)
    counts = set()
    for n in (1, 5, 20):
        for _ in range(2):
            body = await api.gql(query, {"n": n}, token=t.owner_token)
            edges = body["data"]["clientApps"]["edges"]
            assert len(edges) == n and all(len(e["node"]["apiKeys"]) == 1 for e in edges), body
            assert all(e["node"]["currentManifest"]["version"] == 1 for e in edges)
            counts.add(body["extensions"]["sqlStatements"])
    assert len(counts) == 1, counts
