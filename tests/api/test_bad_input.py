"""Bad input gets a clear error and writes nothing.

Each case sends something wrong (credential, brand header, body, query shape, mutation input)
and checks the refusal: the HTTP status and ``extensions.code`` for request-level refusals, the
``field`` and ``code`` of each payload error for mutation inputs. Where the request tried to
write, the tenant's data and audit trail are checked unchanged, and the same request made
correctly is shown to go through, so the refusal is down to the bad part alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import SECRET, Api, TenantFixture, audit_count, create_tenant_fixture, gid
from support.ws import PROTOCOL, ws_url

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

    revoke = f"mutation($id: ID!) {{ revokeApiKey(input: {{id: $id}}) {{ apiKey {{ revokedAt }} {ERRORS} }} }}"
    done = await api.data(revoke, {"id": key_gid}, token=tenant.owner_token)
    assert done["revokeApiKey"]["errors"] == [] and done["revokeApiKey"]["apiKey"]["revokedAt"]

    message = await create_brand_refused(api, tenant, 401, "UNAUTHENTICATED", token=secret)
    assert "revoked" in message
    again = await api.data(revoke, {"id": key_gid}, token=tenant.owner_token)
    assert [(e["field"], e["code"]) for e in again["revokeApiKey"]["errors"]] == [("input.id", "INVALID_STATE")]


async def test_websocket_without_valid_credentials_is_closed(api: Api, tenant: TenantFixture) -> None:
    url = ws_url(api)
    for payload, accepted in (({"Authorization": f"Bearer {tenant.owner_token}"}, True),
                              ({}, False), ({"Authorization": "Bearer garbage"}, False),
                              ({"Authorization": f"Bearer {token(claims(tenant, exp=int(time.time()) - 3600))}"},
                               False)):
        async with connect(url, subprotocols=[PROTOCOL], open_timeout=5) as ws:
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
    ("member global id", lambda a, b: gid("Member", a.owner_member_id)),
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
ARCHIVE_BRAND = _m("archiveBrand", "$id: ID!", "input: {id: $id}", "brand")
ADD_MEMBER = _m("addMember", "$input: AddMemberInput!", "input: $input", "member")
CHANGE_ROLE = _m("changeMemberRole", "$u: ID!, $r: Role!", "input: {userId: $u, role: $r}", "member")
REMOVE_MEMBER = _m("removeMember", "$u: ID!", "input: {userId: $u}", "member")
GRANT = _m("grantBrandAccess", "$u: ID!, $b: ID!", "input: {userId: $u, brandId: $b}", "member")
CREATE_KEY = _m("createApiKey", "$input: CreateApiKeyInput!", "input: $input", "apiKey")
REVOKE_KEY = _m("revokeApiKey", "$id: ID!", "input: {id: $id}", "apiKey")


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
     lambda t: {"input": {"id": gid("Member", t.owner_member_id), "name": "X"}}, [("input.id", "INVALID")]),
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
     lambda t: {"input": {"brandId": gid("Member", t.owner_member_id), "tone": "calm"}},
     [("input.brandId", "INVALID")]),
    ("archiveBrand with a Member id", ARCHIVE_BRAND, "archiveBrand",
     lambda t: {"id": gid("Member", t.owner_member_id)}, [("input.id", "INVALID")]),
    ("addMember bad email", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": "not-an-email", "role": "AGENT"}}, [("input.email", "INVALID")]),
    ("addMember empty email", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": " ", "role": "AGENT"}}, [("input.email", "REQUIRED")]),
    ("addMember existing member", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": f"owner@{t.slug}.test", "role": "AGENT"}}, [("input.email", "DUPLICATE")]),
    ("addMember brand given as a Member id", ADD_MEMBER, "addMember",
     lambda t: {"input": {"email": f"new@{t.slug}.test", "role": "AGENT",
                          "brandIds": [t.brand_gid("a"), gid("Member", t.owner_member_id)]}},
     [("input.brandIds[1]", "INVALID")]),
    ("changeMemberRole of the last owner", CHANGE_ROLE, "changeMemberRole",
     lambda t: {"u": gid("Member", t.owner_member_id), "r": "ADMIN"}, [("input.role", "INVALID_STATE")]),
    ("changeMemberRole with a Brand id", CHANGE_ROLE, "changeMemberRole",
     lambda t: {"u": t.brand_gid("a"), "r": "ADMIN"}, [("input.userId", "INVALID")]),
    ("changeMemberRole of a stranger", CHANGE_ROLE, "changeMemberRole",
     lambda t: {"u": gid("Member", uuid.uuid4()), "r": "ADMIN"}, [("input.userId", "NOT_FOUND")]),
    ("removeMember the last owner", REMOVE_MEMBER, "removeMember",
     lambda t: {"u": gid("Member", t.owner_member_id)}, [("input.userId", "INVALID_STATE")]),
    ("grantBrandAccess with a Member id as brand", GRANT, "grantBrandAccess",
     lambda t: {"u": gid("Member", t.owner_member_id), "b": gid("Member", t.owner_member_id)}, [("input.brandId", "INVALID")]),
    ("createApiKey role OWNER", CREATE_KEY, "createApiKey",
     lambda t: {"input": {"name": "root", "role": "OWNER"}}, [("input.role", "INVALID_STATE")]),
    ("createApiKey empty name", CREATE_KEY, "createApiKey",
     lambda t: {"input": {"name": "", "role": "AGENT"}}, [("input.name", "REQUIRED")]),
    ("createApiKey brand given as a Member id", CREATE_KEY, "createApiKey",
     lambda t: {"input": {"name": "k", "role": "AGENT", "brandIds": [gid("Member", t.owner_member_id)]}},
     [("input.brandIds[0]", "INVALID")]),
    ("revokeApiKey with a Brand id", REVOKE_KEY, "revokeApiKey",
     lambda t: {"id": t.brand_gid("a")}, [("input.id", "INVALID")]),
    ("revokeApiKey unknown key", REVOKE_KEY, "revokeApiKey",
     lambda t: {"id": gid("ApiKey", uuid.uuid4())}, [("input.id", "NOT_FOUND")]),
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


# --- customer area inputs -------------------------------------------------------------
# customers, orders, events, tags and consent: each bad input gets a typed error on the right
# field path, and nothing is written (every row of the area, and the audit trail, unchanged)

CUSTOMER_TABLES = ("customers", "customer_brands", "tags", "customer_tags", "customer_notes", "customer_consents",
                   "orders", "order_items", "products", "tracked_events", "timeline_events", "customer_profiles",
                   "jobs", "audit_log")


async def customer_rows(t: TenantFixture) -> dict[str, list[tuple[str, ...]]]:
    """Every row the tenant has in the customer area's tables, and its audit trail."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    out = {}
    async with tenant_session(t.id) as s:
        for table in CUSTOMER_TABLES:
            result = await s.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": t.id})
            out[table] = sorted(tuple(str(v) for v in row) for row in result)
    return out


