"""Tenancy over the API: brands, members and grants, API keys, the audit trail, global ids."""

from __future__ import annotations

import httpx

from conftest import Api, TenantFixture, audit_count, gid

BRAND_FIELDS = """id name slug timezone isArchived archivedAt
  sendingIdentity { fromName fromEmail replyTo smsSender }
  voice { tone styleGuide wordsToUse wordsToAvoid sampleCopy }"""

CREATE_BRAND = f"""mutation($input: CreateBrandInput!) {{ createBrand(input: $input) {{
  brand {{ {BRAND_FIELDS} }} errors {{ field code message }} }} }}"""
UPDATE_BRAND = f"""mutation($input: UpdateBrandInput!) {{ updateBrand(input: $input) {{
  brand {{ {BRAND_FIELDS} }} errors {{ field code message }} }} }}"""
UPDATE_VOICE = f"""mutation($input: UpdateBrandVoiceInput!) {{ updateBrandVoice(input: $input) {{
  brand {{ {BRAND_FIELDS} }} errors {{ field code message }} }} }}"""
ARCHIVE = "mutation($id: ID!) { archiveBrand(input: {id: $id}) { brand { isArchived } errors { field code } } }"
MEMBER_FIELDS = "member { id email role allBrands brands { slug } } errors { field code message }"
ADD_MEMBER = f"mutation($input: AddMemberInput!) {{ addMember(input: $input) {{ {MEMBER_FIELDS} }} }}"
GRANT = f"mutation($u: ID!, $b: ID!) {{ grantBrandAccess(input: {{userId: $u, brandId: $b}}) {{ {MEMBER_FIELDS} }} }}"
REVOKE = f"mutation($u: ID!, $b: ID!) {{ revokeBrandAccess(input: {{userId: $u, brandId: $b}}) {{ {MEMBER_FIELDS} }} }}"
CHANGE_ROLE = f"mutation($u: ID!, $r: Role!) {{ changeMemberRole(input: {{userId: $u, role: $r}}) {{ {MEMBER_FIELDS} }} }}"
REMOVE = f"mutation($u: ID!) {{ removeMember(input: {{userId: $u}}) {{ {MEMBER_FIELDS} }} }}"
CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  apiKey { id name prefix role brands { slug } revokedAt } secret errors { field code message } } }"""
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } errors { code } } }"
VIEWER_BRANDS = "{ viewer { role allBrands brands { slug } } }"


async def test_create_update_voice_archive_brand(api: Api, tenant: TenantFixture) -> None:
    token = tenant.owner_token
    r = await api.post(CREATE_BRAND, {"input": {
        "name": "  Cobalt Coffee ", "slug": "cobalt", "timezone": "Europe/Berlin",
        "fromEmail": "hi@cobalt.example", "smsSender": "+4915112345678",
        "voice": {"tone": "bold", "wordsToAvoid": ["cheap"]}}}, token=token)
    assert r.status_code == 200
    created = r.json()["data"]["createBrand"]
    assert created["errors"] == []
    brand = created["brand"]
    assert brand["name"] == "Cobalt Coffee" and brand["timezone"] == "Europe/Berlin"
    assert brand["sendingIdentity"]["smsSender"] == "+4915112345678"
    assert brand["voice"] == {"tone": "bold", "styleGuide": None, "wordsToUse": [],
                              "wordsToAvoid": ["cheap"], "sampleCopy": None}

    # the audit row carries the request id the response announced
    log = await api.data('{ auditLog(first: 1, action: "brand.create") { edges { node { targetId requestId summary } } } }',
                         token=token)
    entry = log["auditLog"]["edges"][0]["node"]
    assert entry["requestId"] == r.headers["x-request-id"]
    assert entry["summary"]["after"]["slug"] == "cobalt"

    # partial update: only the sent fields change; an explicit null clears
    updated = (await api.data(UPDATE_BRAND, {"input": {"id": brand["id"], "name": "Cobalt", "fromEmail": None}},
                              token=token))["updateBrand"]
    assert updated["errors"] == []
    assert updated["brand"]["name"] == "Cobalt" and updated["brand"]["slug"] == "cobalt"
    assert updated["brand"]["sendingIdentity"]["fromEmail"] is None
    assert updated["brand"]["timezone"] == "Europe/Berlin"

    voice = (await api.data(UPDATE_VOICE, {"input": {"brandId": brand["id"], "styleGuide": "Short.",
                                                      "wordsToUse": ["roast", "origin"]}}, token=token))["updateBrandVoice"]
    assert voice["brand"]["voice"]["wordsToUse"] == ["roast", "origin"]
    assert voice["brand"]["voice"]["wordsToAvoid"] == ["cheap"]  # untouched

    archived = (await api.data(ARCHIVE, {"id": brand["id"]}, token=token))["archiveBrand"]
    assert archived == {"brand": {"isArchived": True}, "errors": []}
    again = (await api.data(ARCHIVE, {"id": brand["id"]}, token=token))["archiveBrand"]
    assert again["errors"] == [{"field": "input.id", "code": "INVALID_STATE"}]
    listed = await api.data("{ brands { slug } all: brands(includeArchived: true) { slug } }", token=token)
    assert "cobalt" not in {b["slug"] for b in listed["brands"]}
    assert "cobalt" in {b["slug"] for b in listed["all"]}


async def test_marketer_updates_voice_but_not_profile(api: Api, tenant: TenantFixture) -> None:
    _, token = await tenant.member("marketer")
    ok = (await api.data(UPDATE_VOICE, {"input": {"brandId": tenant.brand_gid("a"), "tone": "dry"}},
                         token=token))["updateBrandVoice"]
    assert ok["errors"] == [] and ok["brand"]["voice"]["tone"] == "dry"
    before = await audit_count(tenant.id)
    refused = (await api.data(UPDATE_BRAND, {"input": {"id": tenant.brand_gid("a"), "name": "X"}},
                              token=token))["updateBrand"]
    assert refused["brand"] is None and refused["errors"][0]["code"] == "FORBIDDEN"
    assert await audit_count(tenant.id) == before


async def test_members_limited_to_brands(api: Api, tenant: TenantFixture) -> None:
    owner = tenant.owner_token
    added = (await api.data(ADD_MEMBER, {"input": {"email": "Sam@Example.test", "role": "AGENT",
                                                    "brandIds": [tenant.brand_gid("a")]}}, token=owner))["addMember"]
    assert added["errors"] == []
    member = added["member"]
    assert member["role"] == "AGENT" and member["allBrands"] is False
    assert member["brands"] == [{"slug": "brand-a"}]

    duplicate = (await api.data(ADD_MEMBER, {"input": {"email": "sam@example.test", "role": "AGENT"}},
                                token=owner))["addMember"]
    assert duplicate["errors"][0]["code"] == "DUPLICATE"

    granted = (await api.data(GRANT, {"u": member["id"], "b": tenant.brand_gid("b")}, token=owner))["grantBrandAccess"]
    assert sorted(b["slug"] for b in granted["member"]["brands"]) == ["brand-a", "brand-b"]
    revoked = (await api.data(REVOKE, {"u": member["id"], "b": tenant.brand_gid("a")}, token=owner))["revokeBrandAccess"]
    assert revoked["member"]["brands"] == [{"slug": "brand-b"}]


async def test_revoking_one_brand_from_an_all_brands_member_keeps_the_others(api: Api, tenant: TenantFixture) -> None:
    user_id, token = await tenant.member("analyst")
    assert (await api.data(VIEWER_BRANDS, token=token))["viewer"]["allBrands"] is True
    revoked = (await api.data(REVOKE, {"u": gid("Member", user_id), "b": tenant.brand_gid("a")},
                              token=tenant.owner_token))["revokeBrandAccess"]
    assert revoked["errors"] == []
    assert revoked["member"]["allBrands"] is False
    viewer = (await api.data(VIEWER_BRANDS, token=token))["viewer"]
    assert viewer["allBrands"] is False
    assert [b["slug"] for b in viewer["brands"]] == ["brand-b"]


async def test_role_changes_follow_the_rules(api: Api, tenant: TenantFixture) -> None:
    admin_id, admin_token = await tenant.member("admin")
    marketer_id, _ = await tenant.member("marketer")
    promoted = (await api.data(CHANGE_ROLE, {"u": gid("Member", marketer_id), "r": "ANALYST"},
                               token=admin_token))["changeMemberRole"]
    assert promoted["errors"] == [] and promoted["member"]["role"] == "ANALYST"
    to_owner = (await api.data(CHANGE_ROLE, {"u": gid("Member", marketer_id), "r": "OWNER"},
                               token=admin_token))["changeMemberRole"]
    assert to_owner["errors"][0]["code"] == "FORBIDDEN"
    demote_owner = (await api.data(CHANGE_ROLE, {"u": gid("Member", tenant.owner_member_id), "r": "ADMIN"},
                                   token=admin_token))["changeMemberRole"]
    assert demote_owner["errors"][0]["code"] == "FORBIDDEN"
    last_owner = (await api.data(CHANGE_ROLE, {"u": gid("Member", tenant.owner_member_id), "r": "ADMIN"},
                                 token=tenant.owner_token))["changeMemberRole"]
    assert last_owner["errors"][0]["code"] == "INVALID_STATE"


async def test_removed_member_loses_access_at_once(api: Api, tenant: TenantFixture) -> None:
    user_id, token = await tenant.member("marketer")
    assert (await api.post(VIEWER_BRANDS, token=token)).status_code == 200
    removed = (await api.data(REMOVE, {"u": gid("Member", user_id)}, token=tenant.owner_token))["removeMember"]
    assert removed["errors"] == []
    r = await api.post(VIEWER_BRANDS, token=token)
    assert r.status_code == 401
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_api_key_lifecycle(api: Api, tenant: TenantFixture) -> None:
    owner = tenant.owner_token
    created = (await api.data(CREATE_KEY, {"input": {"name": "Shopify sync", "role": "MARKETER",
                                                      "brandIds": [tenant.brand_gid("b")]}}, token=owner))["createApiKey"]
    assert created["errors"] == []
    secret, key = created["secret"], created["apiKey"]
    assert secret.startswith("bg_") and secret.startswith(key["prefix"])
    assert key["brands"] == [{"slug": "brand-b"}]

    viewer = (await api.data(VIEWER_BRANDS, token=secret))["viewer"]
    assert viewer["role"] == "MARKETER" and [b["slug"] for b in viewer["brands"]] == ["brand-b"]

    listed = await api.data("{ apiKeys { id prefix name } }", token=owner)
    assert {"id": key["id"], "prefix": key["prefix"], "name": "Shopify sync"} in listed["apiKeys"]
    assert secret not in str(listed)

    revoked = (await api.data(REVOKE_KEY, {"id": key["id"]}, token=owner))["revokeApiKey"]
    assert revoked["errors"] == [] and revoked["apiKey"]["revokedAt"]
    r = await api.post(VIEWER_BRANDS, token=secret)
    assert r.status_code == 401 and "revoked" in r.json()["errors"][0]["message"]


async def test_audit_log_paginates_newest_first_and_filters(api: Api, tenant: TenantFixture) -> None:
    owner = tenant.owner_token
    for tone in ("one", "two", "three"):
        await api.data(UPDATE_VOICE, {"input": {"brandId": tenant.brand_gid("a"), "tone": tone}}, token=owner)
    query = """query($after: String) { auditLog(first: 2, after: $after, action: "brand.update_voice") {
      edges { cursor node { action summary occurredAt brand { slug } } } pageInfo { hasNextPage endCursor } } }"""
    first = (await api.data(query, token=owner))["auditLog"]
    assert [e["node"]["summary"]["voiceTone"]["after"] for e in first["edges"]] == ["three", "two"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["edges"][0]["node"]["brand"] == {"slug": "brand-a"}
    second = (await api.data(query, {"after": first["pageInfo"]["endCursor"]}, token=owner))["auditLog"]
    assert [e["node"]["summary"]["voiceTone"]["after"] for e in second["edges"]] == ["one"]
    assert second["pageInfo"]["hasNextPage"] is False

    latest = first["edges"][0]["node"]["occurredAt"]
    window = await api.data('query($from: DateTime) { auditLog(from: $from, targetType: "Brand") { edges { node { action } } } }',
                            {"from": latest}, token=owner)
    assert [e["node"]["action"] for e in window["auditLog"]["edges"]] == ["brand.update_voice"]

    bad_cursor = await api.gql('{ auditLog(after: "not-a-cursor") { edges { cursor } } }', token=owner)
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID"


async def test_node_resolves_every_type(api: Api, tenant: TenantFixture) -> None:
    user_id, _ = await tenant.member("agent")
    key_id, _ = await tenant.api_key("analyst")
    ids = {
        "Brand": tenant.brand_gid("a"),
        "Member": gid("Member", user_id),
        "ApiKey": gid("ApiKey", key_id),
        "Tenant": gid("Tenant", tenant.id),
    }
    for type_name, node_id in ids.items():
        data = await api.data("query($id: ID!) { node(id: $id) { __typename id } }", {"id": node_id},
                              token=tenant.owner_token)
        assert data["node"] == {"__typename": type_name, "id": node_id}
    entry = (await api.data("{ auditLog(first: 1) { edges { node { id } } } }", token=tenant.owner_token))
    entry_id = entry["auditLog"]["edges"][0]["node"]["id"]
    data = await api.data("query($id: ID!) { node(id: $id) { ... on AuditEntry { action } } }", {"id": entry_id},
                          token=tenant.owner_token)
    assert data["node"]["action"]


async def test_health_readiness_graphiql_and_request_ids(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        assert (await http.get("/healthz")).text == "ok"
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "database": "ok", "redis": "ok"}
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        echoed = await http.get("/healthz", headers={"x-request-id": "trace-1234abcd"})
        assert echoed.headers["x-request-id"] == "trace-1234abcd"
        minted = await http.get("/healthz", headers={"x-request-id": "bad id with spaces"})
        assert len(minted.headers["x-request-id"]) == 32


async def test_query_over_get_works(api: Api, tenant: TenantFixture) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        r = await http.get("/graphql", params={"query": "{ viewer { role } }"},
                           headers={"authorization": f"Bearer {tenant.owner_token}"})
    assert r.status_code == 200 and r.json()["data"]["viewer"]["role"] == "OWNER"
