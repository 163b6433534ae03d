"""Authentication from the API process's cache, and how a change reaches every process.

Two API processes: the session's (where the changes are made) and a second one (``other``) that
has the credential cached. A cached answer runs no SQL statement at all (``extensions.sqlStatements``
counts the whole request, authentication included), which is how these tests know the second
process answered from its cache before the change. Each change must take effect there within a
second of its commit: a request sent later than that must see it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from conftest import Api, Process, TenantFixture, free_port, gid, start_api
from support.graphql import warm
from support.outages import redis_down

ROLE = "{ viewer { role } }"
TENANT = "{ viewer { tenant { name } } }"
WITHIN = 1.0  # seconds from a change's commit to its effect on every process


@pytest.fixture(scope="module")
def other_process() -> Iterator[tuple[Process, str]]:
    proc, base = start_api("api-auth-cache", env={"LOG_LEVEL": "DEBUG"})
    yield proc, base
    proc.stop()


@pytest.fixture
async def other(other_process: tuple[Process, str]) -> AsyncIterator[Api]:
    client = Api(other_process[1])
    yield client
    await client.http.aclose()


def statements(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text
    return r.json()["extensions"]["sqlStatements"]


async def until(api: Api, token: str, done: Any, *, since: float, query: str = ROLE,
                brand: str | None = None) -> httpx.Response:
    """Ask until ``done(response)``; the request that saw it must have been sent within
    :data:`WITHIN` of ``since`` (the change's commit)."""
    while True:
        sent = time.monotonic()
        r = await api.post(query, token=token, brand=brand)
        if done(r):
            assert sent - since <= WITHIN, f"the change took effect {sent - since:.2f} s after its commit"
            return r
        assert sent - since <= WITHIN, f"still {r.status_code} {r.text} {sent - since:.2f} s after the change"
        await asyncio.sleep(0.01)


async def test_a_repeated_request_runs_no_authentication_statement(api: Api, tenant: TenantFixture) -> None:
    _, secret = await tenant.api_key("marketer")
    # the count covers the whole request: the key's lookup (set_config, select), then the tenant's read
    first = await api.post(TENANT, token=secret)
    assert first.json()["data"]["viewer"]["tenant"]["name"] == f"Tenant {tenant.slug}"
    await warm(api, secret)  # an operation that reads nothing: no statement at all
    again = await api.post(TENANT, token=secret)
    assert (statements(first), statements(again)) == (4, 2), (first.json(), again.json())
    # a person's token and the active brand too: nothing but the operation itself
    assert (await warm(api, tenant.owner_token, brand=tenant.brand_gid("a")))["viewer"]["role"] == "OWNER"


async def test_a_revoked_key_stops_working_on_a_process_that_had_it_cached(
        api: Api, other: Api, tenant: TenantFixture) -> None:
    key_id, secret = await tenant.api_key("analyst")
    assert (await warm(other, secret))["viewer"]["role"] == "ANALYST"
    body = await api.data("mutation($id: ID!) { revokeApiKey(input: {id: $id}) { errors { code } } }",
                          {"id": gid("ApiKey", key_id)}, token=tenant.owner_token)
    assert body["revokeApiKey"]["errors"] == []
    r = await until(other, secret, lambda r: r.status_code == 401, since=time.monotonic())
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await api.post(ROLE, token=secret)).status_code == 401  # and at once where it was revoked


async def test_a_role_change_takes_effect_on_every_process(api: Api, other: Api, tenant: TenantFixture) -> None:
    member_id, token = await tenant.member("marketer")
    assert (await warm(other, token))["viewer"]["role"] == "MARKETER"
    assert (await warm(api, token))["viewer"]["role"] == "MARKETER"
    body = await api.data("mutation($u: ID!) { changeMemberRole(input: {userId: $u, role: ANALYST}) { errors { code } } }",
                          {"u": gid("Member", member_id)}, token=tenant.owner_token)
    assert body["changeMemberRole"]["errors"] == []
    since = time.monotonic()
    assert (await api.data(ROLE, token=token))["viewer"]["role"] == "ANALYST"  # the same process: at once
    await until(other, token, lambda r: r.json()["data"]["viewer"]["role"] == "ANALYST", since=since)


async def test_a_removed_brand_grant_takes_effect_on_every_process(
        api: Api, other: Api, tenant: TenantFixture) -> None:
    member_id, token = await tenant.member("agent", brands=["a", "b"])
    brand_a = tenant.brand_gid("a")
    assert (await warm(other, token, brand=brand_a))["viewer"]["role"] == "AGENT"
    body = await api.data("mutation($u: ID!, $b: ID!) { revokeBrandAccess(input: {userId: $u, brandId: $b}) { errors { code } } }",
                          {"u": gid("Member", member_id), "b": brand_a}, token=tenant.owner_token)
    assert body["revokeBrandAccess"]["errors"] == []
    r = await until(other, token, lambda r: r.status_code == 403, since=time.monotonic(), brand=brand_a)
    assert r.json()["errors"][0]["extensions"]["code"] == "BRAND_NOT_ACCESSIBLE"
    assert (await other.post(ROLE, token=token, brand=tenant.brand_gid("b"))).status_code == 200


