"""Persisted operations over raw HTTP: Apollo's automatic persisted queries (POST and GET, as its
link sends them), trusted documents of client apps (both manifest formats, ``documentId`` by POST
and GET), persisted-only keys, and the caching headers of GET answers."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx

from conftest import Api, TenantFixture

ERRORS = "errors { field code message }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def apq_ext(h: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": h}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(api: Api, body: dict[str, Any], token: str, **headers: str) -> httpx.Response:
    return await api.http.post("/graphql", json=body, headers={**bearer(token), **headers})


async def get(api: Api, params: dict[str, Any], token: str, **headers: str) -> httpx.Response:
    """A GET as Apollo's link sends it: variables and extensions JSON-encoded in the query string."""
    encoded = {k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v for k, v in params.items()}
    return await api.http.get("/graphql", params=encoded,
                              headers={**bearer(token), "Accept": "application/graphql-response+json,application/json;q=0.9",
                                       **headers})


async def stored(tenant_id: uuid.UUID, h: str) -> str | None:
    from domain.platform import apq
    from domain.platform import redis as redis_mod

    return await redis_mod.client().get(apq.key(tenant_id, h))


def code(r: httpx.Response) -> str:
    return r.json()["errors"][0]["extensions"]["code"]


async def tag_names(api: Api, t: TenantFixture) -> list[str]:
    return sorted(x["name"] for x in (await api.data("{ tags { name } }", token=t.owner_token))["tags"])


def viewer_query() -> tuple[str, str]:
    name = f"Q{uuid.uuid4().hex[:10]}"
    return name, f"query {name} {{ viewer {{ role allBrands }} }}"


# --- automatic persisted queries ------------------------------------------------------------------


async def test_apq_hash_alone_is_not_found_then_registered_then_runs_by_post_and_get(
        api: Api, tenant: TenantFixture) -> None:
    name, query = viewer_query()
    h = sha(query)
    miss = await post(api, {"operationName": name, "variables": {}, "extensions": apq_ext(h)}, tenant.owner_token)
    assert miss.status_code == 200, miss.text
    body = miss.json()
    assert "data" not in body
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
    assert await stored(tenant.id, h) is None

    registered = await post(api, {"query": query, "operationName": name, "extensions": apq_ext(h)},
                            tenant.owner_token)
    assert registered.status_code == 200, registered.text
    assert registered.json()["data"]["viewer"] == {"role": "OWNER", "allBrands": True}
    assert await stored(tenant.id, h) == query

    hit = await post(api, {"operationName": name, "variables": {}, "extensions": apq_ext(h)}, tenant.owner_token)
    assert hit.status_code == 200 and hit.json()["data"]["viewer"]["role"] == "OWNER", hit.text

    by_get = await get(api, {"operationName": name, "variables": {}, "extensions": apq_ext(h)}, tenant.owner_token)
    assert by_get.status_code == 200, by_get.text
    assert by_get.json()["data"]["viewer"]["role"] == "OWNER"

    # another tenant does not find what this one registered
    from conftest import create_tenant_fixture

    other = await create_tenant_fixture()
    elsewhere = await post(api, {"extensions": apq_ext(h)}, other.owner_token)
    assert elsewhere.status_code == 200 and code(elsewhere) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_hash_alone_by_get_is_not_found_with_200(api: Api, tenant: TenantFixture) -> None:
    _, query = viewer_query()
    r = await get(api, {"extensions": apq_ext(sha(query))}, tenant.owner_token)
    assert r.status_code == 200, r.text
    assert code(r) == "PERSISTED_QUERY_NOT_FOUND" and r.json()["errors"][0]["message"] == "PersistedQueryNotFound"


async def test_a_forged_hash_is_refused_and_nothing_is_stored(api: Api, tenant: TenantFixture) -> None:
    _, query = viewer_query()
    _, other_query = viewer_query()
    forged = sha(other_query)
    r = await post(api, {"query": query, "extensions": apq_ext(forged)}, tenant.owner_token)
    assert r.status_code == 400, r.text
    assert code(r) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert r.json()["errors"][0]["message"] == "provided sha does not match query"
    assert "data" not in r.json()
    assert await stored(tenant.id, forged) is None and await stored(tenant.id, sha(query)) is None
    again = await post(api, {"extensions": apq_ext(forged)}, tenant.owner_token)
    assert code(again) == "PERSISTED_QUERY_NOT_FOUND"
    # a mutation with a forged hash writes nothing either
    before = await tag_names(api, tenant)
    mutation = 'mutation { createTag(input: {name: "forged"}) { tag { id } errors { code } } }'
    refused = await post(api, {"query": mutation, "extensions": apq_ext(forged)}, tenant.owner_token)
    assert refused.status_code == 400 and code(refused) == "PERSISTED_QUERY_HASH_MISMATCH"
    assert await tag_names(api, tenant) == before


