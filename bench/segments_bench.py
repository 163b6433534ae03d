"""Segments bench: preview, first refresh, incremental refresh, against a bare INSERT ... SELECT.

    .venv/bin/python bench/segments_bench.py                  # 1,000,000 customers
    .venv/bin/python bench/segments_bench.py --quick          # 100,000 customers
    .venv/bin/python bench/segments_bench.py --customers 250000 --explain
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/segments_bench.py

Setup (``bench/_env.py``: an embedded PostgreSQL under ``.brandgraph/bench-segments`` unless
BENCH_DATA_DIR / BENCH_DATABASE_URL say otherwise; a fresh ``brandgraph_segments_bench``
database, migrated): one tenant, one brand, ``--customers`` customers of that brand, their
orders (0 to 4 each) and their brand profile computed from the orders, all set-based with
generate_series as the app role under row-level security; then VACUUM ANALYZE.

Every quantity is a deterministic function of the customer's number ``g`` (hashint8), so two
runs build the same shop. The distributions are chosen so that the bench segment

    total_order_value >= 100  AND  last_order_date within_days 365  AND  country in [US, GB, CA, AU]

matches about a third of the customers: 60 % live in those countries, 85 % have ordered, 80 % of
those within the last year, and most of those spent 100 or more.

Measured, in this order:

1. ``domain.segments.inspection.preview(first=20)`` of that definition: median of 5 calls;
2. the first refresh of a new dynamic segment with it (``domain.segments.refresh.refresh``);
3. a second refresh after about 1 % of the profiles changed (qualifying ones drop to 5 EUR
   spent, the others jump to 500 EUR spent today): some enter, some leave;
4. the floor: ``INSERT INTO bench_members SELECT ... FROM (<the compiled member query>)`` into an
   empty regular (logged) table with a unique index on (tenant_id, segment_id, customer_id), the
   same kind of table and key as ``segment_memberships``: median of 3. Also shown: the same
   insert into a copy of ``segment_memberships`` with all its indexes, and the member query alone
   (count).

Target: first refresh <= 2x the bare insert. The first refresh is timed on ``--runs`` new
segments (default 5) and the bare insert ``--runs`` times; the ratio reported is median over
median, with the range of the per-run ratios. ``--check`` exits 1 on a regression: a median
ratio above RATIO_CHECK (2.5x), beyond the noise of the recorded runs (bench/README.md) and
below what one more pass over the members costs (about +1x).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

# a folder (and database name) of its own: other benches may run on the same machine
os.environ.setdefault("BENCH_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".brandgraph" / "bench-segments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

_env.BENCH_DB = "brandgraph_segments_bench"

RATIO_TARGET = 2.0
RATIO_CHECK = 2.5  # median first refresh / median bare insert: --check fails above
BATCH = 250_000
SPEND = 100  # EUR
COUNTRIES = ["US", "GB", "CA", "AU"]
OTHER_COUNTRIES = ["FR", "DE", "ES", "IT", "JP", "BR"]
DEFINITION = {"version": 1, "match": "all", "rules": [
    {"kind": "profile", "field": "total_order_value", "operator": "greater_than_or_equal", "value": SPEND},
    {"kind": "profile", "field": "last_order_date", "operator": "within_days", "value": 365},
    {"kind": "attribute", "field": "country", "operator": "in", "value": COUNTRIES},
]}

# h(k): a deterministic pseudo-random non-negative integer of the customer number g and a salt k
H = "(hashint8(g::bigint * 1000003 + {k}) & 2147483647)"
CUSTOMER_ID = "md5('bench-customer-' || g)::uuid"


def h(k: int) -> str:
    return H.format(k=k)


# --- setup ---------------------------------------------------------------------------------------


async def setup_tenant():
    return await _env.setup_tenant("Segments Bench Co")


async def fill(tenant_id: uuid.UUID, brand_id: uuid.UUID, customers: int) -> dict[str, float]:
    """Customers, their brand link, orders, then profiles aggregated from the orders; in
    batches of customer numbers, one transaction each, as the app role."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    p = {"t": tenant_id, "b": brand_id}
    n_orders = f"(CASE WHEN {h(2)} % 100 < 15 THEN 0 ELSE 1 + {h(3)} % 4 END)"
    last_days = f"(CASE WHEN {h(4)} % 100 < 80 THEN {h(5)} % 364 ELSE 400 + {h(5)} % 1000 END)"
    all_countries = "(ARRAY[" + ", ".join(f"'{c}'" for c in COUNTRIES + OTHER_COUNTRIES) + "])"
    country = (f"(CASE WHEN {h(1)} % 100 < 60 THEN {all_countries}[1 + {h(6)} % {len(COUNTRIES)}] "
               f"ELSE {all_countries}[{len(COUNTRIES) + 1} + {h(6)} % {len(OTHER_COUNTRIES)}] END)")
    timings: dict[str, float] = {"customers": 0.0, "orders": 0.0}
    for lo in range(1, customers + 1, BATCH):
        q = {**p, "lo": lo, "hi": min(customers, lo + BATCH - 1)}
        series = "generate_series(cast(:lo AS int), cast(:hi AS int)) AS g"
        started = time.perf_counter()
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"""
                INSERT INTO customers (tenant_id, id, email, first_name, country, created_at, updated_at)
                SELECT cast(:t AS uuid), {CUSTOMER_ID}, 'c' || g || '@bench.test', 'Customer ' || g, {country},
                       now() - ({h(7)} % 2000) * interval '1 day', now()
                  FROM {series}"""), q)
            await s.execute(text(f"""
                INSERT INTO customer_brands (tenant_id, brand_id, customer_id, first_seen_at, source)
                SELECT cast(:t AS uuid), cast(:b AS uuid), {CUSTOMER_ID}, now(), 'import' FROM {series}"""), q)
        middle = time.perf_counter()
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"""
                INSERT INTO orders (tenant_id, id, brand_id, customer_id, external_order_id, status, total_cents,
                                    currency, placed_at)
                SELECT cast(:t AS uuid), gen_random_uuid(), cast(:b AS uuid), {CUSTOMER_ID}, 'B-' || g || '-' || j,
                       'paid', 2000 + (hashint8(g::bigint * 8 + j) & 2147483647) % 18000, 'EUR',
                       now() - ({last_days} + (j - 1) * 45) * interval '1 day' - ({h(8)} % 86400) * interval '1 second'
                  FROM {series}, LATERAL generate_series(1, {n_orders}) AS j"""), q)
        timings["customers"] += middle - started
        timings["orders"] += time.perf_counter() - middle
        print(f"  {q['hi']:,} customers", flush=True)
    started = time.perf_counter()
    async with tenant_session(tenant_id) as s:
        await s.execute(text("""
            INSERT INTO customer_profiles (tenant_id, brand_id, customer_id, total_order_value_cents, total_order_count,
                   average_order_value_cents, first_order_at, last_order_at, orders_last_365d, purchase_frequency,
                   engagement_score, churn_risk)
            SELECT o.tenant_id, o.brand_id, o.customer_id, sum(o.total_cents), count(*), (avg(o.total_cents))::bigint,
                   min(o.placed_at), max(o.placed_at), count(*) FILTER (WHERE o.placed_at >= now() - interval '365 days'),
                   round(count(*) / greatest(1, extract(epoch FROM now() - min(o.placed_at)) / 2629800.0)::numeric, 3),
                   least(100, 20 * count(*)), CASE WHEN max(o.placed_at) >= now() - interval '365 days' THEN 20 ELSE 80 END
              FROM orders o
             WHERE o.tenant_id = :t AND o.brand_id = :b
             GROUP BY o.tenant_id, o.brand_id, o.customer_id"""), p)
    timings["profiles"] = time.perf_counter() - started
    return timings


