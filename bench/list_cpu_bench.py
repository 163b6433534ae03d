"""CPU per request of a customer list page, in the API process.

``customers(first: 50) { edges { node { id email tags { name } profile { totalOrderValueCents } } } }``
against a tenant of 50 customers (two tags each, one order each, profiles computed), sent
``--requests`` times one after the other through the ASGI app in this process (httpx's ASGI
transport: no sockets, no second process), after ``--warmup`` requests. Reported: CPU time of
this process per request (``time.process_time``; PostgreSQL runs in its own process and is not
counted) and wall time per request, the median of ``--rounds`` rounds.

    .venv/bin/python bench/list_cpu_bench.py
    .venv/bin/python bench/list_cpu_bench.py --src /path/to/other/checkout/src   # a baseline

``--src`` runs another checkout's code against the same bench, so two versions can be compared
back to back on a busy machine (give the ratio, not the absolute figures). Environment as the
other benches (``bench/_env.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

QUERY = """{ customers(first: 50) { edges { node { id email tags { name } profile { totalOrderValueCents } } } } }"""
CUSTOMERS = 50


async def fill() -> str:
    """The tenant; returns an owner token."""
    from datetime import UTC, datetime, timedelta

    from domain.commerce.service import OrderInput, record_order
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers
    from domain.platform.db import tenant_session
    from domain.profiles.service import refresh
    from domain.tenancy.auth import mint_token

    owner, brand_id = await _env.setup_tenant("List CPU bench")
    tags = [await create_tag(owner, {"name": name}) for name in ("VIP", "Newsletter")]
    ids = []
    for i in range(CUSTOMERS):
        c, _ = await upsert_customer(owner, {"email": f"c{i}@bench.test", "first_name": f"C{i}"}, brand_id=brand_id)
        ids.append(c.id)
        await record_order(owner, OrderInput(brand_id=brand_id, external_order_id=f"o{i}", total_cents=1000 + i,
                                             currency="EUR", placed_at=datetime.now(UTC) - timedelta(days=i),
                                             customer_id=c.id))
    await tag_customers(owner, ids, [t.id for t in tags])
    async with tenant_session(owner.tenant_id) as s:
        await refresh(s, owner.tenant_id, ids)
    return mint_token(owner.tenant_id, owner.id, owner.label)


async def run(args: argparse.Namespace) -> None:
    import httpx

    from graph.app import create_app

    token = await fill()
    app = create_app()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        async def one() -> None:
            r = await client.post("/graphql", json={"query": QUERY}, headers=headers)
            body = r.json()
            assert r.status_code == 200 and not body.get("errors"), body
            edges = body["data"]["customers"]["edges"]
            assert len(edges) == CUSTOMERS and all(len(e["node"]["tags"]) == 2 for e in edges), body

        for _ in range(args.warmup):
            await one()
        gc.collect()
        gc.freeze()  # as the API's lifespan does
        if args.profile:
            import cProfile  # only for --profile
            import pstats  # only for --profile

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.requests):
                await one()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(int(__import__("os").environ.get("BENCH_TOP", "25")))
            return
        cpu, wall = [], []
        for _ in range(args.rounds):
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(args.requests):
                await one()
            cpu.append((time.process_time() - c0) / args.requests * 1000)
            wall.append((time.perf_counter() - w0) / args.requests * 1000)
    print(f"src: {Path(sys.modules['graph.app'].__file__).parents[1]}")
    print(f"CPU per request:  median {statistics.median(cpu):.2f} ms, best {min(cpu):.2f} ms  (rounds: {', '.join(f'{x:.2f}' for x in cpu)})")
    print(f"wall per request: median {statistics.median(wall):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", help="another checkout's src/ to measure instead of this one's")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="print where the CPU goes (cProfile) instead")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    print(_env.bootstrap())
    if args.src:  # again: migrating put this checkout's src/ first
        sys.path.insert(0, str(Path(args.src).resolve()))
    try:
        asyncio.run(run(args))
    finally:
        _env.shutdown()


if __name__ == "__main__":
    main()