@dataclass
class Shop:
    """A tenant with brands a, b and the archived "old", a customer known to brand a, a tag "VIP"."""

    t: TenantFixture
    customer: str
    tag: str
    foreign_customer: str  # a customer of another tenant

    def brand(self, name: str) -> str:
        return self.t.brand_gid(name)


@pytest.fixture(scope="module")
async def foreign_customer() -> str:
    from domain.customers.service import upsert_customer

    other = await create_tenant_fixture()
    c, _ = await upsert_customer(other.owner, {"email": "theirs@example.com"}, brand_id=other.brands["a"])
    return gid("Customer", c.id)


@pytest.fixture
async def shop(foreign_customer: str) -> Shop:
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag
    from domain.tenancy.brands import archive_brand

    t = await create_tenant_fixture(("a", "b", "old"))
    (c, _), tag, _ = await asyncio.gather(
        upsert_customer(t.owner, {"email": "maya@example.com", "first_name": "Maya"}, brand_id=t.brands["a"]),
        create_tag(t.owner, {"name": "VIP"}),
        archive_brand(t.owner, t.brands["old"]),
    )
    return Shop(t=t, customer=gid("Customer", c.id), tag=gid("Tag", tag.id), foreign_customer=foreign_customer)


def _ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


def _later(**kw: float) -> str:
    return (datetime.now(UTC) + timedelta(**kw)).isoformat()


