"""GraphQL over HTTP, request by request over raw HTTP: the response media type a request's
``Accept`` picks (q-values, wildcards, none), the status and shape of each failure before
execution under ``application/graphql-response+json`` (4xx, no ``data``) and under
``application/json`` (as before: 200 with ``"data": null``), 405 / 406 / 415 before
authentication, the parameters by GET, batches (order, cap, one entry's failure, a mutation in a
batch), CORS for local pages, and the offline GraphiQL page (docs/api.md, "GraphQL over HTTP")."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import ROOT, Api, TenantFixture, audit_count, gid, start_api
from support.ws import PROTOCOL, Client, wait_for, ws_url

GR = "application/graphql-response+json"
JSON = "application/json"
VIEWER = "{ viewer { role } }"
TAGS = "{ tags { name } }"
CREATE_TAG = "mutation($n: String!) { createTag(input: {name: $n}) { tag { name } errors { code } } }"


def plain(body: Any) -> Any:
    """A response body without its top-level ``extensions`` (the test servers report SQL
    statement counts there), for a batch each entry's."""
    if isinstance(body, list):
        return [plain(b) for b in body]
    return {k: v for k, v in body.items() if k != "extensions"}


def media(r: httpx.Response) -> str:
    return r.headers["content-type"].split(";")[0].strip()


