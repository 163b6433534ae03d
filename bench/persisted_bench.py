"""Persisted bench: a small query sent by its hash (Apollo's automatic persisted queries) beside
the same query sent in full, on one server, in alternating rounds.

    .venv/bin/python bench/persisted_bench.py                 # 5 rounds of 10 s per form (~3 min)
    .venv/bin/python bench/persisted_bench.py --rounds 3 -d 5 # quicker

Setup as ``bench/api_bench.py`` (the same seed, an embedded PostgreSQL and Redis under
``.brandgraph/bench-api`` or ``BENCH_DATABASE_URL`` / ``BENCH_REDIS_URL``), current code only,
one API process (``--workers``), throttling off (``API_THROTTLING=0``: both forms would pay the
same bucket call; its cost is ``bench/cost_bench.py``'s). The hash is registered once (query +
hash), then each round runs ``wrk`` on the hash-only body and on the full body, in turn (the
order flips each round). Reported: requests/s and p50 / p99 per form (median of the rounds),
and the ratio persisted / full of requests/s per round.

The last line of stdout is the figures as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
from pathlib import Path

import api_bench as ab

QUERY = "{ viewer { tenant { name } } }"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("-t", "--threads", type=int, default=2)
    parser.add_argument("-c", "--connections", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    persisted = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    full = {"query": QUERY}

    server_url, redis_url, where = ab.start_services()
    print(f"servers: {where}", flush=True)
    side = ab.Side("current", ab.current_label(), ab.ROOT, "brandgraph_persisted_bench")
    try:
        ab.seed_side(side, server_url, redis_url)
        env = {**side.env(server_url, redis_url), "WEB_CONCURRENCY": str(args.workers), "API_THROTTLING": "0"}
        server = ab.Server("persisted", ["-m", "brandgraph", "serve"], env, side.tree)
        try:
            import httpx

            headers = {"Authorization": f"Bearer {side.api_key}"}
            miss = httpx.post(f"{server.base}/graphql", json=persisted, headers=headers, timeout=30).json()
            assert miss["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND", miss
            stored = httpx.post(f"{server.base}/graphql", json={**full, **persisted}, headers=headers, timeout=30)
            assert stored.status_code == 200 and "errors" not in stored.json(), stored.text
            hit = httpx.post(f"{server.base}/graphql", json=persisted, headers=headers, timeout=30).json()
            assert hit["data"] == stored.json()["data"], hit

            forms = {"persisted": persisted, "full": full}
            for body in forms.values():  # warm up both
                ab.wrk(server.base, side.api_key, QUERY, args.threads, args.connections, 3, body=body)
            runs: dict[str, list[ab.WrkResult]] = {"persisted": [], "full": []}
            for r in range(args.rounds):
                order = ["persisted", "full"] if r % 2 == 0 else ["full", "persisted"]
                for name in order:
                    result = ab.wrk(server.base, side.api_key, QUERY, args.threads, args.connections,
                                    args.duration, body=forms[name])
                    if result.errors:
                        raise RuntimeError(f"{name}: {result.errors} errors in round {r + 1}")
                    runs[name].append(result)
                    print(f"  round {r + 1} {name:9} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                          f"p99 {result.p99_ms:6.2f} ms", flush=True)
        finally:
            server.stop()
    finally:
        if ab._embedded is not None:
            ab._embedded.stop()

    ratios = [p.rps / f.rps for p, f in zip(runs["persisted"], runs["full"], strict=True)]
    figures = {name: {"rps": statistics.median(x.rps for x in rs), "p50_ms": statistics.median(x.p50_ms for x in rs),
                      "p99_ms": statistics.median(x.p99_ms for x in rs)} for name, rs in runs.items()}
    figures["ratio_persisted_to_full"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    print(f"\n{side.label}, {args.workers} API process(es), wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration:g}s x {args.rounds} rounds")
    for name in ("persisted", "full"):
        f = figures[name]
        print(f"  {name:9} {f['rps']:8.0f} req/s  p50 {f['p50_ms']:6.2f} ms  p99 {f['p99_ms']:6.2f} ms")
    rt = figures["ratio_persisted_to_full"]
    print(f"  persisted / full requests/s: {rt['median']:.3f} (rounds {rt['min']:.3f}-{rt['max']:.3f})")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.path.insert(0, str(ab.ROOT / "src"))
    os.environ.setdefault("BENCH_DATA_DIR", str(ab.ROOT / ".brandgraph" / "bench-api"))
    ab.DATA_DIR = Path(os.environ["BENCH_DATA_DIR"]).resolve()
    ab.LOGS = ab.DATA_DIR / "logs"
    ab.LOGS.mkdir(parents=True, exist_ok=True)
    main()
