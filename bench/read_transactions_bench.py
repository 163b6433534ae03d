"""Transactions, round trips and throughput of two read queries, for two source trees.

    git archive main | tar -x -C /tmp/baseline                                       # main's code, apart
    .venv/bin/python bench/read_transactions_bench.py --baseline /tmp/baseline       # this tree against it
    .venv/bin/python bench/read_transactions_bench.py --baseline /tmp/baseline --seconds 10 --rounds 3

The queries, against a tenant of 50 customers, each with a tag and an order (so a profile):

* ``list``: ``customers(first: 50) { edges { node { id email tags { name } profile { totalOrderValueCents } } } }``
* ``brands``: ``{ brands { id name } }``

1. **Per request**, in this process (the app of each tree through httpx's ASGI transport, after
   a warm-up): transactions (BEGINs) and round trips to PostgreSQL, counted on asyncpg's
   connection (simple queries such as BEGIN and COMMIT, statement preparations, executions of
   prepared statements). The request's authentication (a JWT: the member's row) is measured
   apart with ``{ __typename }`` and included in the totals.
2. **One round trip less?** Directly on asyncpg, as the app role: a transaction as
   ``tenant_session`` runs it (``BEGIN``, the prepared ``set_config``, one prepared ``SELECT``,
   ``COMMIT``) against the same with ``BEGIN; SELECT set_config(...)`` sent as one simple-protocol
   script (``--transactions`` of each, interleaved in batches): what merging the two would save.
3. **Throughput**: ``brandgraph serve`` (one process, the default pool) of each tree in turn, on
   the same database, loaded with ``wrk -t2 -c20 -d<seconds>s`` (``/usr/bin/wrk``, a Lua script
   that POSTs the query with an ``Authorization`` header); baseline and this tree alternate
   ``--rounds`` times per query, and the ratio of their medians is reported (the machine is
   shared: compare ratios, not absolute figures).
4. **Latency**, both servers up at once, one client alternating between them request by request
   (``--latency`` requests each), so that the machine's load falls on both alike: the medians
   and their ratio.

Environment as the other benches (``bench/_env.py``), under ``.brandgraph/bench`` unless
``BENCH_DATA_DIR`` (or ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``) says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

CUSTOMERS = 50
QUERIES = {
    "list": "{ customers(first: 50) { edges { node { id email tags { name } profile { totalOrderValueCents } } } } }",
    "brands": "{ brands { id name } }",
}
AUTH_ONLY = "{ __typename }"

COUNT_SCRIPT = r"""
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
import asyncpg, httpx
from asyncpg.connection import Connection
from asyncpg.prepared_stmt import PreparedStatement

counts = {"begin": 0, "round_trips": 0}

def counting(cls, name, begin=False):
    original = getattr(cls, name)
    async def wrapper(self, *args, **kwargs):
        counts["round_trips"] += 1
        if begin and args and isinstance(args[0], str) and args[0].lstrip().upper().startswith("BEGIN"):
            counts["begin"] += 1
        return await original(self, *args, **kwargs)
    setattr(cls, name, wrapper)

counting(Connection, "execute", begin=True)   # simple queries: BEGIN, COMMIT, ROLLBACK, scripts
counting(Connection, "prepare")               # a statement not yet in SQLAlchemy's per-connection cache
counting(Connection, "executemany")
counting(PreparedStatement, "fetch")          # every statement SQLAlchemy runs

from graph.app import create_app

async def main():
    queries, token, n = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    app = create_app()
    out = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        for name, query in queries.items():
            for _ in range(3):  # warm-up: prepared statements, type introspection
                r = await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200 and not r.json().get("errors"), r.text[:500]
            counts.update(begin=0, round_trips=0)
            for _ in range(n):
                await http.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
            out[name] = {k: v / n for k, v in counts.items()}
    print(json.dumps(out))

