"""Bad input gets a clear error and writes nothing.

Each case sends something wrong (credential, brand header, body, query shape, mutation input)
and checks the refusal: the HTTP status and ``extensions.code`` for request-level refusals, the
``field`` and ``code`` of each payload error for mutation inputs. Where the request tried to
write, the tenant's data and audit trail are checked unchanged, and the same request made
correctly is shown to go through, so the refusal is down to the bad part alone.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import SECRET, Api, TenantFixture, audit_count, gid

ERRORS = "errors { field code message }"
CREATE_BRAND = f"mutation($input: CreateBrandInput!) {{ createBrand(input: $input) {{ brand {{ id slug }} {ERRORS} }} }}"

SNAPSHOT = """
{
  brands(includeArchived: true) {
    id name slug timezone archivedAt updatedAt
    sendingIdentity { fromName fromEmail replyTo smsSender }
    voice { tone styleGuide wordsToUse wordsToAvoid sampleCopy }
  }
  members { id email name role allBrands brands { id } }
  apiKeys(includeRevoked: true) { id name prefix role revokedAt brands { id } }
}
"""


async def snapshot(api: Api, t: TenantFixture) -> tuple[dict[str, Any], int]:
    return await api.data(SNAPSHOT, token=t.owner_token), await audit_count(t.id)


def new_brand(slug: str | None = None) -> dict[str, Any]:
    return {"input": {"name": "Fresh", "slug": slug or f"fresh-{uuid.uuid4().hex[:8]}"}}


def refusal(r: httpx.Response, status: int, code: str) -> str:
    """Assert an HTTP-level refusal; its message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code, body
    assert error["message"], body
    return error["message"]


async def create_brand_refused(api: Api, t: TenantFixture, status: int, code: str, **kw: Any) -> str:
    """Send createBrand with a bad request part; assert the refusal and that nothing changed."""
    before = await snapshot(api, t)
    r = await api.post(CREATE_BRAND, new_brand(), **kw)
    message = refusal(r, status, code)
    assert await snapshot(api, t) == before
    return message


async def assert_owner_can_create_brand(api: Api, t: TenantFixture, **kw: Any) -> None:
    """Control: the same mutation, sent properly, writes."""
    n = await audit_count(t.id)
    data = await api.data(CREATE_BRAND, new_brand(), token=t.owner_token, **kw)
    assert data["createBrand"]["errors"] == [], data
    assert await audit_count(t.id) == n + 1


# --- credentials ----------------------------------------------------------------------


