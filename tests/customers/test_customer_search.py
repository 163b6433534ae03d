"""Customer search (``customers(search:)``): what it matches, that writes and imports keep it
right, that another tenant's or brand's customers never appear, and that under row-level
security PostgreSQL answers it from the ``ix_customers_search_*`` indexes."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from conftest import Api, TenantFixture, create_tenant_fixture

UPSERT = """mutation($input: UpsertCustomerInput!) { upsertCustomer(input: $input) {
  customer { id } errors { field code message } } }"""
UPDATE = """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
  customer { id } errors { field code message } } }"""
SEARCH = "query($s: String, $b: ID) { customers(search: $s, brandId: $b, first: 100) { edges { node { id email } } } }"

PEOPLE = [  # email, first name, last name, phone, brand
    ("ana@a.test", "Ana", "Okafor", "+15551234567", "a"),
    ("anabel@ab.test", "Anabel", "Martin", "+33612345678", "a"),
    ("chloe@x.test", "Chloé", "Dubois", None, "b"),
    ("under_score@x.test", "Ulla", "Under_score", None, "a"),
    ("underxscore@x.test", "Ugo", "Underxscore", None, "a"),
    ("per%cent@x.test", "Pia", "Per%cent", "+4930123456", "b"),
    ("perry@x.test", "Perry", None, None, "b"),
    ("back\\slash@x.test", None, "Back\\Slash", None, "a"),
    ("MiXeD@Case.test", "ÉLODIE", "STRAẞE", None, "a"),
]


async def _add_people(api: Api, t: TenantFixture) -> dict[str, str]:
    ids = {}
    for email, first, last, phone, brand in PEOPLE:
        got = (await api.data(UPSERT, {"input": {"brandId": t.brand_gid(brand), "email": email, "firstName": first,
                                                 "lastName": last, "phone": phone}},
                              token=t.owner_token))["upsertCustomer"]
        assert got["errors"] == [], got
        ids[email.lower()] = got["customer"]["id"]
    return ids


async def _search(api: Api, t: TenantFixture, search: str, token: str | None = None, brand: str | None = None) -> set[str]:
    variables: dict[str, Any] = {"s": search}
    if brand:
        variables["b"] = t.brand_gid(brand)
    got = await api.data(SEARCH, variables, token=token or t.owner_token)
    return {e["node"]["email"] for e in got["customers"]["edges"]}


async def _as_before(t: TenantFixture, search: str) -> set[str]:
    """The e-mails the search as written before the stored columns (lower() LIKE, one term at a
    time, wildcards escaped) finds: the meaning the new one must keep."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    where, params = ["tenant_id = :t"], {"t": t.id}
    terms = [w for w in re.split(r"\s+", search.strip().lower()) if w][:5]
    for n, term in enumerate(terms):
        params[f"p{n}"] = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        options = [f"lower(email) LIKE :p{n}", f"lower(first_name) LIKE :p{n}", f"lower(last_name) LIKE :p{n}"]
        digits = re.sub(r"[^\d+]", "", term)
        if len(digits) >= 3:
            params[f"d{n}"] = "+" + digits.lstrip("+") + "%"
            options.append(f"phone LIKE :d{n}")
        where.append("(" + " OR ".join(options) + ")")
    async with tenant_session(t.id) as s:
        return set((await s.execute(text(f"SELECT email FROM customers WHERE {' AND '.join(where)}"), params)).scalars())


