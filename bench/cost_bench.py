"""What query cost and throttling add to a request: the static cost (from its cache, and computed
afresh) and one leaky-bucket round trip (EVALSHA of the one Lua script) to Redis.

    .venv/bin/python bench/cost_bench.py                 # embedded Redis under .brandgraph/bench
    BENCH_REDIS_URL=redis://127.0.0.1:6379/15 .venv/bin/python bench/cost_bench.py
    .venv/bin/python bench/cost_bench.py --rounds 20000

Prints the median and p99 of each, in microseconds, and their sum for a request (cost from its
cache + one bucket take), against the target of 300 µs. Takes a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

QUERY = """query Customers($n: Int!, $after: String) {
  customers(first: $n, after: $after) {
    edges { node { id name email tags { id name } orders(first: 5) { edges { node { id totalCents } } } } }
    pageInfo { hasNextPage endCursor }
  }
  viewer { role tenant { name } }
}"""


def _quantiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples) * 1e6, samples[int(len(samples) * 0.99) - 1] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    embedded = None
    redis_url = os.environ.get("BENCH_REDIS_URL")
    if not redis_url:
        from brandgraph.embedded import EmbeddedServices

        embedded = EmbeddedServices(Path(os.environ.get("BENCH_DATA_DIR") or ROOT / ".brandgraph" / "bench"))
        redis_url = embedded.start(database=False, redis=True)["REDIS_URL"]
    os.environ.update({"REDIS_URL": redis_url, "BRANDGRAPH_ENV": "test", "LOG_LEVEL": "WARNING"})
    try:
        asyncio.run(_run(args.rounds))
    finally:
        if embedded is not None:
            embedded.stop()


async def _run(rounds: int) -> None:
    from graphql import parse

    from domain.config import get_settings
    from domain.plans import bucket
    from graph import cost
    from graph.schema import build_schema

    get_settings.cache_clear()
    schema = build_schema()._schema
    document = parse(QUERY)
    variables = {"n": 20, "after": None}
    print(f"query cost {cost.static_cost(schema, document, None, variables, QUERY)} "
          f"(20 customers, their tags and 5 orders each)")

    cached, cold = [], []
    for i in range(rounds):
        t = time.perf_counter()
        cost.static_cost(schema, document, None, {"n": 20, "after": f"c{i}"}, QUERY)  # after sizes nothing
        cached.append(time.perf_counter() - t)
    for _ in range(max(200, rounds // 10)):
        t = time.perf_counter()
        cost.static_cost(schema, document, None, variables)  # no text: never cached
        cold.append(time.perf_counter() - t)

    key = f"bench:{uuid.uuid4()}"
    await bucket.take(key, 1, 10_000_000, 1_000_000)  # loads the script, opens the connection
    takes = []
    for _ in range(rounds):
        t = time.perf_counter()
        status = await bucket.take(key, 141, 10_000_000, 1_000_000)
        takes.append(time.perf_counter() - t)
        assert status.taken
    await bucket.close()

    rows = [("static cost, from its cache", *_quantiles(cached)), ("static cost, computed", *_quantiles(cold)),
            ("bucket take (EVALSHA round trip)", *_quantiles(takes))]
    for name, p50, p99 in rows:
        print(f"{name:36} p50 {p50:8.1f} µs   p99 {p99:8.1f} µs")
    total = rows[0][1] + rows[2][1]
    print(f"{'per request (cached cost + take)':36} p50 {total:8.1f} µs   target 300 µs: "
          f"{'met' if total <= 300 else 'NOT met'}")


if __name__ == "__main__":
    main()