async def test_an_unsupported_version_is_refused(api: Api, tenant: TenantFixture) -> None:
    _, query = viewer_query()
    r = await post(api, {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha(query)}}},
                   tenant.owner_token)
    assert r.status_code == 400 and code(r) == "PERSISTED_QUERY_NOT_SUPPORTED", r.text


async def test_a_query_that_does_not_validate_is_not_stored(api: Api, tenant: TenantFixture) -> None:
    query = f"query Bad{uuid.uuid4().hex[:8]} {{ viewer {{ noSuchField }} }}"
    r = await post(api, {"query": query, "extensions": apq_ext(sha(query))}, tenant.owner_token)
    assert r.json()["errors"], r.text
    assert await stored(tenant.id, sha(query)) is None


async def test_a_registered_mutation_is_refused_over_get(api: Api, tenant: TenantFixture) -> None:
    label = f"apq-{uuid.uuid4().hex[:6]}"
    mutation = f'mutation {{ createTag(input: {{name: "{label}"}}) {{ tag {{ name }} {ERRORS} }} }}'
    h = sha(mutation)
    done = await post(api, {"query": mutation, "extensions": apq_ext(h)}, tenant.owner_token)
    assert done.json()["data"]["createTag"]["errors"] == [], done.text
    assert await stored(tenant.id, h) == mutation
    assert await tag_names(api, tenant) == [label]
    r = await get(api, {"extensions": apq_ext(h)}, tenant.owner_token)
    assert r.status_code == 405, r.text
    assert await tag_names(api, tenant) == [label]
    # by POST, the hash alone runs it (and the second tag of that name is refused as a duplicate)
    again = await post(api, {"extensions": apq_ext(h)}, tenant.owner_token)
    assert again.status_code == 200 and again.json()["data"]["createTag"]["tag"] is None, again.text


async def test_get_answers_of_persisted_queries_carry_an_etag_and_revalidate(api: Api, tenant: TenantFixture) -> None:
    name, query = viewer_query()
    h = sha(query)
    await post(api, {"query": query, "extensions": apq_ext(h)}, tenant.owner_token)
    params = {"operationName": name, "extensions": apq_ext(h)}
    first = await get(api, params, tenant.owner_token)
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"] == "private"
    assert first.headers["vary"] == "Accept, Authorization, X-Brand-Id"
    assert etag == f'"{hashlib.sha256(first.content).hexdigest()[:40]}"'
    # the same answer again: 304 with no body (a body that changed, e.g. its statement count, gets
    # a new ETag and is sent whole; the next request names that one)
    for _ in range(5):
        r = await get(api, params, tenant.owner_token, **{"If-None-Match": etag})
        if r.status_code == 304:
            break
        assert r.status_code == 200 and r.headers["etag"] != etag, r.text
        etag = r.headers["etag"]
    assert r.status_code == 304, r.text
    assert r.content == b"" and r.headers["etag"] == etag and r.headers["cache-control"] == "private"
    stale = await get(api, params, tenant.owner_token, **{"If-None-Match": '"0000"'})
    assert stale.status_code == 200 and stale.json()["data"]["viewer"]["role"] == "OWNER"
    # a query sent in full, by GET, is not given an ETag
    full = await get(api, {"query": query}, tenant.owner_token)
    assert full.status_code == 200 and "etag" not in full.headers


# --- trusted documents of client apps --------------------------------------------------------------

CREATE_APP = f"""mutation($input: CreateClientAppInput!) {{
  createClientApp(input: $input) {{ clientApp {{ id persistedOnly }} {ERRORS} }} }}"""
CREATE_KEY = f"""mutation($input: CreateApiKeyInput!) {{
  createApiKey(input: $input) {{ apiKey {{ id }} secret {ERRORS} }} }}"""
UPLOAD = f"""mutation($input: UploadTrustedDocumentsInput!) {{
  uploadTrustedDocuments(input: $input) {{ manifest {{ version documentIds documentCount }} added {ERRORS} }} }}"""
