"""Customers bench: the customer import's rate, and the timeline's first page at scale.

    .venv/bin/python bench/customers_bench.py            # 100k customers, 1M orders, 1M events
    .venv/bin/python bench/customers_bench.py --quick    # 10k / 100k / 100k
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/customers_bench.py

1. A new tenant imports ``--customers`` customers from one CSV through the import path the
   worker runs (``domain.imports.customers.import_customers``: parse, validate, COPY, set-based
   merge, consents, tags, timeline), timed end to end; then the same file again (every row
   matched, nothing changes).
2. ``--orders`` orders and ``--events`` timeline events are bulk-filled with generate_series (as
   the app role, under row-level security). Events spread over the customers (~10 each) but a few
   "heavy" customers get ~10k each.
3. After VACUUM ANALYZE, ``domain.timeline.service.page(first=20)`` is timed for 200 customers
   (the heavy ones included): p50 and p95, server side; then EXPLAIN (ANALYZE, BUFFERS) of the
   first-page query of a heavy customer shows the index range scan.

Targets: import >= 5,000 rows/s; timeline first page p50 <= 5 ms. The import is timed
``--runs`` times (default 5: the first tenant, then as many new tenants importing the same
file) and reported as the median with its range. ``--check`` exits 1 on a regression: the median
import below IMPORT_CHECK (4,000 rows/s) or the page p50 above PAGE_CHECK_MS (10 ms), bounds
beyond the noise of the recorded runs (bench/README.md) that a real regression crosses.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

IMPORT_TARGET = 5_000  # rows/s
PAGE_TARGET_MS = 5.0  # p50
IMPORT_CHECK = 4_000  # rows/s, median of --runs: --check fails below
PAGE_CHECK_MS = 10.0  # p50: --check fails above
HEAVY = 5
HEAVY_EVENTS = 10_000
SAMPLE = 200
FILL_BATCH = 250_000

FIRST = ["Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Gus", "Hana", "Ivo", "Jonas", "Kai", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yara", "Zoe"]
LAST = ["Okafor", "Martin", "Schmidt", "Rossi", "García", "Nakamura", "Kowalski", "Dubois", "Silva", "Johansson",
        "Murphy", "Novak", "Haddad", "Chen", "Brown", "Moreau", "Jensen", "Costa", "Ivanova", "Patel"]
PLACES = [("Denver", "CO", "US", "America/Denver", "en-US"), ("Lyon", None, "FR", "Europe/Paris", "fr-FR"),
          ("Leeds", None, "GB", "Europe/London", "en-GB"), ("Berlin", None, "DE", "Europe/Berlin", "de-DE"),
          ("Osaka", None, "JP", "Asia/Tokyo", "ja-JP"), ("Austin", "TX", "US", "America/Chicago", "en-US"),
          ("Porto", None, "PT", "Europe/Lisbon", "pt-PT"), ("Toronto", "ON", "CA", "America/Toronto", "en-CA")]
TAGS = ["VIP", "Newsletter", "Wholesale", "At risk", "VIP;Newsletter"]


def customers_csv(n: int, seed: int = 7) -> bytes:
    """``n`` plausible customers: every field, consent for about half, tags for a fifth."""
    rnd = random.Random(seed)
    out = ["externalId,email,firstName,lastName,phone,city,state,country,timezone,locale,birthDate,"
           "consent_email,consent_sms,tags,attr.loyalty_tier"]
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        city, state, country, tz, locale = rnd.choice(PLACES)
        out.append(",".join([
            f"cus-{i:07d}", f"{first.lower()}.{last.lower()}.{i}@example.com".encode("ascii", "ignore").decode(),
            first, last, f"+1555{i:07d}", city, state or "", country, tz, locale,
            f"{rnd.randint(1950, 2005)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
            rnd.choice(["yes", "no", "", ""]), rnd.choice(["yes", "", "", ""]),
            rnd.choice(TAGS) if rnd.random() < 0.2 else "", rnd.choice(["gold", "silver", "bronze", ""]),
        ]))
    return ("\n".join(out) + "\n").encode()


async def setup_tenant():
    owner, brand_id = await _env.setup_tenant("Bench Co")
    return owner.tenant_id, brand_id


async def fill(tenant_id: uuid.UUID, brand_id: uuid.UUID, orders: int, events: int, customers: int) -> dict:
    """Orders and timeline events, set-based, in batches (one transaction each)."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    p = {"t": tenant_id, "b": brand_id}
    ids_cte = ("WITH c AS (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM customers "
               "WHERE tenant_id = :t)")
    timings = {}
    started = time.perf_counter()
    for lo in range(1, orders + 1, FILL_BATCH):
        hi = min(orders, lo + FILL_BATCH - 1)
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"""{ids_cte}
                INSERT INTO orders (tenant_id, id, brand_id, customer_id, external_order_id, status, total_cents,
                                    currency, placed_at)
                SELECT cast(:t AS uuid), gen_random_uuid(), cast(:b AS uuid), c.ids[1 + ((g::bigint * 7919) % c.n)::int],
                       'B-' || g, (ARRAY['paid', 'fulfilled', 'placed', 'refunded'])[1 + g % 4],
                       500 + (g * 37) % 20000, 'EUR', now() - ((g::bigint * 104729) % 47000000) * interval '1 second'
                  FROM c, generate_series(cast(:lo AS int), cast(:hi AS int)) AS g"""), {**p, "lo": lo, "hi": hi})
    timings["orders"] = time.perf_counter() - started

    started = time.perf_counter()
    heavy_each = min(HEAVY_EVENTS, events // (2 * HEAVY))
    async with tenant_session(tenant_id) as s:
        heavy = [r[0] for r in (await s.execute(text(
            "SELECT id FROM customers WHERE tenant_id = :t ORDER BY md5(id::text) LIMIT :h"), {**p, "h": HEAVY}))]
        await s.execute(text("""
            INSERT INTO timeline_events (tenant_id, customer_id, occurred_at, id, brand_id, kind, data)
            SELECT cast(:t AS uuid), h.id, now() - g * interval '17 minutes' - random() * interval '1 minute',
                   gen_random_uuid(), cast(:b AS uuid),
                   'event_tracked', jsonb_build_object('name', 'page_viewed', 'properties', jsonb_build_object('n', g))
              FROM unnest(cast(:heavy AS uuid[])) AS h (id), generate_series(1, cast(:each AS int)) AS g"""),
            {**p, "heavy": heavy, "each": heavy_each})
    spread = events - heavy_each * len(heavy)
    kinds = "(ARRAY['event_tracked', 'order_placed', 'message_sent', 'message_opened', 'note_added'])"
    for lo in range(1, spread + 1, FILL_BATCH):
        hi = min(spread, lo + FILL_BATCH - 1)
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"""{ids_cte}
                INSERT INTO timeline_events (tenant_id, customer_id, occurred_at, id, brand_id, kind, data)
                SELECT cast(:t AS uuid), c.ids[1 + ((g::bigint * 7919) % c.n)::int],
                       now() - ((g::bigint * 104729) % 47000000) * interval '1 second',
                       gen_random_uuid(), cast(:b AS uuid), {kinds}[1 + g % 5], jsonb_build_object('n', g)
                  FROM c, generate_series(cast(:lo AS int), cast(:hi AS int)) AS g"""), {**p, "lo": lo, "hi": hi})
    timings["events"] = time.perf_counter() - started
    timings["heavy"] = heavy
    timings["heavy_each"] = heavy_each
    return timings