async def send(api: Api, body: Any, *, token: str | None, accept: str | None = GR,
               content_type: str | None = JSON, raw: bytes | None = None, method: str = "POST",
               params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """One request exactly as given: ``accept`` / ``content_type`` None leave the header out."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if accept is not None:
        h["Accept"] = accept
    if content_type is not None and method == "POST":
        h["Content-Type"] = content_type
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = api.http.build_request(method, "/graphql", content=content, headers=h, params=params)
    if accept is None:
        del request.headers["accept"]  # httpx adds */* otherwise
    return await api.http.send(request)


def request_error(r: httpx.Response, status: int, *needles: str) -> list[dict[str, Any]]:
    """A GraphQL request error under graphql-response+json: the status, that media type, errors
    and no ``data`` entry at all."""
    assert r.status_code == status, (r.status_code, r.text)
    assert media(r) == GR and "charset=utf-8" in r.headers["content-type"], r.headers
    body = r.json()
    assert "data" not in body and body["errors"], body
    text = " ".join(e["message"] for e in body["errors"])
    for needle in needles:
        assert needle in text, text
    return body["errors"]


def http_refusal(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert media(r) == JSON, r.headers
    body = r.json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == code, body


# --- media type negotiation ---------------------------------------------------------------


@pytest.mark.parametrize(("accept", "expected"), [
    (GR, GR),
    (f"{GR}, {JSON};q=0.9", GR),  # what the spec tells clients to send
    (f"{JSON}, {GR}", GR),  # a tie: the client named the new type, so it follows the spec
    (f"{JSON};q=0.5, {GR};q=0.4", JSON),  # q-values decide
    (f"{GR};q=0, {JSON}", JSON),  # q=0: not acceptable
    (JSON, JSON),
    ("*/*", JSON),  # curl's and Apollo Client 3's default: legacy clients
    ("application/*", JSON),
    ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),  # a browser's navigation, with a query
    (None, JSON),  # no Accept header: application/json (the spec leaves the choice to us)
])
async def test_accept_picks_the_response_media_type(api: Api, tenant: TenantFixture, accept: str | None,
                                                    expected: str) -> None:
    r = await send(api, {"query": VIEWER}, token=tenant.owner_token, accept=accept)
    assert r.status_code == 200 and media(r) == expected, (r.status_code, r.headers, r.text)
    assert "charset=utf-8" in r.headers["content-type"]
    assert "accept" in r.headers["vary"].lower()  # caches key the answer on Accept
    assert plain(r.json()) == {"data": {"viewer": {"role": "OWNER"}}}


@pytest.mark.parametrize("accept", ["text/html", "text/plain, image/*", f"{JSON};q=0, {GR};q=0"])
async def test_an_accept_that_admits_neither_type_is_406_before_authentication(api: Api, accept: str) -> None:
    r = await send(api, {"query": VIEWER}, token=None, accept=accept)
    http_refusal(r, 406, "NOT_ACCEPTABLE")


# --- failures before execution -------------------------------------------------------------

# (label, body, status under graphql-response+json, status under application/json, a needle)
BEFORE_EXECUTION = [
    ("JSON that does not parse", b'{"query": "{ viewer', 400, 400, "not valid JSON"),
    ("no query", {"variables": {}}, 422, 400, "No GraphQL query"),
    ("a body that is JSON but not an object", 42, 422, 400, "JSON object"),
    ("a query that is not a string", {"query": 42}, 422, 400, "`query` must be a string"),
    ("variables that are not an object", {"query": VIEWER, "variables": [7]}, 422, 400, "`variables`"),
    ("an operationName that is not a string", {"query": VIEWER, "operationName": 7}, 422, 400, "operationName"),
    ("a document that does not parse", {"query": "{ viewer { role }"}, 400, 200, "Syntax Error"),
    ("a document that does not validate", {"query": "{ viewer { nope } }"}, 422, 200, "nope"),
    ("variables that cannot be coerced", {"query": "query($id: ID!) { node(id: $id) { id } }",
                                          "variables": {"id": None}}, 422, 200, "$id"),
    ("an operation name the document lacks", {"query": "query A { viewer { role } }", "operationName": "B"},
     422, 400, "B"),
    ("two operations and no operationName", {"query": "query A { viewer { role } } query B { tags { name } }"},
     422, 200, "operation name"),
]


@pytest.mark.parametrize(("label", "body", "gr_status", "json_status", "needle"), BEFORE_EXECUTION,
                         ids=[c[0] for c in BEFORE_EXECUTION])
async def test_a_failure_before_execution_is_4xx_without_data_under_graphql_response_json(
    api: Api, tenant: TenantFixture, label: str, body: Any, gr_status: int, json_status: int, needle: str
) -> None:
    raw = body if isinstance(body, bytes) else None
    r = await send(api, None if raw else body, raw=raw, token=tenant.owner_token, accept=f"{GR}, {JSON};q=0.9")
    assert "data" not in r.json()
    if label == "JSON that does not parse":  # the request could not be read: an HTTP refusal
        http_refusal(r, 400, "BAD_REQUEST")
    else:
        request_error(r, gr_status, needle)


@pytest.mark.parametrize(("label", "body", "gr_status", "json_status", "needle"), BEFORE_EXECUTION,
                         ids=[c[0] for c in BEFORE_EXECUTION])
async def test_application_json_keeps_its_statuses(
    api: Api, tenant: TenantFixture, label: str, body: Any, gr_status: int, json_status: int, needle: str
) -> None:
    """Legacy clients see what they always saw: 400 for a request that cannot be read or is not
    well-formed, 200 with ``"data": null`` for a document refused before execution."""
    raw = body if isinstance(body, bytes) else None
    r = await send(api, None if raw else body, raw=raw, token=tenant.owner_token, accept=JSON)
    assert r.status_code == json_status and media(r) == JSON, (r.status_code, r.text)
    answer = r.json()
    assert answer["errors"] and needle in " ".join(e["message"] for e in answer["errors"]), answer
    if json_status == 200:
        assert "data" in answer and answer["data"] is None, answer


async def test_field_errors_are_an_execution_result_200_with_data(api: Api, tenant: TenantFixture) -> None:
    query = 'query { viewer { role } node(id: "not-a-global-id") { id } }'
    r = await send(api, {"query": query}, token=tenant.owner_token)
    assert r.status_code == 200 and media(r) == GR, r.text
    body = r.json()
    assert body["data"] == {"viewer": {"role": "OWNER"}, "node": None}, body
    assert body["errors"][0]["path"] == ["node"], body


async def test_internal_errors_stay_masked_and_credentials_stay_401(api: Api, tenant: TenantFixture) -> None:
    r = await send(api, {"query": VIEWER}, token="not-a-key")
    http_refusal(r, 401, "UNAUTHENTICATED")
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await send(api, {"query": VIEWER}, token=tenant.owner_token, headers={"X-Brand-Id": gid("Brand", uuid.uuid4())})
    http_refusal(r, 403, "BRAND_NOT_ACCESSIBLE")
    # every refusal carries the request id
    assert r.json()["errors"][0]["extensions"]["requestId"] == r.headers["x-request-id"]


def test_the_status_of_a_request_error_follows_its_kind() -> None:
    """``transport.request_error_status`` on results the view never gets from a healthy request:
    a failure of ours before execution is a 5xx, never a 4xx blaming the client."""
    from graphql import GraphQLError, GraphQLSyntaxError, Source

    from graph.transport import request_error_status

    syntax = GraphQLSyntaxError(Source("{"), 1, "Expected Name")
    assert request_error_status(None, [syntax]) == 400
    assert request_error_status(None, [GraphQLError("Cannot query field 'nope'")]) == 422
    internal = GraphQLError("Internal server error", extensions={"code": "INTERNAL_SERVER_ERROR"})
    assert request_error_status(None, [internal]) == 500
    assert request_error_status(None, [GraphQLError("x", extensions={"code": "DATABASE_UNAVAILABLE"})]) == 503
    # executed: a field error has a path, even when it nulled the whole result
    assert request_error_status(None, [GraphQLError("x", path=["viewer"])]) is None
    assert request_error_status({"viewer": None}, [GraphQLError("x", path=["viewer"])]) is None
    assert request_error_status({"viewer": {"role": "OWNER"}}, None) is None


# --- methods and request media types --------------------------------------------------------


async def test_a_mutation_over_get_is_405_with_allow_post_and_writes_nothing(api: Api, tenant: TenantFixture) -> None:
    before = (await api.data(TAGS, token=tenant.owner_token), await audit_count(tenant.id))
    for accept in (GR, JSON):
        r = await send(api, None, method="GET", token=tenant.owner_token, accept=accept,
                       params={"query": 'mutation { createTag(input: {name: "via get"}) { tag { name } } }'})
        http_refusal(r, 405, "METHOD_NOT_ALLOWED")
        assert r.headers["allow"] == "POST"
    # a document with a query and a mutation: the operation named decides
    doc = 'query Q { viewer { role } } mutation M { createTag(input: {name: "via get"}) { tag { name } } }'
    r = await send(api, None, method="GET", token=tenant.owner_token, params={"query": doc, "operationName": "M"})
    http_refusal(r, 405, "METHOD_NOT_ALLOWED")
    r = await send(api, None, method="GET", token=tenant.owner_token, params={"query": doc, "operationName": "Q"})
    assert r.status_code == 200 and r.json()["data"] == {"viewer": {"role": "OWNER"}}, r.text
    assert (await api.data(TAGS, token=tenant.owner_token), await audit_count(tenant.id)) == before


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405_with_allow_before_authentication(api: Api, method: str) -> None:
    r = await api.http.request(method, "/graphql")  # no credential: still 405, never 401
    http_refusal(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == "GET, POST"


async def test_a_cors_preflight_without_cors_configured_is_never_401(api: Api) -> None:
    r = await api.http.options("/graphql", headers={"Origin": "http://localhost:5173",
                                                    "Access-Control-Request-Method": "POST"})
    assert r.status_code == 405 and "access-control-allow-origin" not in r.headers, r.headers


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", GR, "application/graphql",
    "application/json; charset=latin-1",
])
async def test_an_unsupported_request_media_type_is_415(api: Api, content_type: str | None) -> None:
    r = await send(api, {"query": VIEWER}, token=None, content_type=content_type)
    http_refusal(r, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", [JSON, "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"])
async def test_json_in_utf8_is_accepted(api: Api, tenant: TenantFixture, content_type: str) -> None:
    r = await send(api, {"query": '{ __type(name: "Run🏃Swim🏊") { name } }'}, token=tenant.owner_token,
                   content_type=content_type)
    assert r.status_code == 200 and plain(r.json()) == {"data": {"__type": None}}, r.text


# --- GET ------------------------------------------------------------------------------------


async def test_get_takes_query_variables_operation_name_and_extensions(api: Api, tenant: TenantFixture) -> None:
    doc = "query Mine($b: ID!) { brand(id: $b) { name } } query Other { tags { name } }"
    r = await send(api, None, method="GET", token=tenant.owner_token, params={
        "query": doc, "variables": json.dumps({"b": tenant.brand_gid("a")}), "operationName": "Mine",
        "extensions": json.dumps({"someVendor": {"x": 1}})})  # an extension we do not know: ignored
    assert r.status_code == 200 and media(r) == GR, r.text
    assert plain(r.json()) == {"data": {"brand": {"name": "Brand A"}}}
    # the empty string means absent, for every optional parameter
    r = await send(api, None, method="GET", token=tenant.owner_token,
                   params={"query": VIEWER, "variables": "", "operationName": "", "extensions": "", "documentId": ""})
    assert r.status_code == 200 and plain(r.json()) == {"data": {"viewer": {"role": "OWNER"}}}, r.text
    # variables that are not JSON, or not an object
    r = await send(api, None, method="GET", token=tenant.owner_token, params={"query": VIEWER, "variables": "{x"})
    http_refusal(r, 400, "BAD_REQUEST")
    r = await send(api, None, method="GET", token=tenant.owner_token, params={"query": VIEWER, "variables": "[1]"})
    request_error(r, 422, "`variables`")
    r = await send(api, None, method="GET", token=tenant.owner_token, accept=GR, params={"variables": "{}"})
    request_error(r, 422, "No GraphQL query")


async def test_unknown_body_keys_are_ignored_and_null_means_absent(api: Api, tenant: TenantFixture) -> None:
    r = await send(api, {"query": VIEWER, "variables": None, "operationName": None, "extensions": None,
                         "somethingElse": True}, token=tenant.owner_token)
    assert r.status_code == 200 and plain(r.json()) == {"data": {"viewer": {"role": "OWNER"}}}, r.text


# --- batching -------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [GR, JSON])
async def test_a_batch_answers_each_operation_in_order(api: Api, tenant: TenantFixture, accept: str) -> None:
    batch = [
        {"query": VIEWER},
        {"query": "query Two { tags { name } }", "operationName": "Two"},
        {"query": "query($b: ID!) { brand(id: $b) { name } }", "variables": {"b": tenant.brand_gid("a")}},
    ]
    r = await send(api, batch, token=tenant.owner_token, accept=accept)
    assert r.status_code == 200 and media(r) == accept, r.text
    assert plain(r.json()) == [{"data": {"viewer": {"role": "OWNER"}}}, {"data": {"tags": []}},
                        {"data": {"brand": {"name": "Brand A"}}}]


async def test_a_batch_holds_at_most_ten_operations(api: Api, tenant: TenantFixture) -> None:
    r = await send(api, [{"query": VIEWER}] * 10, token=tenant.owner_token)
    assert r.status_code == 200 and len(r.json()) == 10, r.text
    r = await send(api, [{"query": VIEWER}] * 11, token=tenant.owner_token)
    http_refusal(r, 400, "BATCH_TOO_LARGE")
    assert "at most 10" in r.json()["errors"][0]["message"]
    r = await send(api, [], token=tenant.owner_token)
    http_refusal(r, 400, "BAD_REQUEST")


@pytest.mark.parametrize("accept", [GR, JSON])
async def test_one_operations_failure_does_not_fail_the_others(api: Api, tenant: TenantFixture, accept: str) -> None:
    batch = [{"query": VIEWER}, {"query": "{ viewer { nope } }"}, 42, {"variables": {}},
             {"query": "{ viewer {"}, {"query": TAGS}]
    r = await send(api, batch, token=tenant.owner_token, accept=accept)
    assert r.status_code == 200 and media(r) == accept, r.text
    answers = plain(r.json())
    assert len(answers) == 6
    assert answers[0] == {"data": {"viewer": {"role": "OWNER"}}} and answers[5] == {"data": {"tags": []}}
    for failed in answers[1:5]:
        assert failed["errors"], failed
        # under graphql-response+json an operation refused before execution has no data entry
        assert ("data" not in failed) if accept == GR else (failed["data"] is None), failed
    assert answers[2]["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "No GraphQL query" in answers[3]["errors"][0]["message"]


async def test_a_mutation_in_a_batch_writes_once_and_the_next_operation_sees_it(
    api: Api, tenant: TenantFixture
) -> None:
    audits = await audit_count(tenant.id)
    batch = [
        {"query": TAGS},
        {"query": CREATE_TAG, "variables": {"n": "batched"}},
        {"query": TAGS},
        {"query": CREATE_TAG, "variables": {"n": "batched"}},  # the same again: a payload error
    ]
    r = await send(api, batch, token=tenant.owner_token)
    assert r.status_code == 200, r.text
    first, created, after, again = plain(r.json())
    assert first == {"data": {"tags": []}}
    assert created["data"]["createTag"] == {"tag": {"name": "batched"}, "errors": []}
    assert after == {"data": {"tags": [{"name": "batched"}]}}  # ran after the mutation committed
    assert again["data"]["createTag"]["errors"], again
    assert await api.data(TAGS, token=tenant.owner_token) == {"tags": [{"name": "batched"}]}
    assert await audit_count(tenant.id) == audits + 1


async def test_each_query_in_a_batch_reads_in_its_own_transaction(api: Api, tenant: TenantFixture) -> None:
    """A batch entry's extensions.sqlStatements / sqlTransactions count its own operation: each
    query's resolvers share one read transaction, committed before the next entry runs."""
    query = "query($b: ID!) { tags { name } brand(id: $b) { name } }"
    single = (await send(api, {"query": query, "variables": {"b": tenant.brand_gid("a")}},
                         token=tenant.owner_token)).json()
    r = await send(api, [{"query": query, "variables": {"b": tenant.brand_gid(b)}} for b in ("a", "b", "a")],
                   token=tenant.owner_token)
    entries = r.json()
    assert [e["data"]["brand"]["name"] for e in entries] == ["Brand A", "Brand B", "Brand A"], entries
    for entry in entries:
        assert entry["extensions"]["sqlTransactions"] == 1, entry
        # the single request's count includes authentication; an entry's does not
        assert 0 < entry["extensions"]["sqlStatements"] <= single["extensions"]["sqlStatements"], (entry, single)


async def test_persisted_queries_in_a_batch_are_answered_entry_by_entry(api: Api, tenant: TenantFixture) -> None:
    """Apollo's persisted-queries link in front of its batch link: an unknown hash is its entry's
    PersistedQueryNotFound, the query sent with its hash runs (and registers), the hash then runs."""
    query = f"query Batched{uuid.uuid4().hex} {{ viewer {{ role }} }}"
    sha = hashlib.sha256(query.encode()).hexdigest()
    pq = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    r = await send(api, [{"extensions": pq}, {"query": VIEWER}], token=tenant.owner_token)
    assert r.status_code == 200, r.text
    missing, ok = plain(r.json())
    assert missing["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND", missing
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound" and "data" not in missing
    assert ok == {"data": {"viewer": {"role": "OWNER"}}}
    r = await send(api, [{"query": query, "extensions": pq}, {"extensions": pq}], token=tenant.owner_token)
    assert plain(r.json()) == [{"data": {"viewer": {"role": "OWNER"}}}] * 2, r.text


async def test_a_batch_cannot_go_by_get(api: Api, tenant: TenantFixture) -> None:
    r = await send(api, None, method="GET", token=tenant.owner_token,
                   params={"query": json.dumps([{"query": VIEWER}])})
    request_error(r, 400, "Syntax Error")


# --- CORS (as `brandgraph dev` sets it) ------------------------------------------------------


@pytest.fixture(scope="module")
def cors_api() -> Iterator[str]:
    from brandgraph.cli import DEV_CORS_ORIGIN_REGEX

    proc, base = start_api("api-cors", env={"CORS_ORIGIN_REGEX": DEV_CORS_ORIGIN_REGEX, "CORS_ORIGINS": ""})
    yield base
    proc.stop()


PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type,x-brand-id"}


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000", "https://localhost:8443",
                                    "http://localhost"])