REMOVE = f"""mutation($input: RemoveTrustedDocumentsInput!) {{
  removeTrustedDocuments(input: $input) {{ removedIds {ERRORS} }} }}"""
APP = """query($id: ID!) { clientApp(id: $id) { documentCount currentManifest { version documentIds } } }"""


async def make_app(api: Api, t: TenantFixture, *, persisted_only: bool = False, role: str = "ADMIN"
                   ) -> tuple[str, str]:
    """A client app and a key of it: (app id, key secret)."""
    made = (await api.data(CREATE_APP, {"input": {"name": "Partner", "persistedOnly": persisted_only}},
                           token=t.owner_token))["createClientApp"]
    assert made["errors"] == [], made
    app_id = made["clientApp"]["id"]
    key = (await api.data(CREATE_KEY, {"input": {"name": "partner key", "role": role, "clientAppId": app_id}},
                          token=t.owner_token))["createApiKey"]
    assert key["errors"] == [], key
    return app_id, key["secret"]


async def upload(api: Api, t: TenantFixture, app_id: str, manifest: Any) -> dict[str, Any]:
    return (await api.data(UPLOAD, {"input": {"clientAppId": app_id, "manifest": manifest}},
                           token=t.owner_token))["uploadTrustedDocuments"]


async def app_state(api: Api, t: TenantFixture, app_id: str) -> dict[str, Any]:
    return (await api.data(APP, {"id": app_id}, token=t.owner_token))["clientApp"]


async def test_manifests_in_both_formats_run_by_document_id_by_post_and_get(api: Api, tenant: TenantFixture) -> None:
    app_id, key = await make_app(api, tenant)
    role = "query Role { viewer { role } }"
    brands = "query Brands {\n  brands { slug }\n}"
    plain = await upload(api, tenant, app_id, {sha(role): role})
    assert plain["errors"] == [] and plain["added"] == 1, plain
    assert plain["manifest"] == {"version": 1, "documentIds": [f"sha256:{sha(role)}"], "documentCount": 1}
    apollo = await upload(api, tenant, app_id, {
        "format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id": sha(brands), "body": brands, "name": "Brands", "type": "query"},
                       {"id": sha(role), "body": role, "name": "Role", "type": "query"}]})
    assert apollo["errors"] == [] and apollo["added"] == 1, apollo
    assert apollo["manifest"]["version"] == 2 and apollo["manifest"]["documentCount"] == 2

    r = await post(api, {"documentId": f"sha256:{sha(brands)}"}, key)
    assert r.status_code == 200, r.text
    assert sorted(b["slug"] for b in r.json()["data"]["brands"]) == ["brand-a", "brand-b"]
    g = await get(api, {"documentId": f"sha256:{sha(role)}"}, key)
    assert g.status_code == 200 and g.json()["data"] == {"viewer": {"role": "ADMIN"}}, g.text
    assert g.headers["cache-control"] == "private" and "etag" in g.headers
    # Apollo's hash names a trusted document too
    a = await post(api, {"extensions": apq_ext(sha(role))}, key)
    assert a.json()["data"] == {"viewer": {"role": "ADMIN"}}, a.text
    # an id nobody uploaded; a malformed one; documentId with a query
    unknown = await post(api, {"documentId": f"sha256:{'0' * 64}"}, key)
    assert unknown.status_code == 400 and code(unknown) == "PERSISTED_QUERY_NOT_FOUND", unknown.text
    bad = await post(api, {"documentId": "md5:abc"}, key)
    assert bad.status_code == 400 and code(bad) == "BAD_REQUEST", bad.text
    both = await post(api, {"documentId": f"sha256:{sha(role)}", "query": role}, key)
    assert both.status_code == 400 and code(both) == "BAD_REQUEST", both.text
    # another tenant's key does not reach this app's documents
    from conftest import create_tenant_fixture

    other = await create_tenant_fixture()
    _, other_key = await make_app(api, other)
    foreign = await post(api, {"documentId": f"sha256:{sha(brands)}"}, other_key)
    assert foreign.status_code == 400 and code(foreign) == "PERSISTED_QUERY_NOT_FOUND", foreign.text