async def test_a_removed_member_and_an_archived_brand(api: Api, other: Api, tenant: TenantFixture) -> None:
    member_id, token = await tenant.member("marketer")
    await warm(other, token)
    body = await api.data("mutation($u: ID!) { removeMember(input: {userId: $u}) { errors { code } } }",
                          {"u": gid("Member", member_id)}, token=tenant.owner_token)
    assert body["removeMember"]["errors"] == []
    await until(other, token, lambda r: r.status_code == 401, since=time.monotonic())

    # a brand created on one process is usable as X-Brand-Id on the other at once (its brands were cached)
    await warm(other, tenant.owner_token, brand=tenant.brand_gid("a"))
    created = await api.data('mutation { createBrand(input: {name: "New", slug: "new"}) { brand { id } } }',
                             token=tenant.owner_token)
    new = created["createBrand"]["brand"]["id"]
    await until(other, tenant.owner_token, lambda r: r.status_code == 200, since=time.monotonic(), brand=new)


async def test_a_token_past_its_expiry_is_never_answered_from_the_cache(api: Api, tenant: TenantFixture) -> None:
    from domain.tenancy.auth import mint_token

    # expired 5 s ago, inside the 30 s clock leeway: still accepted, but only ever from the database
    token = mint_token(tenant.id, tenant.owner_id, f"owner@{tenant.slug}.test", ttl=-5)
    await warm(api, tenant.owner_token)  # the cache answers other credentials meanwhile
    counts = [statements(await api.post(ROLE, token=token)) for _ in range(3)]
    assert counts[0] > 0 and len(set(counts)) == 1, counts  # the membership's lookup, every time


async def test_the_cache_is_off_while_redis_is_away_and_emptied_when_it_returns(
        api: Api, other: Api, tenant: TenantFixture) -> None:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    key_id, secret = await tenant.api_key("marketer")
    _, spare = await tenant.api_key("marketer")
    await warm(other, secret)
    async with redis_down():
        deadline = time.monotonic() + 3
        while statements(await other.post(ROLE, token=secret)) == 0:  # off within a second or so
            assert time.monotonic() < deadline, "the cache still answers with Redis away"
            await asyncio.sleep(0.02)
        # a change no process hears of (straight in the database, no invalidation at all)
        async with tenant_session(tenant.id) as s:
            await s.execute(text("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = :t AND id = :k"),
                            {"t": tenant.id, "k": key_id})
        assert (await other.post(ROLE, token=secret)).status_code == 401  # read from the database
    await warm(other, spare, within=15)  # the listener is back and the cache answers again
    # what it held from before the outage is gone: without that, the revoked key would be served
    assert (await other.post(ROLE, token=secret)).status_code == 401


async def test_the_cache_answers_only_while_its_listener_follows_redis(tenant: TenantFixture) -> None:
    from domain.tenancy.principal_cache import Listener, PrincipalCache, credential_key

    live, dead = PrincipalCache(), PrincipalCache()
    listeners = [Listener(live), Listener(dead, url=f"redis://127.0.0.1:{free_port()}/0")]  # nothing listens there
    for listener in listeners:
        listener.start()
    try:
        deadline = time.monotonic() + 5
        while not live.usable():
            assert time.monotonic() < deadline, "the listener never followed Redis"
            await asyncio.sleep(0.01)
        key = credential_key("bg_not-a-real-key")
        for target in (live, dead):
            target.put_principal(key, tenant.owner, target.generation)
        assert live.principal(key) == tenant.owner
        assert not dead.usable() and dead.principal(key) is None  # Redis unreachable: off
        stale = live.generation
        live.drop_tenant(tenant.id)
        assert live.principal(key) is None
        live.put_principal(key, tenant.owner, stale)  # read before the drop: not stored
        assert live.principal(key) is None
    finally:
        for listener in listeners:
            await listener.stop()
    assert not live.usable()


async def test_no_credential_reaches_the_logs(other_process: tuple[Process, str], other: Api,
                                              tenant: TenantFixture) -> None:
    _, secret = await tenant.api_key("marketer")
    await warm(other, secret)
    await warm(other, tenant.owner_token, brand=tenant.brand_gid("a"))
    assert (await other.post(ROLE, token=secret + "x")).status_code == 401
    log = other_process[0].output()
    assert '"path": "/graphql", "status": 401' in log  # the access lines are there, and DEBUG ones
    for needle in (secret, secret[12:40], tenant.owner_token, tenant.owner_token.split(".")[2],
                   hashlib.sha256(secret.encode()).hexdigest()):
        assert needle not in log


# --- API key use, recorded in batches ---------------------------------------------------------


async def test_api_key_use_is_recorded_in_batches_at_most_once_a_minute(api: Api, tenant: TenantFixture) -> None:
    keys = "{ apiKeys { id lastUsedAt } }"
    first_id, first = await tenant.api_key("marketer")
    second_id, second = await tenant.api_key("marketer")

    async def last_used(key_id: Any) -> str | None:
        found = {k["id"]: k["lastUsedAt"] for k in (await api.data(keys, token=tenant.owner_token))["apiKeys"]}
        return found[gid("ApiKey", key_id)]

    async def recorded(key_id: Any) -> str:
        deadline = time.monotonic() + 10
        while (found := await last_used(key_id)) is None:
            assert time.monotonic() < deadline, "the key's use was never recorded"
            await asyncio.sleep(0.1)
        return found

    assert await last_used(first_id) is None
    assert (await api.data(ROLE, token=first))["viewer"]["role"] == "MARKETER"
    was = await recorded(first_id)
    # used again within the minute, then another key: once the other key's use is written, a
    # flush has passed over the first key's second use, and left it for later
    await api.data(ROLE, token=first)
    await api.data(ROLE, token=second)
    await recorded(second_id)
    assert await last_used(first_id) == was