async def owner_sql(*statements: str, autocommit: bool = False) -> float:
    """Statements as the schema owner (DDL, VACUUM); returns the time they took."""
    from sqlalchemy import text

    from domain.config import get_settings
    from domain.platform.db import owner_engine

    engine = owner_engine(get_settings().owner_database_url())
    if autocommit:
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    started = time.perf_counter()
    try:
        async with engine.connect() as conn:
            for sql in statements:
                await conn.execute(text(sql))
            if not autocommit:
                await conn.commit()
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def vacuum_analyze() -> float:
    tables = ["customers", "customer_brands", "orders", "customer_profiles", "segment_memberships", "segments"]
    return await owner_sql(*(f"VACUUM (ANALYZE) {t}" for t in tables), autocommit=True)


BARE_TABLES = {
    # the same kind of table as segment_memberships (regular, logged), with its unique key
    "bench_members": """CREATE TABLE bench_members (tenant_id uuid NOT NULL, segment_id uuid NOT NULL,
                          customer_id uuid NOT NULL);
                        CREATE UNIQUE INDEX uq_bench_members ON bench_members (tenant_id, segment_id, customer_id)""",
    # a copy of segment_memberships with every one of its indexes (no row-level security)
    "bench_members_full": "CREATE TABLE bench_members_full (LIKE segment_memberships INCLUDING ALL)",
}


