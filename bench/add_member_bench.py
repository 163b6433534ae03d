"""addMember's time for an address another tenant knows against one nobody knows.

    .venv/bin/python bench/add_member_bench.py            # 300 of each
    .venv/bin/python bench/add_member_bench.py --n 1000 --check

Tenant A has ``n`` members. Tenant B's owner then invites ``n`` of them and ``n`` addresses
known nowhere, interleaved in a shuffled order, each through ``domain.tenancy.members.add_member``
(the function the mutation calls, one transaction each, timed in the process: no HTTP). An
answer that took longer for a known address would tell B that the address exists elsewhere.
``--check`` exits 1 when the medians differ by more than 10 % or 0.3 ms, whichever is larger.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid

import _env


def _summary(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[int(len(xs) * 0.95) - 1]
    return f"{name:24s} median {statistics.median(xs):6.2f} ms   p95 {p95:6.2f} ms   max {xs[-1]:6.2f} ms"


async def run(n: int) -> tuple[float, float]:
    from domain.tenancy import members

    owner_a, _ = await _env.setup_tenant("Bench A")
    owner_b, _ = await _env.setup_tenant("Bench B")
    tag = uuid.uuid4().hex[:8]
    known = [f"known-{tag}-{i}@people.test" for i in range(n)]
    for email in known:
        await members.add_member(owner_a, email, "analyst", name="Known Person")
    unknown = [f"unknown-{tag}-{i}@people.test" for i in range(n)]
    order = [("known", e) for e in known] + [("unknown", e) for e in unknown]
    random.Random(7).shuffle(order)
    for i in range(20):  # warm-up: connections, plans
        await members.add_member(owner_b, f"warm-{tag}-{i}@people.test", "analyst")
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for kind, email in order:
        start = time.perf_counter()
        await members.add_member(owner_b, email, "analyst")
        times[kind].append((time.perf_counter() - start) * 1000)
    print(_summary("known elsewhere", times["known"]))
    print(_summary("known nowhere", times["unknown"]))
    return statistics.median(times["known"]), statistics.median(times["unknown"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    print(_env.bootstrap())
    try:
        known, unknown = asyncio.run(run(args.n))
    finally:
        _env.shutdown()
    gap = abs(known - unknown)
    print(f"median gap {gap:.2f} ms ({gap / min(known, unknown):.1%})")
    if args.check and gap > max(0.3, 0.10 * min(known, unknown)):
        print("FAIL: the answer's time depends on whether the address is known elsewhere")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