SEARCHES = {  # search -> the e-mails it finds
    "ana": {"ana@a.test", "anabel@ab.test"},
    "  ANA   okaf ": {"ana@a.test"},  # every word must match; case and spaces do not matter
    "okafor": {"ana@a.test"},  # last name
    "nabel": set(),  # a word begins a value: no match inside one
    "a.test": set(),
    "anabel@ab.test": {"anabel@ab.test"},
    "chlo": {"chloe@x.test"},
    "CHLOÉ dub": {"chloe@x.test"},  # lower-cased beyond ASCII
    "élo": {"mixed@case.test"},
    "mixed@": {"mixed@case.test"},  # addresses are stored lower-cased
    "+1555123": {"ana@a.test"},  # a word with three digits or more also begins the phone number
    "1-555-123": {"ana@a.test"},
    "(336)": {"anabel@ab.test"},
    "555": set(),  # the digits follow the "+": +555 begins no number here
    "49-30": {"per%cent@x.test"},
    "under_": {"under_score@x.test"},  # LIKE's wildcards are plain characters
    "per%": {"per%cent@x.test"},
    "per": {"per%cent@x.test", "perry@x.test"},
    "%": set(),
    "_": set(),
    "back\\": {"back\\slash@x.test"},
    "\\": set(),
    "ana a a a a zzz": {"ana@a.test", "anabel@ab.test"},  # the first five words count
    "ana a a a zzz": set(),
    "nobody": set(),
}
# where Python's and PostgreSQL's lower() may differ (ẞ): only "as before" is asserted
AS_BEFORE = ["straße", "STRAẞE", "élodie straß"]


async def test_search_matches_the_start_of_email_names_and_phone_as_before(api: Api, tenant: TenantFixture) -> None:
    await _add_people(api, tenant)
    for search, expected in SEARCHES.items():
        found = await _search(api, tenant, search)
        assert found == expected, (search, found)
        assert found == await _as_before(tenant, search), search
    for search in AS_BEFORE:
        assert await _search(api, tenant, search) == await _as_before(tenant, search), search
    # with the other filters
    assert await _search(api, tenant, "per", brand="b") == {"per%cent@x.test", "perry@x.test"}
    assert await _search(api, tenant, "ana", brand="b") == set()


async def test_writes_keep_the_search_right(api: Api, tenant: TenantFixture) -> None:
    ids = await _add_people(api, tenant)
    ana = ids["ana@a.test"]
    got = await api.data(UPDATE, {"input": {"id": ana, "firstName": "Zelda", "lastName": "Quist", "phone": "+4412345678",
                                            "email": "zq@a.test"}}, token=tenant.owner_token)
    assert got["updateCustomer"]["errors"] == [], got
    assert await _search(api, tenant, "zel") == {"zq@a.test"}
    assert await _search(api, tenant, "quist") == {"zq@a.test"}
    assert await _search(api, tenant, "zq@") == {"zq@a.test"}
    assert await _search(api, tenant, "+44123") == {"zq@a.test"}
    assert await _search(api, tenant, "okafor") == set() and await _search(api, tenant, "+1555") == set()
    assert await _search(api, tenant, "ana") == {"anabel@ab.test"}
    # clearing a value clears what search matches
    got = await api.data(UPDATE, {"input": {"id": ana, "lastName": None}}, token=tenant.owner_token)
    assert got["updateCustomer"]["errors"] == [], got
    assert await _search(api, tenant, "quist") == set()


async def test_imports_keep_the_search_right(api: Api, tenant: TenantFixture, worker) -> None:
    from domain.imports.actors import start_customer_import
    from domain.jobs.service import get_job

    async def run(content: bytes) -> None:
        job = await start_customer_import(tenant.owner, tenant.brands["a"], "people.csv", "text/csv", content)
        deadline = time.monotonic() + 20
        while (job := await get_job(tenant.owner, job.id)).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, job.status
            await asyncio.sleep(0.1)
        assert job.status == "succeeded" and job.result["rejected"] == 0, job.result

    await run(b"externalId,email,firstName,lastName,phone\n"
              b"imp-1,Imported.One@X.test,Wilhelmina,Van Der Berg,+31 6 1234 5678\n"
              b"imp-2,two@x.test,Xavier,Ng,\n")
    assert await _search(api, tenant, "imported.one") == {"imported.one@x.test"}
    assert await _search(api, tenant, "WILH van") == {"imported.one@x.test"}
    assert await _search(api, tenant, "+316123") == {"imported.one@x.test"}
    assert await _search(api, tenant, "xav ng") == {"two@x.test"}
    # the same customers again, matched by external id: new names, a new address, a new phone
    await run(b"externalId,email,firstName,lastName,phone\n"
              b"imp-1,renamed@x.test,Yolanda,Berg,+3220000000\n"
              b"imp-2,,Xavi,,+3221111111\n")
    assert await _search(api, tenant, "wilh") == set() and await _search(api, tenant, "imported") == set()
    assert await _search(api, tenant, "yol berg") == {"renamed@x.test"}
    assert await _search(api, tenant, "+32200") == {"renamed@x.test"}
    assert await _search(api, tenant, "xavi ng") == {"two@x.test"}  # an empty cell changes nothing
    assert await _search(api, tenant, "+32211") == {"two@x.test"}
    for search in ("wilh", "yol berg", "+32200", "xavi ng", "imp"):
        assert await _search(api, tenant, search) == await _as_before(tenant, search), search


