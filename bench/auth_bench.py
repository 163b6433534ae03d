"""What authentication costs a request: SQL statements and throughput with and without the
authentication cache.

One real API server (``brandgraph serve``, one process, the default connection pool) per
variant, run one after the other against the same database, each asked
``{ viewer { tenant { name } } }`` (``--query``) with an API key (and ``X-Brand-Id`` with
``--brand``):

1. **Statements**: ``extensions.sqlStatements`` of the first request and of a later one (the
   count covers the whole request, authentication included).
2. **One at a time**: the median wall time of 300 requests sent one after the other.
3. **Throughput**: ``wrk -t2 -c20 -d10s`` (``--threads``, ``--connections``, ``--seconds``) with
   a Lua script that POSTs the query: requests/s and latency p50 / p99.

Variants: ``cache`` (this tree), ``no-cache`` (this tree with ``AUTH_CACHE_SECONDS=0``: every
request authenticates against the database, usage still batched) and, with ``--baseline DIR``,
``baseline``: another revision's ``src/`` (e.g. ``git archive main | tar -x -C /tmp/base``),
whose statement count may cover the operation only. ``--rounds`` runs the variants in turn that
many times; the figures are each variant's median, and ratios against the first variant.

    .venv/bin/python bench/auth_bench.py --baseline /tmp/base/src
    .venv/bin/python bench/auth_bench.py --rounds 3 --brand

Environment as the other benches (``bench/_env.py``): an embedded PostgreSQL and Redis under
``.brandgraph/bench`` (``BENCH_DATA_DIR`` to move it) unless ``BENCH_DATABASE_URL`` /
``BENCH_REDIS_URL`` are set. Needs ``wrk`` on the PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

QUERY = "{ viewer { tenant { name } } }"
SEQUENTIAL = 300  # requests one at a time, for the latency of one request on its own


async def setup() -> tuple[str, str]:
    """A tenant with one brand and a marketer API key: (the key, the brand's id)."""
    from domain.tenancy.api_keys import create_api_key

    owner, brand_id = await _env.setup_tenant("Auth bench")
    _, secret = await create_api_key(owner, "bench", "marketer")
    return secret, str(brand_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def api_server(name: str, src: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(_env.DATA_DIR / f"auth-bench-{name}.log", "wb")  # noqa: SIM115
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_POOL_SIZE"}
    environ.update({"PYTHONPATH": str(src), "GRAPHQL_SQL_STATS": "1", "PUBLIC_URL": base, **env})
    proc = subprocess.Popen([sys.executable, "-m", "brandgraph", "serve", "--port", str(port)],
                            cwd=src.parent, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the API server ({name}) exited; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API server ({name}) did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def statements(base: str, headers: dict[str, str], query: str) -> tuple[int, int]:
    """sqlStatements of the first request, and of one after the cache has had time to fill."""
    def ask() -> int:
        r = httpx.post(f"{base}/graphql", json={"query": query}, headers=headers, timeout=10)
        r.raise_for_status()
        body = r.json()
        assert not body.get("errors"), body
        return int(body["extensions"]["sqlStatements"])

    first = ask()
    later = first
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the listener needs a moment after start-up
        later = ask()
        if later < first:
            break
        time.sleep(0.05)
    return first, later


def one_at_a_time(base: str, headers: dict[str, str], query: str) -> float:
    """Median milliseconds of one request alone."""
    times = []
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            http.post("/graphql", json={"query": query}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def wrk(base: str, headers: dict[str, str], args: argparse.Namespace, script: Path) -> dict[str, float]:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(json.dumps({'query': args.query}))}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
                          "-s", str(script), f"{base}/graphql"], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed responses:\n{out}")

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rate, "p50": pct("50"), "p99": pct("99")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another revision's src/ directory, run as 'baseline'")
    parser.add_argument("--brand", action="store_true", help="send X-Brand-Id too")
    parser.add_argument("--query", default=QUERY)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not on the PATH")
    where = _env.bootstrap()
    try:
        secret, brand_id = asyncio.run(setup())
        headers = {"Authorization": f"Bearer {secret}"}
        if args.brand:
            headers["X-Brand-Id"] = brand_id
        here = _env.ROOT / "src"
        variants: list[tuple[str, Path, dict[str, str]]] = []
        if args.baseline:
            variants.append(("baseline", args.baseline.resolve(), {}))
        variants += [("no-cache", here, {"AUTH_CACHE_SECONDS": "0"}), ("cache", here, {})]
        script = _env.DATA_DIR / "auth-bench.lua"  # holds the key: removed at the end
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
        counts: dict[str, tuple[int, int]] = {}
        print(f"{where}; wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, {args.query}"
              f"{' with X-Brand-Id' if args.brand else ''}, {args.rounds} round(s)")
        try:
            for _ in range(args.rounds):
                for name, src, env in variants:
                    with api_server(name, src, env) as base:
                        counts[name] = statements(base, headers, args.query)
                        alone = one_at_a_time(base, headers, args.query)
                        results[name].append({"alone": alone, **wrk(base, headers, args, script)})
                        print(f"  {name:9} {results[name][-1]}", flush=True)
        finally:
            script.unlink(missing_ok=True)
        first = variants[0][0]
        ref = statistics.median(r["rps"] for r in results[first])
        print(f"\n{'variant':9} {'statements (first, later)':>26} {'alone ms':>9} {'req/s':>9} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'req/s vs ' + first:>18}")
        for name, _, _ in variants:
            rps = statistics.median(r["rps"] for r in results[name])
            p50 = statistics.median(r["p50"] for r in results[name])
            p99 = statistics.median(r["p99"] for r in results[name])
            alone = statistics.median(r["alone"] for r in results[name])
            print(f"{name:9} {str(counts[name]):>26} {alone:9.2f} {rps:9.0f} {p50:8.2f} {p99:8.2f} {rps / ref:17.2f}x")
    finally:
        _env.shutdown()


if __name__ == "__main__":
    main()