asyncio.run(main())
"""


async def fill() -> str:
    """The tenant; returns an owner token."""
    from datetime import UTC, datetime, timedelta

    from domain.commerce.service import OrderInput, record_order
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers
    from domain.tenancy.auth import mint_token

    owner, brand_id = await _env.setup_tenant("Read transactions bench")
    tag = await create_tag(owner, {"name": "VIP"})
    ids = []
    for i in range(CUSTOMERS):
        c, _ = await upsert_customer(owner, {"email": f"c{i}@bench.test", "first_name": f"C{i}"}, brand_id=brand_id)
        ids.append(c.id)
        await record_order(owner, OrderInput(brand_id=brand_id, external_order_id=f"o{i}", total_cents=1000 + i,
                                             currency="EUR", placed_at=datetime.now(UTC) - timedelta(days=i),
                                             customer_id=c.id))
    await tag_customers(owner, ids, [tag.id])
    return mint_token(owner.tenant_id, owner.id, owner.label)


def count(tree: Path, token: str, n: int) -> dict[str, dict[str, float]]:
    queries = {"auth": AUTH_ONLY, **QUERIES}
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    out = subprocess.run([sys.executable, "-c", COUNT_SCRIPT, str(tree / "src"), json.dumps(queries), token, str(n)],
                         cwd=tree, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


async def merged_begin(n: int) -> tuple[float, float]:
    """Microseconds per transaction: BEGIN and set_config apart, then as one script."""
    import uuid

    import asyncpg

    from domain.config import asyncpg_url, get_settings

    url = asyncpg_url(get_settings().app_database_url()).replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    tid = str(uuid.uuid4())
    setting = await conn.prepare("select set_config('app.tenant_id', $1, true)")
    select = await conn.prepare("select 1")

    async def apart() -> None:
        await conn.execute("BEGIN;")
        await setting.fetch(tid)
        await select.fetch()
        await conn.execute("COMMIT;")

    async def merged() -> None:
        await conn.execute(f"BEGIN; SELECT set_config('app.tenant_id', '{tid}', true);")
        await select.fetch()
        await conn.execute("COMMIT;")

    times: dict[str, list[float]] = {"apart": [], "merged": []}
    try:
        for _ in range(max(1, n // 100)):
            for name, run in (("apart", apart), ("merged", merged)):
                started = time.perf_counter()
                for _ in range(100):
                    await run()
                times[name].append((time.perf_counter() - started) / 100 * 1e6)
    finally:
        await conn.close()
    return statistics.median(times["apart"]), statistics.median(times["merged"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def api_server(tree: Path, name: str):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(_env.DATA_DIR / f"reads-api-{name}.log", "wb")  # noqa: SIM115
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_POOL_SIZE"},
           "PUBLIC_URL": base, "PYTHONPATH": str(tree / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "brandgraph", "serve", "--port", str(port)],
                            cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def wrk(base: str, query: str, token: str, seconds: float) -> float:
    body = json.dumps({"query": query})
    script = (f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
              f'wrk.headers["Content-Type"] = "application/json"\n'
              f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        r = httpx.post(f"{base}/graphql", content=body, headers={"Content-Type": "application/json",
                                                                  "Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and not r.json().get("errors"), r.text[:500]
        out = subprocess.run(["/usr/bin/wrk", "-t2", "-c20", f"-d{seconds:g}s", "-s", f.name, f"{base}/graphql"],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    if "Non-2xx" in out:
        raise RuntimeError("wrk saw failed responses:\n" + out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main(args: argparse.Namespace) -> None:
    trees = {"baseline": Path(args.baseline).resolve(), "this tree": _env.ROOT}
    token = asyncio.run(fill())
    print(f"{CUSTOMERS} customers, each with a tag and an order; baseline {trees['baseline']}, this tree {_env.ROOT}")

    print(f"\nper request (mean of {args.requests}; totals include the authentication):")
    print(f"{'query':8} {'tree':10} {'transactions':>12} {'round trips':>12}")
    for label, tree in trees.items():
        counts = count(tree, token, args.requests)
        for name in ("auth", *QUERIES):
            c = counts[name]
            print(f"{name:8} {label:10} {c['begin']:12.1f} {c['round_trips']:12.1f}")

    apart, merged = asyncio.run(merged_begin(args.transactions))
    print(f"\nBEGIN and set_config apart: {apart:.0f} us per transaction; as one script: {merged:.0f} us "
          f"(saves {apart - merged:.0f} us, {(apart - merged) / apart:.0%})")

    if args.skip_wrk:
        return
    print(f"\nthroughput, wrk -t2 -c20 -d{args.seconds:g}s, {args.rounds} rounds alternating (requests/s):")
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            with api_server(tree, label.replace(" ", "-")) as base:
                for name, query in QUERIES.items():
                    rates.setdefault((name, label), []).append(wrk(base, query, token, args.seconds))
    for name in QUERIES:
        before, after = rates[(name, "baseline")], rates[(name, "this tree")]
        print(f"{name:8} baseline {' '.join(f'{x:7.0f}' for x in before)}   this tree "
              f"{' '.join(f'{x:7.0f}' for x in after)}   ratio of medians "
              f"{statistics.median(after) / statistics.median(before):.2f}")

    print(f"\nlatency, one client alternating between the two servers ({args.latency} requests each):")
    with api_server(trees["baseline"], "baseline") as base_a, api_server(_env.ROOT, "this-tree") as base_b:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=60, headers=headers) as http:
            for name, query in QUERIES.items():
                times: dict[str, list[float]] = {"baseline": [], "this tree": []}
                for i in range(args.latency + 5):
                    for label, base in (("baseline", base_a), ("this tree", base_b)):
                        started = time.perf_counter()
                        r = http.post(f"{base}/graphql", json={"query": query})
                        elapsed = time.perf_counter() - started
                        assert r.status_code == 200 and not r.json().get("errors"), r.text[:500]
                        if i >= 5:  # warm-up
                            times[label].append(elapsed)
                before, after = statistics.median(times["baseline"]), statistics.median(times["this tree"])
                print(f"{name:8} baseline p50 {before * 1000:6.1f} ms   this tree p50 {after * 1000:6.1f} ms   "
                      f"ratio {after / before:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="the source tree to compare with (its src/ is used)")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--skip-wrk", action="store_true", help="the counts and the round trip only")
    parsed = parser.parse_args()
    _env.bootstrap()
    try:
        main(parsed)
    finally:
        _env.shutdown()