async def create_bare_tables() -> None:
    from domain.config import APP_ROLE

    statements = []
    for name, ddl in BARE_TABLES.items():
        statements += [f"DROP TABLE IF EXISTS {name}", *ddl.split(";"),
                       f"GRANT SELECT, INSERT, DELETE, TRUNCATE ON {name} TO {APP_ROLE}"]
    await owner_sql(*statements)


# --- measures ------------------------------------------------------------------------------------


async def timed(coro_factory, times: int) -> tuple[list[float], object]:
    out, result = [], None
    for _ in range(times):
        started = time.perf_counter()
        result = await coro_factory()
        out.append(time.perf_counter() - started)
    return out, result


async def count_members(tenant_id: uuid.UUID, brand_id: uuid.UUID) -> int:
    from sqlalchemy import func, select

    from domain.platform.db import tenant_session
    from domain.segments import compiler, dsl, service

    group = dsl.parse(DEFINITION)
    async with tenant_session(tenant_id) as s:
        members = compiler.members_select(group, service.scope_for(brand_id, tenant_id)).subquery()
        return await s.scalar(select(func.count()).select_from(members))


async def bare_insert(tenant_id: uuid.UUID, brand_id: uuid.UUID, segment_id: uuid.UUID, table: str) -> int:
    """INSERT INTO <table> SELECT ... FROM (<the compiled member query>), as the app role,
    in a transaction of its own (as a refresh is)."""
    from sqlalchemy import column, insert, literal, select
    from sqlalchemy import table as sql_table
    from sqlalchemy.dialects.postgresql import UUID

    from domain.platform.db import tenant_session
    from domain.segments import compiler, dsl, service

    group = dsl.parse(DEFINITION)
    members = compiler.members_select(group, service.scope_for(brand_id, tenant_id)).subquery()
    target = sql_table(table, column("tenant_id"), column("segment_id"), column("customer_id"))
    stmt = insert(target).from_select(
        ["tenant_id", "segment_id", "customer_id"],
        select(literal(tenant_id, UUID(as_uuid=True)), literal(segment_id, UUID(as_uuid=True)), members.c.customer_id))
    if table == "bench_members_full":
        target = sql_table(table, column("tenant_id"), column("segment_id"), column("customer_id"),
                           column("entered_at"), column("score"))
        stmt = insert(target).from_select(
            ["tenant_id", "segment_id", "customer_id", "entered_at", "score"],
            select(literal(tenant_id, UUID(as_uuid=True)), literal(segment_id, UUID(as_uuid=True)),
                   members.c.customer_id, literal(datetime.now(UTC)), members.c.score))
    async with tenant_session(tenant_id) as s:
        return (await s.execute(stmt)).rowcount


async def bare(tenant_id: uuid.UUID, brand_id: uuid.UUID, table: str, times: int) -> tuple[list[float], int]:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    out, rows = [], 0
    for _ in range(times):
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"TRUNCATE {table}"))
        started = time.perf_counter()
        rows = await bare_insert(tenant_id, brand_id, uuid.uuid4(), table)
        out.append(time.perf_counter() - started)
    return out, rows