def token(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def claims(t: TenantFixture, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {"iss": "brandgraph", "aud": "brandgraph-api", "sub": str(t.owner_id),
           "email": f"owner@{t.slug}.test", "tid": str(t.id), "iat": now, "exp": now + 600}
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsigned(payload: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def alter(secret: str) -> str:
    """The same key with one character of its secret part changed."""
    i = len(secret) - 10
    return secret[:i] + ("A" if secret[i] != "A" else "B") + secret[i + 1:]


# each: (label, Authorization header value or None for no header, from (tenant, other tenant))
AUTH_CASES: list[tuple[str, Callable[[TenantFixture, TenantFixture], str | None]]] = [
    ("no header", lambda a, b: None),
    ("no scheme", lambda a, b: "garbage"),
    ("Bearer alone", lambda a, b: "Bearer"),
    ("Basic", lambda a, b: "Basic dXNlcjpwYXNzd29yZA=="),
    ("Bearer garbage", lambda a, b: "Bearer garbage"),
    ("Bearer three dots", lambda a, b: "Bearer a.b.c"),
    ("token without Bearer", lambda a, b: a.owner_token),
    ("JWT wrong secret", lambda a, b: "Bearer " + token(claims(a), secret="another-secret-" + "x" * 32)),
    ("JWT expired", lambda a, b: "Bearer " + token(claims(a, iat=int(time.time()) - 7200,
                                                           exp=int(time.time()) - 3600))),
    ("JWT alg none", lambda a, b: "Bearer " + unsigned(claims(a))),
    ("JWT wrong issuer", lambda a, b: "Bearer " + token(claims(a, iss="someone-else"))),
    ("JWT wrong audience", lambda a, b: "Bearer " + token(claims(a, aud="another-api"))),
    ("JWT without exp", lambda a, b: "Bearer " + token(claims(a, exp=None))),
    ("JWT without tid", lambda a, b: "Bearer " + token(claims(a, tid=None))),
    ("JWT tid garbage", lambda a, b: "Bearer " + token(claims(a, tid="not-a-uuid"))),
    ("JWT unknown tenant", lambda a, b: "Bearer " + token(claims(a, tid=str(uuid.uuid4())))),
    ("JWT user not a member", lambda a, b: "Bearer " + token(claims(a, sub=str(uuid.uuid4()),
                                                                    email="nobody@example.com"))),
    ("JWT tid of a tenant the user is not in", lambda a, b: "Bearer " + token(claims(a, tid=str(b.id)))),
    ("JWT foreign subject, foreign email", lambda a, b: "Bearer " + token(
        claims(a, sub="auth0|123", email=f"owner@{b.slug}.test"))),
    ("API key garbage", lambda a, b: "Bearer bg_" + "garbage!*"),
    ("API key short", lambda a, b: "Bearer bg_" + b64(b"x" * 20)),
    ("API key unknown", lambda a, b: "Bearer bg_" + b64(uuid.uuid4().bytes + a.id.bytes + b"s" * 24)),
]


@pytest.mark.parametrize(("label", "header"), AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
async def test_bad_credentials_are_refused_with_401(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture, label: str,
    header: Callable[[TenantFixture, TenantFixture], str | None],
) -> None:
    value = header(tenant, other_tenant)
    headers = {} if value is None else {"Authorization": value}
    r = await api.post("{ viewer { role } }", headers=headers)
    refusal(r, 401, "UNAUTHENTICATED")
    assert r.headers["www-authenticate"].startswith("Bearer")
    await create_brand_refused(api, tenant, 401, "UNAUTHENTICATED", headers=headers)
    await assert_owner_can_create_brand(api, tenant)


async def test_expired_token_says_so(api: Api, tenant: TenantFixture) -> None:
    past = int(time.time()) - 3600
    bad = token(claims(tenant, iat=past - 60, exp=past))
    message = refusal(await api.post("{ viewer { role } }", token=bad), 401, "UNAUTHENTICATED")
    assert "expired" in message
    fresh = token(claims(tenant))  # the same claims, not expired: accepted
    assert (await api.data("{ viewer { role } }", token=fresh))["viewer"]["role"] == "OWNER"


async def test_altered_api_key_is_refused(api: Api, tenant: TenantFixture) -> None:
    _, secret = await tenant.api_key("admin")
    assert (await api.data("{ viewer { role } }", token=secret))["viewer"]["role"] == "ADMIN"
    for bad in (alter(secret), secret[:-1], secret + "A", secret.upper()):
        assert bad != secret
        await create_brand_refused(api, tenant, 401, "UNAUTHENTICATED", token=bad)


async def test_revoked_api_key_is_refused(api: Api, tenant: TenantFixture) -> None:
    created = await api.data(
        f"mutation {{ createApiKey(input: {{name: \"ci\", role: ADMIN}}) {{ apiKey {{ id }} secret {ERRORS} }} }}",
        token=tenant.owner_token,
    )
    key_gid, secret = created["createApiKey"]["apiKey"]["id"], created["createApiKey"]["secret"]
    assert (await api.data("{ viewer { role } }", token=secret))["viewer"]["role"] == "ADMIN"
    await assert_owner_can_create_brand(api, tenant)

    revoke = f"mutation($id: ID!) {{ revokeApiKey(id: $id) {{ apiKey {{ revokedAt }} {ERRORS} }} }}"
    done = await api.data(revoke, {"id": key_gid}, token=tenant.owner_token)
    assert done["revokeApiKey"]["errors"] == [] and done["revokeApiKey"]["apiKey"]["revokedAt"]

    message = await create_brand_refused(api, tenant, 401, "UNAUTHENTICATED", token=secret)
    assert "revoked" in message
    again = await api.data(revoke, {"id": key_gid}, token=tenant.owner_token)
    assert [(e["field"], e["code"]) for e in again["revokeApiKey"]["errors"]] == [("id", "INVALID_STATE")]


async def test_websocket_without_valid_credentials_is_closed(api: Api, tenant: TenantFixture) -> None:
    url = api.base_url.replace("http://", "ws://", 1) + "/graphql"
    for payload, accepted in (({"Authorization": f"Bearer {tenant.owner_token}"}, True),
                              ({}, False), ({"Authorization": "Bearer garbage"}, False),
                              ({"Authorization": f"Bearer {token(claims(tenant, exp=int(time.time()) - 3600))}"},
                               False)):
        async with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            if accepted:
                assert json.loads(await ws.recv())["type"] == "connection_ack"
            else:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


# --- the brand header -----------------------------------------------------------------

BRAND_HEADERS: list[tuple[str, Callable[[TenantFixture, TenantFixture], str]]] = [
    ("unknown uuid", lambda a, b: str(uuid.uuid4())),
    ("unknown global id", lambda a, b: gid("Brand", uuid.uuid4())),
    ("other tenant's brand uuid", lambda a, b: str(b.brands["a"])),
    ("other tenant's brand global id", lambda a, b: b.brand_gid("a")),
    ("garbage", lambda a, b: "not-a-brand"),
    ("member global id", lambda a, b: gid("Member", a.owner_id)),
    ("global id of a non-uuid", lambda a, b: base64.b64encode(b"Brand:123").decode()),
]


@pytest.mark.parametrize(("label", "header"), BRAND_HEADERS, ids=[c[0] for c in BRAND_HEADERS])
async def test_bad_brand_header_is_refused_with_403(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture, label: str,
    header: Callable[[TenantFixture, TenantFixture], str],
) -> None:
    value = header(tenant, other_tenant)
    r = await api.post("{ viewer { activeBrand { id } } }", token=tenant.owner_token, brand=value)
    refusal(r, 403, "BRAND_NOT_ACCESSIBLE")
    await create_brand_refused(api, tenant, 403, "BRAND_NOT_ACCESSIBLE", token=tenant.owner_token, brand=value)
    await assert_owner_can_create_brand(api, tenant, brand=tenant.brand_gid("a"))


# --- the request itself ---------------------------------------------------------------

LIMIT = 1_048_576


def big_body(size: int) -> bytes:
    """A createBrand request of ``size`` bytes (the padding is in a variable)."""
    shell = json.dumps({"query": CREATE_BRAND, "variables": {**new_brand(), "pad": ""}})
    return shell.replace('"pad": ""', '"pad": "' + "x" * (size - len(shell)) + '"').encode()


async def test_oversized_body_is_refused_with_413(api: Api, tenant: TenantFixture) -> None:
    body = big_body(LIMIT + 1024)
    assert len(body) == LIMIT + 1024
    before = await snapshot(api, tenant)
    r = await api.http.post("/graphql", content=body, headers={
        "Authorization": f"Bearer {tenant.owner_token}", "Content-Type": "application/json"})
    refusal(r, 413, "PAYLOAD_TOO_LARGE")
    assert await snapshot(api, tenant) == before


async def test_oversized_chunked_body_is_refused_with_413(api: Api, tenant: TenantFixture) -> None:
    body = big_body(LIMIT + 64 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]

    before = await snapshot(api, tenant)
    request = api.http.build_request("POST", "/graphql", content=chunks(), headers={
        "Authorization": f"Bearer {tenant.owner_token}", "Content-Type": "application/json"})
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    r = await api.http.send(request)
    refusal(r, 413, "PAYLOAD_TOO_LARGE")
    assert await snapshot(api, tenant) == before


async def test_body_just_under_the_limit_is_served(api: Api, tenant: TenantFixture) -> None:
    """Control for the two above: the limit is the limit, not something lower."""
    body = big_body(LIMIT - 1024)
    n = await audit_count(tenant.id)
    r = await api.http.post("/graphql", content=body, headers={
        "Authorization": f"Bearer {tenant.owner_token}", "Content-Type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    assert r.json()["data"]["createBrand"]["errors"] == []
    assert await audit_count(tenant.id) == n + 1


def graphql_refusal(r: httpx.Response) -> list[str]:
    """A document refused before execution: no data, the error messages."""
    assert r.status_code in (200, 400), r.text
    body = r.json()
    assert body.get("data") is None, body
    assert body["errors"], body
    return [e["message"] for e in body["errors"]]


async def test_too_deep_query_is_refused(api: Api, tenant: TenantFixture) -> None:
    # the deepest path the schema has (5 levels) is served
    deepest = "{ auditLog(first: 1) { edges { node { brand { voice { tone } } } } } }"
    await api.data(deepest, token=tenant.owner_token)
    # no type refers back to another, so no valid document gets past 12 levels: nest the
    # same fields on (the depth limit is checked on the document, before execution)
    depth = 14
    deep = "{ " + "members { brands { " * (depth // 2) + "id" + " }" * depth + " }"
    messages = graphql_refusal(await api.post(deep, token=tenant.owner_token))
    assert any("depth" in m for m in messages), messages

    before = await snapshot(api, tenant)
    nested = "brand { voice { tone } } " + "members { brands { " * 6 + "id" + " } }" * 6
    mutation = f'mutation {{ createBrand(input: {{name: "Deep", slug: "deep"}}) {{ {nested} {ERRORS} }} }}'
    messages = graphql_refusal(await api.post(mutation, token=tenant.owner_token))
    assert any("depth" in m for m in messages), messages
    assert await snapshot(api, tenant) == before


async def test_too_many_aliases_are_refused(api: Api, tenant: TenantFixture) -> None:
    def aliased(n: int) -> str:
        return "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(n)) + " }"

    ok = await api.data(aliased(30), token=tenant.owner_token)
    assert len(ok) == 30
    messages = graphql_refusal(await api.post(aliased(31), token=tenant.owner_token))
    assert any("aliases" in m for m in messages), messages

    before = await snapshot(api, tenant)
    fields = " ".join(f"e{i}: errors {{ code }}" for i in range(31))
    mutation = f'mutation {{ createBrand(input: {{name: "Many", slug: "many"}}) {{ {fields} }} }}'
    messages = graphql_refusal(await api.post(mutation, token=tenant.owner_token))
    assert any("aliases" in m for m in messages), messages
    assert await snapshot(api, tenant) == before


async def test_mutation_over_get_is_refused_with_405(api: Api, tenant: TenantFixture) -> None:
    auth = {"Authorization": f"Bearer {tenant.owner_token}"}
    r = await api.http.get("/graphql", params={"query": "{ viewer { role } }"}, headers=auth)
    assert r.status_code == 200 and r.json()["data"] == {"viewer": {"role": "OWNER"}}, r.text

    before = await snapshot(api, tenant)
    mutation = 'mutation { createBrand(input: {name: "Via Get", slug: "via-get"}) { brand { id } } }'
    r = await api.http.get("/graphql", params={"query": mutation}, headers=auth)
    refusal(r, 405, "METHOD_NOT_ALLOWED")
    assert await snapshot(api, tenant) == before


@pytest.mark.parametrize(("label", "content"), [
    ("invalid JSON", b'{"query": "mutation { createBrand'),
    ("JSON without a query", b'{"variables": {}}'),
    ("query not a string", b'{"query": 42}'),
])
async def test_unreadable_body_is_refused_with_400(api: Api, tenant: TenantFixture, label: str, content: bytes) -> None:
    before = await snapshot(api, tenant)
    r = await api.http.post("/graphql", content=content, headers={
        "Authorization": f"Bearer {tenant.owner_token}", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["errors"][0]["message"], body
    assert await snapshot(api, tenant) == before


# --- mutation inputs ------------------------------------------------------------------


def _m(name: str, params: str, args: str, result: str) -> str:
    return f"mutation({params}) {{ {name}({args}) {{ {result} {{ id }} {ERRORS} }} }}"


UPDATE_BRAND = _m("updateBrand", "$input: UpdateBrandInput!", "input: $input", "brand")
UPDATE_VOICE = _m("updateBrandVoice", "$input: UpdateBrandVoiceInput!", "input: $input", "brand")
ARCHIVE_BRAND = _m("archiveBrand", "$id: ID!", "id: $id", "brand")
ADD_MEMBER = _m("addMember", "$input: AddMemberInput!", "input: $input", "member")
CHANGE_ROLE = _m("changeMemberRole", "$u: ID!, $r: Role!", "userId: $u, role: $r", "member")
REMOVE_MEMBER = _m("removeMember", "$u: ID!", "userId: $u", "member")
GRANT = _m("grantBrandAccess", "$u: ID!, $b: ID!", "userId: $u, brandId: $b", "member")
CREATE_KEY = _m("createApiKey", "$input: CreateApiKeyInput!", "input: $input", "apiKey")
REVOKE_KEY = _m("revokeApiKey", "$id: ID!", "id: $id", "apiKey")


def brand_input(**fields: Any) -> Callable[[TenantFixture], dict[str, Any]]:
    return lambda t: {"input": {"name": "Fresh", "slug": "fresh", **fields}}


# (label, document, mutation field, variables from the tenant, expected [(field, code)])
INVALID: list[tuple[str, str, str, Callable[[TenantFixture], dict[str, Any]], list[tuple[str, str]]]] = [
    ("createBrand bad slug", CREATE_BRAND, "createBrand", brand_input(slug="Not A Slug"),
     [("input.slug", "INVALID")]),
    ("createBrand slug with a trailing hyphen", CREATE_BRAND, "createBrand", brand_input(slug="fresh-"),
     [("input.slug", "INVALID")]),
    ("createBrand empty slug", CREATE_BRAND, "createBrand", brand_input(slug=""), [("input.slug", "REQUIRED")]),
    ("createBrand empty name", CREATE_BRAND, "createBrand", brand_input(name=""), [("input.name", "REQUIRED")]),
    ("createBrand blank name", CREATE_BRAND, "createBrand", brand_input(name="   "), [("input.name", "REQUIRED")]),
    ("createBrand long name", CREATE_BRAND, "createBrand", brand_input(name="n" * 201),
     [("input.name", "TOO_LONG")]),
    ("createBrand bad timezone", CREATE_BRAND, "createBrand", brand_input(timezone="Mars/Olympus"),
     [("input.timezone", "INVALID")]),
    ("createBrand bad fromEmail", CREATE_BRAND, "createBrand", brand_input(fromEmail="not an email"),
     [("input.fromEmail", "INVALID")]),
    ("createBrand bad replyTo", CREATE_BRAND, "createBrand", brand_input(replyTo="reply@"),
     [("input.replyTo", "INVALID")]),
    ("createBrand bad smsSender", CREATE_BRAND, "createBrand", brand_input(smsSender="+0-not-a-number"),
     [("input.smsSender", "INVALID")]),
    ("createBrand duplicate slug", CREATE_BRAND, "createBrand", brand_input(slug="brand-a"),
     [("input.slug", "DUPLICATE")]),
    ("createBrand several bad fields", CREATE_BRAND, "createBrand",
     brand_input(name="", slug="Bad Slug", timezone="Mars/Olympus", fromEmail="nope"),
     [("input.name", "REQUIRED"), ("input.slug", "INVALID"), ("input.timezone", "INVALID"),
      ("input.fromEmail", "INVALID")]),
    ("createBrand voice with too many words", CREATE_BRAND, "createBrand",
     brand_input(voice={"wordsToAvoid": [f"w{i}" for i in range(101)]}),
     [("input.voice.wordsToAvoid", "LIMIT_EXCEEDED")]),
    ("createBrand voice with an empty word", CREATE_BRAND, "createBrand",
     brand_input(voice={"wordsToUse": ["fine", " "]}), [("input.voice.wordsToUse[1]", "REQUIRED")]),
    ("updateBrand duplicate slug", UPDATE_BRAND, "updateBrand",
     lambda t: {"input": {"id": t.brand_gid("a"), "slug": "brand-b"}}, [("input.slug", "DUPLICATE")]),
    ("updateBrand bad fields", UPDATE_BRAND, "updateBrand",
     lambda t: {"input": {"id": t.brand_gid("a"), "name": "", "timezone": "Mars/Olympus"}},
     [("input.name", "REQUIRED"), ("input.timezone", "INVALID")]),
    ("updateBrand with a Member id", UPDATE_BRAND, "updateBrand",
     lambda t: {"input": {"id": gid("Member", t.owner_id), "name": "X"}}, [("input.id", "INVALID")]),
    ("updateBrand unknown brand", UPDATE_BRAND, "updateBrand",
     lambda t: {"input": {"id": gid("Brand", uuid.uuid4()), "name": "X"}}, [("input.id", "NOT_FOUND")]),
    ("updateBrandVoice 101 wordsToAvoid", UPDATE_VOICE, "updateBrandVoice",
     lambda t: {"input": {"brandId": t.brand_gid("a"), "tone": "calm",
                          "wordsToAvoid": [f"w{i}" for i in range(101)]}},
     [("input.wordsToAvoid", "LIMIT_EXCEEDED")]),
    ("updateBrandVoice word too long", UPDATE_VOICE, "updateBrandVoice",
     lambda t: {"input": {"brandId": t.brand_gid("a"), "wordsToUse": ["ok", "w" * 101]}},
     [("input.wordsToUse[1]", "TOO_LONG")]),
    ("updateBrandVoice with a Member id", UPDATE_VOICE, "updateBrandVoice",
     lambda t: {"input": {"brandId": gid("Member", t.owner_id), "tone": "calm"}},
     [("input.brandId", "INVALID")]),
    ("archiveBrand with a Member id", ARCHIVE_BRAND, "archiveBrand",
     lambda t: {"id": gid("Member", t.owner_id)}, [("id", "INVALID")]),
    ("addMember bad email", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": "not-an-email", "role": "AGENT"}}, [("input.email", "INVALID")]),
    ("addMember empty email", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": " ", "role": "AGENT"}}, [("input.email", "REQUIRED")]),
    ("addMember existing member", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": f"owner@{t.slug}.test", "role": "AGENT"}}, [("input.email", "DUPLICATE")]),
    ("addMember brand given as a Member id", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": f"new@{t.slug}.test", "role": "AGENT",
                          "brandIds": [t.brand_gid("a"), gid("Member", t.owner_id)]}},
     [("input.brandIds[1]", "INVALID")]),
    ("changeMemberRole of the last owner", CHANGE_ROLE, "changeMemberRole",
     lambda t: {"u": gid("Member", t.owner_id), "r": "ADMIN"}, [("role", "INVALID_STATE")]),
    ("changeMemberRole with a Brand id", CHANGE_ROLE, "changeMemberRole",
     lambda t: {"u": t.brand_gid("a"), "r": "ADMIN"}, [("userId", "INVALID")]),
    ("changeMemberRole of a stranger", CHANGE_ROLE, "changeMemberRole",
     lambda t: {"u": gid("Member", uuid.uuid4()), "r": "ADMIN"}, [("userId", "NOT_FOUND")]),
    ("removeMember the last owner", REMOVE_MEMBER, "removeMember",
     lambda t: {"u": gid("Member", t.owner_id)}, [("userId", "INVALID_STATE")]),
    ("grantBrandAccess with a Member id as brand", GRANT, "grantBrandAccess",
     lambda t: {"u": gid("Member", t.owner_id), "b": gid("Member", t.owner_id)}, [("brandId", "INVALID")]),
    ("createApiKey role OWNER", CREATE_KEY, "createApiKey",
     lambda t: {"input": {"name": "root", "role": "OWNER"}}, [("input.role", "INVALID_STATE")]),
    ("createApiKey empty name", CREATE_KEY, "createApiKey",
     lambda t: {"input": {"name": "", "role": "AGENT"}}, [("input.name", "REQUIRED")]),
    ("createApiKey brand given as a Member id", CREATE_KEY, "createApiKey",
     lambda t: {"input": {"name": "k", "role": "AGENT", "brandIds": [gid("Member", t.owner_id)]}},
     [("input.brandIds[0]", "INVALID")]),
    ("revokeApiKey with a Brand id", REVOKE_KEY, "revokeApiKey",
     lambda t: {"id": t.brand_gid("a")}, [("id", "INVALID")]),
    ("revokeApiKey unknown key", REVOKE_KEY, "revokeApiKey",
     lambda t: {"id": gid("ApiKey", uuid.uuid4())}, [("id", "NOT_FOUND")]),
]


@pytest.mark.parametrize(("label", "doc", "name", "variables", "expected"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_mutation_input_gets_field_errors_and_writes_nothing(
    api: Api, tenant: TenantFixture, label: str, doc: str, name: str,
    variables: Callable[[TenantFixture], dict[str, Any]], expected: list[tuple[str, str]],
) -> None:
    before = await snapshot(api, tenant)
    data = await api.data(doc, variables(tenant), token=tenant.owner_token)
    payload = data[name]
    got = [(e["field"], e["code"]) for e in payload["errors"]]
    assert sorted(got) == sorted(expected), payload
    assert all(e["message"] for e in payload["errors"]), payload
    assert [v for k, v in payload.items() if k != "errors"] == [None], payload
    assert await snapshot(api, tenant) == before


async def test_valid_brand_input_is_accepted(api: Api, tenant: TenantFixture) -> None:
    """Control for the createBrand rows: every field at a sane value goes through."""
    data = await api.data(CREATE_BRAND, brand_input(
        timezone="Europe/Paris", fromEmail="news@example.com", replyTo="help@example.com",
        smsSender="+15551234567", voice={"wordsToAvoid": [f"w{i}" for i in range(100)], "wordsToUse": ["fine"]},
    )(tenant), token=tenant.owner_token)
    assert data["createBrand"]["errors"] == [], data
    assert data["createBrand"]["brand"]["slug"] == "fresh"


@pytest.mark.parametrize("bad_id", ["garbage", "", str(uuid.uuid4())])
async def test_malformed_global_id_is_an_error_and_writes_nothing(api: Api, tenant: TenantFixture, bad_id: str) -> None:
    before = await snapshot(api, tenant)
    body = await api.gql(ARCHIVE_BRAND, {"id": bad_id}, token=tenant.owner_token)
    if body.get("errors"):  # refused while reading the variables
        assert body.get("data") is None, body
        assert all(e["message"] for e in body["errors"]), body
    else:  # or refused by the mutation
        payload = body["data"]["archiveBrand"]
        assert payload["brand"] is None and payload["errors"], body
        assert payload["errors"][0]["code"] in ("INVALID", "NOT_FOUND"), body
    assert await snapshot(api, tenant) == before