async def test_a_manifest_with_a_wrong_hash_is_refused_naming_the_entry_and_nothing_is_written(
        api: Api, tenant: TenantFixture) -> None:
    app_id, _ = await make_app(api, tenant)
    good = "query Good { viewer { role } }"
    assert (await upload(api, tenant, app_id, {sha(good): good}))["errors"] == []
    before = await app_state(api, tenant, app_id)
    fresh = "query Fresh { brands { id } }"
    tampered = "query Tampered { members { email } }"
    result = await upload(api, tenant, app_id, {
        "format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id": sha(fresh), "body": fresh, "name": "Fresh", "type": "query"},
                       {"id": sha(good), "body": tampered, "name": "Tampered", "type": "query"}]})
    assert result["manifest"] is None
    assert [(e["field"], e["code"]) for e in result["errors"]] == [("input.manifest.operations[1]", "HASH_MISMATCH")]
    assert "Tampered" in result["errors"][0]["message"] and sha(tampered) in result["errors"][0]["message"]
    assert await app_state(api, tenant, app_id) == before
    # the plain format names the entry by its key; a trailing newline changes the text, so the hash
    plain = await upload(api, tenant, app_id, {sha(fresh): fresh + "\n"})
    assert [(e["field"], e["code"]) for e in plain["errors"]] == [(f"input.manifest.{sha(fresh)}", "HASH_MISMATCH")]
    assert await app_state(api, tenant, app_id) == before


async def test_a_document_the_current_manifest_lists_cannot_be_removed(api: Api, tenant: TenantFixture) -> None:
    app_id, key = await make_app(api, tenant)
    old = "query Old { viewer { role } }"
    new = "query New { viewer { allBrands } }"
    await upload(api, tenant, app_id, {sha(old): old, sha(new): new})
    refused = (await api.data(REMOVE, {"input": {"clientAppId": app_id, "documentIds": [f"sha256:{sha(old)}"]}},
                              token=tenant.owner_token))["removeTrustedDocuments"]
    assert refused["removedIds"] is None
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("input.documentIds[0]", "INVALID_STATE")]
    assert (await app_state(api, tenant, app_id))["documentCount"] == 2
    assert (await post(api, {"documentId": f"sha256:{sha(old)}"}, key)).status_code == 200

    await upload(api, tenant, app_id, {sha(new): new})  # version 2 no longer lists "old"
    removed = (await api.data(REMOVE, {"input": {"clientAppId": app_id, "documentIds": [f"sha256:{sha(old)}"]}},
                              token=tenant.owner_token))["removeTrustedDocuments"]
    assert removed == {"removedIds": [f"sha256:{sha(old)}"], "errors": []}
    state = await app_state(api, tenant, app_id)
    assert state["documentCount"] == 1 and state["currentManifest"]["version"] == 2
    gone = await post(api, {"documentId": f"sha256:{sha(old)}"}, key)
    assert gone.status_code == 400 and code(gone) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_persisted_only_key_runs_nothing_else(api: Api, tenant: TenantFixture) -> None:
    app_id, key = await make_app(api, tenant, persisted_only=True)
    trusted = "query Trusted { viewer { role } }"
    await upload(api, tenant, app_id, {sha(trusted): trusted})
    before = await tag_names(api, tenant)

    mutation = 'mutation { createTag(input: {name: "adhoc"}) { tag { id } errors { code } } }'
    for body in ({"query": mutation}, {"query": "{ viewer { role } }"}):
        r = await post(api, body, key)
        assert r.status_code == 400, r.text
        assert code(r) == "PERSISTED_QUERY_ID_REQUIRED" and "data" not in r.json()
    by_get = await get(api, {"query": "{ viewer { role } }"}, key)
    assert by_get.status_code == 400 and code(by_get) == "PERSISTED_QUERY_ID_REQUIRED", by_get.text
    # registering its own text through APQ is refused too, and nothing is stored or written
    registering = await post(api, {"query": mutation, "extensions": apq_ext(sha(mutation))}, key)
    assert registering.status_code == 400 and code(registering) == "PERSISTED_QUERY_NOT_IN_LIST", registering.text
    assert await stored(tenant.id, sha(mutation)) is None
    # a text the tenant registered through APQ is not trusted for the app either
    await post(api, {"query": mutation, "extensions": apq_ext(sha(mutation))}, tenant.owner_token)
    assert await stored(tenant.id, sha(mutation)) == mutation
    before = await tag_names(api, tenant)
    hashed = await post(api, {"extensions": apq_ext(sha(mutation))}, key)
    assert hashed.status_code == 400 and code(hashed) == "PERSISTED_QUERY_NOT_IN_LIST", hashed.text
    assert await tag_names(api, tenant) == before

    ok = await post(api, {"documentId": f"sha256:{sha(trusted)}"}, key)
    assert ok.status_code == 200 and ok.json()["data"] == {"viewer": {"role": "ADMIN"}}, ok.text
    apollo = await post(api, {"query": trusted, "extensions": apq_ext(sha(trusted))}, key)
    assert apollo.status_code == 200 and apollo.json()["data"] == {"viewer": {"role": "ADMIN"}}, apollo.text

    # once the app is no longer persisted-only, the same key sends queries in full
    update = f"""mutation($input: UpdateClientAppInput!) {{
      updateClientApp(input: $input) {{ clientApp {{ persistedOnly }} {ERRORS} }} }}"""
    changed = await api.data(update, {"input": {"id": app_id, "persistedOnly": False}}, token=tenant.owner_token)
    assert changed["updateClientApp"] == {"clientApp": {"persistedOnly": False}, "errors": []}
    free = await post(api, {"query": "{ viewer { role } }"}, key)
    assert free.status_code == 200 and free.json()["data"] == {"viewer": {"role": "ADMIN"}}, free.text