async def vacuum_analyze() -> float:
    """What autovacuum would have done by the time anyone reads these tables (as the owner)."""
    from sqlalchemy import text

    from domain.config import get_settings
    from domain.platform.db import owner_engine

    started = time.perf_counter()
    engine = owner_engine(get_settings().owner_database_url()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for table in ("customers", "orders", "timeline_events", "customer_brands", "customer_consents"):
                await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def timeline_pages(tenant_id: uuid.UUID, heavy: list[uuid.UUID]) -> dict:
    from sqlalchemy import text

    from domain.pagination import PageRequest
    from domain.platform.db import tenant_session
    from domain.timeline import service as timeline

    async with tenant_session(tenant_id) as s:
        others = [r[0] for r in (await s.execute(text(
            "SELECT id FROM customers WHERE tenant_id = :t ORDER BY md5(id::text || 'sample') LIMIT :n"),
            {"t": tenant_id, "n": SAMPLE - len(heavy)}))]
        sizes = dict((await s.execute(text(
            "SELECT customer_id, count(*) FROM timeline_events WHERE tenant_id = :t AND customer_id = ANY(:ids) "
            "GROUP BY 1"), {"t": tenant_id, "ids": heavy + others})).all())
    sample = heavy + others
    random.Random(3).shuffle(sample)

    async def one(cid: uuid.UUID) -> float:
        started = time.perf_counter()
        page = await timeline.page(tenant_id, cid, timeline.TimelineFilter(), visible_brands=None, page=PageRequest(20))
        elapsed = (time.perf_counter() - started) * 1000
        assert len(page.items) == min(20, sizes.get(cid, 0)), (cid, len(page.items), sizes.get(cid))
        return elapsed

    for cid in sample:  # warm the pool, the caches and the prepared statements
        await one(cid)
    times = {cid: await one(cid) for cid in sample}
    all_ms = sorted(times.values())
    heavy_ms = sorted(times[c] for c in heavy)
    return {
        "n": len(sample), "p50": pct(all_ms, 50), "p95": pct(all_ms, 95), "max": all_ms[-1],
        "heavy_p50": pct(heavy_ms, 50), "heavy_max": heavy_ms[-1],
        "events_per_customer_median": statistics.median(sizes.get(c, 0) for c in others),
        "events_heavy": min(sizes.get(c, 0) for c in heavy) if heavy else 0,
    }


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


async def explain_first_page(tenant_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the very statement ``timeline.page`` runs (as the app role)."""
    from sqlalchemy import select, text
    from sqlalchemy.dialects import postgresql

    from domain.platform.db import tenant_session
    from domain.timeline import service as timeline
    from domain.timeline.models import TimelineEntry

    stmt = (select(TimelineEntry)
            .where(*timeline._conditions(tenant_id, customer_id, timeline.TimelineFilter(), None))
            .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc()).limit(21))
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with tenant_session(tenant_id) as s:
        plan = (await s.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))).scalars().all()
    return sql + "\n\n" + "\n".join(plan)


def table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line]
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


async def run(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from domain.imports.customers import import_customers
    from domain.platform.db import dispose_engine, tenant_session

    tenant_id, brand_id = await setup_tenant()
    print(f"generating {args.customers:,} customers ...", flush=True)
    data = customers_csv(args.customers)
    print(f"importing {len(data) / 1e6:.1f} MB of CSV through the customer import ...", flush=True)
    started = time.perf_counter()
    result = await import_customers(tenant_id, brand_id, data, content_type="text/csv", filename="bench.csv")
    import_s = time.perf_counter() - started
    assert result["created"] == args.customers and result["rejected"] == 0, {k: v for k, v in result.items()
                                                                             if k != "errors"}
    print(f"  {args.customers / import_s:,.0f} rows/s; importing the same file again ...", flush=True)
    started = time.perf_counter()
    again = await import_customers(tenant_id, brand_id, data, content_type="text/csv", filename="bench.csv")
    reimport_s = time.perf_counter() - started
    assert again["created"] == 0 and again["updated"] == args.customers, again
    rates = [args.customers / import_s]
    for n in range(2, args.runs + 1):  # the same file into new tenants: the median and its spread
        other_tenant, other_brand = await setup_tenant()
        started = time.perf_counter()
        other = await import_customers(other_tenant, other_brand, data, content_type="text/csv", filename="bench.csv")
        rates.append(args.customers / (time.perf_counter() - started))
        assert other["created"] == args.customers, {k: v for k, v in other.items() if k != "errors"}
        print(f"  run {n}: {rates[-1]:,.0f} rows/s", flush=True)

    print(f"bulk-filling {args.orders:,} orders and {args.events:,} timeline events ...", flush=True)
    filled = await fill(tenant_id, brand_id, args.orders, args.events, args.customers)
    vacuum_s = await vacuum_analyze()
    print("timing the timeline's first page ...", flush=True)
    pages = await timeline_pages(tenant_id, filled["heavy"])
    plan = await explain_first_page(tenant_id, filled["heavy"][0])
    async with tenant_session(tenant_id) as s:
        totals = dict((await s.execute(text(
            "SELECT 'customers', count(*) FROM customers WHERE tenant_id = :t UNION ALL "
            "SELECT 'orders', count(*) FROM orders WHERE tenant_id = :t UNION ALL "
            "SELECT 'timeline events', count(*) FROM timeline_events WHERE tenant_id = :t"), {"t": tenant_id})).all())
        server = (await s.execute(text("SHOW server_version"))).scalar()
    await dispose_engine()

    import_rate = statistics.median(rates)
    ok_import, ok_page = import_rate >= IMPORT_TARGET, pages["p50"] <= PAGE_TARGET_MS
    regressed = import_rate < IMPORT_CHECK or pages["p50"] > PAGE_CHECK_MS
    print()
    print(f"PostgreSQL {server}, {os.cpu_count()} CPUs; tenant: {totals['customers']:,} customers, "
          f"{totals['orders']:,} orders, {totals['timeline events']:,} timeline events")
    print(table([
        ("measure", "value", "target"),
        (f"customer import (CSV, new customers): median of {len(rates)}",
         f"{import_rate:,.0f} rows/s (range {min(rates):,.0f}-{max(rates):,.0f}; first {import_s:.1f} s)",
         f">= {IMPORT_TARGET:,} rows/s {'OK' if ok_import else 'MISSED'}; --check < {IMPORT_CHECK:,}"),
        ("same file again (all matched)", f"{args.customers / reimport_s:,.0f} rows/s ({reimport_s:.1f} s)", ""),
        ("orders bulk fill", f"{args.orders / filled['orders']:,.0f} rows/s ({filled['orders']:.1f} s)", ""),
        ("timeline bulk fill", f"{args.events / filled['events']:,.0f} rows/s ({filled['events']:.1f} s)", ""),
        ("vacuum analyze", f"{vacuum_s:.1f} s", ""),
        (f"timeline first page, {pages['n']} customers: p50", f"{pages['p50']:.2f} ms",
         f"<= {PAGE_TARGET_MS:g} ms {'OK' if ok_page else 'MISSED'}; --check > {PAGE_CHECK_MS:g} ms"),
        ("  p95 / max", f"{pages['p95']:.2f} / {pages['max']:.2f} ms", ""),
        (f"  {HEAVY} heavy customers (>= {pages['events_heavy']:,} events): p50 / max",
         f"{pages['heavy_p50']:.2f} / {pages['heavy_max']:.2f} ms", ""),
        ("  median events of the other sampled customers", f"{pages['events_per_customer_median']:g}", ""),
    ]))
    print("\nfirst page of a heavy customer:\n" + plan)
    return 1 if regressed and args.check else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="10k customers, 100k orders, 100k events")
    parser.add_argument("--runs", type=int, default=5, help="times the import is timed (median and range)")
    parser.add_argument("--check", action="store_true", help="exit 1 on a regression (IMPORT_CHECK, PAGE_CHECK_MS)")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.orders, args.events = 10_000, 100_000, 100_000
    try:
        print(f"database: {_env.bootstrap()}", flush=True)
        code = asyncio.run(run(args))
    finally:
        _env.shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
