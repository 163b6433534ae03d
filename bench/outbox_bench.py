"""Outbox latency: what the transactional outbox adds to a live event and to a job's pickup.

    .venv/bin/python bench/outbox_bench.py            # 300 events, 300 job messages
    .venv/bin/python bench/outbox_bench.py --n 1000

Live event: from the commit of a transaction that publishes an event to the event's arrival in
an :class:`EventHub` subscriber queue. "direct" appends the event to the stream right after the
commit (what an after-commit publish did, lost while Redis is away); "outbox" writes the outbox
row in the transaction and lets a relay (woken after the commit, claim, one Redis script, delete) deliver it.

Job message: from the commit to the message's presence in its Dramatiq queue in Redis ("direct":
``actor.send`` after the commit; "outbox": the relay). Median, 95th percentile and max, in ms.

Transaction: a tenant transaction of one statement with and without SQLAlchemy's
``pool_pre_ping`` (a ping per checkout), the cost the sessions avoid by retrying a dead pooled
connection on their first statement instead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid

import _env


def _summary(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[int(len(xs) * 0.95) - 1]
    return f"{name:28s} median {statistics.median(xs):6.2f} ms   p95 {p95:6.2f} ms   max {xs[-1]:6.2f} ms"


async def run(n: int) -> None:
    from sqlalchemy import text

    from domain.actors import load_actors
    from domain.platform import events, outbox
    from domain.platform import redis as redis_mod
    from domain.platform.broker import broker
    from domain.platform.db import tenant_session
    from domain.platform.outbox_relay import Relay

    load_actors()
    from domain.tenancy.actors import record_api_key_use

    owner, _brand = await _env.setup_tenant("Outbox bench")
    tid = owner.tenant_id
    hub = events.EventHub()
    relay = Relay("bench")
    client = redis_mod.client()
    results: dict[str, list[float]] = {}

    async with hub.subscribe(tid, "bench") as queue:
        for mode in ("direct", "outbox"):
            if mode == "outbox":
                relay.start()
                await asyncio.sleep(0.3)
            lat = results.setdefault(f"event, {mode}", [])
            for i in range(n):
                async with tenant_session(tid) as s:
                    await s.execute(text("select 1"))
                    if mode == "outbox":
                        outbox.publish(s, tid, "bench", {"i": i})
                committed = time.perf_counter()
                if mode == "direct":
                    pipe = client.pipeline(transaction=False)
                    events.add_to(pipe, tid, "bench", {"i": i})
                    await pipe.execute()
                got = await asyncio.wait_for(queue.get(), 5)
                assert got == {"i": i}, got
                lat.append((time.perf_counter() - committed) * 1000)
            if mode == "outbox":
                await relay.stop()

    # job messages: time until the message is in its queue (nothing consumes the bench queue)
    qkey = f"{broker.namespace}:{record_api_key_use.queue_name}"
    await client.delete(qkey)
    for mode in ("direct", "outbox"):
        if mode == "outbox":
            relay = Relay("bench")
            relay.start()
            await asyncio.sleep(0.3)
        lat = results.setdefault(f"job message, {mode}", [])
        for i in range(n):
            before = await client.llen(qkey)
            async with tenant_session(tid) as s:
                await s.execute(text("select 1"))
                if mode == "outbox":
                    outbox.send(s, record_api_key_use, tid, str(uuid.uuid4()), "2026-01-01T00:00:00+00:00")
            committed = time.perf_counter()
            if mode == "direct":
                await asyncio.to_thread(record_api_key_use.send, str(tid), str(uuid.uuid4()),
                                        "2026-01-01T00:00:00+00:00")
            while await client.llen(qkey) == before:
                await asyncio.sleep(0)
            lat.append((time.perf_counter() - committed) * 1000)
        if mode == "outbox":
            await relay.stop()
    await client.delete(qkey)
    await hub.close()

    # what a ping per pool checkout (pool_pre_ping) would add to every transaction; the
    # sessions retry a dead connection on their first statement instead
    from sqlalchemy.ext.asyncio import create_async_engine

    from domain.config import asyncpg_url, get_settings

    for ping in (False, True):
        eng = create_async_engine(asyncpg_url(get_settings().app_database_url()), pool_size=5, pool_pre_ping=ping)
        lat = results.setdefault(f"transaction, pre-ping {'on' if ping else 'off'}", [])
        for _ in range(n):
            started = time.perf_counter()
            async with eng.begin() as conn:
                await conn.execute(text("select set_config('app.tenant_id', :t, true)"), {"t": str(tid)})
                await conn.execute(text("select 1"))
            lat.append((time.perf_counter() - started) * 1000)
        await eng.dispose()

    for name, xs in results.items():
        print(_summary(name, xs))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    print(_env.bootstrap())
    try:
        asyncio.run(run(args.n))
    finally:
        _env.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