async def test_search_never_shows_another_tenants_or_brands_customers(api: Api) -> None:
    victim, other = await create_tenant_fixture(), await create_tenant_fixture()
    for t in (victim, other):
        for email, brand in (("isolde@a.test", "a"), ("isolde.b@b.test", "b")):
            got = await api.data(UPSERT, {"input": {"brandId": t.brand_gid(brand), "email": email, "firstName": "Isolde",
                                                    "phone": "+15550001111"}}, token=t.owner_token)
            assert got["upsertCustomer"]["errors"] == [], got
    ids = {}
    for t in (victim, other):
        got = await api.data(SEARCH, {"s": "isolde"}, token=t.owner_token)
        ids[t.id] = {e["node"]["id"] for e in got["customers"]["edges"]}
        assert len(ids[t.id]) == 2, got
    assert not ids[victim.id] & ids[other.id]
    for search in ("isolde", "+1555000", "isolde.b@b"):
        got = await api.data(SEARCH, {"s": search}, token=other.owner_token)
        assert {e["node"]["id"] for e in got["customers"]["edges"]} <= ids[other.id], search
    _, marketer_a = await victim.member("marketer", brands=["a"])
    assert await _search(api, victim, "isolde", token=marketer_a) == {"isolde@a.test"}
    assert await _search(api, victim, "isolde.b", token=marketer_a) == set()
    assert await _search(api, victim, "+1555000", token=marketer_a) == {"isolde@a.test"}


# --- the plan under row-level security ------------------------------------------------------

async def _fill(t: TenantFixture, n: int) -> None:
    """``n`` customers of brand a, set-based, as the app role."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        await s.execute(text("""
            INSERT INTO customers (tenant_id, id, email, first_name, last_name, phone)
            SELECT cast(:t AS uuid), gen_random_uuid(), 'plan' || g || '@x.test', 'First' || g, 'Last' || g,
                   '+1555' || lpad(g::text, 7, '0')
              FROM generate_series(1, cast(:n AS int)) AS g"""), {"t": t.id, "n": n})
        await s.execute(text("""
            INSERT INTO customer_brands (tenant_id, brand_id, customer_id, source)
            SELECT tenant_id, cast(:b AS uuid), id, 'import' FROM customers WHERE tenant_id = :t"""),
            {"t": t.id, "b": t.brands["a"]})


async def _analyze() -> None:
    from sqlalchemy import text

    from domain.platform.db import owner_engine

    engine = owner_engine()
    try:
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE customers"))
            await conn.execute(text("ANALYZE customer_brands"))
            await conn.commit()
    finally:
        await engine.dispose()


async def _plan(t: TenantFixture, principal, stmt) -> str:
    """EXPLAIN of ``stmt`` as the app role, in the tenant's transaction (row-level security on)."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    from domain.platform.db import tenant_session

    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with tenant_session(principal.tenant_id) as s:
        assert (await s.execute(text("SELECT current_user"))).scalar() == "brandgraph_app"
        return "\n".join((await s.execute(text("EXPLAIN " + sql))).scalars())