async def test_local_pages_pass_the_preflight_and_call_the_api(cors_api: str, tenant: TenantFixture,
                                                               origin: str) -> None:
    async with httpx.AsyncClient(base_url=cors_api, timeout=20) as http:
        r = await http.options("/graphql", headers={"Origin": origin, **PREFLIGHT})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == origin
        assert {"authorization", "content-type", "x-brand-id"} <= {
            h.strip() for h in r.headers["access-control-allow-headers"].lower().split(",")}
        r = await http.post("/graphql", json={"query": VIEWER}, headers={
            "Origin": origin, "Authorization": f"Bearer {tenant.owner_token}"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin, r.headers
        # the page's code may read the request id, a throttled answer's Retry-After and an ETag
        assert {"x-request-id", "retry-after", "etag"} <= {
            h.strip() for h in r.headers["access-control-expose-headers"].lower().split(",")}, r.headers
        # the page's websocket is let in too (a cross-origin handshake is refused otherwise)
        async with connect(ws_url(cors_api), subprotocols=[PROTOCOL], origin=origin) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {tenant.owner_token}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "http://10.0.0.1:5173"])
async def test_other_origins_are_refused(cors_api: str, origin: str) -> None:
    async with httpx.AsyncClient(base_url=cors_api, timeout=20) as http:
        r = await http.options("/graphql", headers={"Origin": origin, **PREFLIGHT})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers, r.headers
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(cors_api), subprotocols=[PROTOCOL], origin=origin):
            pass
    assert refused.value.response.status_code == 403


