"""A query operation over HTTP reads in one transaction; mutations keep one per block.

The server reports the transactions a request began in ``extensions.sqlTransactions``
(GRAPHQL_SQL_STATS=1, on in tests); authentication counts too, so each test first has the API
answer its credential from the authentication cache (``support.graphql.warm``). The mechanism itself (``db.shared_reads``) is exercised
in this process too, against the same PostgreSQL: ``txid_current()`` names the transaction a
block ran in."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from conftest import Api, TenantFixture, create_tenant_fixture, gid
from support.graphql import warm
from support.ws import Client, bearer, wait_for
from domain.errors import NotFound
from domain.platform import db
from domain.platform.db import shared_reads, tenant_session

LIST = """query($first: Int!) { customers(first: $first) { edges { node {
  id email tags { name } profile { totalOrderValueCents } } } } }"""
BRANDS = "{ brands { id name } }"


async def _shop(n: int) -> TenantFixture:
    from domain.commerce.service import OrderInput, record_order
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers

    t = await create_tenant_fixture()
    vip = await create_tag(t.owner, {"name": "VIP"})
    ids = []
    for i in range(n):
        c, _ = await upsert_customer(t.owner, {"email": f"c{i}@reads.test"}, brand_id=t.brands["a"])
        ids.append(c.id)
        await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=f"o{i}", total_cents=1000 + i,
                                               currency="EUR", placed_at=datetime.now(UTC) - timedelta(days=i),
                                               customer_id=c.id))
    await tag_customers(t.owner, ids, [vip.id])
    return t


async def _txid(tenant_id: uuid.UUID) -> int:
    async with tenant_session(tenant_id) as s:
        return int(await s.scalar(text("select txid_current()")))


# --- over HTTP ----------------------------------------------------------------------------


async def test_a_query_reads_in_one_transaction(api: Api) -> None:
    t = await _shop(4)
    await warm(api, t.owner_token)
    body = await api.gql(LIST, {"first": 50}, token=t.owner_token)
    assert not body.get("errors"), body
    edges = body["data"]["customers"]["edges"]
    assert len(edges) == 4
    assert all(e["node"]["tags"] == [{"name": "VIP"}] and e["node"]["profile"]["totalOrderValueCents"] for e in edges)
    # the list, the tags and the profiles (two loaders, concurrent tasks): one transaction, one tenant setting
    assert body["extensions"]["sqlTransactions"] == 1, body["extensions"]
    assert body["extensions"]["sqlStatements"] >= 4, body["extensions"]

    body = await api.gql("{ brands { id name } tags { name } a: customers(first: 2) { edges { node { email } } } }",
                         token=t.owner_token)
    assert not body.get("errors"), body
    assert body["extensions"]["sqlTransactions"] == 1, body["extensions"]
    body = await api.gql(BRANDS, token=t.owner_token)
    assert sorted(b["name"] for b in body["data"]["brands"]) == ["Brand A", "Brand B"]
    assert body["extensions"]["sqlTransactions"] == 1, body["extensions"]


async def test_concurrent_requests_never_share_a_transaction(api: Api) -> None:
    a, b = await create_tenant_fixture(brands=("a",)), await create_tenant_fixture(brands=("x", "y"))
    await warm(api, a.owner_token)
    await warm(api, b.owner_token)
    bodies = await asyncio.gather(*(api.gql(BRANDS, token=(a if i % 2 else b).owner_token) for i in range(16)))
    for i, body in enumerate(bodies):
        assert not body.get("errors"), body
        # each request began its own (a request that joined another's would have begun none)
        assert body["extensions"]["sqlTransactions"] == 1, (i, body["extensions"])
        names = sorted(x["name"] for x in body["data"]["brands"])
        assert names == (["Brand A"] if i % 2 else ["Brand X", "Brand Y"]), (i, names)


async def test_a_mutation_keeps_a_transaction_per_block(api: Api, tenant: TenantFixture) -> None:
    upsert = """mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
      customer { email tags { name } profile { totalOrderValueCents } brands { brand { slug } } }
      errors { code } } }"""
    body = await api.gql(upsert, {"input": {"brandId": tenant.brand_gid("a"), "email": "m@reads.test"}},
                         token=tenant.owner_token)
    assert not body.get("errors") and body["data"]["upsertCustomer"]["errors"] == [], body
    # the write, then each loader of the payload in a transaction of its own
    assert body["extensions"]["sqlTransactions"] >= 4, body["extensions"]
    customer = body["data"]["upsertCustomer"]["customer"]
    assert customer["email"] == "m@reads.test" and customer["brands"] == [{"brand": {"slug": "brand-a"}}]


async def test_a_query_over_a_websocket_keeps_a_transaction_per_block(api: Api) -> None:
    t = await _shop(2)
    ws = await Client.open(api, bearer(t.owner_token))
    try:
        op = await ws.subscribe(LIST, {"first": 50})
        await wait_for(lambda: ws.ended(op), "the query's answer")
        (answer,) = [m["payload"] for m in ws.of(op) if m["type"] == "next"]
    finally:
        await ws.close()
    assert not answer.get("errors") and len(answer["data"]["customers"]["edges"]) == 2, answer
    assert answer["extensions"]["sqlTransactions"] == 3, answer["extensions"]  # the list, the tags, the profiles


async def test_a_database_error_in_one_field_spares_the_fields_after_it(api: Api, tenant: TenantFixture) -> None:
    """``job`` runs first and fails in PostgreSQL (its table is out of the app role's reach for
    this test); the shared transaction is rolled back and the fields after it read in a fresh
    one. Were it kept, they would fail ("current transaction is aborted") and, being non-null,
    take the whole answer with them."""
    query = f'{{ job(id: "{gid("Job", uuid.uuid4())}") {{ status }} brands {{ name }} tags {{ name }} }}'
    await warm(api, tenant.owner_token)
    owner = db.owner_engine()
    try:
        async with owner.begin() as conn:
            await conn.execute(text("revoke select on jobs from brandgraph_app"))
        body = await api.gql(query, token=tenant.owner_token)
    finally:
        async with owner.begin() as conn:
            await conn.execute(text("grant select on jobs to brandgraph_app"))
        await owner.dispose()
    assert [e["path"] for e in body["errors"]] == [["job"]], body
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert body["data"]["job"] is None
    assert sorted(b["name"] for b in body["data"]["brands"]) == ["Brand A", "Brand B"]
    assert body["data"]["tags"] == []
    assert body["extensions"]["sqlTransactions"] == 2, body["extensions"]

    # the same query with the table readable: the job is simply not found, one transaction
    body = await api.gql(query, token=tenant.owner_token)
    assert not body.get("errors") and body["data"]["job"] is None, body
    assert body["extensions"]["sqlTransactions"] == 1, body["extensions"]


# --- the mechanism, in this process -------------------------------------------------------


async def test_blocks_share_the_transaction_one_at_a_time(tenant: TenantFixture) -> None:
    async with shared_reads():
        shared = await asyncio.gather(*(_txid(tenant.id) for _ in range(6)))
    alone = await asyncio.gather(*(_txid(tenant.id) for _ in range(6)))
    assert len(set(shared)) == 1, shared
    assert len(set(alone)) == 6, alone

    running, overlapped = 0, False

    async def block() -> None:
        nonlocal running, overlapped
        async with tenant_session(tenant.id) as s:
            running += 1
            overlapped |= running > 1
            await s.execute(text("select pg_sleep(0.01)"))
            running -= 1

    async with shared_reads():
        await asyncio.gather(*(block() for _ in range(5)))
    assert not overlapped


async def test_blocks_inside_blocks_get_their_own_transaction(tenant: TenantFixture) -> None:
    async with shared_reads():
        first = await _txid(tenant.id)
        async with tenant_session(tenant.id) as s:
            outer = int(await s.scalar(text("select txid_current()")))
            nested = await asyncio.wait_for(_txid(tenant.id), 5)  # would wait for itself
            child = await asyncio.wait_for(asyncio.create_task(_txid(tenant.id)), 5)
            setting = await s.scalar(text("select current_setting('app.tenant_id')"))
        after = await _txid(tenant.id)
    assert first == outer == after
    assert len({outer, nested, child}) == 3
    assert setting == str(tenant.id)


async def test_another_tenant_gets_its_own_transaction(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    async def setting(tid: uuid.UUID) -> tuple[int, str]:
        async with tenant_session(tid) as s:
            row = (await s.execute(text("select txid_current(), current_setting('app.tenant_id')"))).one()
            return int(row[0]), row[1]

    async with shared_reads():
        (t1, s1), (o1, s2), (t2, _), (o2, _) = await asyncio.gather(
            setting(tenant.id), setting(other_tenant.id), setting(tenant.id), setting(other_tenant.id))
    assert t1 == t2 and len({t1, o1, o2}) == 3
    assert (s1, s2) == (str(tenant.id), str(other_tenant.id))


async def test_a_domain_error_keeps_the_transaction_a_failed_statement_ends_it(tenant: TenantFixture) -> None:
    from sqlalchemy.exc import DBAPIError

    from domain.customers.tags import create_tag

    tag = await create_tag(tenant.owner, {"name": "Kept"})
    async with shared_reads():
        first = await _txid(tenant.id)
        with pytest.raises(NotFound):
            async with tenant_session(tenant.id) as s:
                await s.execute(text("select 1"))
                raise NotFound("nothing here")
        kept = await _txid(tenant.id)
        with pytest.raises(DBAPIError):
            async with tenant_session(tenant.id) as s:
                await s.execute(text("select 1 / 0"))
        fresh = await _txid(tenant.id)
        with pytest.raises(RuntimeError):  # a block that wrote, then raised: its write is undone
            async with tenant_session(tenant.id) as s:
                await s.execute(text("update tags set name = name || '!' where id = :t"), {"t": tag.id})
                raise RuntimeError("changed my mind")
        last = await _txid(tenant.id)
        async with tenant_session(tenant.id) as s:
            name = await s.scalar(text("select name from tags where id = :t"), {"t": tag.id})
    assert first == kept and fresh != kept and last != fresh
    assert name == "Kept"


async def test_a_block_that_writes_commits_at_its_end(tenant: TenantFixture) -> None:
    from domain.customers.tags import create_tag, list_tags

    state = db.RequestState()
    token = db.request_state.set(state)
    try:
        async with shared_reads():
            before = await _txid(tenant.id)
            assert not state.committed_write
            tag = await create_tag(tenant.owner, {"name": "Written"})
            assert state.committed_write
            # visible at once to a task outside this operation: committed, not waiting for the end
            outside = asyncio.create_task(list_tags(tenant.owner), context=contextvars.Context())
            assert [t.id for t in await outside] == [tag.id]
            after = await _txid(tenant.id)
            again = await _txid(tenant.id)
    finally:
        db.request_state.reset(token)
    assert before != after == again


async def test_a_setting_a_block_makes_does_not_outlive_it(tenant: TenantFixture) -> None:
    async with shared_reads():
        first = await _txid(tenant.id)
        async with tenant_session(tenant.id) as s:
            await s.execute(text("select set_config('plan_cache_mode', 'force_custom_plan', true)"))
        async with tenant_session(tenant.id) as s:
            mode = await s.scalar(text("select current_setting('plan_cache_mode')"))
            second = int(await s.scalar(text("select txid_current()")))
    assert mode == "auto" and second != first


async def test_a_block_after_the_end_gets_its_own_transaction(tenant: TenantFixture) -> None:
    release = asyncio.Event()

    async def late() -> int:
        await release.wait()
        return await _txid(tenant.id)

    async with shared_reads():
        during = await _txid(tenant.id)
        lingering = asyncio.create_task(late())  # started inside: it sees the operation's context
    release.set()
    assert await asyncio.wait_for(lingering, 5) != during


async def test_an_operation_that_ends_while_a_block_runs_leaves_no_transaction_open(tenant: TenantFixture) -> None:
    """The operation (cancelled, say) does not wait for a block still running: that block ends
    the shared transaction when it ends, and its connection goes back to the pool."""
    pool = db.engine().pool
    before = pool.checkedout()
    inside, release = asyncio.Event(), asyncio.Event()

    async def block() -> None:
        async with tenant_session(tenant.id) as s:
            await s.execute(text("select 1"))
            inside.set()
            await release.wait()

    async def operation() -> None:
        async with shared_reads():
            asyncio.create_task(block())  # started inside: it joins the shared transaction
            await asyncio.sleep(30)

    running = asyncio.create_task(operation())
    await asyncio.wait_for(inside.wait(), 5)
    lingering = [t for t in asyncio.all_tasks() if t.get_coro().__name__ == "block"]
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 2)  # it did not wait for the block
    assert pool.checkedout() == before + 1  # the block still holds its connection
    release.set()
    await asyncio.wait_for(asyncio.gather(*lingering), 5)
    assert pool.checkedout() == before
