"""Live segments bench: orders recorded at a steady rate by several clients while live evaluation
keeps the dynamic segments up to date; against a full refresh of the same segments.

    .venv/bin/python bench/live_segments_bench.py                       # 10,000 customers, 10 segments, 20 s
    .venv/bin/python bench/live_segments_bench.py --customers 100000 --segments 50 --rate 200 --seconds 60
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/live_segments_bench.py

Setup (``bench/_env.py``: an embedded PostgreSQL under ``.brandgraph/bench-live`` unless
BENCH_DATA_DIR / BENCH_DATABASE_URL say otherwise; a fresh ``brandgraph_live_bench`` database,
migrated): the shop of ``segments_bench.py`` (one brand, ``--customers`` customers, 0 to 4
orders each, their profiles), then ``--segments`` live dynamic segments: spend thresholds from
50 to 50 + 25 × (n − 1) EUR, every third one also "ordered within 30 days", every fifth one
"a country of US, GB, CA, AU". Each is built by a first full refresh (timed).

The load: ``--clients`` asyncio tasks record orders through the domain service
(``commerce.service.record_order``, the code the ``recordOrder`` mutation runs, without HTTP)
at ``--rate`` orders per second in all, for ``--seconds``, each an order of 400 EUR for a
customer drawn at random (seeded). ``--evaluators`` tasks run ``live.evaluate_batch`` in a loop,
pausing ``--debounce-ms`` (100, as ``LIVE_SEGMENT_DEBOUNCE_MS``) after a batch that was not full
(the body of the ``evaluate_pending`` actor, without Dramatiq: the outbox relay and Redis add
about 5 ms more). Clients and evaluators share one Python process, as on one small machine.

Reported: the latency from an order's commit (when ``record_order`` returned) to the first
membership row it caused (``entered_at``, the evaluation's database clock), p50 and p99 over the
orders that moved their customer into a segment; customers evaluated per second; evaluation time
per evaluated customer (the evaluators' busy time over the customers they evaluated: mostly
database time); then a full refresh of every segment (sum of their times), and whether it
changed anything (it must not).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("BENCH_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".brandgraph" / "bench-live"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)
import segments_bench  # noqa: E402  (the shop)

_env.BENCH_DB = "brandgraph_live_bench"


def definition(k: int) -> dict:
    rules = [{"kind": "profile", "field": "total_order_value", "operator": "greater_than_or_equal", "value": 50 + 25 * k}]
    if k % 3 == 2:
        rules.append({"kind": "profile", "field": "last_order_date", "operator": "within_days", "value": 30})
    if k % 5 == 4:
        rules.append({"kind": "attribute", "field": "country", "operator": "in", "value": segments_bench.COUNTRIES})
    return {"version": 1, "match": "all", "rules": rules}


async def setup_tenant():
    """A fresh tenant on the enterprise plan (room for 50 active segments) with one brand."""
    from domain.tenancy import brands, members, tenants
    from domain.tenancy.policies import Role

    slug = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = await tenants.create_tenant(slug, "Live Segments Bench Co", plan="enterprise")
    owner_id, _ = await members.ensure_member(tenant.id, f"owner@{slug}.test", Role.OWNER)
    owner = await members.principal_for_user(tenant.id, owner_id)
    brand = await brands.create_brand(owner, {"name": "Bench Brand", "slug": "bench"})
    return owner, brand.id


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


async def run(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select, text

    from domain.commerce.service import OrderInput, record_order
    from domain.platform.db import tenant_session
    from domain.segments import live, refresh, service
    from domain.segments.models import PendingEvaluation, SegmentKind

    owner, brand_id = await setup_tenant()
    tenant_id = owner.tenant_id
    print(f"filling {args.customers:,} customers ...", flush=True)
    await segments_bench.fill(tenant_id, brand_id, args.customers)
    await segments_bench.vacuum_analyze()
    segments = [await service.create_segment(owner, brand_id, SegmentKind.DYNAMIC, {"name": f"live {k}"},
                                             definition=definition(k)) for k in range(args.segments)]
    started = time.perf_counter()
    for seg in segments:
        await refresh.refresh(tenant_id, seg.id)
    first_build = time.perf_counter() - started
    async with tenant_session(tenant_id) as s:  # the shop's customers were written without queueing
        await s.execute(text("DELETE FROM segment_pending_evaluations"))
    async with tenant_session(tenant_id) as s:
        ids = list(await s.scalars(text("SELECT id FROM customers WHERE tenant_id = :t ORDER BY id"), {"t": tenant_id}))

    rng = random.Random(args.seed)
    commits: list[tuple[uuid.UUID, float, float]] = []  # customer, before the call, after it (committed)
    stop = time.monotonic() + args.seconds
    interval = args.clients / args.rate
    evaluated = [0]
    busy = [0.0]
    loading = [True]

    async def client(n: int) -> None:
        next_at = time.monotonic() + n * interval / args.clients
        i = 0
        while time.monotonic() < stop:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            who = ids[rng.randrange(len(ids))]
            before = time.time()
            await record_order(owner, OrderInput(brand_id=brand_id, external_order_id=f"live-{n}-{i}",
                                                 total_cents=40_000, currency="EUR", placed_at=datetime.now(UTC),
                                                 customer_id=who))
            commits.append((who, before, time.time()))
            i += 1

    async def evaluator() -> None:
        while True:
            began = time.perf_counter()
            n = await live.evaluate_batch(tenant_id)
            if n:
                busy[0] += time.perf_counter() - began
                evaluated[0] += n
            elif not loading[0]:
                return
            if n < live.BATCH:  # as the actor's messages, LIVE_SEGMENT_DEBOUNCE_MS after a commit
                await asyncio.sleep(args.debounce_ms / 1000)

    print(f"{args.clients} clients, {args.rate} orders/s for {args.seconds} s, {args.evaluators} evaluators ...",
          flush=True)
    load_started = time.perf_counter()
    workers = [asyncio.create_task(evaluator()) for _ in range(args.evaluators)]
    await asyncio.gather(*(client(n) for n in range(args.clients)))
    loading[0] = False
    await asyncio.gather(*workers)
    load_s = time.perf_counter() - load_started
    async with tenant_session(tenant_id) as s:
        left = await s.scalar(select(func.count()).select_from(PendingEvaluation))
        rows = (await s.execute(text("""
            SELECT x.t, extract(epoch FROM (SELECT min(m.entered_at) FROM segment_memberships m
                     WHERE m.tenant_id = :t AND m.customer_id = x.c AND m.entry_cause = 'change'
                       AND m.entered_at >= to_timestamp(x.b)))
              FROM unnest(CAST(:cs AS uuid[]), CAST(:bs AS float8[]), CAST(:ts AS float8[])) AS x(c, b, t)"""),
            {"t": tenant_id, "cs": [c for c, _, _ in commits], "bs": [b for _, b, _ in commits],
             "ts": [t for _, _, t in commits]})).all()
    # an evaluation may even land before record_order has returned: 0 then
    latencies = [max(0.0, float(entered) - committed) * 1000 for committed, entered in rows if entered is not None]

    started = time.perf_counter()
    moved = 0
    for seg in segments:
        r = await refresh.refresh(tenant_id, seg.id)
        moved += r.entered + r.exited
    full = time.perf_counter() - started

    achieved = len(commits) / load_s
    print("\n| figure | value |\n| --- | --- |")
    for name, value in [
        ("customers, segments", f"{args.customers:,}, {args.segments}"),
        ("orders recorded (rate achieved)", f"{len(commits):,} ({achieved:.0f}/s of {args.rate}/s asked)"),
        ("orders that moved their customer into a segment", f"{len(latencies):,}"),
        ("commit → membership row, p50 / p99", f"{pct(latencies, 0.5):.0f} ms / {pct(latencies, 0.99):.0f} ms"),
        ("customers evaluated (per second)", f"{evaluated[0]:,} ({evaluated[0] / load_s:.0f}/s)"),
        ("evaluation time per evaluated customer", f"{busy[0] / max(1, evaluated[0]) * 1000:.2f} ms"),
        ("still queued at the end", f"{left}"),
        ("first build, all segments (full refresh)", f"{first_build:.2f} s"),
        ("full refresh of all segments after the load", f"{full:.2f} s ({full / args.segments * 1000:.0f} ms each)"),
        ("... memberships it changed (must be 0)", f"{moved}"),
    ]:
        print(f"| {name} | {value} |")
    if latencies:
        print(f"\nlatency mean {statistics.mean(latencies):.0f} ms, max {max(latencies):.0f} ms")
    return 0 if moved == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--rate", type=int, default=50, help="orders per second, all clients together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--evaluators", type=int, default=2)
    parser.add_argument("--debounce-ms", type=int, default=100, help="an evaluator's pause after a batch that was "
                                                                     "not full (LIVE_SEGMENT_DEBOUNCE_MS)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    args.where = _env.bootstrap()
    print(f"database: {args.where}", flush=True)
    try:
        code = asyncio.run(run(args))
    finally:
        _env.shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