async def test_a_persisted_only_key_opens_no_websocket(api: Api, tenant: TenantFixture) -> None:
    """Subscriptions are sent in full: a key of a persisted-only app is refused at connection_init."""
    import pytest

    from support.ws import Client
    from support.ws import bearer as ws_bearer

    _, key = await make_app(api, tenant, persisted_only=True)
    _, plain = await tenant.api_key("admin")
    ok = await Client.open(api, ws_bearer(plain))
    await ok.close()
    with pytest.raises(AssertionError, match="connection refused"):
        await Client.open(api, ws_bearer(key))


async def test_the_key_belongs_to_the_app(api: Api, tenant: TenantFixture) -> None:
    app_id, _ = await make_app(api, tenant)
    data = await api.data("query($id: ID!) { clientApp(id: $id) { apiKeys { name } } }", {"id": app_id},
                          token=tenant.owner_token)
    assert data["clientApp"]["apiKeys"] == [{"name": "partner key"}]


async def test_a_query_registered_on_one_api_process_runs_on_another(api: Api, tenant: TenantFixture) -> None:
    """The store is Redis, shared: a second API process finds what the first registered."""
    from conftest import start_api

    name, query = viewer_query()
    h = sha(query)
    proc, base = start_api("api-apq")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=20) as second:
            before = await second.post("/graphql", json={"extensions": apq_ext(h)}, headers=bearer(tenant.owner_token))
            assert before.status_code == 200 and code(before) == "PERSISTED_QUERY_NOT_FOUND", before.text
            await post(api, {"query": query, "extensions": apq_ext(h)}, tenant.owner_token)
            after = await second.post("/graphql", json={"operationName": name, "extensions": apq_ext(h)},
                                      headers=bearer(tenant.owner_token))
            assert after.status_code == 200 and after.json()["data"]["viewer"]["role"] == "OWNER", after.text
    finally:
        proc.stop()


async def test_a_document_the_schema_refuses_is_refused_at_upload(api: Api, tenant: TenantFixture) -> None:
    app_id, _ = await make_app(api, tenant)
    ok = "query Ok { viewer { role } }"
    wrong = "query Wrong { viewer { noSuchField } }"
    result = await upload(api, tenant, app_id, {sha(ok): ok, sha(wrong): wrong})
    assert result["manifest"] is None
    assert [(e["field"], e["code"]) for e in result["errors"]] == [(f"input.manifest.{sha(wrong)}", "INVALID")]
    assert "noSuchField" in result["errors"][0]["message"]
    assert (await app_state(api, tenant, app_id)) == {"documentCount": 0, "currentManifest": None}


async def test_a_trusted_document_costs_no_statement_once_found(api: Api, tenant: TenantFixture) -> None:
    """The process keeps the documents it found (dropped with the authentication cache): run by id,
    a document costs the statements of the same text sent in full."""
    from support.graphql import warm

    app_id, key = await make_app(api, tenant)
    doc = "query Mine { viewer { role allBrands } }"
    await upload(api, tenant, app_id, {sha(doc): doc})
    await warm(api, key)
    full = (await post(api, {"query": doc}, key)).json()["extensions"]["sqlStatements"]
    await post(api, {"documentId": f"sha256:{sha(doc)}"}, key)
    counts = {(await post(api, {"documentId": f"sha256:{sha(doc)}"}, key)).json()["extensions"]["sqlStatements"]
              for _ in range(3)}
    assert counts == {full}, (counts, full)