def test_a_cors_origin_regex_that_does_not_compile_is_refused_at_start() -> None:
    from domain.config import ConfigError, load_settings

    assert load_settings({"CORS_ORIGIN_REGEX": r"https://app\.example"}).cors_origin_regex == r"https://app\.example"
    with pytest.raises(ConfigError, match="CORS_ORIGIN_REGEX"):
        load_settings({"CORS_ORIGIN_REGEX": "https://(app"})


async def test_without_cors_settings_no_origin_is_allowed(api: Api) -> None:
    r = await api.http.post("/graphql", json={"query": VIEWER}, headers={"Origin": "http://localhost:5173"})
    assert "access-control-allow-origin" not in r.headers
    with pytest.raises(InvalidStatus):
        async with connect(ws_url(api), subprotocols=[PROTOCOL], origin="http://localhost:5173"):
            pass


# --- GraphiQL, offline ------------------------------------------------------------------------


async def test_graphiql_headers_open_a_websocket_too(api: Api, tenant: TenantFixture) -> None:
    """GraphiQL sends the Headers pane as the connection_init payload of its subscriptions:
    ``Authorization`` and ``X-Brand-Id`` there work as they do over HTTP."""
    _, marketer = await tenant.member("marketer", brands=["b"])
    client = await Client.open(api, {"Authorization": f"Bearer {marketer}", "X-Brand-Id": tenant.brand_gid("b")})
    try:
        op = await client.subscribe("{ viewer { activeBrand { name } } }")
        await wait_for(lambda: client.data("viewer", op), "the query's answer")
        assert client.data("viewer", op) == [{"activeBrand": {"name": "Brand B"}}]
    finally:
        await client.ws.close()
    # a brand the principal may not use is refused, as over HTTP
    ws = await connect(ws_url(api), subprotocols=[PROTOCOL])
    await ws.send(json.dumps({"type": "connection_init", "payload": {
        "Authorization": f"Bearer {marketer}", "X-Brand-Id": tenant.brand_gid("a")}}))
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 4403



