"""Search bench: customer search at 1M customers under row-level security, new and old.

    .venv/bin/python bench/search_bench.py                 # 1,000,000 customers (~3 min)
    .venv/bin/python bench/search_bench.py --quick         # 100,000 customers
    .venv/bin/python bench/search_bench.py --migration     # also time migration 0010 on that table
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/search_bench.py

Setup (``bench/_env.py``: an embedded PostgreSQL under ``.brandgraph/bench-search`` unless
BENCH_DATA_DIR / BENCH_DATABASE_URL say otherwise; a fresh ``brandgraph_search_bench``
database): one tenant with ``--customers`` customers, filled set-based with generate_series as
the app role under row-level security, every value a deterministic function (hashint8) of the
customer's number; then VACUUM ANALYZE.

Timed, server side (no HTTP, no GraphQL), after one warm-up pass: ``list_customers`` with a
search (the function ``customers(search:)`` calls, first=25), ``--searches`` different searches of
each kind, p50 per kind and overall, and PostgreSQL's own planning plus execution time of each
(EXPLAIN ANALYZE); then, in the same run on the same table, the first ``--old-searches`` of each
kind as the search was written before migration 0010 (``lower(column) LIKE 'term%'``, which
row-level security keeps out of index conditions) through the same tenant transaction, the same
customers found, and the ratio. A floor (a tenant transaction running ``SELECT 1``) shows what
round trips cost on the machine at that moment. Last, EXPLAIN
(ANALYZE, BUFFERS) as the app role of the statement ``list_customers`` runs, for three kinds.

Target: search p50 <= 5 ms at 1M customers. ``--check`` exits 1 when the overall p50 exceeds
CHECK_MS (10 ms), a kind's plan does not use an ``ix_customers_search_*`` index, or a prepared
search statement ran a generic plan (one knows no prefix: it reads every customer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("BENCH_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".brandgraph" / "bench-search"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

_env.BENCH_DB = "brandgraph_search_bench"

TARGET_MS = 5.0  # p50 over every search
CHECK_MS = 10.0  # --check fails above
BATCH = 250_000
FIRST = ["Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farah", "Gus", "Hana", "Ivo", "Jonas", "Kai", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Viktor", "Wen", "Yara", "Zoe", "Anna",
         "Marta", "Marco", "Maria", "Mark", "Sofia", "Lucas", "Liam", "Noah", "Emma", "Olivia", "Mia", "Leo",
         "Élodie", "Björn", "Ines", "Jakub", "Kenji", "Aylin", "Tomás", "Ngozi", "Sipho", "Ravi", "Yuki", "Pedro"]
SYLLABLES = ["ka", "lo", "mi", "ran", "ten", "vo", "shi", "ber", "dal", "gor", "no", "pe", "su", "tor", "wen", "zu"]
DOMAINS = ["example.com", "mail.test", "shop.test", "corp.test", "inbox.test"]
H = "(hashint8(g::bigint * 1000003 + {k}) & 2147483647)"


def h(k: int) -> str:
    return H.format(k=k)


def _array(values: list[str]) -> str:
    return "(ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "])"


def _last_name_sql() -> str:
    """Three syllables (16^3 = 4,096 names): 'Kalomi', 'Rantenvo', ..."""
    syl = _array(SYLLABLES)
    return (f"initcap({syl}[1 + {h(3)} % 16] || {syl}[1 + ({h(3)} / 16) % 16] || "
            f"{syl}[1 + ({h(3)} / 256) % 16])")


async def fill(tenant_id: uuid.UUID, customers: int) -> float:
    """Customers only, as the app role: 90 % with a first and last name, 80 % with a phone,
    e-mail ``first.last<n>@domain`` (``n`` the customer's number), created over three years."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    first = f"{_array(FIRST)}[1 + {h(1)} % {len(FIRST)}]"
    last = _last_name_sql()
    started = time.perf_counter()
    for lo in range(1, customers + 1, BATCH):
        q = {"t": tenant_id, "lo": lo, "hi": min(customers, lo + BATCH - 1)}
        async with tenant_session(tenant_id) as s:
            await s.execute(text(f"""
                INSERT INTO customers (tenant_id, id, email, first_name, last_name, phone, country, created_at,
                                       updated_at)
                SELECT cast(:t AS uuid), gen_random_uuid(),
                       lower({first} || '.' || {last}) || g || '@' || {_array(DOMAINS)}[1 + {h(4)} % 5],
                       CASE WHEN {h(2)} % 10 > 0 THEN {first} END, CASE WHEN {h(2)} % 10 > 0 THEN {last} END,
                       CASE WHEN {h(5)} % 5 > 0 THEN '+1' || lpad(({h(6)} % 1000000000)::text, 10, '0') END,
                       'US', now() - ({h(7)} % (3 * 365 * 86400)) * interval '1 second', now()
                  FROM generate_series(cast(:lo AS int), cast(:hi AS int)) AS g"""), q)
        print(f"  {q['hi']:,} customers", flush=True)
    return time.perf_counter() - started


async def vacuum_analyze() -> float:
    from sqlalchemy import text

    from domain.config import get_settings
    from domain.platform.db import owner_engine

    started = time.perf_counter()
    engine = owner_engine(get_settings().owner_database_url()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("VACUUM (ANALYZE) customers"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def searches(tenant_id: uuid.UUID, n: int) -> dict[str, list[str]]:
    """``n`` searches of each kind, built from customers spread over the table."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        rows = (await s.execute(text(
            "SELECT email, first_name, last_name, phone FROM customers WHERE tenant_id = :t "
            "AND first_name IS NOT NULL AND phone IS NOT NULL ORDER BY md5(id::text) LIMIT :n"),
            {"t": tenant_id, "n": n})).all()
    syl = SYLLABLES
    return {
        # one customer's address up to its number and two digits of it: a handful of matches
        "e-mail prefix": [re.sub(r"^(\D+\d{1,2}).*$", r"\1", r.email) for r in rows],
        # a first name's first three letters: ~2 % of the customers
        "first-name prefix (common)": [r.first_name[:3].upper() for r in rows],
        # a last name's first five letters: ~0.1 % of the customers
        "last-name prefix (rare)": [r.last_name[:5] for r in rows],
        # first and last name, two words: ~0.002 %
        "first and last name": [f"{r.first_name} {r.last_name.lower()}" for r in rows],
        # a phone number's first eight digits, as people type them in one word
        "phone prefix": [f"{r.phone[:2]}-{r.phone[2:5]}-{r.phone[5:9]}" for r in rows],
        # no customer matches
        "no match": [f"zz{syl[i % 16]}{syl[i // 16 % 16]}q" for i in range(len(rows))],
    }


def old_conditions(search: str) -> list:
    """The search as written before migration 0010 (lower() and LIKE), for the comparison."""
    from sqlalchemy import func, or_

    from domain.customers.models import Customer

    conditions = []
    terms = [t for t in re.split(r"\s+", search.strip().lower()) if t][:5]
    for term in (t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for t in terms):
        prefix = term + "%"
        digits = re.sub(r"[^\d+]", "", term)
        options = [func.lower(Customer.email).like(prefix), func.lower(Customer.first_name).like(prefix),
                   func.lower(Customer.last_name).like(prefix)]
        if len(digits) >= 3:
            options.append(Customer.phone.like(("+" + digits.lstrip("+")) + "%"))
        conditions.append(or_(*options))
    return conditions


async def time_new(owner, search: str) -> tuple[float, int]:
    from domain.customers.service import CustomerFilter, CustomerOrder, list_customers
    from domain.pagination import PageRequest

    started = time.perf_counter()
    page = await list_customers(owner, CustomerFilter(search=search), CustomerOrder.CREATED_AT_DESC,
                                page=PageRequest(25))
    return (time.perf_counter() - started) * 1000, len(page.items)


async def time_old(owner, search: str) -> tuple[float, int]:
    """The old predicate, through the same tenant transaction and ORM loading as list_customers."""
    from domain.platform.db import tenant_session

    stmt = old_statement(owner, search)
    started = time.perf_counter()
    async with tenant_session(owner.tenant_id) as s:
        rows = list((await s.scalars(stmt)).all())
    return (time.perf_counter() - started) * 1000, min(len(rows), 25)


def new_statement(owner, search: str):
    from domain.customers.service import CustomerFilter, CustomerOrder, list_statement
    from domain.pagination import PageRequest

    return list_statement(owner, CustomerFilter(search=search), CustomerOrder.CREATED_AT_DESC, page=PageRequest(25))


def old_statement(owner, search: str):
    from sqlalchemy import select

    from domain.customers.models import Customer

    return (select(Customer).where(Customer.tenant_id == owner.tenant_id, *old_conditions(search))
            .order_by(Customer.created_at.desc(), Customer.id.desc()).limit(26))


def literal_sql(stmt) -> str:
    from sqlalchemy.dialects import postgresql

    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def server_ms(owner, stmt) -> float:
    """Planning plus execution time PostgreSQL reports for ``stmt`` (EXPLAIN ANALYZE, TIMING
    OFF), as the app role: the database's share, without round trips."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(owner.tenant_id) as s:
        (report,) = (await s.execute(text("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + literal_sql(stmt)))).scalar()
    return report["Planning Time"] + report["Execution Time"]


async def time_floor(owner) -> float:
    """A tenant transaction that runs ``SELECT 1``: what any query pays on this machine now."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    started = time.perf_counter()
    async with tenant_session(owner.tenant_id) as s:
        await s.execute(text("SELECT 1"))
    return (time.perf_counter() - started) * 1000


async def plan_counts() -> tuple[int, int]:
    """Generic and custom plans of the prepared search statements, over the pool's connections."""
    from sqlalchemy import text

    from domain.platform.db import engine as app_engine

    generic = custom = 0
    engine = app_engine()
    conns = [await engine.connect() for _ in range(engine.pool.size())]
    try:
        for conn in conns:
            row = (await conn.execute(text(
                "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
                "WHERE statement LIKE '%^@%' AND statement NOT LIKE 'EXPLAIN%' AND statement NOT LIKE '%pg_prepared%'"))).one()
            generic, custom = generic + row[0], custom + row[1]
    finally:
        for conn in conns:
            await conn.close()
    return generic, custom


async def explain(owner, search: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement list_customers runs, as the app role."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(owner.tenant_id) as s:
        plan = (await s.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + literal_sql(new_statement(owner, search)))
                                )).scalars().all()
    return "\n".join(plan)


async def migration() -> float:
    """Migration 0010 on this table: its down script, then its up script timed (as the owner)."""
    from domain.config import get_settings, project_root
    from domain.platform.db import owner_engine

    root = project_root() / "migrations"
    engine = owner_engine(get_settings().owner_database_url()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection  # scripts: asyncpg's simple-query path
            await raw.execute((root / "0010_customer_search.down.sql").read_text())
            started = time.perf_counter()
            await raw.execute("BEGIN; " + (root / "0010_customer_search.up.sql").read_text() + "; COMMIT")
            took = time.perf_counter() - started
            await raw.execute("ANALYZE customers")
            return took
    finally:
        await engine.dispose()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


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


async def run(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from domain.platform.db import dispose_engine, tenant_session

    load_before = os.getloadavg()
    owner, _brand = await _env.setup_tenant("Search Bench Co")
    print(f"filling {args.customers:,} customers ...", flush=True)
    fill_s = await fill(owner.tenant_id, args.customers)
    vacuum_s = await vacuum_analyze()
    migration_s = await migration() if args.migration else None
    kinds = await searches(owner.tenant_id, args.searches)

    print("timing searches ...", flush=True)
    results: dict[str, dict[str, list[float]]] = {}
    for kind, terms in kinds.items():
        for term in terms:  # warm-up: pool, caches, prepared statements
            await time_new(owner, term)
        new, floor = [], []
        for term in terms:  # the floor beside each search: the machine's load changes by the minute
            floor.append(await time_floor(owner))
            new.append(await time_new(owner, term))
        server = [await server_ms(owner, new_statement(owner, term)) for term in terms]
        results[kind] = {"new": [ms for ms, _ in new], "found": [n for _, n in new], "server": server, "floor": floor}
        print(f"  {kind}: p50 {pct(results[kind]['new'], 50):.2f} ms (in PostgreSQL {pct(server, 50):.2f} ms, "
              f"floor {pct(floor, 50):.2f} ms)", flush=True)
    print("timing the same searches written as before (lower() LIKE) ...", flush=True)
    for kind, terms in kinds.items():  # after the new ones: their full scans do not disturb them
        old = [await time_old(owner, term) for term in terms[:args.old_searches]]
        assert [n for _, n in old] == results[kind]["found"][:len(old)], (kind, old, results[kind]["found"])  # same
        results[kind]["old"] = [ms for ms, _ in old]
        results[kind]["old_server"] = [await server_ms(owner, old_statement(owner, term))
                                       for term in terms[:min(3, args.old_searches)]]
        print(f"  {kind}: p50 {pct(results[kind]['old'], 50):.1f} ms", flush=True)

    generic, custom = await plan_counts()
    plans = {kind: await explain(owner, kinds[kind][0])
             for kind in ("e-mail prefix", "last-name prefix (rare)", "first and last name", "no match")}
    async with tenant_session(owner.tenant_id) as s:
        server = (await s.execute(text("SHOW server_version"))).scalar()
        total = (await s.execute(text("SELECT count(*) FROM customers WHERE tenant_id = :t"),
                                 {"t": owner.tenant_id})).scalar()
    await dispose_engine()
    load_after = os.getloadavg()

    all_new = [ms for r in results.values() for ms in r["new"]]
    all_old = [ms for r in results.values() for ms in r["old"]]
    p50 = pct(all_new, 50)
    all_server = [ms for r in results.values() for ms in r["server"]]
    all_old_server = [ms for r in results.values() for ms in r["old_server"]]
    floor = [ms for r in results.values() for ms in r["floor"]]
    rows = [("search kind", "found", "p50", "p95", "in PostgreSQL", "floor", "old p50", "old in PostgreSQL",
             "old / new")]
    for kind, r in results.items():
        rows.append((kind, f"{statistics.median(r['found']):g}", f"{pct(r['new'], 50):.2f} ms",
                     f"{pct(r['new'], 95):.2f} ms", f"{pct(r['server'], 50):.2f} ms", f"{pct(r['floor'], 50):.2f} ms",
                     f"{pct(r['old'], 50):.1f} ms", f"{pct(r['old_server'], 50):.1f} ms",
                     f"{pct(r['old'], 50) / pct(r['new'], 50):,.0f}x"))
    rows.append((f"all {len(all_new)} searches", "", f"{p50:.2f} ms", f"{pct(all_new, 95):.2f} ms",
                 f"{pct(all_server, 50):.2f} ms", f"{pct(floor, 50):.2f} ms", f"{pct(all_old, 50):.1f} ms",
                 f"{pct(all_old_server, 50):.1f} ms", f"{pct(all_old, 50) / p50:,.0f}x"))
    uses_index = {kind: "ix_customers_search_" in plan for kind, plan in plans.items()}

    print()
    print(f"PostgreSQL {server}, {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; {total:,} customers in the tenant; fill {fill_s:.1f} s, "
          f"vacuum analyze {vacuum_s:.1f} s" + (f", migration 0010 {migration_s:.1f} s" if migration_s else ""))
    print(table(rows))
    print("floor: a tenant transaction running SELECT 1 (BEGIN, set_config, the query, COMMIT: round trips), "
          f"timed beside each search; prepared search statements ran {custom:,} custom plans, {generic:,} generic")
    print(f"target p50 <= {TARGET_MS:g} ms: {'OK' if p50 <= TARGET_MS else 'MISSED'} ({p50:.2f} ms)")
    for kind, plan in plans.items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) as the app role, {kind} {kinds[kind][0]!r}:\n{plan}")
    regressed = p50 > CHECK_MS or not all(uses_index.values()) or generic > 0
    if not all(uses_index.values()):
        print(f"\nno search index in the plan of: {[k for k, ok in uses_index.items() if not ok]}")
    return 1 if regressed and args.check else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=25, help="searches of each kind (default 25)")
    parser.add_argument("--old-searches", type=int, default=10,
                        help="of those, timed as before too (default 10: ~1 s each at 1M)")
    parser.add_argument("--quick", action="store_true", help="100k customers")
    parser.add_argument("--migration", action="store_true", help="also time migration 0010's up script")
    parser.add_argument("--check", action="store_true", help="exit 1 on a regression (CHECK_MS, plans)")
    args = parser.parse_args()
    if args.quick:
        args.customers = 100_000
    try:
        print(f"database: {_env.bootstrap()}", flush=True)
        code = asyncio.run(run(args))
    finally:
        _env.shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
