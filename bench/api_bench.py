"""API bench: the request path under load, current code beside a baseline and a bare Strawberry app.

    .venv/bin/python bench/api_bench.py                     # closed loop (wrk), baseline c64b655 (~6 min)
    .venv/bin/python bench/api_bench.py --quick             # shorter runs (~2 min)
    .venv/bin/python bench/api_bench.py --baseline main~5   # another baseline; --baseline none: current only
    .venv/bin/python bench/api_bench.py -t 2 -c 50 -d 30 --workers 2
    .venv/bin/python bench/api_bench.py --fixed-rate 300 --seconds 60      # open loop, serve --workers 2
    .venv/bin/python bench/api_bench.py --find-knee                        # the rate where p99 crosses 100 ms

Setup: an embedded PostgreSQL and Redis under ``.brandgraph/bench-api`` (``BENCH_DATA_DIR``), or
the servers at ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL`` (see ``bench/_env.py``). The
baseline is a ``git worktree add --detach`` of ``--baseline`` in a temporary folder (removed at
the end). Each side (baseline, current) gets a database of its own, created and migrated by its
own code (``domain.platform.migrations.provision`` with ``BRANDGRAPH_ROOT`` at its tree) and
seeded by its own code, identically: the demo tenant (``brandgraph.demo.seed_demo``: 3 brands,
~200 customers per brand with tags, orders and profiles, segments, 2 campaigns per brand),
then 20 more draft campaigns per brand (``domain.campaigns.service.create_campaign``) targeting
one or two of the brand's segments, their ``campaign_stats.sent`` set, and an admin API key
(``domain.tenancy.api_keys.create_api_key``). Every request carries that API key.

Each server is a real process (``python -m brandgraph serve`` with ``WEB_CONCURRENCY=N`` and that
side's ``PYTHONPATH``; the bare app: ``uvicorn bare_app:create_app --workers N``), started alone,
measured, stopped.

Closed loop (default): per query, ``wrk -t T -c C -d D`` (``bench/graphql_post.lua``) after a
``--warmup`` run of the same query. Reported: requests/s, p50 / p99 latency, the ratio to the
bare app's requests/s for the same query, and the SQL statements the query ran
(``extensions.sqlStatements``, the server restarted with ``GRAPHQL_SQL_STATS=1``), min and max
over 10 runs.

Open loop (``--fixed-rate R``): an asyncio client sends a mixed read workload (viewer, brands,
the customers page, one customer's timeline first page, in turn) at R requests/s for
``--seconds``, each request at its planned time; latency runs from the planned time, so a
server that falls behind is not hidden by a client that waits (no coordinated omission).
``--find-knee`` steps the rate (100, 200, 300, 400, 600, 800, ...) and reports the first where
p99 passes 100 ms. Both against ``serve --workers 2`` unless ``--workers`` says otherwise.

The tables are printed; the last line of stdout is the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DEFAULT_BASELINE = "c64b655"
KNEE_MS = 100.0
KNEE_RATES = (25, 50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1600, 2000)
SQL_RUNS = 10
REQUEST_TIMEOUT = 10.0  # seconds; wrk's --timeout too
CONNECTION_LIMIT = 800  # open-loop client; the file limit is raised to fit

QUERIES: list[tuple[str, str]] = [
    ("viewer", "{ viewer { tenant { name } } }"),
    ("brands", "{ brands { id name } }"),
    ("customers", "{ customers(first: 50) { edges { node { id email tags { name } "
                  "profile { totalOrderValueCents } } } } }"),
    ("campaigns", "{ brands { campaigns(first: 20) { edges { node { stats { sent } segments { name } } } } } }"),
]
TIMELINE = ("query($id: ID!) { customer(id: $id) { timeline(first: 20) "
            "{ edges { node { id kind occurredAt } } } } }")

if __name__ == "__main__" and "--seed-into" not in sys.argv:
    os.environ.setdefault("BENCH_DATA_DIR", str(ROOT / ".brandgraph" / "bench-api"))
    DATA_DIR = Path(os.environ["BENCH_DATA_DIR"]).resolve()
    LOGS = DATA_DIR / "logs"


# --- seeding (runs in a child process, with the code of the side it seeds on PYTHONPATH) ------


def seed_child(server_url: str, name: str) -> None:
    """Create database ``name`` fresh, migrate it with this code, seed it; print the API key."""
    from domain.platform.migrations import provision

    provision(server_url, name, fresh=True)
    print("BENCH_SEED " + json.dumps(asyncio.run(seed())), flush=True)


async def seed() -> dict[str, Any]:
    from sqlalchemy import text

    from brandgraph.demo import seed_demo
    from domain.campaigns import service as campaigns
    from domain.platform.db import dispose_engine, tenant_session
    from domain.tenancy import api_keys, members

    try:
        creds = await seed_demo(customers_per_brand=200)
        owner = await members.principal_for_user(creds.tenant_id, creds.owner_id)
        assert owner is not None
        t = creds.tenant_id
        for slug, brand_id in sorted(creds.brand_ids.items()):
            async with tenant_session(t) as s:
                segments = list((await s.execute(text(
                    "SELECT id FROM segments WHERE tenant_id = :t AND brand_id = :b ORDER BY name"),
                    {"t": t, "b": brand_id})).scalars())
            assert segments, f"brand {slug} has no segments"
            for i in range(20):
                await campaigns.create_campaign(owner, brand_id, {
                    "name": f"{slug} bench campaign {i + 1}", "channel": "email",
                    "segment_ids": segments[i % len(segments):i % len(segments) + 1 + i % 2],
                    "content": {"subject": f"News {i + 1}", "html": "<p>Hello {{ customer.first_name }}</p>",
                                "text": "Hello {{ customer.first_name }}"}})
        async with tenant_session(t) as s:
            await s.execute(text("""
                UPDATE campaign_stats st SET sent = 100 + abs(hashtext(c.name)) % 900
                  FROM campaigns c
                 WHERE st.tenant_id = c.tenant_id AND st.campaign_id = c.id
                   AND c.tenant_id = :t AND c.name LIKE '% bench campaign %'"""), {"t": t})
            counts = dict((await s.execute(text(
                "SELECT 'customers', count(*) FROM customers WHERE tenant_id = :t UNION ALL "
                "SELECT 'orders', count(*) FROM orders WHERE tenant_id = :t UNION ALL "
                "SELECT 'campaigns', count(*) FROM campaigns WHERE tenant_id = :t"), {"t": t})).all())
        _, secret = await api_keys.create_api_key(owner, "API bench", "admin")
        return {"api_key": secret, "counts": counts}
    finally:
        await dispose_engine()


# --- environment and processes ------------------------------------------------------------------


_embedded = None


def start_services() -> tuple[str, str, str]:
    """(PostgreSQL server URL as the owner, Redis URL, a description), as bench/_env.py does."""
    global _embedded
    sys.path.insert(0, str(ROOT / "src"))
    server_url = os.environ.get("BENCH_DATABASE_URL")
    redis_url = os.environ.get("BENCH_REDIS_URL")
    where = "PostgreSQL at BENCH_DATABASE_URL"
    if not server_url or not redis_url:
        from brandgraph.embedded import EmbeddedServices

        _embedded = EmbeddedServices(DATA_DIR)
        env = _embedded.start(database=not server_url, redis=not redis_url)
        if not server_url:
            where = f"embedded PostgreSQL under {DATA_DIR}"
        server_url = server_url or env["_BRANDGRAPH_SERVER_URL"]
        redis_url = redis_url or env["REDIS_URL"]
    return server_url, redis_url, where


def base_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_APP_URL", "DATABASE_APP_PASSWORD", "BRANDGRAPH_DATA_DIR", "DATABASE_POOL_SIZE",
                        "GRAPHQL_SQL_STATS", "WEB_CONCURRENCY", "PYTHONPATH", "BRANDGRAPH_ROOT")}
    env.update({"BRANDGRAPH_ENV": "test", "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
                "BRANDGRAPH_SECRET_KEY": "bench-secret-0123456789-0123456789-0123456789"})
    return env


@dataclass
class Side:
    name: str  # "baseline" or "current"
    label: str  # e.g. "baseline c64b655"
    tree: Path
    database: str
    api_key: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def env(self, server_url: str, redis_url: str) -> dict[str, str]:
        from domain.config import with_database

        return {**base_env(redis_url), "PYTHONPATH": str(self.tree / "src"), "BRANDGRAPH_ROOT": str(self.tree),
                "DATABASE_URL": with_database(server_url, self.database)}


class Server:
    """A server process (in its own session), its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = LOGS / f"{name}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen([sys.executable, *args, "--port", str(self.port)], cwd=cwd,
                                     env={**env, "PUBLIC_URL": self.base}, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # serve stops its worker processes, then itself
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # anything left of the group this bench started
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._out.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(side: Side, server_url: str, redis_url: str, workers: int, *, sql_stats: bool = False) -> Server:
    # WEB_CONCURRENCY rather than --workers: uvicorn reads it too, so a baseline older than
    # `serve --workers` runs the same number of processes
    env = {**side.env(server_url, redis_url), "WEB_CONCURRENCY": str(workers)}
    if sql_stats:
        env["GRAPHQL_SQL_STATS"] = "1"
    suffix = "-sql" if sql_stats else ""
    return Server(f"{side.name}{suffix}", ["-m", "brandgraph", "serve"], env, side.tree)


