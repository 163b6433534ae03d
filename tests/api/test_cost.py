"""Query cost and throttling: hand-worked costs, the one cost map covering every list, the leaky
bucket shared by two API processes, 429 with Retry-After, MAX_COST_EXCEEDED, a 1,000-alias
operation, subscriptions, the usage per consumer and hour, and the bucket without Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLObjectType,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
)
from graphql import parse as gql_parse
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import func, select

from conftest import Api, Process, TenantFixture, create_tenant_fixture, gid, start_api
from domain.customers.models import Tag
from domain.plans import bucket, quotas
from domain.platform.db import tenant_session
from graph import cost
from graph.schema import build_schema
from support.audit import AUDIT_EVENTS, AuditClient, renamer, until_live
from support.ws import bearer, wait_for

SCHEMA = build_schema()._schema
THROTTLED_ENV = {"API_THROTTLING": "1", "GRAPHQL_MAX_ALIASES": "1000", "GRAPHQL_MAX_TOKENS": "20000"}
DRAIN = "{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(1000)) + " }"  # 1,000 aliases, cost 1,000
TAGS = "mutation { " + " ".join(f't{i}: createTag(input: {{name: "tag {i}"}}) {{ tag {{ id }} }}' for i in range(30)) + " }"
TAGS_1000 = "mutation { " + " ".join(f't{i}: createTag(input: {{name: "x{i}"}}) {{ tag {{ id }} }}'
                                     for i in range(1000)) + " }"


def static(query: str, variables: dict[str, Any] | None = None) -> int:
    return cost.static_cost(SCHEMA, gql_parse(query), None, variables, query)



@pytest.fixture
async def tenant() -> TenantFixture:
    """A tenant on the free plan (the suite's tenants are on enterprise)."""
    return await create_tenant_fixture(plan="free")

# --- the cost ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "variables", "expected"), [
    # viewer 1 + tenant 1; scalars and enums 0
    ("{ viewer { role tenant { name slug } } }", None, 2),
    # the connection 1 + 10 nodes × (node 1 + tags: 20 × tag 1, plus its own 1); edges and pageInfo 0
    ("{ customers(first: 10) { edges { node { id name tags { name } } } pageInfo { hasNextPage } } }", None, 221),
    # first from a variable: 1 + n × (node 1 + orders 1 + 5 × 1)
    ("query($n: Int!) { customers(first: $n) { edges { node { id orders(first: 5) { edges { node { id } } } } } } }",
     {"n": 20}, 141),
    ("query($n: Int!) { customers(first: $n) { edges { node { id orders(first: 5) { edges { node { id } } } } } } }",
     {"n": 3}, 22),
    # no first: the field's default (20); past 100: what a page serves (100)
    ("{ customers { edges { node { id } } } }", None, 21),
    ("{ customers(first: 500) { edges { node { id } } } }", None, 101),
    # a mutation weighs 10, plus what its payload selects; user errors cost nothing
    ('mutation { createTag(input: {name: "x"}) { tag { id } errors { field } } }', None, 11),
    # @skip and @include, literal or from a variable
    ("{ a: viewer { role } b: viewer { role @skip(if: true) tenant { id } } }", None, 3),
    ("query($s: Boolean!) { a: viewer { role } b: viewer @skip(if: $s) { tenant { id } } }", {"s": True}, 1),
    # fragments count where they are spread
    ("fragment F on Customer { id tags { id } } { customers(first: 2) { edges { node { ...F } } } }", None, 45),
    # a declared weight: the preview 50 + its page of 5 customers
    ("query($d: SegmentDefinitionInput!) { previewSegment(brandId: \"x\", definition: $d, first: 5) { totalCount "
     "edges { node { id } } } }", {"d": {}}, 55),
])
def test_hand_worked_costs(query: str, variables: dict[str, Any] | None, expected: int) -> None:
    assert static(query, variables) == expected
    assert static(query, variables) == expected  # the second time from the cache


def test_every_list_and_connection_has_an_entry_in_the_cost_map() -> None:
    missing, entries = [], set()
    for t in SCHEMA.type_map.values():
        if t.name.startswith("__") or not isinstance(t, (GraphQLObjectType, GraphQLInterfaceType)):
            continue
        for name, field in t.fields.items():
            entries.add(f"{t.name}.{name}")
            named = get_named_type(field.type)
            if is_leaf_type(named) or (t.name.endswith("Connection") and name == "edges"):
                continue
            is_list = isinstance(get_nullable_type(field.type), GraphQLList)
            if (is_list or named.name.endswith("Connection")) and cost.entry(t.name, name) is None:
                missing.append(f"{t.name}.{name}")
    assert missing == [], f"add these to graph/cost.py COST_MAP: {missing}"
    stale = [k for k in cost.COST_MAP if not k.startswith("*.") and k not in entries]
    assert stale == [], f"COST_MAP names fields the schema does not have: {stale}"