def _index_conditions(plan: str) -> dict[str, str]:
    """Each ``ix_customers_search_*`` index of the plan and its index condition."""
    found = {}
    lines = plan.splitlines()
    for n, line in enumerate(lines):
        m = re.search(r"(?:Bitmap Index Scan on|Index Scan(?: Backward)? using|Index Only Scan using) "
                      r"(ix_customers_search_\w+)", line)
        if m and n + 1 < len(lines) and "Index Cond:" in lines[n + 1]:
            found[m.group(1)] = lines[n + 1].split("Index Cond:", 1)[1].strip()
    return found


async def test_the_search_is_an_index_range_under_row_level_security() -> None:
    """The statement ``list_customers`` runs, as the app role: every option of a word (e-mail,
    first name, last name and, for digits, phone) is a range on its index, which leads with the
    tenant, also for a principal limited to a brand; written as before (``lower() LIKE``), no
    search index may serve it, which is why the values are stored."""
    from sqlalchemy import func, or_, select

    from domain.customers.models import Customer
    from domain.customers.service import CustomerFilter, CustomerOrder, list_statement
    from domain.pagination import PageRequest
    from domain.tenancy.auth import authenticate

    t = await create_tenant_fixture()
    await _fill(t, 3000)
    await _analyze()
    _, token = await t.member("marketer", brands=["a"])
    marketer = await authenticate(f"Bearer {token}")
    assert marketer.brand_ids == [t.brands["a"]] or set(marketer.brand_ids) == {t.brands["a"]}
    for principal in (t.owner, marketer):
        # one word with digits: e-mail, first name, last name, and phone (+987)
        stmt = list_statement(principal, CustomerFilter(search="zzq987"), CustomerOrder.CREATED_AT_DESC,
                              page=PageRequest(25))
        plan = await _plan(t, principal, stmt)
        conditions = _index_conditions(plan)
        assert set(conditions) == {"ix_customers_search_email", "ix_customers_search_first",
                                   "ix_customers_search_last", "ix_customers_search_phone"}, plan
        for index, cond in conditions.items():
            assert f"tenant_id = '{t.id}'::uuid" in cond, plan
            assert "~>=~" in cond and "~<~" in cond, plan  # the prefix as a range, not a filter
        assert "Seq Scan on customers" not in plan, plan

    # LIKE is not leakproof: not on lower(), nor even on the stored columns, may it be an index condition
    for like in (or_(func.lower(Customer.email).like("zzq%"), func.lower(Customer.first_name).like("zzq%")),
                 or_(Customer.search_email.like("zzq%"), Customer.search_first_name.like("zzq%"))):
        old = select(Customer).where(Customer.tenant_id == t.id, like).order_by(Customer.created_at.desc()).limit(26)
        plan = await _plan(t, t.owner, old)
        # a search index may still be read for the tenant's rows alone, never for the pattern
        for index, cond in _index_conditions(plan).items():
            assert "zzq" not in cond and "~" not in cond and "like" not in cond.lower(), plan
        assert "zzq" in plan, plan  # the pattern is a filter on the rows read instead


def test_the_search_conditions_are_leakproof_operators_on_plain_columns() -> None:
    """What lets row-level security leave them in index conditions: ``^@`` on a column."""
    from sqlalchemy.dialects import postgresql

    from domain.customers.service import search_conditions

    (cond,) = search_conditions("Ana+1555")
    sql = str(cond.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    assert sql == ("(customers.search_email ^@ 'ana+1555') OR (customers.search_first_name ^@ 'ana+1555') "
                   "OR (customers.search_last_name ^@ 'ana+1555') OR (customers.phone ^@ '+1555')"), sql
    assert "lower" not in sql and "LIKE" not in sql
    assert len(search_conditions(" a b  c d e f ")) == 5 and search_conditions("   ") == []

