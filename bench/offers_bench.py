"""Offers bench: score every customer of a brand for one event (recommendedCustomers' statement),
against a bare SELECT that reads and sorts the same profile rows, and the brand dashboard.

    .venv/bin/python bench/offers_bench.py                       # 20,000 customers (~30 s)
    .venv/bin/python bench/offers_bench.py --customers 1000000   # the issue's size (minutes)

Setup (``bench/_env.py``; an embedded PostgreSQL under ``.brandgraph/bench-offers`` unless
BENCH_DATA_DIR / BENCH_DATABASE_URL say otherwise; a fresh ``brandgraph_offers_bench``
database, migrated): one tenant, one brand, ``--customers`` customers of that brand, each with a
brand profile whose preferences (genres, types, creators, price range, city, engagement,
watchlist) are deterministic functions of the customer's number, written set-based as the app
role under row-level security; then VACUUM ANALYZE; one event product.

Measured (median of ``--runs``, default 5, after one warm-up call each, in the process: no HTTP):

1. ``domain.offers.service.recommended_customers(first=20, min_score=0)``: the product's load
   and the one statement that scores every customer, counts them and reads the first page;
2. the baseline: one statement that reads the same rows (customer_brands, customers and the
   brand profile) and sorts them by engagement to return 21, with no scoring;
3. ``domain.insights.dashboard.dashboard`` (p50 of 20 calls).

The ratio (1) / (2) is the cost of scoring; the issue's target is <= 3x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("BENCH_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".brandgraph" / "bench-offers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

_env.BENCH_DB = "brandgraph_offers_bench"
BATCH = 250_000
H = "(hashint8(g::bigint * 1000003 + {k}) & 2147483647)"
CUSTOMER_ID = "md5('bench-customer-' || g)::uuid"
GENRES = ["rock", "jazz", "pop", "folk", "techno", "classical", "blues", "hip hop"]
TYPES = ["concert", "festival", "club night", "tasting", "workshop"]
CITIES = ["Lyon", "Paris", "Berlin", "London", "Madrid", "Rome"]


def h(k: int) -> str:
    return H.format(k=k)


def pick(values: list[str], k: int) -> str:
    return "(ARRAY[" + ", ".join(f"'{v}'" for v in values) + f"])[1 + {h(k)} % {len(values)}]"


async def fill(tenant_id, brand_id, customers: int) -> None:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    for lo in range(1, customers + 1, BATCH):
        q = {"t": tenant_id, "b": brand_id, "lo": lo, "hi": min(customers, lo + BATCH - 1)}
        series = "generate_series(cast(:lo AS int), cast(:hi AS int)) AS g"
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"""
                INSERT INTO customers (tenant_id, id, email, city, country, created_at, updated_at)
                SELECT cast(:t AS uuid), {CUSTOMER_ID}, 'c' || g || '@bench.test', {pick(CITIES, 1)}, 'FR', now(), now()
                  FROM {series}"""), q)
            await s.execute(text(f"""
                INSERT INTO customer_brands (tenant_id, brand_id, customer_id, first_seen_at, source)
                SELECT cast(:t AS uuid), cast(:b AS uuid), {CUSTOMER_ID}, now(), 'import' FROM {series}"""), q)
            await s.execute(text(f"""
                INSERT INTO customer_profiles (tenant_id, brand_id, customer_id, total_order_count, engagement_score,
                       churn_risk, last_order_at, genres, types, creators, price_low_cents, price_high_cents, city,
                       country)
                SELECT cast(:t AS uuid), cast(:b AS uuid), {CUSTOMER_ID}, 1 + {h(2)} % 5, {h(3)} % 101, {h(4)} % 101,
                       now() - ({h(5)} % 400) * interval '1 day',
                       ARRAY[{pick(GENRES, 6)}, {pick(GENRES, 7)}], ARRAY[{pick(TYPES, 8)}],
                       ARRAY['Artist ' || ({h(9)} % 50)], 1000 + ({h(10)} % 40) * 100, 3000 + ({h(11)} % 60) * 100,
                       {pick(CITIES, 12)}, 'FR'
                  FROM {series}"""), q)
        print(f"  {q['hi']:,} customers", flush=True)


async def owner_vacuum() -> None:
    from sqlalchemy import text

    from domain.config import get_settings
    from domain.platform.db import owner_engine

    engine = owner_engine(get_settings().owner_database_url()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for t in ("customers", "customer_brands", "customer_profiles", "products"):
                await conn.execute(text(f"VACUUM (ANALYZE) {t}"))
    finally:
        await engine.dispose()


async def baseline(tenant_id, brand_id) -> int:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        rows = (await s.execute(text("""
            SELECT c.*, p.genres, p.types, p.creators, p.price_low_cents, p.price_high_cents, p.city, p.country,
                   p.engagement_score, p.watchlist, count(*) OVER () AS total
              FROM customer_brands cb
              JOIN customers c ON c.tenant_id = cb.tenant_id AND c.id = cb.customer_id
              LEFT JOIN customer_profiles p ON p.tenant_id = cb.tenant_id AND p.brand_id = cb.brand_id
                                           AND p.customer_id = cb.customer_id
             WHERE cb.tenant_id = :t AND cb.brand_id = :b
             ORDER BY p.engagement_score DESC NULLS LAST, c.id LIMIT 21"""), {"t": tenant_id, "b": brand_id})).all()
        return rows[0].total if rows else 0


async def timed(factory, runs: int) -> tuple[list[float], object]:
    await factory()  # warm-up
    out, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = await factory()
        out.append(time.perf_counter() - started)
    return out, result


async def run(args: argparse.Namespace) -> int:
    from domain.commerce.service import ProductAttributes, upsert_product
    from domain.insights import dashboard
    from domain.offers import service as offers
    from domain.platform.db import dispose_engine

    owner, brand_id = await _env.setup_tenant("Offers Bench Co")
    tenant_id = owner.tenant_id
    print(f"filling {args.customers:,} customers and their brand profiles ...", flush=True)
    await fill(tenant_id, brand_id, args.customers)
    product = await upsert_product(owner, "BENCH-FEST", "Bench Festival", brand_id=brand_id, price_cents=4000,
                                   currency="EUR", attributes=ProductAttributes(
                                       kind="event", genres=["rock", "jazz"], product_type="festival",
                                       creators=["Artist 7"], city="Lyon", country="FR"))
    await owner_vacuum()
    scored, page = await timed(lambda: offers.recommended_customers(owner, product.id, first=20), args.runs)
    bare, total = await timed(lambda: baseline(tenant_id, brand_id), args.runs)
    dash, _ = await timed(lambda: dashboard.dashboard(owner, brand_id), 20)
    await dispose_engine()
    s_med, b_med = statistics.median(scored), statistics.median(bare)
    print(f"\ncustomers scored: {page.total_count:,} (baseline rows: {total:,}); top score {page.page.items[0].score}")
    print(f"recommendedCustomers (score all, first 20): median {s_med * 1000:.0f} ms "
          f"(runs: {', '.join(f'{x * 1000:.0f}' for x in scored)})")
    print(f"bare SELECT of the same rows, sorted:       median {b_med * 1000:.0f} ms "
          f"(runs: {', '.join(f'{x * 1000:.0f}' for x in bare)})")
    print(f"ratio: {s_med / b_med:.2f}x (target <= 3x)")
    print(f"dashboard: p50 {statistics.median(dash) * 1000:.1f} ms, max {max(dash) * 1000:.1f} ms (20 calls)")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(_env.bootstrap(), flush=True)
    try:
        code = asyncio.run(run(args))
    finally:
        _env.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
