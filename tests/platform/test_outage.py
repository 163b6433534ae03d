"""Nothing lost, nothing doubled while Redis or PostgreSQL is away.

These tests stop the suite's own embedded Redis (SIGKILL) or PostgreSQL (an immediate shutdown,
as in a crash) and start it again on the same socket, while the session's API and worker keep
running: those must carry on without a restart. Each prints its figures (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from typing import Any

import httpx

import conftest
from conftest import Api, TenantFixture
from support.audit import AuditClient, renamer, until_live
from support.campaigns import audience, create, identity, launch, wait_status
from support.outages import embedded as _embedded
from support.outages import redis_down
from support.sending import emails_of, fake_messages, once_each, provider, settings
from support.ws import bearer, wait_for

JOB = "mutation { rebuildProfiles { job { id } errors { code } } }"
JOB_STATUS = "query($id: ID!) { job(id: $id) { status } }"
_names = itertools.count(1)


def kill_postgres() -> None:
    """An immediate shutdown (SIGQUIT to the postmaster): no checkpoint, every connection cut,
    recovery from the write-ahead log on the next start, as after a crash."""
    import os
    import signal

    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_embedded().postgres.pgdata)
    assert info is not None and info.is_running()
    os.kill(info.pid, signal.SIGQUIT)
    deadline = time.monotonic() + 20
    while _embedded().postgres.alive():
        assert time.monotonic() < deadline, "PostgreSQL did not stop"
        time.sleep(0.05)


def start_postgres() -> None:
    _embedded().postgres.restart()


async def pending() -> int:
    from domain.platform.outbox_relay import pending_count

    return await pending_count()


async def job_statuses(api: Api, token: str, ids: list[str]) -> list[str]:
    return [(await api.data(JOB_STATUS, {"id": i}, token=token))["job"]["status"] for i in ids]


def name() -> str:
    return f"outage {next(_names)} {uuid.uuid4().hex[:6]}"


async def test_redis_outage_during_a_mutation_burst_loses_no_event_and_no_job(
        api: Api, api_url: str, tenant: TenantFixture, worker: Any) -> None:
    _embedded()
    token = tenant.owner_token
    rename = renamer(api, tenant)
    conn = await AuditClient.open(api_url, bearer(token))
    try:
        op = await conn.subscribe()
        await until_live([(conn, op)], rename)

        async def burst(n: int) -> tuple[list[str], list[str]]:
            names, jobs = [name() for _ in range(n)], []
            for i, n_ in enumerate(names):
                await rename(n_)
                if i % 5 == 0:
                    body = (await api.data(JOB, token=token))["rebuildProfiles"]
                    assert body["errors"] == [], body
                    jobs.append(body["job"]["id"])
            return names, jobs

        before, before_jobs = await burst(10)
        await wait_for(lambda: set(before) <= set(conn.names(op)), "the events before the outage")

        async with redis_down():
            assert (await api.http.get("/readyz")).status_code == 503
            during, during_jobs = await burst(30)  # every mutation answers, with no error
            held = await pending()
            assert held >= len(during) + len(during_jobs), held  # events and job messages wait
            assert set(during) & set(conn.names(op)) == set()
            assert set(await job_statuses(api, token, during_jobs)) == {"QUEUED"}
            await asyncio.sleep(2)
        back = time.monotonic()
        while await pending():
            assert time.monotonic() - back < 30, "the outbox did not drain"
            await asyncio.sleep(0.02)
        relayed = time.monotonic() - back
        await wait_for(lambda: set(during) <= set(conn.names(op)), "the events held during the outage", within=30)
        events_drained = time.monotonic() - back
        while set(await job_statuses(api, token, during_jobs)) != {"SUCCEEDED"}:
            assert time.monotonic() - back < 60, await job_statuses(api, token, during_jobs)
            await asyncio.sleep(0.1)
        jobs_drained = time.monotonic() - back

        after, after_jobs = await burst(10)
        await wait_for(lambda: set(after) <= set(conn.names(op)), "the events after the outage")
        while set(await job_statuses(api, token, after_jobs)) != {"SUCCEEDED"}:
            assert time.monotonic() - back < 90
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)

        seen = Counter(n for n in conn.names(op) if n.startswith("outage "))
        ours = before + during + after
        assert seen == {n: 1 for n in ours}, {n: c for n, c in seen.items() if c != 1}  # each once
        got = [n for n in conn.names(op) if n in set(ours)]
        assert got == ours  # and in the order written (one client: its writes never overlap)
        assert set(await job_statuses(api, token, before_jobs)) == {"SUCCEEDED"}
        print(f"\nRedis outage, mutation burst: events before/during/after {len(before)}/{len(during)}/{len(after)}, "
              f"jobs {len(before_jobs)}/{len(during_jobs)}/{len(after_jobs)}; outbox rows held {held}; "
              f"outbox empty {relayed:.2f} s, every event at the subscriber {events_drained:.2f} s, every job done "
              f"{jobs_drained:.2f} s after Redis returned")
    finally:
        await conn.close()


async def test_redis_outage_during_a_campaign_send_sends_each_message_once(
        api: Api, tenant: TenantFixture, worker: Any, fakes: Any) -> None:
    _embedded()
    n = 600
    await identity(tenant)
    await provider(api, tenant, "EMAIL", "brevo", credentials={"apiKey": fakes.brevo.api_key})
    await settings(api, tenant, sendRatePerSecond=200)  # about three seconds of sending
    seg, ids = await audience(tenant, n)
    campaign = await create(api, tenant, seg)
    fake = fakes.brevo

    await launch(api, tenant, campaign)
    deadline = time.monotonic() + 30
    while not fake_messages(fake, campaign):
        assert time.monotonic() < deadline, "the send did not start"
        await asyncio.sleep(0.02)
    async with redis_down():
        sent_at_kill = len(fake_messages(fake, campaign))
        await asyncio.sleep(3)
        sent_in_outage = len(fake_messages(fake, campaign)) - sent_at_kill
    back = time.monotonic()
    done = await wait_status(api, tenant, campaign, within=120)
    took = time.monotonic() - back

    messages = fake_messages(fake, campaign)
    by_key = Counter(m.key for m in messages)
    assert len(by_key) == n and set(by_key.values()) == {1}, {k: c for k, c in by_key.items() if c != 1}
    once_each(messages, set(await emails_of(tenant, ids)))
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    print(f"\nRedis outage, campaign of {n}: {sent_at_kill} sent before, {sent_in_outage} during (3 s), "
          f"the rest within {took:.2f} s after Redis returned; every recipient got exactly one message")


async def test_postgres_restart_under_load_answers_only_correctly_or_503(
        api: Api, tenant: TenantFixture, worker: Any) -> None:
    _embedded()
    token = tenant.owner_token
    brand = tenant.brand_gid("a")
    read_q = "query($id: ID!) { node(id: $id) { ... on Brand { id slug } } }"
    rename = "mutation($input: UpdateBrandInput!) { updateBrand(input: $input) { brand { name } errors { message } } }"
    counts: Counter[tuple[str, str]] = Counter()
    wrong: list[Any] = []
    phase = {"now": "before"}
    stop = asyncio.Event()

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as http:
            while not stop.is_set():
                at = phase["now"]  # the phase the request was sent in
                writing = i % 3 == 0
                body = ({"query": rename, "variables": {"input": {"id": brand, "name": f"pg {uuid.uuid4().hex[:6]}"}}}
                        if writing else {"query": read_q, "variables": {"id": brand}})
                try:
                    r = await http.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError as exc:
                    wrong.append((at, repr(exc)))
                    continue
                if r.status_code == 503 and r.json().get("errors", [{}])[0].get("extensions", {}).get("code") \
                        == "DATABASE_UNAVAILABLE":
                    counts[(at, "503")] += 1
                    await asyncio.sleep(0.05)
                    continue
                errors = r.json().get("errors") if r.status_code == 200 else None
                if writing and errors and {e.get("extensions", {}).get("code") for e in errors} \
                        == {"DATABASE_UNAVAILABLE"} and "retry-after" not in r.headers:
                    counts[(at, "committed, then lost")] += 1  # the write stands; no retry offered
                    continue
                ok = r.status_code == 200 and not errors
                if ok and writing:
                    ok = r.json()["data"]["updateBrand"]["errors"] == []
                if ok and not writing:
                    ok = r.json()["data"]["node"] == {"id": brand, "slug": "brand-a"}
                if not ok:
                    wrong.append((at, r.status_code, r.text[:300]))
                else:
                    counts[(at, "ok")] += 1

    clients = [asyncio.create_task(client(i)) for i in range(6)]
    try:
        await asyncio.sleep(2)
        phase["now"] = "during"
        await asyncio.to_thread(kill_postgres)
        await asyncio.sleep(3)
        await asyncio.to_thread(start_postgres)
        back = time.monotonic()
        phase["now"] = "recovering"
        while counts[("recovering", "ok")] < 20:
            assert time.monotonic() - back < 30, (counts, wrong[:5])
            await asyncio.sleep(0.05)
        recovered = time.monotonic() - back
        phase["now"] = "after"
        await asyncio.sleep(2)
    finally:
        stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
    assert wrong == [], wrong[:10]
    assert counts[("before", "ok")] > 0 and counts[("during", "503")] > 0 and counts[("after", "ok")] > 0, counts
    assert counts[("after", "503")] == 0, counts
    # the worker and the outbox relay carried on too: a job created now runs
    body = (await api.data(JOB, token=token))["rebuildProfiles"]
    deadline = time.monotonic() + 30
    while (await job_statuses(api, token, [body["job"]["id"]]))[0] != "SUCCEEDED":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    print(f"\nPostgreSQL restart under 6 clients: {dict(counts)}; answering again {recovered:.2f} s after it was back")


# --- a request that loses PostgreSQL after one of its writes committed ---------------------------


def _probe_view() -> Any:
    """The API's own view and extensions over a small schema: ``write`` commits a real write,
    ``read`` commits a real read, ``lost`` finds PostgreSQL unreachable (its sessions point at a
    port nothing listens on, as after the server went away)."""
    import strawberry
    from sqlalchemy import text

    from domain.config import load_settings
    from domain.platform import db
    from graph.extensions import extensions
    from graph.view import GraphQLView

    async def in_tenant(info: Any, sql: str) -> None:
        async with db.tenant_session(info.context.principal_.tenant_id) as s:
            await s.execute(text(sql))

    @strawberry.type
    class Query:
        @strawberry.field
        async def read(self, info: strawberry.Info) -> bool:
            await in_tenant(info, "select count(*) from brands")
            return True

        @strawberry.field
        async def lost(self, info: strawberry.Info) -> bool | None:
            # this field's task only: ``read``, resolved alongside, keeps the real database
            with db.database_url(f"postgresql://nobody@127.0.0.1:{conftest.free_port()}/gone"):
                await in_tenant(info, "select 1")
            return True

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        async def write(self, info: strawberry.Info) -> bool:
            await in_tenant(info, "update brands set name = name where slug = 'brand-a'")
            return True

        @strawberry.mutation
        async def read(self, info: strawberry.Info) -> bool:
            await in_tenant(info, "select count(*) from brands")
            return True

        @strawberry.mutation
        async def lost(self, info: strawberry.Info) -> bool | None:
            return await Query.lost(self, info)  # type: ignore[arg-type]

    schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=extensions(load_settings({})))
    return GraphQLView(schema, graphiql=False)


async def test_database_lost_after_a_committed_write_answers_the_write_not_a_retry(tenant: TenantFixture) -> None:
    view = _probe_view()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=view), base_url="http://probe") as http:
        async def post(query: str) -> httpx.Response:
            return await http.post("/", json={"query": query}, headers={"Authorization": f"Bearer {tenant.owner_token}"})

        # nothing committed: the whole request may be retried
        for query in ("{ read lost }", "mutation { read lost }"):
            r = await post(query)
            assert r.status_code == 503 and r.headers.get("retry-after") == "1", (query, r.text)
            assert r.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
        # a write committed: its answer stands, the lost field says why it is missing, no retry
        r = await post("mutation { write lost }")
        assert r.status_code == 200, r.text
        assert "retry-after" not in r.headers
        body = r.json()
        assert body["data"] == {"write": True, "lost": None}
        assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [(["lost"], "DATABASE_UNAVAILABLE")]
        # and a request that meets no outage is untouched
        r = await post("mutation { write read }")
        assert r.status_code == 200 and "errors" not in r.json() and r.json()["data"] == {"write": True, "read": True}