UPSERT_CUSTOMER = _m("upsertCustomer", "$input: UpsertCustomerInput!", "input: $input", "customer")
RECORD_ORDER = _m("recordOrder", "$input: RecordOrderInput!", "input: $input", "order")
TRACK_EVENT = _m("trackEvent", "$input: TrackEventInput!", "input: $input", "event")
TAG_CUSTOMERS = f"mutation($c: [ID!]!, $t: [ID!]!) {{ tagCustomers(input: {{customerIds: $c, tagIds: $t}}) {{ changed {ERRORS} }} }}"
CREATE_TAG = _m("createTag", "$input: TagInput!", "input: $input", "tag")
SET_CONSENT = f"mutation($input: SetConsentInput!) {{ setConsent(input: $input) {{ consent {{ granted }} {ERRORS} }} }}"

_DROP = object()


def _with(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


def customer_input(**changes: Any) -> Callable[[Shop], dict[str, Any]]:
    return lambda s: {"input": _with({"email": "new@example.com", "firstName": "New", "brandId": s.brand("a")},
                                     changes)}


def order_input(**changes: Any) -> Callable[[Shop], dict[str, Any]]:
    def build(s: Shop) -> dict[str, Any]:
        base = {"brandId": s.brand("a"), "externalOrderId": "SO-1", "totalCents": 2_500, "currency": "EUR",
                "placedAt": _ago(hours=1), "customerId": s.customer,
                "items": [{"sku": "MUG", "quantity": 2, "unitPriceCents": 1_000},
                          {"sku": "TEE", "quantity": 1, "unitPriceCents": 500}]}
        return {"input": _with(base, {k: v(s) if callable(v) else v for k, v in changes.items()})}

    return build


def event_input(**changes: Any) -> Callable[[Shop], dict[str, Any]]:
    return lambda s: {"input": _with({"eventId": "evt-1", "name": "product_viewed", "brandId": s.brand("a"),
                                      "customerId": s.customer, "properties": {"sku": "MUG"}}, changes)}


def tag_input(**changes: Any) -> Callable[[Shop], dict[str, Any]]:
    return lambda s: _with({"c": [s.customer], "t": [s.tag]}, {k: v(s) for k, v in changes.items()})


def new_tag_input(**changes: Any) -> Callable[[Shop], dict[str, Any]]:
    return lambda s: {"input": _with({"name": "Fresh", "color": "#1f6feb"}, changes)}


def consent_input(**changes: Any) -> Callable[[Shop], dict[str, Any]]:
    return lambda s: {"input": _with({"customerId": s.customer, "brandId": s.brand("a"), "channel": "EMAIL",
                                      "granted": True}, {k: v(s) for k, v in changes.items()})}


# the valid input of each mutation: the rows below change one part of it
CUSTOMER_VALID: list[tuple[str, str, Callable[[Shop], dict[str, Any]]]] = [
    ("upsertCustomer", UPSERT_CUSTOMER, customer_input()),
    ("recordOrder", RECORD_ORDER, order_input()),
    ("recordOrder", RECORD_ORDER, order_input(customerId=_DROP, customer={"email": "buyer@example.com",
                                                                         "phone": "+33612345678"})),
    ("trackEvent", TRACK_EVENT, event_input()),
    ("tagCustomers", TAG_CUSTOMERS, tag_input()),
    ("createTag", CREATE_TAG, new_tag_input()),
    ("setConsent", SET_CONSENT, consent_input()),
]

# (label, document, mutation field, variables from the shop, expected [(field, code)])
CUSTOMER_INVALID: list[tuple[str, str, str, Callable[[Shop], dict[str, Any]], list[tuple[str, str]]]] = [
    ("upsertCustomer bad email", UPSERT_CUSTOMER, "upsertCustomer", customer_input(email="not an email"),
     [("input.email", "INVALID")]),
    ("upsertCustomer phone not E.164", UPSERT_CUSTOMER, "upsertCustomer", customer_input(phone="12345"),
     [("input.phone", "INVALID")]),
    ("upsertCustomer country not ISO", UPSERT_CUSTOMER, "upsertCustomer", customer_input(country="France"),
     [("input.country", "INVALID")]),
    ("upsertCustomer birth date in the future", UPSERT_CUSTOMER, "upsertCustomer",
     customer_input(birthDate="2999-01-01"), [("input.birthDate", "INVALID")]),
    ("upsertCustomer birth date before 1900", UPSERT_CUSTOMER, "upsertCustomer",
     customer_input(birthDate="1850-06-01"), [("input.birthDate", "INVALID")]),
    ("upsertCustomer attributes a list", UPSERT_CUSTOMER, "upsertCustomer", customer_input(attributes=[1, 2]),
     [("input.attributes", "INVALID")]),
    ("upsertCustomer attributes a string", UPSERT_CUSTOMER, "upsertCustomer", customer_input(attributes="vip"),
     [("input.attributes", "INVALID")]),
    ("upsertCustomer attribute with a bad key", UPSERT_CUSTOMER, "upsertCustomer",
     customer_input(attributes={"ok": 1, "not ok!": 2}), [("input.attributes", "INVALID")]),
    ("upsertCustomer without externalId or email", UPSERT_CUSTOMER, "upsertCustomer",
     customer_input(email=_DROP, phone="+33612345678"), [("input.externalId", "REQUIRED")]),
    ("upsertCustomer several bad fields", UPSERT_CUSTOMER, "upsertCustomer",
     customer_input(email="nope", phone="12345", country="France"),
     [("input.email", "INVALID"), ("input.phone", "INVALID"), ("input.country", "INVALID")]),
    ("upsertCustomer unknown brand", UPSERT_CUSTOMER, "upsertCustomer",
     lambda s: customer_input(brandId=gid("Brand", uuid.uuid4()))(s), [("input.brandId", "NOT_FOUND")]),
    ("upsertCustomer archived brand", UPSERT_CUSTOMER, "upsertCustomer",
     lambda s: customer_input(brandId=s.brand("old"))(s), [("input.brandId", "INVALID_STATE")]),
    ("recordOrder negative total", RECORD_ORDER, "recordOrder", order_input(totalCents=-1),
     [("input.totalCents", "INVALID")]),
    ("recordOrder currency EUR1", RECORD_ORDER, "recordOrder", order_input(currency="EUR1"),
     [("input.currency", "INVALID")]),
    ("recordOrder unknown currency XYZ", RECORD_ORDER, "recordOrder", order_input(currency="XYZ"),
     [("input.currency", "INVALID")]),
    ("recordOrder placed in the future", RECORD_ORDER, "recordOrder", order_input(placedAt=_later(days=1)),
     [("input.placedAt", "INVALID")]),
    ("recordOrder zero quantity", RECORD_ORDER, "recordOrder",
     order_input(items=[{"sku": "MUG", "quantity": 0, "unitPriceCents": 1_000}]),
     [("input.items[0].quantity", "INVALID")]),
    ("recordOrder negative unit price on line 2", RECORD_ORDER, "recordOrder",
     order_input(items=[{"sku": "MUG", "quantity": 1, "unitPriceCents": 1_000},
                        {"sku": "TEE", "quantity": 1, "unitPriceCents": -5}]),
     [("input.items[1].unitPriceCents", "INVALID")]),
    ("recordOrder unknown brand", RECORD_ORDER, "recordOrder", order_input(brandId=lambda s: gid("Brand", uuid.uuid4())),
     [("input.brandId", "NOT_FOUND")]),
    ("recordOrder archived brand", RECORD_ORDER, "recordOrder", order_input(brandId=lambda s: s.brand("old")),
     [("input.brandId", "INVALID_STATE")]),
    ("recordOrder another tenant's customer", RECORD_ORDER, "recordOrder",
     order_input(customerId=lambda s: s.foreign_customer), [("input.customerId", "NOT_FOUND")]),
    ("recordOrder neither customerId nor customer", RECORD_ORDER, "recordOrder", order_input(customerId=_DROP),
     [("input.customer", "REQUIRED")]),
    ("recordOrder nested customer bad email", RECORD_ORDER, "recordOrder",
     order_input(customerId=_DROP, customer={"email": "not-an-email"}), [("input.customer.email", "INVALID")]),
    ("recordOrder nested customer bad phone and country", RECORD_ORDER, "recordOrder",
     order_input(customerId=_DROP, customer={"email": "buyer@example.com", "phone": "12345", "country": "France"}),
     [("input.customer.phone", "INVALID"), ("input.customer.country", "INVALID")]),
    ("recordOrder nested customer without externalId or email", RECORD_ORDER, "recordOrder",
     order_input(customerId=_DROP, customer={"firstName": "Anonymous"}), [("input.customer.externalId", "REQUIRED")]),
    ("trackEvent empty eventId", TRACK_EVENT, "trackEvent", event_input(eventId=""), [("input.eventId", "REQUIRED")]),
    ("trackEvent bad name", TRACK_EVENT, "trackEvent", event_input(name="1 not a name!"), [("input.name", "INVALID")]),
    ("trackEvent properties a list", TRACK_EVENT, "trackEvent", event_input(properties=[1, 2]),
     [("input.properties", "INVALID")]),
    ("trackEvent properties a string", TRACK_EVENT, "trackEvent", event_input(properties="sku=MUG"),
     [("input.properties", "INVALID")]),
    ("trackEvent in the future", TRACK_EVENT, "trackEvent", event_input(occurredAt=_later(days=1)),
     [("input.occurredAt", "INVALID")]),
    ("trackEvent nested customer bad email", TRACK_EVENT, "trackEvent",
     event_input(customerId=_DROP, customer={"email": "not-an-email"}), [("input.customer.email", "INVALID")]),
    ("trackEvent nested customer without externalId or email", TRACK_EVENT, "trackEvent",
     event_input(customerId=_DROP, customer={"firstName": "Anonymous"}), [("input.customer.externalId", "REQUIRED")]),
    ("trackEvent another tenant's customer", TRACK_EVENT, "trackEvent",
     lambda s: event_input(customerId=s.foreign_customer)(s), [("input.customerId", "NOT_FOUND")]),
    ("tagCustomers 1,001 customers", TAG_CUSTOMERS, "tagCustomers",
     tag_input(c=lambda s: [gid("Customer", uuid.uuid4()) for _ in range(1_000)] + [s.customer]),
     [("input.customerIds", "LIMIT_EXCEEDED")]),
    ("tagCustomers unknown tag", TAG_CUSTOMERS, "tagCustomers", tag_input(t=lambda s: [gid("Tag", uuid.uuid4())]),
     [("input.tagIds[0]", "NOT_FOUND")]),
    ("tagCustomers another tenant's customer", TAG_CUSTOMERS, "tagCustomers",
     tag_input(c=lambda s: [s.customer, s.foreign_customer]), [("input.customerIds[1]", "NOT_FOUND")]),
    ("createTag bad colour", CREATE_TAG, "createTag", new_tag_input(color="red"), [("input.color", "INVALID")]),
    ("createTag colour without #", CREATE_TAG, "createTag", new_tag_input(color="1f6feb"),
     [("input.color", "INVALID")]),
    ("createTag duplicate name, other case", CREATE_TAG, "createTag", new_tag_input(name="vip"),
     [("input.name", "DUPLICATE")]),
    ("createTag empty name", CREATE_TAG, "createTag", new_tag_input(name=" "), [("input.name", "REQUIRED")]),
    ("setConsent archived brand", SET_CONSENT, "setConsent", consent_input(brandId=lambda s: s.brand("old")),
     [("input.brandId", "INVALID_STATE")]),
    ("setConsent another tenant's customer", SET_CONSENT, "setConsent",
     consent_input(customerId=lambda s: s.foreign_customer), [("input.customerId", "NOT_FOUND")]),
]


@pytest.mark.parametrize(("label", "doc", "name", "variables", "expected"), CUSTOMER_INVALID,
                         ids=[c[0] for c in CUSTOMER_INVALID])
async def test_invalid_customer_input_gets_field_errors_and_writes_nothing(
    api: Api, shop: Shop, label: str, doc: str, name: str, variables: Callable[[Shop], dict[str, Any]],
    expected: list[tuple[str, str]],
) -> None:
    before = await customer_rows(shop.t)
    data = await api.data(doc, variables(shop), token=shop.t.owner_token)
    payload = data[name]
    got = [(e["field"], e["code"]) for e in payload["errors"]]
    assert sorted(got) == sorted(expected), payload
    assert all(e["message"] for e in payload["errors"]), payload
    assert [v for k, v in payload.items() if k != "errors"] in ([None], [0]), payload
    assert await customer_rows(shop.t) == before


@pytest.mark.parametrize(("name", "doc", "variables"), CUSTOMER_VALID, ids=[f"{v[0]}-{i}" for i, v in enumerate(CUSTOMER_VALID)])
async def test_valid_customer_input_is_accepted(
    api: Api, shop: Shop, name: str, doc: str, variables: Callable[[Shop], dict[str, Any]]
) -> None:
    """Control for the rows above: the input they each change one part of goes through and writes."""
    before = await customer_rows(shop.t)
    data = await api.data(doc, variables(shop), token=shop.t.owner_token)
    payload = data[name]
    assert payload["errors"] == [], payload
    assert [v for k, v in payload.items() if k != "errors"] not in ([None], [0]), payload
    after = await customer_rows(shop.t)
    assert [t for t in CUSTOMER_TABLES if t != "audit_log" and after[t] != before[t]], "nothing was written"


async def test_tag_customers_limit_is_one_thousand(api: Api, shop: Shop) -> None:
    """1,000 customers is within the limit (these are unknown, hence NOT_FOUND); 1,001 is not."""
    ids = [gid("Customer", uuid.uuid4()) for _ in range(1_000)]
    before = await customer_rows(shop.t)
    for customers, expected in ((ids, ("input.customerIds[0]", "NOT_FOUND")),
                                (ids + [shop.customer], ("input.customerIds", "LIMIT_EXCEEDED"))):
        payload = (await api.data(TAG_CUSTOMERS, {"c": customers, "t": [shop.tag]}, token=shop.t.owner_token))["tagCustomers"]
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [expected], payload
    assert await customer_rows(shop.t) == before


WRONG_TYPE: list[tuple[str, str, Callable[[Shop], dict[str, Any]]]] = [
    ("birthDate not a date", UPSERT_CUSTOMER, customer_input(birthDate="1990-13-45")),
    ("totalCents not a number", RECORD_ORDER, order_input(totalCents="a lot")),
    ("placedAt not a date-time", RECORD_ORDER, order_input(placedAt="yesterday")),
    ("channel not a Channel", SET_CONSENT, consent_input(channel=lambda s: "PIGEON")),
]


@pytest.mark.parametrize(("label", "doc", "variables"), WRONG_TYPE, ids=[c[0] for c in WRONG_TYPE])
async def test_customer_input_of_the_wrong_type_is_refused_before_execution(
    api: Api, shop: Shop, label: str, doc: str, variables: Callable[[Shop], dict[str, Any]]
) -> None:
    before = await customer_rows(shop.t)
    body = await api.gql(doc, variables(shop), token=shop.t.owner_token)
    assert body.get("data") is None, body
    assert body["errors"] and all(e["message"] for e in body["errors"]), body
    assert await customer_rows(shop.t) == before
