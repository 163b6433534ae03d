"""The heaviest request inside every limit, and what it does to everyone else's.

One query within the limits (30 aliases of ``customers(first: 100)``, each customer with
``orders(first: 100)`` and ``timeline(first: 100)``) against a tenant of 100 customers with 5
orders and 5 timeline events each (``--orders``, ``--events``; 4.7 MB of JSON), sent to a real
API server (``brandgraph serve``, one process, the default connection pool, as in production):

1. **Alone**: its wall time and response size (median of ``--repeat``).
2. **Under load**: ``--clients`` clients send it in a loop while a probe sends a trivial query
   (``{ viewer { role } }``) and ``GET /healthz`` every 50 ms: their latency p50 / p95 / max is how
   long the event loop made a bystander wait. The heavy requests' own times are reported too.

    .venv/bin/python bench/event_loop_bench.py                  # 4 clients, 20 s of load
    .venv/bin/python bench/event_loop_bench.py --clients 8 --seconds 30

Environment as the other benches (``bench/_env.py``): an embedded PostgreSQL and Redis under
``.brandgraph/bench`` (``BENCH_DATA_DIR`` to move it) unless ``BENCH_DATABASE_URL`` /
``BENCH_REDIS_URL`` are set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

CUSTOMERS = 100


def heavy_query(aliases: int) -> str:
    return "{ " + " ".join(
    f"a{i}: customers(first: 100) {{ edges {{ node {{ id email firstName "
    f"orders(first: 100) {{ edges {{ node {{ id totalCents currency status placedAt }} }} }} "
    f"timeline(first: 100) {{ edges {{ node {{ __typename occurredAt }} }} }} }} }} }}"
        for i in range(aliases)) + " }"


TRIVIAL = "{ viewer { role } }"


async def fill(orders: int, events: int) -> tuple[str, str]:
    """A tenant with CUSTOMERS customers, each with ``orders`` orders and ``events`` timeline
    events; returns (an owner token, the owner's e-mail)."""
    from sqlalchemy import text

    from domain.customers.service import upsert_customer
    from domain.platform.db import tenant_session

    owner, brand_id = await _env.setup_tenant("Event loop bench")
    for i in range(CUSTOMERS):
        await upsert_customer(owner, {"email": f"c{i}@bench.test", "first_name": f"C{i}"}, brand_id=brand_id)
    p = {"t": str(owner.tenant_id), "b": str(brand_id), "n": orders, "e": events}
    async with tenant_session(owner.tenant_id) as s:
        await s.execute(text("""
            INSERT INTO orders (tenant_id, id, brand_id, customer_id, external_order_id, status, total_cents,
                                currency, placed_at)
            SELECT c.tenant_id, gen_random_uuid(), cast(:b AS uuid), c.id, c.id || '-' || g, 'paid', 500 + g,
                   'EUR', now() - g * interval '1 hour'
              FROM customers c, generate_series(1, cast(:n AS int)) AS g WHERE c.tenant_id = cast(:t AS uuid)"""), p)
        await s.execute(text("""
            INSERT INTO timeline_events (tenant_id, customer_id, occurred_at, id, brand_id, kind, data)
            SELECT c.tenant_id, c.id, now() - g * interval '17 minutes', gen_random_uuid(), cast(:b AS uuid),
                   'event_tracked', jsonb_build_object('name', 'page_viewed', 'properties', jsonb_build_object('n', g))
              FROM customers c, generate_series(1, cast(:e AS int)) AS g WHERE c.tenant_id = cast(:t AS uuid)"""), p)
    from domain.tenancy.auth import mint_token

    return mint_token(owner.tenant_id, owner.id, owner.label), owner.label


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def api_server():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(_env.DATA_DIR / "event-loop-api.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "brandgraph", "serve", "--port", str(port)],
                            cwd=_env.ROOT, env={**{k: v for k, v in os.environ.items() if k != "DATABASE_POOL_SIZE"},
                                               "PUBLIC_URL": base}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start; see " + log.name)
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def stats(xs: list[float]) -> str:
    if not xs:
        return "no sample completed"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  max {xs[-1] * 1000:7.1f} ms  (n={len(xs)})"


async def main(args: argparse.Namespace, where: str) -> None:
    heavy = heavy_query(args.aliases)
    token, _ = await fill(args.orders, args.events)
    auth = {"Authorization": f"Bearer {token}"}
    with api_server() as base:
        async with httpx.AsyncClient(base_url=base, timeout=600, headers=auth) as http:
            sizes, alone = [], []
            for _ in range(args.repeat + 1):  # the first one warms the caches
                started = time.perf_counter()
                r = await http.post("/graphql", json={"query": heavy})
                print(f"  heavy query alone: {time.perf_counter() - started:.2f} s", flush=True)
                alone.append(time.perf_counter() - started)
                sizes.append(len(r.content))
                body = r.json()
                assert not body.get("errors"), body["errors"][:2]
                edges = body["data"]["a0"]["edges"]
                assert len(edges) == CUSTOMERS and len(edges[0]["node"]["orders"]["edges"]) == args.orders
            alone = alone[1:]
            print(f"database: {where}")
            print(f"heavy query alone: median {statistics.median(alone):.2f} s, "
                  f"{sizes[-1] / 1e6:.1f} MB, {args.aliases} x {CUSTOMERS} customers x "
                  f"({args.orders} orders + {args.events} events)")

            stop = time.monotonic() + args.seconds
            heavy_times: list[float] = []
            trivial: list[float] = []
            health: list[float] = []

            async def heavy_client() -> None:
                async with httpx.AsyncClient(base_url=base, timeout=300, headers=auth) as c:
                    while time.monotonic() < stop:
                        t0 = time.perf_counter()
                        r = await c.post("/graphql", json={"query": heavy})
                        assert r.status_code == 200
                        heavy_times.append(time.perf_counter() - t0)

            async def probe() -> None:
                async with httpx.AsyncClient(base_url=base, timeout=300, headers=auth) as c:
                    await asyncio.sleep(1.0)  # let the heavy clients get going
                    while time.monotonic() < stop:
                        t0 = time.perf_counter()
                        r = await c.post("/graphql", json={"query": TRIVIAL})
                        assert r.json()["data"]["viewer"]["role"] == "OWNER"
                        trivial.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        assert (await c.get("/healthz")).status_code == 200
                        health.append(time.perf_counter() - t0)
                        await asyncio.sleep(0.05)

            await asyncio.gather(probe(), *(heavy_client() for _ in range(args.clients)))
            print(f"under load ({args.clients} clients sending it for {args.seconds:.0f} s):")
            print(f"  heavy query   {stats(heavy_times)}")
            print(f"  trivial query {stats(trivial)}")
            print(f"  /healthz      {stats(health)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--aliases", type=int, default=30)
    parser.add_argument("--orders", type=int, default=5, help="per customer")
    parser.add_argument("--events", type=int, default=5, help="per customer")
    where = _env.bootstrap()
    try:
        asyncio.run(main(parser.parse_args(), where))
    finally:
        _env.shutdown()
