"""Bulk imports: customers and orders from CSV or NDJSON, run by the real worker as jobs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from conftest import Process, TenantFixture

WAIT = 20  # seconds a job may take in these tests


async def wait_job(t: TenantFixture, job_id: uuid.UUID, within: float = WAIT):
    from domain.jobs.service import get_job

    deadline = time.monotonic() + within
    while True:
        job = await get_job(t.owner, job_id)
        if job.status in ("succeeded", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {within}s (progress "
                                 f"{job.progress_done}/{job.progress_total})")
        await asyncio.sleep(0.1)


async def run_import(t: TenantFixture, kind: str, content: bytes, *, brand: str = "a",
                     content_type: str = "text/csv", filename: str = "upload.csv") -> dict[str, Any]:
    """Start an import as the owner, wait for the worker; the job must succeed with progress full."""
    from domain.imports.actors import start_customer_import, start_order_import

    start = start_customer_import if kind == "customers" else start_order_import
    job = await start(t.owner, t.brands[brand], filename, content_type, content)
    assert job.status == "queued" and job.kind == f"import_{kind}" and job.brand_id == t.brands[brand]
    done = await wait_job(t, job.id)
    assert done.status == "succeeded", done.error_summary
    assert done.progress_total == done.result["rows"], done
    assert done.progress_done == done.progress_total, done
    return done.result


async def rows(t: TenantFixture, sql: str, **params: Any) -> list[tuple]:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        return [tuple(r) for r in (await s.execute(text(sql), {"t": t.id, **params})).all()]


async def count(t: TenantFixture, sql: str, **params: Any) -> int:
    return (await rows(t, sql, **params))[0][0]


async def snapshot(t: TenantFixture) -> dict[str, Any]:
    """Everything an import writes, counted (and the timeline by kind)."""
    out: dict[str, Any] = {}
    for table in ("customers", "customer_brands", "customer_consents", "tags", "customer_tags", "orders",
                  "order_items", "products", "customer_profiles"):
        out[table] = await count(t, f"SELECT count(*) FROM {table} WHERE tenant_id = :t")
    out["timeline"] = dict(await rows(t, "SELECT kind, count(*) FROM timeline_events WHERE tenant_id = :t GROUP BY kind"))
    out["customer_rows"] = await rows(t, "SELECT external_id, email, first_name, country, attributes::text, updated_at "
                                         "FROM customers WHERE tenant_id = :t ORDER BY email")
    return out


def errors_by_line(result: dict[str, Any]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for e in result["errors"]:
        assert e["reason"], e
        out.setdefault(e["line"], set()).add(e["field"])
    return out


# --- customers -------------------------------------------------------------------------------

MIXED_CSV = b"""externalId,email,firstName,country,birthDate,consent_email,tags
ok-1,ok1@example.com,Ann,FR,1990-04-01,yes,VIP
bad-email,not-an-email,Bob,FR,,yes,VIP
ok-2,OK2@Example.com,Cid,us,,,
bad-country,bad@example.com,Dee,France,,no,Newsletter
,,Eve,,,,
bad-multi,multi@example.com,,FR,3000-01-01,maybe,
ok-3,ok3@example.com,Fay,DE,,no,
"""


async def test_csv_with_good_and_bad_rows_imports_the_good_and_reports_the_bad(
    tenant: TenantFixture, worker: Process
) -> None:
    result = await run_import(tenant, "customers", MIXED_CSV)
    assert (result["rows"], result["created"], result["updated"], result["rejected"]) == (7, 3, 0, 4), result
    assert result["imported"] == 3
    assert errors_by_line(result) == {
        3: {"email"}, 5: {"country"}, 6: {"externalId"}, 7: {"birthDate", "consentEmail"},
    }, result["errors"]
    assert "not an e-mail" in next(e["reason"] for e in result["errors"] if e["line"] == 3)

    got = await rows(tenant, "SELECT external_id, email, first_name, country FROM customers WHERE tenant_id = :t "
                             "ORDER BY external_id")
    assert got == [("ok-1", "ok1@example.com", "Ann", "FR"), ("ok-2", "ok2@example.com", "Cid", "US"),
                   ("ok-3", "ok3@example.com", "Fay", "DE")]
    # nothing of a rejected row was written: no customer, no consent, no tag, no timeline event
    assert await count(tenant, "SELECT count(*) FROM tags WHERE tenant_id = :t AND name = 'Newsletter'") == 0
    assert await rows(tenant, "SELECT c.external_id, k.channel, k.granted, k.source FROM customer_consents k "
                              "JOIN customers c ON c.tenant_id = k.tenant_id AND c.id = k.customer_id "
                              "WHERE k.tenant_id = :t ORDER BY 1") == [
        ("ok-1", "email", True, "import"), ("ok-3", "email", False, "import")]
    timeline = await snapshot(tenant)
    assert timeline["timeline"] == {"customer_created": 3, "consent_changed": 2, "tag_added": 1}
    assert await rows(tenant, "SELECT brand_id, source FROM customer_brands WHERE tenant_id = :t GROUP BY 1, 2") == [
        (tenant.brands["a"], "import")]
    assert worker.proc.proc.poll() is None, worker.output()


async def test_reimporting_updates_only_given_fields_and_duplicates_merge(tenant: TenantFixture, worker: Process) -> None:
    await run_import(tenant, "customers", MIXED_CSV)
    again = (b"email,lastName,attr.tier,externalId\n"
             b"ok1@example.com,Lee,gold,\n"          # matched by e-mail: only lastName and tier change
             b"ok1@example.com,Leigh,,\n"            # same customer again: the last value wins
             b"new@example.com,New,silver,ok-9\n")
    result = await run_import(tenant, "customers", again)
    assert (result["created"], result["updated"], result["duplicates"], result["rejected"]) == (1, 1, 1, 0), result
    assert await rows(tenant, "SELECT external_id, first_name, last_name, attributes->>'tier' FROM customers "
                              "WHERE tenant_id = :t AND email IN ('ok1@example.com', 'new@example.com') ORDER BY 1") == [
        ("ok-1", "Ann", "Leigh", "gold"), ("ok-9", None, "New", "silver")]


async def test_ndjson_import(tenant: TenantFixture, worker: Process) -> None:
    lines = [
        {"externalId": 1001, "email": "nd1@example.com", "first_name": "Nadia", "attributes": {"plan": "pro", "seats": 3},
         "tags": ["Wholesale", "VIP"], "consent_sms": True, "phone": "+33 6 12 34 56 78", "timezone": "Europe/Paris"},
        {"external_id": "nd-2", "email": "nd2@example.com", "birthDate": "1985-12-24", "locale": "fr-FR"},
        "not json at all",
        [1, 2, 3],
        {"externalId": "nd-3", "email": "nd3@example.com", "timezone": "Mars/Olympus"},
        {"externalId": "nd-4", "favouriteColour": "blue"},
    ]
    content = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode() + b"\n\n"
    # the content type says nothing useful: the first character tells it is NDJSON
    result = await run_import(tenant, "customers", content, content_type="application/octet-stream",
                              filename="people.jsonl")
    assert (result["rows"], result["created"], result["rejected"]) == (6, 2, 4), result
    assert errors_by_line(result) == {3: {None}, 4: {None}, 5: {"timezone"}, 6: {"favouriteColour"}}, result
    got = await rows(tenant, "SELECT external_id, phone, attributes, timezone, birth_date::text, locale FROM customers "
                             "WHERE tenant_id = :t ORDER BY external_id")
    assert got == [("1001", "+33612345678", {"plan": "pro", "seats": 3}, "Europe/Paris", None, None),
                   ("nd-2", None, {}, None, "1985-12-24", "fr-FR")]
    assert sorted(r[0] for r in await rows(tenant, "SELECT name FROM tags WHERE tenant_id = :t")) == ["VIP", "Wholesale"]
    assert await count(tenant, "SELECT count(*) FROM customer_consents WHERE tenant_id = :t AND channel = 'sms' "
                               "AND granted") == 1


async def test_consent_and_tag_columns(tenant: TenantFixture, worker: Process) -> None:
    from domain.customers import tags

    await tags.create_tag(tenant.owner, {"name": "vip"})  # an existing tag is reused, whatever its case
    csv1 = (b"email,consent_email,consent_sms,consent_push,consent_ads,tags\n"
            b"c1@example.com,yes,no,1,0,VIP;Wholesale; vip \n"
            b"c2@example.com,TRUE,,,,At risk\n")
    result = await run_import(tenant, "customers", csv1)
    assert result["created"] == 2 and result["rejected"] == 0, result
    consents = await rows(tenant, "SELECT c.email, k.channel, k.granted, k.granted_at IS NOT NULL, "
                                  "k.revoked_at IS NOT NULL, k.brand_id, k.source FROM customer_consents k "
                                  "JOIN customers c ON c.tenant_id = k.tenant_id AND c.id = k.customer_id "
                                  "WHERE k.tenant_id = :t ORDER BY 1, 2")
    a = tenant.brands["a"]
    assert consents == [
        ("c1@example.com", "ads", False, False, True, a, "import"),
        ("c1@example.com", "email", True, True, False, a, "import"),
        ("c1@example.com", "push", True, True, False, a, "import"),
        ("c1@example.com", "sms", False, False, True, a, "import"),
        ("c2@example.com", "email", True, True, False, a, "import"),
    ]
    assert sorted(r[0] for r in await rows(tenant, "SELECT name FROM tags WHERE tenant_id = :t")) == [
        "At risk", "Wholesale", "vip"]
    assert await rows(tenant, "SELECT c.email, string_agg(t.name, ',' ORDER BY t.name) FROM customer_tags ct "
                              "JOIN customers c ON c.tenant_id = ct.tenant_id AND c.id = ct.customer_id "
                              "JOIN tags t ON t.tenant_id = ct.tenant_id AND t.id = ct.tag_id "
                              "WHERE ct.tenant_id = :t GROUP BY 1 ORDER BY 1") == [
        ("c1@example.com", "Wholesale,vip"), ("c2@example.com", "At risk")]
    first = await snapshot(tenant)
    assert first["timeline"]["consent_changed"] == 5 and first["timeline"]["tag_added"] == 3

    # the same file again changes nothing; one flipped consent writes one event
    await run_import(tenant, "customers", csv1)
    assert await snapshot(tenant) == first
    await run_import(tenant, "customers", b"email,consent_email\nc2@example.com,no\n")
    after = await snapshot(tenant)
    assert after["timeline"]["consent_changed"] == 6
    assert await rows(tenant, "SELECT k.granted, k.granted_at IS NOT NULL, k.revoked_at IS NOT NULL "
                              "FROM customer_consents k JOIN customers c ON c.id = k.customer_id "
                              "WHERE k.tenant_id = :t AND c.email = 'c2@example.com'") == [(False, True, True)]


# --- orders ----------------------------------------------------------------------------------

ORDERS_CSV = b"""externalOrderId,customerExternalId,customerEmail,customerFirstName,total,currency,status,placedAt,items
A-1,cust-1,buyer1@example.com,Bea,59.90,eur,paid,2024-03-01T10:00:00+01:00,"[{""sku"": ""TENT-1"", ""quantity"": 1, ""unitPriceCents"": 4990, ""name"": ""Tent"", ""category"": ""Camping""}, {""sku"": ""PEG-4"", ""quantity"": 2, ""unitPriceCents"": 500}]"
A-2,cust-1,,,12.00,EUR,,2024-04-01T10:00:00Z,"[{""sku"": ""PEG-4"", ""quantity"": 1, ""unitPriceCents"": 1200}]"
A-3,,existing@example.com,,20,USD,placed,2024-05-01T09:30:00-05:00,
A-1,cust-1,,,99.00,EUR,,2024-03-01T10:00:00+01:00,
A-4,cust-2,,,-5,EUR,,2024-05-01T09:30:00Z,
A-5,cust-3,,,5.00,EUR,,yesterday,
A-6,,,,5.00,EUR,,2024-05-01T09:30:00Z,
"""


async def test_order_import_is_idempotent_on_reimport(tenant: TenantFixture, worker: Process) -> None:
    await run_import(tenant, "customers", b"email,firstName\nexisting@example.com,Ezra\n")
    result = await run_import(tenant, "orders", ORDERS_CSV)
    assert (result["rows"], result["created"], result["rejected"], result["duplicates"]) == (7, 3, 3, 1), result
    assert result["customers_created"] == 1, result
    assert errors_by_line(result) == {6: {"totalCents"}, 7: {"placedAt"},
                                      8: {"customer"}}, result["errors"]
    orders = await rows(tenant, "SELECT o.external_order_id, c.email, o.total_cents, o.currency, o.status "
                                "FROM orders o JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id "
                                "WHERE o.tenant_id = :t ORDER BY 1")
    assert orders == [("A-1", "buyer1@example.com", 5990, "EUR", "paid"),  # the first A-1 row wins
                      ("A-2", "buyer1@example.com", 1200, "EUR", "placed"),
                      ("A-3", "existing@example.com", 2000, "USD", "placed")]
    assert await rows(tenant, "SELECT sku, name, category, brand_id FROM products WHERE tenant_id = :t ORDER BY 1") == [
        ("PEG-4", "PEG-4", None, tenant.brands["a"]), ("TENT-1", "Tent", "Camping", tenant.brands["a"])]
    assert await count(tenant, "SELECT count(*) FROM order_items WHERE tenant_id = :t") == 3
    profile = await rows(tenant, "SELECT p.total_order_count, p.total_order_value_cents FROM customer_profiles p "
                                 "JOIN customers c ON c.id = p.customer_id WHERE p.tenant_id = :t "
                                 "AND c.email = 'buyer1@example.com' AND p.brand_id = :b", b=tenant.brands["a"])
    assert profile == [(2, 7190)]
    first = await snapshot(tenant)
    assert first["timeline"]["order_placed"] == 3 and first["timeline"]["customer_created"] == 2

    again = await run_import(tenant, "orders", ORDERS_CSV)
    assert (again["created"], again["existing"], again["customers_created"]) == (0, 3, 0), again
    assert await snapshot(tenant) == first


async def test_order_import_ndjson_with_decimal_totals(tenant: TenantFixture, worker: Process) -> None:
    lines = [
        {"externalOrderId": "N-1", "customer": {"email": "nd@example.com", "firstName": "Nico"},
         "totalCents": 1500, "currency": "GBP", "placedAt": "2024-06-01T08:00:00+00:00",
         "items": [{"sku": "LOAF", "quantity": 3, "unitPrice": "5.00", "name": "Sourdough loaf"}]},
        {"externalOrderId": "N-2", "customerEmail": "nd@example.com", "total": "1.999", "currency": "GBP",
         "placedAt": "2024-06-02T08:00:00+00:00"},
    ]
    content = "\n".join(json.dumps(x) for x in lines).encode()
    result = await run_import(tenant, "orders", content, content_type="application/x-ndjson")
    assert (result["created"], result["rejected"]) == (1, 1), result
    assert errors_by_line(result) == {2: {"total"}}
    assert await rows(tenant, "SELECT sku, quantity, unit_price_cents, name FROM order_items WHERE tenant_id = :t") == [
        ("LOAF", 3, 500, "Sourdough loaf")]


# --- idempotency of the job itself -----------------------------------------------------------


async def test_the_same_job_message_running_twice_writes_nothing_twice(tenant: TenantFixture, worker: Process) -> None:
    from domain.imports.actors import import_customers_job, run_customer_import
    from domain.jobs import service as jobs
    from domain.jobs.models import Job, JobFile
    from domain.platform.db import tenant_session

    content = b"externalId,email,firstName,consent_email,tags\n" + b"".join(
        f"r-{i},r{i}@example.com,R{i},{'yes' if i % 2 else 'no'},{'VIP' if i % 3 == 0 else ''}\n".encode()
        for i in range(1, 1201))
    job = Job(id=uuid.uuid4(), tenant_id=tenant.id, kind="import_customers", status="queued",
              brand_id=tenant.brands["a"], created_by="test", params={})
    async with tenant_session(tenant.id) as s:  # a job whose message is not sent: the test runs it
        s.add(job)
        await s.flush()
        s.add(JobFile(tenant_id=tenant.id, job_id=job.id, role="input", filename="x.csv", content_type="text/csv",
                      content=content))

    first = await run_customer_import(job, jobs.Progress(job))
    assert (first["created"], first["updated"]) == (1200, 0), first
    after_first = await snapshot(tenant)
    assert after_first["customers"] == 1200 and after_first["timeline"] == {
        "customer_created": 1200, "consent_changed": 1200, "tag_added": 400}

    second = await run_customer_import(job, jobs.Progress(job))  # a redelivery after a crash
    assert (second["created"], second["updated"]) == (0, 1200), second
    assert await snapshot(tenant) == after_first

    # and through the worker: Dramatiq delivering the message once more
    await asyncio.to_thread(import_customers_job.send, str(tenant.id), str(job.id))
    done = await wait_job(tenant, job.id)
    assert done.status == "succeeded" and done.progress_done == done.progress_total == 1200, done
    assert await snapshot(tenant) == after_first


# --- who may import, and what is refused up front --------------------------------------------


async def _principal(t: TenantFixture, role: str, brands: list[str] | None):
    from domain.tenancy.auth import authenticate

    _, token = await t.member(role, brands)
    return await authenticate(f"Bearer {token}")


async def jobs_count(t: TenantFixture) -> int:
    return await count(t, "SELECT count(*) FROM jobs WHERE tenant_id = :t")


@pytest.mark.parametrize("kind", ["customers", "orders"])
async def test_a_brand_limited_principal_cannot_import_into_another_brand(
    tenant: TenantFixture, worker: Process, kind: str
) -> None:
    from domain.errors import NotFound
    from domain.imports.actors import start_customer_import, start_order_import

    start = start_customer_import if kind == "customers" else start_order_import
    content = (b"email\nx@example.com\n" if kind == "customers" else
               b"externalOrderId,customerEmail,totalCents,currency,placedAt\nL-1,x@example.com,100,EUR,"
               b"2024-01-01T00:00:00Z\n")
    limited = await _principal(tenant, "marketer", ["a"])
    with pytest.raises(NotFound) as refused:
        await start(limited, tenant.brands["b"], "f.csv", "text/csv", content)
    assert refused.value.field == "brandId"
    with pytest.raises(NotFound):  # a brand of no tenant of theirs looks the same
        await start(limited, uuid.uuid4(), "f.csv", "text/csv", content)
    assert await jobs_count(tenant) == 0
    job = await start(limited, tenant.brands["a"], "f.csv", "text/csv", content)  # control: its own brand
    assert (await wait_job(tenant, job.id)).status == "succeeded"
    assert await count(tenant, "SELECT count(*) FROM customers WHERE tenant_id = :t") == 1


@pytest.mark.parametrize("role", ["analyst", "agent"])
async def test_roles_without_customer_import_cannot_import(tenant: TenantFixture, role: str) -> None:
    from domain.errors import PermissionDenied
    from domain.imports.actors import start_customer_import, start_order_import

    p = await _principal(tenant, role, None)
    with pytest.raises(PermissionDenied):
        await start_customer_import(p, tenant.brands["a"], "f.csv", "text/csv", b"email\nx@example.com\n")
    with pytest.raises(PermissionDenied):
        await start_order_import(p, tenant.brands["a"], "f.csv", "text/csv", ORDERS_CSV)
    assert await jobs_count(tenant) == 0


@pytest.mark.parametrize(("content", "content_type", "message"), [
    (b"", "text/csv", "empty"),
    (b"  \n\n", "text/csv", "empty"),
    (b"email,firstName\n", "text/csv", "no rows"),
    (b"email,shoeSize\nx@example.com,42\n", "text/csv", "unknown columns: shoeSize"),
    (b"firstName\nAnn\n", "text/csv", "externalId or an email"),
    (b"email,Email\nx@example.com,y@example.com\n", "text/csv", "twice"),
    (b"email\n\xff\xfe\n", "text/csv", "UTF-8"),
    (b"email\n" + b"a" * (50 * 1024 * 1024), "text/csv", "larger than 50 MB"),
])
async def test_unusable_files_are_refused_before_a_job_is_made(
    tenant: TenantFixture, content: bytes, content_type: str, message: str
) -> None:
    from domain.errors import DomainError
    from domain.imports.actors import start_customer_import

    with pytest.raises(DomainError) as refused:
        await start_customer_import(tenant.owner, tenant.brands["a"], "f.csv", content_type, content)
    assert refused.value.field == "file" and message in refused.value.message, refused.value.message
    assert await jobs_count(tenant) == 0


async def test_order_file_needs_the_order_columns(tenant: TenantFixture) -> None:
    from domain.errors import DomainError
    from domain.imports.actors import start_order_import

    with pytest.raises(DomainError) as refused:
        await start_order_import(tenant.owner, tenant.brands["a"], "o.csv", "text/csv",
                                 b"externalOrderId,customerEmail\nX,x@example.com\n")
    assert refused.value.field == "file"
    assert "totalCents or total" in refused.value.message and "placedAt" in refused.value.message


async def test_in_process_import_with_parsed_rows(tenant: TenantFixture) -> None:
    """The plain functions (demo seed, bench) take dicts and report progress like a job."""
    from domain.imports.customers import import_customers

    class Recorder:
        def __init__(self) -> None:
            self.total = None
            self.done = 0

        async def set_total(self, n: int) -> None:
            self.total = n

        async def advance(self, n: int) -> None:
            self.done += n

    progress = Recorder()
    people = [{"email": f"p{i}@example.com", "firstName": f"P{i}"} for i in range(14_000)]
    result = await import_customers(tenant.id, tenant.brands["b"], [*people[:9000], {"email": "nope"}, *people[9000:]],
                                    progress)  # chunks of 500, 1,000, 2,000, then 5,000 two at a time
    assert (result["created"], result["rejected"], result["errors"][0]["line"]) == (14_000, 1, 9001), result
    assert (progress.total, progress.done) == (14_001, 14_001)
    assert await count(tenant, "SELECT count(*) FROM customer_brands WHERE tenant_id = :t") == 14_000


async def test_a_failing_chunk_fails_the_import_with_its_own_error(tenant: TenantFixture, monkeypatch) -> None:
    from domain.imports import customers

    real = customers.merge

    async def merge(session, *args, **kwargs):
        if len(args[2]) == 5_000:
            raise RuntimeError("disk on fire")
        return await real(session, *args, **kwargs)

    monkeypatch.setattr(customers, "merge", merge)
    with pytest.raises(RuntimeError, match="disk on fire"):  # one chunk at a time: which ones ran is known
        await customers.import_customers(tenant.id, tenant.brands["a"], [
            {"email": f"f{i}@example.com"} for i in range(12_000)], concurrency=1)
    # chunks of 500, 1,000 and 2,000 committed, then the one of 5,000 failed and the last never ran;
    # the committed ones stay (a retry of the job merges them again, changing nothing)
    assert await count(tenant, "SELECT count(*) FROM customers WHERE tenant_id = :t") == 3_500


# --- the demo seed goes through the same import path -----------------------------------------


async def test_demo_seed_builds_a_shop_through_the_imports() -> None:
    from sqlalchemy import text

    from brandgraph.demo import seed_demo
    from domain.platform.db import tenant_session

    calls: list[tuple[int, int]] = []
    creds = await seed_demo(lambda done, total: calls.append((done, total)), customers_per_brand=60)
    # the suite's database is new, so the seed runs in full (an earlier seed would report [(1, 1)])
    assert calls[-1][0] == calls[-1][1] > 1000 and [d for d, _ in calls] == sorted(d for d, _ in calls), calls[-3:]

    async def counts() -> dict[str, Any]:
        async with tenant_session(creds.tenant_id) as s:
            out = {}
            for name, sql in {
                "customers": "SELECT count(*) FROM customers",
                "shared": "SELECT count(*) FROM (SELECT customer_id FROM customer_brands GROUP BY 1 "
                          "HAVING count(*) > 1) x",
                "brands_with_orders": "SELECT count(DISTINCT brand_id) FROM orders",
                "orders": "SELECT count(*) FROM orders",
                "items": "SELECT count(*) FROM order_items",
                "products": "SELECT count(*) FROM products",
                "events": "SELECT count(*) FROM tracked_events",
                "notes": "SELECT count(*) FROM customer_notes",
                # segment entries land later, from the refreshes' follow-up job: not the seed's own writes
                "timeline": "SELECT count(*) FROM timeline_events WHERE kind NOT LIKE 'segment\\_%'",
                "profiles": "SELECT count(*) FROM customer_profiles WHERE brand_id = '00000000-0000-0000-0000-000000000000'",
                "tags": "SELECT string_agg(name, ',' ORDER BY name) FROM tags",
                "consents": "SELECT count(*) FROM customer_consents",
                "campaigns": "SELECT string_agg(status, ',' ORDER BY status) FROM campaigns",
                "conversations": "SELECT string_agg(status, ',' ORDER BY status) FROM conversations",
                "canned": "SELECT count(*) FROM canned_responses",
                "notes_in_threads": "SELECT count(*) FROM conversation_messages WHERE kind = 'note'",
            }.items():
                out[name] = (await s.execute(text(sql))).scalar()
            return out

    first = await counts()
    assert first["customers"] == 3 * 60 - 2 * 12 and first["shared"] >= 24, first
    assert first["brands_with_orders"] == 3 and first["orders"] > 200 and first["items"] >= first["orders"], first
    assert first["products"] >= 30 and first["events"] > 500 and first["notes"] == 8 and first["consents"] > 100
    assert first["profiles"] == first["customers"], first
    assert {"VIP", "Newsletter", "At risk"} <= set(first["tags"].split(",")), first
    assert first["campaigns"] == "scheduled,scheduled,scheduled,sent,sent,sent", first
    assert first["conversations"] == ",".join(sorted(["open", "open", "pending", "resolved"] * 3)), first
    assert first["canned"] == 6 and first["notes_in_threads"] == 6, first
    again: list[tuple[int, int]] = []
    await seed_demo(lambda done, total: again.append((done, total)))
    assert again == [(1, 1)] and await counts() == first


async def test_a_brand_limited_import_does_not_take_over_other_brands_customers(tenant: TenantFixture) -> None:
    """A row whose address only brand b's customer has becomes a record private to brand a:
    the import answers as for a new address, and brand b's customer is neither read, changed
    nor linked."""
    from sqlalchemy import select

    from domain.customers.models import Customer
    from domain.customers.service import customers_by_ids, upsert_customer
    from domain.imports.actors import start_customer_import
    from domain.imports.customers import import_customers
    from domain.platform.db import tenant_session

    theirs, _ = await upsert_customer(tenant.owner, {"email": "theirs@b.test", "first_name": "Bee"},
                                      brand_id=tenant.brands["b"])
    _, token = await tenant.member("marketer", brands=["a"])
    from domain.tenancy.auth import authenticate

    marketer = await authenticate(f"Bearer {token}")
    job = await start_customer_import(marketer, tenant.brands["a"], "c.csv", "text/csv",
                                      b"email,firstName\nnew@a.test,Ann\n")
    assert job.params["limited_to"] == [str(tenant.brands["a"])]

    csv = b"email,firstName\ntheirs@b.test,Mallory\nnew@a.test,Ann\n"
    result = await import_customers(tenant.id, tenant.brands["a"], csv, limited_to=[str(tenant.brands["a"])])
    assert (result["created"], result["rejected"], result["errors"]) == (2, 0, [])
    still = (await customers_by_ids(tenant.owner, [theirs.id]))[theirs.id]
    assert still.first_name == "Bee"  # not overwritten
    assert theirs.id not in await customers_by_ids(marketer, [theirs.id])  # and not linked to brand a
    async with tenant_session(tenant.id) as s:
        records = {(c.first_name, c.private_to_brand_id) for c in await s.scalars(
            select(Customer).where(Customer.tenant_id == tenant.id, Customer.email == "theirs@b.test"))}
    assert records == {("Bee", None), ("Mallory", tenant.brands["a"])}
    # the same file again changes nothing; an owner's import through brand a finds brand a's record
    again = await import_customers(tenant.id, tenant.brands["a"], csv, limited_to=[str(tenant.brands["a"])])
    assert (again["created"], again["rejected"]) == (0, 0)
    owner_result = await import_customers(tenant.id, tenant.brands["a"], csv)
    assert (owner_result["created"], owner_result["rejected"]) == (0, 0)
    assert (await customers_by_ids(tenant.owner, [theirs.id]))[theirs.id].first_name == "Bee"