# --- over HTTP, with throttling on -------------------------------------------------------------


@pytest.fixture(scope="module")
def processes() -> Iterator[tuple[str, str]]:
    one, base_one = start_api("api-cost-1", env=THROTTLED_ENV)
    two: Process | None = None
    try:
        two, base_two = start_api("api-cost-2", env=THROTTLED_ENV)
        yield base_one, base_two
    finally:
        one.stop()
        if two is not None:
            two.stop()


@pytest.fixture
async def apis(processes: tuple[str, str]) -> AsyncIterator[tuple[Api, Api]]:
    one, two = Api(processes[0]), Api(processes[1])
    yield one, two
    await one.http.aclose()
    await two.http.aclose()


async def _tags(t: TenantFixture) -> int:
    async with tenant_session(t.id) as s:
        return await s.scalar(select(func.count()).select_from(Tag).where(Tag.tenant_id == t.id))


async def test_every_answer_carries_its_cost(apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    one, _ = apis
    body = await one.gql("{ viewer { role tenant { name } } }", token=tenant.owner_token)
    c = body["extensions"]["cost"]
    assert (c["requestedQueryCost"], c["actualQueryCost"]) == (2, 2)
    status = c["throttleStatus"]
    assert (status["maximumAvailable"], status["restoreRate"]) == (1000, 50)
    assert 990 <= status["currentlyAvailable"] <= 998
    await quotas.set_plan(tenant.id, "growth", {})  # every process reads the new plan
    await wait_for_plan(one, tenant, 2000)


async def wait_for_plan(api: Api, t: TenantFixture, maximum: int) -> None:
    for _ in range(200):
        body = await api.gql("{ viewer { role } }", token=t.owner_token)
        if body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == maximum:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the plan's bucket never reached {maximum}")


async def test_one_operation_over_the_maximum_is_refused_and_runs_nothing(
        apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    one, _ = apis
    r = await one.post(TAGS_1000, token=tenant.owner_token)
    assert r.status_code == 400, r.text
    body = r.json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["cost"] == 11000 and "11000" in error["message"], error
    assert body.get("data") is None
    assert await _tags(tenant) == 0


async def test_a_page_past_the_default_is_refused_on_a_deep_query(apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    """30 aliases (the alias limit's worth, under the default limits too) of 100 customers
    cost 3,030: more than the free plan's 1,000 for one operation."""
    one, _ = apis
    query = "{ " + " ".join(f"c{i}: customers(first: 100) {{ edges {{ node {{ id }} }} }}" for i in range(30)) + " }"
    r = await one.post(query, token=tenant.owner_token)
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["cost"] == 3030, r.text


async def test_a_thousand_aliases_drain_the_bucket_shared_by_two_processes(
        api: Api, apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    one, two = apis
    # under the default limits, 1,000 aliases never reach the cost: 4,000 tokens cannot spell
    # them (at least 4 tokens each), and past that the 30-alias limit would refuse them
    refused = await api.gql(DRAIN, token=tenant.owner_token)
    assert "4000 tokens" in refused["errors"][0]["message"] and refused.get("data") is None, refused
    few_tokens = await api.gql("{ " + " ".join(f"a{i}: viewer {{ role }}" for i in range(31)) + " }",
                               token=tenant.owner_token)
    assert "aliases" in few_tokens["errors"][0]["message"].lower() and few_tokens.get("data") is None

    # with the alias limit raised, 1,000 aliases cost 1,000: the whole bucket, on process one
    drained = await one.gql(DRAIN, token=tenant.owner_token)
    assert not drained.get("errors") and len(drained["data"]) == 1000
    assert drained["extensions"]["cost"]["requestedQueryCost"] == 1000
    assert drained["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0

    # process two draws from the same bucket: 30 tag creations (cost 330) are refused, none made
    r = await two.post(TAGS, token=tenant.owner_token)
    assert r.status_code == 429, r.text
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= 7, retry_after  # 330 points at 50 a second, less what refilled
    body = r.json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "THROTTLED" and error["extensions"]["retryAfter"] == retry_after
    assert body.get("data") is None
    assert body["extensions"]["cost"]["requestedQueryCost"] == 330
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] < 330
    assert await _tags(tenant) == 0

    # another consumer of the same tenant has a bucket of its own
    _, key = await tenant.api_key("admin")
    assert (await two.post(TAGS, token=key)).status_code == 200
    assert await _tags(tenant) == 30


async def test_a_batch_pays_per_operation_and_a_throttled_entry_fails_alone(
        apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    """Each operation of a batch draws from the bucket in turn: the first drains it and runs, the
    next is THROTTLED (nothing written); the batch is 200 with Retry-After, each entry its own."""
    one, _ = apis
    r = await one.http.post("/graphql", json=[{"query": DRAIN}, {"query": TAGS}],
                            headers={"Authorization": f"Bearer {tenant.owner_token}"})
    assert r.status_code == 200, r.text[:500]
    drained, throttled = r.json()
    assert len(drained["data"]) == 1000 and drained["extensions"]["cost"]["requestedQueryCost"] == 1000
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED" and throttled.get("data") is None
    assert 1 <= int(r.headers["Retry-After"]) <= 20
    assert await _tags(tenant) == 0


USAGE = """query($from: DateTime!, $to: DateTime!) { viewer { tenant {
  apiUsage(from: $from, to: $to) { hour consumerKind consumerId requests cost throttled } } } }"""


async def _usage_of(api: Api, reader: str, consumers: set[str], done: Any) -> dict[str, dict[str, Any]]:
    """The usage rows of ``consumers`` (global ids) once ``done(rows)``, read on the suite's API
    (no throttling) by ``reader``, whose own requests make a row of their own. The API processes
    write every 2 s."""
    now = datetime.now(UTC)
    variables = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    rows: dict[str, dict[str, Any]] = {}
    for _ in range(100):
        found = (await api.data(USAGE, variables, token=reader))["viewer"]["tenant"]["apiUsage"]
        rows = {}
        for r in found:  # summed over hours: a test may straddle one
            if r["consumerId"] in consumers:
                had = rows.setdefault(r["consumerId"], {**r, "requests": 0, "cost": 0, "throttled": 0})
                for k in ("requests", "cost", "throttled"):
                    had[k] += r[k]
        if done(rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"usage never arrived: {rows}")


async def test_usage_per_consumer_and_hour(api: Api, apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    one, two = apis
    _, reader = await tenant.member("admin")
    await one.gql(DRAIN, token=tenant.owner_token)
    assert (await two.post(TAGS, token=tenant.owner_token)).status_code == 429
    key_id, key = await tenant.api_key("admin")
    await one.gql("{ viewer { role } }", token=key)
    owner, api_key = gid("Member", tenant.owner_member_id), gid("ApiKey", key_id)
    rows = await _usage_of(api, reader, {owner, api_key},
                           lambda rows: len(rows) == 2 and rows[owner]["requests"] == 2)
    assert (rows[owner]["consumerKind"], rows[api_key]["consumerKind"]) == ("USER", "API_KEY")
    assert (rows[owner]["requests"], rows[owner]["cost"], rows[owner]["throttled"]) == (2, 1000, 1), rows
    assert (rows[api_key]["requests"], rows[api_key]["cost"], rows[api_key]["throttled"]) == (1, 1, 0), rows

    _, analyst = await tenant.member("analyst")
    now = datetime.now(UTC).isoformat()
    denied = await api.gql(USAGE, {"from": now, "to": now}, token=analyst)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_subscription_pays_to_subscribe_and_for_each_event(
        api: Api, apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    one, _ = apis
    _, admin = await tenant.member("admin")
    rename = renamer(api, TenantFixture(**{**tenant.__dict__, "owner_token": admin}))  # not the subscriber's
    conn = await AuditClient.open(one.base_url, bearer(tenant.owner_token))
    try:
        op = await conn.subscribe()
        await until_live([(conn, op)], rename)
        for i in range(3):
            await rename(f"event {i} {uuid.uuid4().hex[:6]}")
        await wait_for(lambda: len(conn.names(op)) >= 4, "the events")
        events = len(conn.events(op))
    finally:
        await conn.close()
    owner = gid("Member", tenant.owner_member_id)
    expected = static(AUDIT_EVENTS) + events * cost.EVENT_COST
    rows = await _usage_of(api, admin, {owner}, lambda rows: rows.get(owner, {}).get("cost") == expected)
    assert rows[owner]["requests"] == 1  # the subscription; its events count in cost only

    # a drained bucket refuses the next subscription (101 points: 2 s of refill), which then runs nothing
    costly = "subscription { auditEvents { " + " ".join(f"b{i}: brand {{ slug }}" for i in range(100)) + " } }"
    assert static(costly) == 101
    await bucket.charge(f"{tenant.id}:user:{tenant.owner_member_id}", 1000, 1000, 50)
    conn = await AuditClient.open(one.base_url, bearer(tenant.owner_token))
    try:
        op = await conn.subscribe(costly)
        first = await conn.receive(5)
        assert first is not None and first["id"] == op, first
        errors = first["payload"] if first["type"] == "error" else first["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["THROTTLED"], first
    finally:
        await conn.close()


async def test_the_keys_of_a_client_app_share_its_bucket_sized_by_its_rate_plan(
        api: Api, apis: tuple[Api, Api], tenant: TenantFixture) -> None:
    from domain.clients.service import create_client_app

    one, two = apis
    first_id, first = await tenant.api_key("admin")
    second_id, second = await tenant.api_key("marketer")
    app = await create_client_app(tenant.owner, "storefront", rate_plan="growth", api_key_ids=[first_id, second_id])
    body = await one.gql(DRAIN, token=first)  # 1,000 of the app's 2,000 (growth), on the free tenant
    status = body["extensions"]["cost"]["throttleStatus"]
    assert (status["maximumAvailable"], status["restoreRate"]) == (2000, 100)
    assert status["currentlyAvailable"] == 1000
    # the app's other key draws from the same bucket, on the other process
    status = (await two.gql(DRAIN, token=second))["extensions"]["cost"]["throttleStatus"]
    assert status["currentlyAvailable"] < 1000
    assert (await one.post(TAGS, token=first)).status_code == 429
    # the owner (a person, not the app) still has a bucket of its own, on the tenant's plan
    own = (await one.gql("{ viewer { role } }", token=tenant.owner_token))["extensions"]["cost"]["throttleStatus"]
    assert (own["maximumAvailable"], own["currentlyAvailable"]) == (1000, 999)
    _, reader = await tenant.member("admin")
    app_gid = gid("ClientApp", app.app.id)
    rows = await _usage_of(api, reader, {app_gid}, lambda rows: rows.get(app_gid, {}).get("requests") == 3)
    assert (rows[app_gid]["consumerKind"], rows[app_gid]["cost"], rows[app_gid]["throttled"]) == ("CLIENT_APP", 2000, 1)


def test_a_client_app_has_its_own_bucket_and_its_rate_plan_replaces_the_tenants() -> None:
    from types import SimpleNamespace

    from domain.tenancy.policies import Principal, PrincipalKind, Role

    key = Principal(uuid.uuid4(), PrincipalKind.API_KEY, uuid.uuid4(), Role.ADMIN, "k", None)
    assert cost.consumer(key) == ("api_key", key.id, None)
    person = Principal(key.tenant_id, PrincipalKind.USER, uuid.uuid4(), Role.OWNER, "p", None, member_id=uuid.uuid4())
    assert cost.consumer(person) == ("user", person.member_id, None)
    app = SimpleNamespace(id=uuid.uuid4(), rate_plan="enterprise")
    of_app = SimpleNamespace(**{**key.__dict__, "client_app": app})
    assert cost.consumer(of_app) == ("client_app", app.id, "enterprise")
    kind, cid, p = asyncio.run(cost.limits_for(of_app))  # no database: the rate plan decides
    assert (kind, cid, p.name, p.bucket_maximum) == ("client_app", app.id, "enterprise", 10_000)


# --- the bucket without Redis ------------------------------------------------------------------


async def test_without_redis_each_process_keeps_throttling_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def unreachable() -> Any:
        async def fail(**_: Any) -> Any:
            nonlocal calls
            calls += 1
            raise RedisConnectionError("Redis is away")
        return fail

    monkeypatch.setattr(bucket, "_script", unreachable)
    monkeypatch.setattr(bucket, "_down_until", 0.0)
    key = f"test:{uuid.uuid4()}"
    first = await bucket.take(key, 60, 100, 1)
    assert first.taken and first.available == pytest.approx(40, abs=1)
    second = await bucket.take(key, 60, 100, 1)  # never unlimited: the local bucket refuses
    assert not second.taken and second.retry_after >= 19
    assert calls == 1  # Redis is not asked again for a while: no request waits for it
