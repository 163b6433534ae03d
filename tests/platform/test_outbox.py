"""The outbox under row-level security: a tenant writes only its own rows, and the relay's
cross-tenant functions refuse to run inside a tenant transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conftest import TenantFixture


@pytest.mark.parametrize("call", ["select bg_outbox_lead()", "select * from bg_outbox_claim(10)",
                                  "select bg_outbox_sent(array[]::uuid[], array[]::uuid[])"])
async def test_relay_functions_refuse_a_tenant_transaction(tenant: TenantFixture, call: str) -> None:
    from domain.platform.db import tenant_session

    with pytest.raises(DBAPIError, match="runs outside tenant transactions"):
        async with tenant_session(tenant.id) as s:
            await s.execute(text(call))


async def test_a_tenant_cannot_write_an_outbox_row_for_another(tenant: TenantFixture,
                                                               other_tenant: TenantFixture) -> None:
    from domain.platform import outbox
    from domain.platform.db import tenant_session

    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_session(tenant.id) as s:
            outbox.publish(s, other_tenant.id, "probe", {"n": 1})  # written at commit, refused there
    async with tenant_session(tenant.id) as s:  # its own: written, and visible to its transaction
        outbox.publish(s, tenant.id, "probe", {"n": 2})
        await outbox.flush(s)
        assert (await s.execute(text("select tenant_id, payload from outbox where topic = 'probe'"))).all() == [
            (tenant.id, {"n": 2})]
        await s.rollback()


async def test_a_batch_published_twice_reaches_redis_once(tenant: TenantFixture) -> None:
    """A batch published again (a retry after a lost reply, or a relay that took over while the
    previous leader was still writing the same batch) puts each job message in its queue once
    and each event in the stream once, as Dramatiq's own enqueue would have written them."""
    import asyncio
    import json
    import uuid

    import dramatiq

    from domain.platform import events
    from domain.platform import redis as redis_mod
    from domain.platform.outbox_relay import Relay, Row

    queue = f"outboxprobe-{uuid.uuid4().hex[:8]}"
    topic = f"probe-{uuid.uuid4().hex[:8]}"

    def row(kind: str, n: int, delay_ms: int | None = None) -> Row:
        payload = {"args": [str(tenant.id), n], "kwargs": {"k": n}} if kind == "job" else {"n": n}
        return Row(tenant.id, uuid.uuid4(), n, kind, "probe.actor" if kind == "job" else topic,
                          queue if kind == "job" else None, payload, delay_ms)

    rows = [row("job", 1), row("event", 2), row("job", 3, delay_ms=60_000), row("event", 4)]
    first, second = Relay("probe-1"), Relay("probe-2")
    try:
        # two relays at once (a leader change mid-batch), then the first again (a retry)
        written = await asyncio.gather(first.publish(rows), second.publish(rows))
        assert sorted(written) == [0, 4]
        assert await first.publish(rows) == 0
    finally:
        await first.stop()
        await second.stop()

    r = redis_mod.client()
    ns = "dramatiq"
    assert await r.lrange(f"{ns}:{queue}", 0, -1) == [str(rows[0].id)]
    assert await r.lrange(f"{ns}:{queue}.DQ", 0, -1) == [str(rows[2].id)]
    for q, job in ((queue, rows[0]), (f"{queue}.DQ", rows[2])):
        stored = await r.hgetall(f"{ns}:{q}.msgs")
        assert list(stored) == [str(job.id)]
        message = dramatiq.Message.decode(stored[str(job.id)].encode())
        assert (message.queue_name, message.actor_name, message.message_id) == (q, "probe.actor", str(job.id))
        assert (list(message.args), message.kwargs) == (job.payload["args"], job.payload["kwargs"])
        assert message.options["redis_message_id"] == str(job.id)
        assert ("eta" in message.options) is (job.delay_ms is not None)
    channel = events.channel(tenant.id, topic)
    got = [json.loads(f["d"]) for _id, f in await r.xrange(events.STREAM) if f["c"] == channel]
    assert got == [{"n": 2}, {"n": 4}]
    await r.delete(f"{ns}:{queue}", f"{ns}:{queue}.msgs", f"{ns}:{queue}.DQ", f"{ns}:{queue}.DQ.msgs")


async def test_the_claim_reads_all_tenants_in_seq_order_from_an_index() -> None:
    """The relay's claim (oldest rows of every tenant first) walks an index in seq order instead
    of sorting every pending row of every tenant on each batch."""
    from sqlalchemy import text

    from domain.platform.db import owner_engine

    engine = owner_engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("set local enable_seqscan = off"))  # a backlog, not the few rows of a test
            plan = "\n".join((await conn.execute(text(
                "explain select o.tenant_id, o.id, o.seq, o.kind, o.topic, o.queue, o.payload, o.delay_ms "
                "from outbox o order by o.seq limit 500"))).scalars())
    finally:
        await engine.dispose()
    assert "ix_outbox_seq" in plan and "Sort" not in plan, plan


async def test_a_commit_that_wrote_outbox_rows_wakes_the_relays_and_others_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay is woken after the commit, not by a NOTIFY inside it: a transaction that wrote
    outbox rows announces its commit on Redis (no relay runs in this process, so the leader is
    elsewhere); one that wrote none, or rolled back, announces nothing. Pub/sub channels span
    Redis's databases, and the suite's API and worker commit meanwhile: this process announces
    on a channel of its own, so only its own wake-ups are counted."""
    import asyncio
    import contextlib
    import uuid

    import redis.asyncio as aioredis
    from sqlalchemy import text

    from conftest import create_tenant_fixture
    from domain.platform import outbox
    from domain.platform import redis as redis_mod
    from domain.platform.db import owner_engine, tenant_session

    monkeypatch.setattr(outbox, "WAKE_CHANNEL", f"outbox:wake:test:{uuid.uuid4().hex}")
    t = await create_tenant_fixture(brands=())
    listener = aioredis.Redis.from_url(redis_mod.redis_url(), decode_responses=True)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(outbox.WAKE_CHANNEL)

    async def wakes(within: float) -> int:
        n, deadline = 0, asyncio.get_running_loop().time() + within
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if await pubsub.get_message(timeout=left) is not None:
                n += 1
        return n

    try:
        async with tenant_session(t.id) as s:
            await s.execute(text("select 1"))
        with contextlib.suppress(RuntimeError):
            async with tenant_session(t.id) as s:
                outbox.publish(s, t.id, "probe", {"n": 0})
                raise RuntimeError("rolled back")
        assert await wakes(0.5) == 0
        async with tenant_session(t.id) as s:
            outbox.publish(s, t.id, "probe", {"n": 1})
        assert await wakes(0.5) == 1
    finally:
        await pubsub.aclose()
        await listener.aclose()
    engine = owner_engine()  # and no trigger on the table sends a NOTIFY any more
    try:
        async with engine.connect() as conn:
            triggers = (await conn.execute(text(
                "select tgname from pg_trigger where tgrelid = 'outbox'::regclass and not tgisinternal"))).scalars().all()
    finally:
        await engine.dispose()
    assert triggers == []