def start_bare(redis_url: str, workers: int, data_file: Path | None) -> Server:
    env = base_env(redis_url)
    if data_file is not None:
        env["BARE_APP_DATA"] = str(data_file)
    return Server("bare", ["-m", "uvicorn", "bare_app:create_app", "--factory", "--app-dir", str(BENCH_DIR),
                           "--workers", str(workers), "--log-level", "warning", "--no-access-log"], env, ROOT)


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def current_label() -> str:
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return f"current {git('rev-parse', '--short', 'HEAD')}{' + changes' if dirty else ''}"


def seed_side(side: Side, server_url: str, redis_url: str) -> None:
    started = time.perf_counter()
    log = LOGS / f"seed-{side.name}.log"
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--seed-into", server_url, side.database],
                            cwd=side.tree, env=side.env(server_url, redis_url), capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_SEED ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"seeding {side.label} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}")
    seeded = json.loads(line.removeprefix("BENCH_SEED "))
    side.api_key, side.counts = seeded["api_key"], seeded["counts"]
    print(f"  {side.label}: migrated and seeded in {time.perf_counter() - started:.0f} s ({side.counts})", flush=True)


# --- one request, for checks and SQL counts -------------------------------------------------------


def post(base: str, api_key: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    import httpx

    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = variables
    resp = httpx.post(f"{base}/graphql", json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    answer = resp.json()
    if resp.status_code != 200 or answer.get("errors"):
        raise RuntimeError(f"{query!r} answered {resp.status_code}: {json.dumps(answer)[:2000]}")
    return answer


def sql_counts(side: Side, server_url: str, redis_url: str, workers: int) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Each query SQL_RUNS times on a server with GRAPHQL_SQL_STATS=1: statement counts, and the data."""
    server = start_api(side, server_url, redis_url, workers, sql_stats=True)
    try:
        counts: dict[str, list[int]] = {}
        data: dict[str, Any] = {}
        for name, query in QUERIES:
            for _ in range(SQL_RUNS):
                answer = post(server.base, side.api_key, query)
                counts.setdefault(name, []).append(answer.get("extensions", {}).get("sqlStatements", -1))
            data[name] = answer["data"]
        return counts, data
    finally:
        server.stop()


# --- closed loop: wrk ----------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(base: str, api_key: str | None, query: str, threads: int, connections: int, seconds: float,
        body: dict[str, Any] | None = None) -> WrkResult:
    """``body``: the request body to send instead of ``{"query": query}``."""
    env = {**os.environ, "BENCH_BODY": json.dumps(body if body is not None else {"query": query}),
           "BENCH_AUTHORIZATION": f"Bearer {api_key}" if api_key else ""}
    cmd = [shutil.which("wrk") or "/usr/bin/wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(BENCH_DIR / "graphql_post.lua"), f"{base}/graphql"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    f = {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
    return WrkResult(requests=f["requests"], seconds=f["duration_us"] / 1e6, p50_ms=f["p50_us"] / 1000,
                     p99_ms=f["p99_us"] / 1000,
                     errors=f["connect"] + f["read"] + f["write"] + f["status"] + f["timeout"])


def closed_loop(server: Server, api_key: str | None, args: argparse.Namespace, label: str) -> dict[str, WrkResult]:
    results = {}
    for name, query in QUERIES:
        if args.warmup > 0:
            wrk(server.base, api_key, query, args.threads, args.connections, args.warmup)
        r = wrk(server.base, api_key, query, args.threads, args.connections, args.duration)
        print(f"  {label:<28} {name:<10} {r.rps:8,.0f} req/s  p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms"
              + (f"  {r.errors} errors" if r.errors else ""), flush=True)
        results[name] = r
    return results


# --- open loop: planned request times -------------------------------------------------------------


class HttpPool:
    """HTTP/1.1 keep-alive connections to one server, opened as needed: a request does not wait
    for another to finish (an open-loop client must not), up to ``limit`` connections at once
    (past that the server is hopelessly behind; the wait still counts in the latency)."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.slots = asyncio.Semaphore(limit)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        async with self.slots:
            return await self._request(raw)

    async def _request(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a kept-alive connection the server just closed: once more, on a new one
            conn = self.idle.pop() if self.idle and not attempt else await self._connect()
            reader, writer = conn
            try:
                writer.write(raw)
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed")
                length, keep = 0, True
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    key, _, value = line.partition(b":")
                    key = key.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"connection" and value.strip().lower() == b"close":
                        keep = False
                body = await reader.readexactly(length)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if attempt:
                    raise
                continue
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append(conn)
            else:
                writer.close()
            return int(status_line.split()[1]), body
        raise AssertionError("unreachable")

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def request_bytes(host: str, port: int, api_key: str, query: str, variables: dict[str, Any] | None = None) -> bytes:
    body = json.dumps({"query": query, **({"variables": variables} if variables else {})}).encode()
    head = (f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nAuthorization: Bearer {api_key}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def mixed_workload(server: Server, api_key: str) -> list[bytes]:
    """viewer, brands, customers page, a customer's timeline; the timeline over 50 customers."""
    customers = post(server.base, api_key, QUERIES[2][1])["data"]["customers"]["edges"]
    ids = [e["node"]["id"] for e in customers]
    post(server.base, api_key, TIMELINE, {"id": ids[0]})  # answers without errors
    requests = []
    for i, cid in enumerate(ids):
        requests.append(request_bytes("127.0.0.1", server.port, api_key, QUERIES[i % 3][1]))
        requests.append(request_bytes("127.0.0.1", server.port, api_key, TIMELINE, {"id": cid}))
    return requests


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def open_loop(server: Server, requests: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pool = HttpPool("127.0.0.1", server.port, CONNECTION_LIMIT)
    latencies: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()
    pending: set[asyncio.Task] = set()
    total = int(rate * seconds)

    async def one(raw: bytes, planned: float) -> None:
        lags.append(loop.time() - planned)
        try:
            status, body = await asyncio.wait_for(pool.request(raw), REQUEST_TIMEOUT)
            if status != 200:
                errors[f"HTTP {status}"] += 1
            elif b'"errors"' in body:
                errors["GraphQL error"] += 1
        except TimeoutError:
            errors["timeout"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            errors[type(exc).__name__] += 1
        latencies.append(loop.time() - planned)

    start = loop.time() + 0.05
    for i in range(total):
        planned = start + i / rate
        delay = planned - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(requests[i % len(requests)], planned))
        pending.add(task)
        task.add_done_callback(pending.discard)
    sending = loop.time() - start
    if pending:
        await asyncio.wait(set(pending))
    elapsed = loop.time() - start
    pool.close()
    ms = [x * 1000 for x in latencies]
    failed = sum(errors.values())
    return {"rate": rate, "seconds": round(elapsed, 1), "sent": total, "sent_per_s": round(total / sending, 1),
            "ok_per_s": round((total - failed) / elapsed, 1), "errors": failed, "error_kinds": dict(errors), "connections": pool.opened,
            "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1), "max_ms": round(max(ms, default=float("nan")), 1),
            "client_lag_p99_ms": round(percentile([x * 1000 for x in lags], 99), 1)}


def run_open_loop(server: Server, requests: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    try:
        import uvloop  # the client's own overhead, as small as it gets (uvicorn uses it too)

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(open_loop(server, requests, rate, seconds))


def print_open(label: str, r: dict[str, Any]) -> None:
    kinds = ", ".join(f"{k} {v}" for k, v in r["error_kinds"].items())
    print(f"  {label:<28} {r['rate']:6,.0f}/s: sent {r['sent']:,} at {r['sent_per_s']:,.0f}/s, answered in "
          f"{r['seconds']} s, errors {r['errors']}"
          f"{' (' + kinds + ')' if kinds else ''}  p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  p99 {r['p99_ms']} ms"
          f"  max {r['max_ms']} ms  (client lag p99 {r['client_lag_p99_ms']} ms)", flush=True)


def fixed_rate(side: Side, server_url: str, redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    server = start_api(side, server_url, redis_url, args.workers)
    out: dict[str, Any] = {}
    try:
        requests = mixed_workload(server, side.api_key)
        warm_rate = (args.fixed_rate or KNEE_RATES[0]) / 2
        run_open_loop(server, requests, warm_rate, args.warmup if args.warmup > 0 else 0)
        if args.find_knee:
            steps = []
            for rate in KNEE_RATES:
                r = run_open_loop(server, requests, rate, args.seconds)
                print_open(side.label, r)
                steps.append(r)
                if r["p99_ms"] > KNEE_MS or r["errors"] > 0.01 * r["sent"]:
                    break
            crossed = next((s for s in steps if s["p99_ms"] > KNEE_MS or s["errors"] > 0.01 * s["sent"]), None)
            under = [s["rate"] for s in steps if s is not crossed and s["p99_ms"] <= KNEE_MS]
            out = {"steps": steps, "knee_rate": crossed["rate"] if crossed else None,
                   "last_under": max(under) if under else None}
        else:
            r = run_open_loop(server, requests, args.fixed_rate, args.seconds)
            print_open(side.label, r)
            out = r
    finally:
        server.stop()
    return out


# --- report --------------------------------------------------------------------------------------


def fmt_sql(counts: list[int] | None) -> str:
    if not counts:
        return "–"
    lo, hi = min(counts), max(counts)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def print_closed_table(results: dict[str, dict[str, WrkResult]], sql: dict[str, dict[str, list[int]]],
                       labels: dict[str, str]) -> None:
    print("\n| query | server | req/s | p50 / p99 | vs. bare Strawberry | SQL statements (min–max of 10) |")
    print("|---|---|---:|---|---:|---|")
    for name, _ in QUERIES:
        bare = results.get("bare", {}).get(name)
        for key in ("bare", "baseline", "current"):
            r = results.get(key, {}).get(name)
            if r is None:
                continue
            ratio = f"{r.rps / bare.rps:.2f}×" if bare and bare.rps and r.requests else "–"
            errors = f" ({r.errors} errors)" if r.errors else ""
            latency = f"{r.p50_ms:.1f} / {r.p99_ms:.1f} ms" if r.requests else "no answer within the run"
            print(f"| `{name}` | {labels[key]} | {r.rps:,.0f}{errors} | {latency} | "
                  f"{ratio} | {fmt_sql(sql.get(key, {}).get(name)) if key != 'bare' else '–'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help=f"git ref to compare with (default {DEFAULT_BASELINE}); 'none' for current only")
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("-c", "--connections", type=int, default=20, help="wrk connections (default 20)")
    parser.add_argument("-d", "--duration", type=float, default=None, help="wrk seconds per query (default 20; --quick 5)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds before each run (default 3; --quick 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="serve --workers (default 1; 2 with --fixed-rate / --find-knee)")
    parser.add_argument("--fixed-rate", type=float, default=None, metavar="R",
                        help="open loop at R requests/s with the mixed workload, instead of wrk")
    parser.add_argument("--seconds", type=float, default=None,
                        help="open-loop seconds (default 60 at --fixed-rate, 15 per --find-knee step; --quick 10 / 5)")
    parser.add_argument("--find-knee", action="store_true", help=f"step the open-loop rate until p99 > {KNEE_MS:.0f} ms")
    parser.add_argument("--quick", action="store_true", help="short runs")
    args = parser.parse_args()
    open_mode = args.fixed_rate is not None or args.find_knee
    if args.duration is None:
        args.duration = 5 if args.quick else 20
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.workers is None:
        args.workers = 2 if open_mode else 1
    if args.seconds is None:
        args.seconds = (5 if args.find_knee else 10) if args.quick else (15 if args.find_knee else 60)
    if args.connections < args.threads:
        parser.error("wrk needs at least as many connections as threads")
    if not open_mode and not shutil.which("wrk") and not Path("/usr/bin/wrk").exists():
        parser.error("wrk is not installed (apt-get install wrk)")

    # a SIGTERM unwinds like Ctrl-C: servers stopped, the baseline worktree removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4 * CONNECTION_LIMIT:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * CONNECTION_LIMIT), hard))
    started = time.perf_counter()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    server_url, redis_url, where = start_services()
    print(f"databases on {where}", flush=True)
    baseline_dir: Path | None = None
    sides: list[Side] = []
    try:
        if args.baseline.lower() != "none":
            baseline_dir = Path(tempfile.mkdtemp(prefix="brandgraph-baseline-"))
            git("worktree", "add", "--detach", str(baseline_dir / "tree"), args.baseline)
            short = git("rev-parse", "--short", f"{args.baseline}^{{commit}}")
            sides.append(Side("baseline", f"baseline {short}", baseline_dir / "tree", "brandgraph_api_bench_base"))
        sides.append(Side("current", current_label(), ROOT, "brandgraph_api_bench"))
        labels = {"bare": "bare Strawberry", **{s.name: s.label for s in sides}}
        print("migrating and seeding (each side with its own code) ...", flush=True)
        for side in sides:
            seed_side(side, server_url, redis_url)

        report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load]},
                                  "sides": {s.name: {"label": s.label, "counts": s.counts} for s in sides},
                                  "workers": args.workers}
        if open_mode:
            what = "--find-knee" if args.find_knee else f"--fixed-rate {args.fixed_rate:g}"
            print(f"\nopen loop {what}, {args.seconds:g} s per rate, serve --workers {args.workers}, "
                  "mixed: viewer, brands, customers page, timeline first page", flush=True)
            report["open_loop"] = {s.name: fixed_rate(s, server_url, redis_url, args) for s in sides}
            if args.find_knee:
                print(f"\n| server | p99 first above {KNEE_MS:.0f} ms at | last rate under |")
                print("|---|---:|---:|")
                for s in sides:
                    k = report["open_loop"][s.name]
                    print(f"| {s.label} | {k['knee_rate'] or 'not reached'} req/s | {k['last_under'] or '–'} req/s |")
            else:
                print("\n| server | sent | errors | p50 | p95 | p99 | max |")
                print("|---|---:|---:|---:|---:|---:|---:|")
                for s in sides:
                    r = report["open_loop"][s.name]
                    print(f"| {s.label} | {r['sent']:,} at {r['sent_per_s']:,.0f}/s | {r['errors']} | {r['p50_ms']} ms "
                          f"| {r['p95_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms |")
        else:
            print(f"\nclosed loop: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s after "
                  f"{args.warmup:g} s warm-up, serve --workers {args.workers}", flush=True)
            results: dict[str, dict[str, WrkResult]] = {}
            sql: dict[str, dict[str, list[int]]] = {}
            bare_data = None
            for side in sides:
                sql[side.name], data = sql_counts(side, server_url, redis_url, args.workers)
                if side.name == "current":
                    bare_data = data
                server = start_api(side, server_url, redis_url, args.workers)
                try:
                    results[side.name] = closed_loop(server, side.api_key, args, side.label)
                finally:
                    server.stop()
            data_file = LOGS / "bare-data.json"
            data_file.write_text(json.dumps(bare_data))
            server = start_bare(redis_url, args.workers, data_file)
            try:
                results["bare"] = closed_loop(server, None, args, labels["bare"])
            finally:
                server.stop()
            print_closed_table(results, sql, labels)
            report["closed_loop"] = {k: {q: {"rps": round(r.rps, 1), "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                                              "errors": r.errors} for q, r in v.items()} for k, v in results.items()}
            report["sql_statements"] = sql
        load = os.getloadavg()
        report["machine"]["load_after"] = [round(x, 2) for x in load]
        print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"whole run {time.perf_counter() - started:.0f} s")
        print(json.dumps(report))
    finally:
        if baseline_dir is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                git("worktree", "remove", "--force", str(baseline_dir / "tree"))
            shutil.rmtree(baseline_dir, ignore_errors=True)
        if _embedded is not None:
            _embedded.stop()


if __name__ == "__main__":
    if "--seed-into" in sys.argv:
        i = sys.argv.index("--seed-into")
        seed_child(sys.argv[i + 1], sys.argv[i + 2])
    else:
        main()