class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")


async def test_graphiql_loads_every_asset_from_this_server(api: Api) -> None:
    page = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:200]
    assert "Cookies" not in page.text and "unpkg" not in page.text and "cdn" not in page.text.lower()
    assert "isHeadersEditorEnabled: true" in page.text  # the user pastes Authorization / X-Brand-Id
    parser = _Assets()
    parser.feed(page.text)
    local = [u for u in parser.urls if not u.startswith("data:")]
    assert len(local) == 6, parser.urls  # react, react-dom, graphiql's script and style, the explorer's
    for url in local:
        target = urljoin(f"{api.base_url}/graphql", url)
        assert urlsplit(target).netloc == urlsplit(api.base_url).netloc, url
        r = await api.http.get(target)
        assert r.status_code == 200 and len(r.content) > 500, (url, r.status_code)
        kind = "javascript" if url.endswith(".js") else "css"
        assert kind in r.headers["content-type"], (url, r.headers["content-type"])


def test_graphiql_assets_ship_in_the_package_with_their_licences() -> None:
    folder = ROOT / "src" / "graph" / "static" / "graphiql"
    assets = sorted(p.name for p in folder.iterdir() if p.is_file())
    licences = sorted(p.name for p in (folder / "licenses").iterdir())
    assert licences == ["graphiql-plugin-explorer.LICENSE", "graphiql.LICENSE", "react-dom.LICENSE", "react.LICENSE"]
    for name in licences:
        assert "MIT License" in (folder / "licenses" / name).read_text()
    # pyproject's package data takes every one of them (and the page) into a built package
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["graph"]
    package = ROOT / "src" / "graph"
    for path in [*(folder / a for a in assets), *(folder / "licenses" / n for n in licences),
                 package / "static" / "graphiql.html"]:
        relative = str(path.relative_to(package))
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
    # pinned: the page names each version it vendors
    page = (package / "static" / "graphiql.html").read_text()
    assert re.search(r"react 18\.2\.0.*graphiql 3\.8\.3", page, re.S), page[:500]
