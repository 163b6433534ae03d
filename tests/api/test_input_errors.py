"""Malformed input never becomes a 5xx or an internal error, and never spells out the schema.

Each case sends one bad thing (a body that is not a JSON object, bytes that are not UTF-8, text
PostgreSQL cannot store, a number beyond what its column holds, a global id of a type that had no
node resolver) and checks the refusal: the status, ``extensions.code``, the limit in the message,
that nothing was written, and that the API's log has no traceback for it. A control shows the
same request made properly goes through.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import DATA_DIR, Api, Process, TenantFixture, free_port, gid
from support.graphql import codes, post_json

INTERNAL = "INTERNAL_SERVER_ERROR"
API_LOG = DATA_DIR / "logs"


def api_log_tracebacks() -> int:
    """Tracebacks in the logs of the API servers this test session started."""
    import os

    return sum(p.read_text(errors="replace").count("Traceback")
               for p in API_LOG.glob(f"api*-{os.getpid()}.log"))


@pytest.fixture
def no_new_tracebacks() -> Iterator[None]:
    before = api_log_tracebacks()
    yield
    time.sleep(0.2)  # the server writes its log line after answering
    assert api_log_tracebacks() == before, "the API logged a traceback"


async def gql(api: Api, query: str, variables: dict[str, Any] | None = None, *, token: str) -> dict[str, Any]:
    """Api.gql, with the body encoded here: JSON escapes (ensure_ascii) carry lone surrogates."""
    r = await post_json(api, query, variables or {}, token=token)
    assert r.status_code == 200, r.text
    return r.json()


def assert_bad_user_input(body: dict[str, Any], *needles: str) -> str:
    """A typed refusal of the input: BAD_USER_INPUT, a message naming the problem, no data."""
    assert body.get("data") in (None, {}), body
    assert codes(body) and all(c == "BAD_USER_INPUT" for c in codes(body)), body
    message = " ".join(e["message"] for e in body["errors"])
    for needle in needles:
        assert needle in message, message
    return message


# --- the body --------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "content", "needle"), [
    ("a number", b"42", "JSON object"),
    ("a string", b'"x"', "JSON object"),
    ("null", b"null", "JSON object"),
    ("invalid UTF-8 in the body", b'{"query": "{ viewer { role } }", "variables": {"x": "\xff\xfe"}}', "UTF-8"),
    ("invalid UTF-8 in the query", b'{"query": "{ viewer \xc3\x28 { role } }"}', "UTF-8"),
    ("nested too deeply", b'{"query": "{ viewer { role } }", "variables": {"x": ' + b"[" * 100_000
     + b"]" * 100_000 + b"}}", "nested"),
])
async def test_unreadable_body_is_a_400_and_keeps_the_connection(
    api: Api, tenant: TenantFixture, no_new_tracebacks: None, label: str, content: bytes, needle: str
) -> None:
    auth = {"Authorization": f"Bearer {tenant.owner_token}"}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as client:
        r = await client.post("/graphql", content=content, headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/json"), r.headers
        (error,) = r.json()["errors"]
        assert error["extensions"]["code"] == "BAD_REQUEST" and needle in error["message"], error
        # the same keep-alive connection serves the next request
        again = await client.post("/graphql", json={"query": "{ viewer { role } }"}, headers=auth)
        assert again.json()["data"] == {"viewer": {"role": "OWNER"}}


# --- text PostgreSQL cannot store ------------------------------------------------------

SEARCH = "query($s: String) { customers(search: $s) { edges { node { id } } } }"
CUSTOMER = "query($id: ID!) { customer(id: $id) { id } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
CREATE_TAG = "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } errors { field code } } }"
TAGS = "{ tags { name } }"


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "bad \ud800 surrogate"], ids=["NUL inside", "NUL", "surrogate"])
async def test_unstorable_text_is_refused_as_bad_input(
    api: Api, tenant: TenantFixture, no_new_tracebacks: None, text: str
) -> None:
    tok = tenant.owner_token
    assert_bad_user_input(await gql(api, SEARCH, {"s": text}, token=tok), "NUL")
    assert_bad_user_input(await gql(api, CUSTOMER, {"id": text}, token=tok), "NUL")
    assert_bad_user_input(await gql(api, NODE, {"id": text}, token=tok), "NUL")
    # as a literal in the document too (a lone surrogate there is already a syntax error)
    literal = text.replace("\x00", "\\u0000").replace("\ud800", "\\ud800")
    body = await gql(api, f'{{ customers(search: "{literal}") {{ edges {{ cursor }} }} }}', token=tok)
    if "\x00" in text:
        assert_bad_user_input(body, "NUL")
    else:
        assert body["data"] is None and "Syntax Error" in body["errors"][0]["message"], body
    # a write with it writes nothing; the same write without it goes through
    before = await api.data(TAGS, token=tok)
    assert_bad_user_input(await gql(api, CREATE_TAG, {"n": f"tag {text}"}, token=tok), "NUL")
    assert await api.data(TAGS, token=tok) == before
    clean = text.replace("\x00", "").replace("\ud800", "")
    assert (await api.data(CREATE_TAG, {"n": f"tag {clean}!"}, token=tok))["createTag"]["errors"] == []
    assert (await api.data(SEARCH, {"s": "ab"}, token=tok))["customers"]["edges"] == []


async def test_malformed_ids_are_typed_errors_or_null(api: Api, tenant: TenantFixture, no_new_tracebacks: None) -> None:
    tok = tenant.owner_token
    for bad in ("not base64 at all", "", "Q3VzdG9tZXI6bm90LWEtdXVpZA==", gid("Nope", uuid.uuid4())):
        body = await api.gql(NODE, {"id": bad}, token=tok)
        assert INTERNAL not in codes(body), body
        assert body.get("data") in (None, {"node": None}), body
        body = await api.gql(CUSTOMER, {"id": bad}, token=tok)
        assert INTERNAL not in codes(body), body


# --- numbers beyond their columns ------------------------------------------------------

RECORD_ORDER = ("mutation($i: RecordOrderInput!) { recordOrder(input: $i) { order { id totalCents } "
                "errors { field code message } } }")
ORDERS = "{ orders(first: 100) { edges { node { id totalCents } } } }"


def order(t: TenantFixture, total: Any, **more: Any) -> dict[str, Any]:
    return {"i": {"brandId": t.brand_gid("a"), "externalOrderId": f"o-{uuid.uuid4().hex[:8]}", "totalCents": total,
                  "currency": "EUR", "placedAt": "2026-01-01T00:00:00Z", "customer": {"email": "big@spender.test"},
                  **more}}


@pytest.mark.parametrize("total", [10**30, 2**63, -(2**63) - 1, 1.5, "12"])
async def test_bigint_beyond_64_bits_is_refused_with_the_limit(
    api: Api, tenant: TenantFixture, no_new_tracebacks: None, total: Any
) -> None:
    tok = tenant.owner_token
    before = await api.data(ORDERS, token=tok)
    needles = ("9223372036854775807",) if isinstance(total, int) else ("whole number",)
    assert_bad_user_input(await api.gql(RECORD_ORDER, order(tenant, total), token=tok), *needles)
    item = {"sku": "MUG", "quantity": 1, "unitPriceCents": total}
    assert_bad_user_input(await api.gql(RECORD_ORDER, order(tenant, 100, items=[item]), token=tok), *needles)
    assert await api.data(ORDERS, token=tok) == before


async def test_bigint_at_its_limit_is_recorded(api: Api, tenant: TenantFixture) -> None:
    """Control: the largest value a bigint column holds goes through and comes back exact."""
    data = await api.data(RECORD_ORDER, order(tenant, 2**63 - 1), token=tenant.owner_token)
    assert data["recordOrder"]["errors"] == [] and data["recordOrder"]["order"]["totalCents"] == 2**63 - 1


@pytest.mark.parametrize("first", [2**31, 2**63, -(2**31) - 1])
async def test_int_beyond_32_bits_is_refused_with_the_limit(
    api: Api, tenant: TenantFixture, no_new_tracebacks: None, first: int
) -> None:
    body = await api.gql("query($n: Int!) { customers(first: $n) { edges { cursor } } }", {"n": first},
                         token=tenant.owner_token)
    assert_bad_user_input(body, "32-bit")


async def test_deep_variable_is_refused_as_bad_input(api: Api, tenant: TenantFixture, no_new_tracebacks: None) -> None:
    """Deeper than graphql-core follows: refused before execution."""
    deep: dict[str, Any] = {"match": "ALL"}
    for _ in range(300):
        deep = {"groups": [deep]}
    body = await api.gql("query($b: ID!, $d: SegmentDefinitionInput!) { previewSegment(brandId: $b, definition: $d) "
                         "{ totalCount } }", {"b": tenant.brand_gid("a"), "d": deep}, token=tenant.owner_token)
    assert body["data"] is None and INTERNAL not in codes(body), body
    assert "nested too deeply" in body["errors"][0]["message"], body


# --- every Node type resolves through node(id) -----------------------------------------

LABEL = ("mutation($b: ID!) { createConversationLabel(input: {brandId: $b, name: \"VIP\"}) { label { id name } "
         "errors { code } } }")
CANNED = ("mutation($i: CannedResponseInput!) { createCannedResponse(input: $i) { cannedResponse { id shortcode } "
          "errors { code } } }")
NODE_NAMED = ("query($id: ID!) { node(id: $id) { __typename id ... on ConversationLabel { name } "
              "... on CannedResponse { shortcode } } }")


def test_every_node_type_has_its_own_resolver() -> None:
    """A Node type without resolve_nodes answers node(id) with an internal error."""
    from strawberry import relay

    from graph import schema  # noqa: F401

    def walk(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    types = [c for c in walk(relay.Node) if c.__module__.startswith("graph.")]
    assert len(types) >= 17, [c.__name__ for c in types]
    # its own, or its interface's (the timeline events share TimelineEvent's), never relay.Node's
    missing = [c.__name__ for c in types if c.resolve_nodes.__func__ is relay.Node.resolve_nodes.__func__]
    assert missing == [], missing


async def test_label_and_canned_response_resolve_through_node_in_scope(
    api: Api, tenant: TenantFixture, other_tenant: TenantFixture, no_new_tracebacks: None
) -> None:
    tok = tenant.owner_token
    label = (await api.data(LABEL, {"b": tenant.brand_gid("a")}, token=tok))["createConversationLabel"]["label"]
    canned = (await api.data(CANNED, {"i": {"brandId": tenant.brand_gid("a"), "shortcode": "hi", "title": "Hi",
                                            "body": "Hello!"}}, token=tok))["createCannedResponse"]["cannedResponse"]
    assert (await api.data(NODE_NAMED, {"id": label["id"]}, token=tok))["node"] == {
        "__typename": "ConversationLabel", "id": label["id"], "name": "VIP"}
    assert (await api.data(NODE_NAMED, {"id": canned["id"]}, token=tok))["node"] == {
        "__typename": "CannedResponse", "id": canned["id"], "shortcode": "hi"}
    # outside the caller's scope, exactly like an id that does not exist: null
    _, brand_b = await tenant.member("agent", brands=["b"])
    for token in (brand_b, other_tenant.owner_token):
        for node_id in (label["id"], canned["id"], gid("ConversationLabel", uuid.uuid4())):
            assert (await api.data(NODE_NAMED, {"id": node_id}, token=token))["node"] is None


# --- no suggestions when introspection is off -------------------------------------------

SUGGESTING = [
    ("unknown field", "{ custome { id } }", None),
    ("unknown argument", "{ customers(frist: 1) { edges { cursor } } }", None),
    ("unknown enum literal", "{ customers(orderBy: CREATED_AT) { edges { cursor } } }", None),
    ("unknown enum in a variable", "query($o: CustomerOrderBy!) { customers(orderBy: $o) { edges { cursor } } }",
     {"o": "CREATED_AT"}),
    ("unknown input field in a variable",
     "mutation($i: TagInput!) { createTag(input: $i) { errors { code } } }", {"i": {"name": "x", "nmae": "y"}}),
    ("unknown type", "query($o: CustomerOrderB) { __typename }", None),
]


@contextlib.contextmanager
def api_without_introspection() -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Process(["-m", "brandgraph", "serve", "--port", str(port)], "api-nointrospection",
                   env={"GRAPHQL_INTROSPECTION": "false", "PUBLIC_URL": base})
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert proc.proc.poll() is None and time.monotonic() < deadline, proc.output()
            time.sleep(0.1)
        yield base
    finally:
        proc.stop()


async def test_no_suggestions_when_introspection_is_off(api: Api, tenant: TenantFixture) -> None:
    # control: with introspection on (development, tests) the hints are there
    for label, query, variables in SUGGESTING[:5]:
        body = await api.gql(query, variables, token=tenant.owner_token)
        assert "Did you mean" in body["errors"][0]["message"], (label, body)
    with api_without_introspection() as base:
        off = Api(base)
        try:
            refused = await off.gql("{ __schema { types { name } } }", token=tenant.owner_token)
            assert "introspection has been disabled" in refused["errors"][0]["message"], refused
            for label, query, variables in SUGGESTING:
                body = await off.gql(query, variables, token=tenant.owner_token)
                messages = [e["message"] for e in body["errors"]]
                assert messages, (label, body)
                assert not any("Did you mean" in m or "CREATED_AT_" in m or "'first'" in m or "'customer'" in m
                               for m in messages), (label, messages)
        finally:
            await off.http.aclose()