async def change_one_percent(tenant_id: uuid.UUID, brand_id: uuid.UUID) -> int:
    """About 1 % of the profiles flip: qualifying ones drop to 5 EUR spent (they leave if in the
    countries), the others jump to 500 EUR spent today (they enter if in the countries)."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        result = await s.execute(text("""
            UPDATE customer_profiles p
               SET total_order_value_cents = CASE WHEN q THEN 500 ELSE 50000 END,
                   last_order_at = CASE WHEN q THEN p.last_order_at ELSE now() END,
                   computed_at = now()
              FROM (SELECT customer_id, total_order_value_cents >= :cents
                                        AND last_order_at >= now() - interval '365 days' AS q
                      FROM customer_profiles
                     WHERE tenant_id = :t AND brand_id = :b AND abs(hashtext(customer_id::text)) % 100 = 0) x
             WHERE p.tenant_id = :t AND p.brand_id = :b AND p.customer_id = x.customer_id"""),
            {"t": tenant_id, "b": brand_id, "cents": SPEND * 100})
        return result.rowcount


async def explain_member_query(tenant_id: uuid.UUID, brand_id: uuid.UUID) -> str:
    from sqlalchemy import func, select, text
    from sqlalchemy.dialects import postgresql

    from domain.platform.db import tenant_session
    from domain.segments import compiler, dsl, service

    members = compiler.members_select(dsl.parse(DEFINITION), service.scope_for(brand_id, tenant_id)).subquery()
    sql = str(select(func.count()).select_from(members).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with tenant_session(tenant_id) as s:
        plan = (await s.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql))).scalars().all()
    return sql + "\n\n" + "\n".join(plan)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line]
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


def s_(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


async def run(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from domain.pagination import PageRequest
    from domain.platform.db import dispose_engine, tenant_session
    from domain.segments import inspection, refresh, service
    from domain.segments.models import SegmentKind

    total_started = time.perf_counter()
    owner, brand_id = await setup_tenant()
    tenant_id = owner.tenant_id
    print(f"filling {args.customers:,} customers, their orders and profiles ...", flush=True)
    filled = await fill(tenant_id, brand_id, args.customers)
    filled["vacuum"] = await vacuum_analyze()
    await create_bare_tables()
    async with tenant_session(tenant_id) as s:
        totals = dict((await s.execute(text(
            "SELECT 'customers', count(*) FROM customers WHERE tenant_id = :t UNION ALL "
            "SELECT 'orders', count(*) FROM orders WHERE tenant_id = :t UNION ALL "
            "SELECT 'profiles', count(*) FROM customer_profiles WHERE tenant_id = :t"), {"t": tenant_id})).all())
        server = (await s.execute(text("SHOW server_version"))).scalar()
        settings = dict((await s.execute(text(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
            "WHERE name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', 'synchronous_commit')"
        ))).all())

    print("1. previewSegment (median of 5) ...", flush=True)
    preview_times, preview = await timed(lambda: inspection.preview(owner, brand_id, DEFINITION, page=PageRequest(20)), 5)
    expected = await count_members(tenant_id, brand_id)
    assert preview.total == expected and len(preview.items) == 20, (preview.total, expected)

    print("2. first refresh of a new dynamic segment ...", flush=True)
    seg = await service.create_segment(owner, brand_id, SegmentKind.DYNAMIC, {"name": "Bench third"},
                                       definition=DEFINITION)
    started = time.perf_counter()
    first = await refresh.refresh(tenant_id, seg.id)
    first_s = time.perf_counter() - started
    assert first.entered == first.total == expected and first.exited == 0, first

    print("3. ~1 % of the profiles change; second refresh ...", flush=True)
    changed = await change_one_percent(tenant_id, brand_id)
    now_expected = await count_members(tenant_id, brand_id)
    started = time.perf_counter()
    second = await refresh.refresh(tenant_id, seg.id)
    second_s = time.perf_counter() - started
    assert second.total == now_expected and second.entered - second.exited == now_expected - expected, second
    started = time.perf_counter()
    third = await refresh.refresh(tenant_id, seg.id)  # nothing changed since: the steady-state cost
    third_s = time.perf_counter() - started
    assert (third.entered, third.exited) == (0, 0), third

    print("4. bare INSERT ... SELECT of the same member query (median of 3 each) ...", flush=True)
    query_times, _ = await timed(lambda: count_members(tenant_id, brand_id), 3)
    bare_times, bare_rows = await bare(tenant_id, brand_id, "bench_members", max(3, args.runs))
    full_times, full_rows = await bare(tenant_id, brand_id, "bench_members_full", 3)
    assert bare_rows == full_rows == now_expected, (bare_rows, full_rows, now_expected)
    # the first refresh again, on new segments: the median and its spread
    firsts = []
    for n in range(args.runs):
        seg_n = await service.create_segment(owner, brand_id, SegmentKind.DYNAMIC, {"name": f"Bench third {n}"},
                                             definition=DEFINITION)
        started = time.perf_counter()
        first_n = await refresh.refresh(tenant_id, seg_n.id)
        firsts.append(time.perf_counter() - started)
        assert first_n.total == now_expected
    plan = await explain_member_query(tenant_id, brand_id) if args.explain else ""
    await dispose_engine()

    bare_med, full_med = statistics.median(bare_times), statistics.median(full_times)
    ratio = statistics.median(firsts) / bare_med
    per_run = [f / b for f, b in zip(firsts, bare_times, strict=False)]
    ok, regressed = ratio <= RATIO_TARGET, ratio > RATIO_CHECK
    n = totals["customers"]
    print()
    print(f"PostgreSQL {server}, {os.cpu_count()} CPUs ({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))}); "
          f"database: {args.where}")
    print(f"tenant: {n:,} customers of one brand, {totals['orders']:,} orders, {totals['profiles']:,} brand profiles; "
          f"segment matches {expected:,} ({expected / n:.1%}) then {now_expected:,}")
    print(table([
        ("step", "time", "rows / notes"),
        ("fill: customers + brand links", s_(filled["customers"]), f"{n:,} + {n:,}"),
        ("fill: orders", s_(filled["orders"]), f"{totals['orders']:,}"),
        ("fill: profiles (aggregate of the orders)", s_(filled["profiles"]), f"{totals['profiles']:,}"),
        ("vacuum analyze", s_(filled["vacuum"]), ""),
        ("1. previewSegment count + first 20: median of 5", s_(statistics.median(preview_times)),
         f"min {s_(min(preview_times))}, max {s_(max(preview_times))}; count {preview.total:,}"),
        ("   member query alone, count(*): median of 3", s_(statistics.median(query_times)), ""),
        ("2. first refresh of a new segment", s_(first_s),
         f"entered {first.entered:,} (server {first.duration_ms:,} ms)"),
        (f"   again, on {len(firsts)} new segments: median", s_(statistics.median(firsts)),
         f"runs {', '.join(s_(x) for x in firsts)}"),
        (f"3. refresh after {changed:,} profiles changed ({changed / totals['profiles']:.1%})", s_(second_s),
         f"entered {second.entered:,}, exited {second.exited:,}, total {second.total:,}"),
        ("   refresh with nothing changed", s_(third_s), "entered 0, exited 0"),
        (f"4. bare INSERT..SELECT, regular table + unique index: median of {len(bare_times)}", s_(bare_med),
         f"{bare_rows:,} rows; runs {', '.join(s_(x) for x in bare_times)}"),
        ("   same into a copy of segment_memberships (all its indexes)", s_(full_med),
         f"runs {', '.join(s_(x) for x in full_times)}"),
        ("first refresh / bare insert: median over median", f"{ratio:.2f}x",
         f"runs {min(per_run):.2f}x-{max(per_run):.2f}x; target <= {RATIO_TARGET:g}x {'OK' if ok else 'MISSED'}; "
         f"--check > {RATIO_CHECK:g}x"),
        ("first refresh / insert into the memberships copy", f"{first_s / full_med:.2f}x", ""),
    ]))
    print(f"whole run: {time.perf_counter() - total_started:.0f} s")
    if plan:
        print("\nthe member query (count), EXPLAIN (ANALYZE, BUFFERS):\n" + plan)
    return 1 if regressed and args.check else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 customers")
    parser.add_argument("--explain", action="store_true", help="print the member query's plan")
    parser.add_argument("--runs", type=int, default=5, help="first refreshes and bare inserts timed (medians)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the median ratio exceeds {RATIO_CHECK}x")
    args = parser.parse_args()
    if args.quick:
        args.customers = 100_000
    args.where = _env.bootstrap()
    print(f"database: {args.where}", flush=True)
    try:
        code = asyncio.run(run(args))
    finally:
        _env.shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
