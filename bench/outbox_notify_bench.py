"""What the outbox's NOTIFY costs concurrent writers.

    .venv/bin/python bench/outbox_notify_bench.py                 # 8 clients x 300 writes, 3 rounds
    .venv/bin/python bench/outbox_notify_bench.py --clients 8 --n 500 --rounds 5

Each write is what an audited mutation commits: a tenant transaction that inserts an audit row
and its outbox row (the audit event), then commits. PostgreSQL serialises the commits of
transactions that queued a notification on one global lock. The bench runs the same writes,
in turn: with a statement trigger on ``outbox`` that NOTIFYs (a relay woken by PostgreSQL, with
one more connection LISTENing), with a statement trigger that does nothing (the trigger's own
cost), and as built: no trigger, a Redis PUBLISH after the commit, not awaited (what
``outbox.wake`` sends when the leading relay is in another process; with the leader in the
same process it sends nothing). One connection per client, as the
app role. Prints, per mode, the write rate (median of the rounds, with the range) and the
latency of a write (median and p95 of all writes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid

import _env


async def run(clients: int, n: int, rounds: int) -> None:
    import asyncpg

    from domain.config import get_settings

    owner, _brand = await _env.setup_tenant("Notify bench")
    tid = owner.tenant_id
    settings = get_settings()
    app_url, owner_url = settings.app_database_url(), settings.owner_database_url()
    listener = await asyncpg.connect(app_url)
    heard = 0

    def on_notify(*_: object) -> None:
        nonlocal heard
        heard += 1

    await listener.add_listener("bg_outbox", on_notify)
    conns = [await asyncpg.connect(app_url) for _ in range(clients)]
    admin = await asyncpg.connect(owner_url)

    from domain.platform import outbox
    from domain.platform import redis as redis_mod

    redis = redis_mod.client()
    pending: set[asyncio.Task[int]] = set()

    async def writer(conn: asyncpg.Connection, lat: list[float], publish: bool) -> None:
        for i in range(n):
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute("select set_config('app.tenant_id', $1, true)", str(tid))
                entry = uuid.uuid4()
                await conn.execute(
                    "insert into audit_log (id, tenant_id, principal_type, principal_id, principal_label, action, "
                    "target_type, target_id, summary) values ($1, $2, 'user', $3, 'bench', 'bench.write', 'brand', "
                    "$4, $5::jsonb)", entry, tid, str(owner.id), str(i), json.dumps({"i": i}))
                await conn.execute(
                    "insert into outbox (tenant_id, id, kind, topic, payload) values ($1, $2, 'event', 'audit', "
                    "$3::jsonb)", tid, uuid.uuid4(), json.dumps({"id": str(entry)}))
            if publish:  # as outbox.wake does when the leading relay is in another process
                task = asyncio.create_task(redis.publish(outbox.WAKE_CHANNEL, "1"))
                pending.add(task)
                task.add_done_callback(pending.discard)
            lat.append((time.perf_counter() - started) * 1000)

    modes = ("NOTIFY trigger", "no-op trigger", "as built")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    lats: dict[str, list[float]] = {m: [] for m in modes}
    # the trigger's own cost without the notification: a statement trigger that does nothing
    for name, body in (("bench_notify", "perform pg_notify('bg_outbox', '');"), ("bench_noop", "")):
        await admin.execute(f"create or replace function {name}() returns trigger language plpgsql as "
                            f"$$ begin {body} return null; end $$")
        await admin.execute(f"create trigger {name} after insert on outbox for each statement "
                            f"execute function {name}()")
    try:
        for r in range(rounds * len(modes)):
            mode = modes[r % len(modes)]
            for name, on in (("bench_notify", mode == "NOTIFY trigger"), ("bench_noop", mode == "no-op trigger")):
                await admin.execute(f"alter table outbox {'enable' if on else 'disable'} trigger {name}")
            await admin.execute("delete from outbox")
            started = time.perf_counter()
            await asyncio.gather(*(writer(c, lats[mode], mode == "as built") for c in conns))
            took = time.perf_counter() - started
            rates[mode].append(clients * n / took)
    finally:
        for name in ("bench_notify", "bench_noop"):
            await admin.execute(f"drop trigger {name} on outbox")
            await admin.execute(f"drop function {name}()")
        await admin.execute("delete from outbox")
        for c in (*conns, listener, admin):
            await c.close()

    print(f"{clients} clients x {n} writes, {rounds} rounds per mode; notifications heard: {heard}")
    for mode in rates:
        xs = sorted(lats[mode])
        print(f"{mode:14s} {statistics.median(rates[mode]):7.0f} writes/s (range {min(rates[mode]):.0f}-"
              f"{max(rates[mode]):.0f})   commit latency median {statistics.median(xs):5.2f} ms   "
              f"p95 {xs[int(len(xs) * 0.95) - 1]:5.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(_env.bootstrap())
    try:
        asyncio.run(run(args.clients, args.n, args.rounds))
    finally:
        _env.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
