"""A principal limited to some brands learns nothing from writing an address only other brands
know: upsertCustomer, recordOrder and trackEvent answer as for a new address, with a record
private to its brand, and the other brands' customer is neither read, changed nor linked."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from conftest import Api, TenantFixture

CUSTOMER = "email firstName lastName phone externalId"
UPSERT = f"""mutation($input: UpsertCustomerInput!) {{ upsertCustomer(input: $input) {{
  customer {{ id {CUSTOMER} }} created errors {{ field code message }} }} }}"""
ORDER = f"""mutation($input: RecordOrderInput!) {{ recordOrder(input: $input) {{
  created order {{ totalCents currency customer {{ id {CUSTOMER} }} }} errors {{ field code message }} }} }}"""
EVENT = """mutation($input: TrackEventInput!) { trackEvent(input: $input) {
  created event { name properties brand { slug } } errors { field code message } } }"""
OF_B = "(SELECT customer_id FROM customer_brands WHERE tenant_id = :t AND brand_id = :b)"
READ = f"query($id: ID!) {{ customer(id: $id) {{ id {CUSTOMER} }} }}"


async def _b_state(t: TenantFixture) -> dict[str, Any]:
    """Everything the tenant holds about brand b's customers, as rows."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        out = {}
        for name, sql in {
            "customers": "SELECT id, email, external_id, first_name, last_name, phone, attributes::text, updated_at "
                         "FROM customers WHERE tenant_id = :t AND id IN " + OF_B + " ORDER BY id",
            "links": "SELECT customer_id, brand_id FROM customer_brands WHERE tenant_id = :t AND customer_id IN "
                     + OF_B + " ORDER BY 1, 2",
            "orders": "SELECT customer_id, brand_id, external_order_id FROM orders WHERE tenant_id = :t "
                      "AND brand_id = :b ORDER BY 3",
            "timeline": "SELECT customer_id, kind FROM timeline_events WHERE tenant_id = :t AND customer_id IN "
                        + OF_B + " ORDER BY 1, 2",
        }.items():
            out[name] = [tuple(r) for r in (await s.execute(text(sql), {"t": t.id, "b": t.brands["b"]})).all()]
        return out


def _shape(payload: dict[str, Any], path: list[str], email: str) -> dict[str, Any]:
    """The answer with the customer id and the address taken out (they differ by design)."""
    out = copy.deepcopy(payload)
    node = out
    for key in path:
        node = node[key]
    assert node.pop("email") == email and node.pop("id")
    return out


async def test_a_brand_limited_write_answers_alike_for_an_address_only_another_brand_knows(
    api: Api, tenant: TenantFixture
) -> None:
    from domain.customers.service import upsert_customer

    t = tenant
    tag = uuid.uuid4().hex[:8]
    known = {k: f"{k}-{tag}@b.test" for k in ("upsert", "order", "event")}
    for email in known.values():
        await upsert_customer(t.owner, {"email": email, "first_name": "Bee", "phone": "+33612345678",
                                        "external_id": f"ext-{email}"}, brand_id=t.brands["b"])
    theirs = {e: c.id for e, (c, _) in [(e, await upsert_customer(t.owner, {"email": e}, brand_id=t.brands["b"]))
                                         for e in known.values()]}
    before = await _b_state(t)
    _, token = await t.member("marketer", brands=["a"])
    a = t.brand_gid("a")

    def calls(email: str, n: str) -> list[tuple[str, dict[str, Any], list[str] | None]]:
        return [
            (UPSERT, {"input": {"email": email, "firstName": "Mallory", "brandId": a}},
             ["upsertCustomer", "customer"]),
            (ORDER, {"input": {"brandId": a, "externalOrderId": f"O-{n}", "totalCents": 100, "currency": "EUR",
                               "placedAt": "2026-11-20T10:00:00Z", "customer": {"email": email, "firstName": "M"}}},
             ["recordOrder", "order", "customer"]),
            (EVENT, {"input": {"brandId": a, "eventId": f"ev-{n}", "name": "viewed",
                               "customer": {"email": email}}},
             None),
        ]

    for i, kind in enumerate(("upsert", "order", "event")):
        fresh = f"{kind}-{tag}-new@b.test"
        query, known_vars, path = calls(known[kind], f"{tag}-k")[i]
        _, fresh_vars, _ = calls(fresh, f"{tag}-f")[i]
        got_known = await api.data(query, known_vars, token=token)
        got_fresh = await api.data(query, fresh_vars, token=token)
        root = next(iter(got_known))
        assert got_known[root]["errors"] == [] and got_known[root]["created"] is True, got_known
        # the same answer, field for field, as for an address nobody has
        if path is None:  # (an event's answer holds no customer)
            assert got_known == got_fresh
            got_known = await api.data(UPSERT, {"input": {"email": known[kind], "brandId": a}}, token=token)
            path = ["upsertCustomer", "customer"]
        else:
            assert _shape(got_known, path, known[kind]) == _shape(got_fresh, path, fresh)
        mine = got_known
        for key in path:
            mine = mine[key]
        # a record of brand a's own: not brand b's customer, and b's customer stays out of reach
        assert mine["id"] not in {str(i) for i in theirs.values()}
        assert mine["phone"] is None and mine["externalId"] is None  # nothing of b's record
        assert (await api.data(READ, {"id": mine["id"]}, token=token))["customer"]["email"] == known[kind]
        # again: the same record (idempotent), not a new one
        again = await api.data(UPSERT, {"input": {"email": known[kind], "brandId": a}}, token=token)
        assert again["upsertCustomer"]["created"] is False
        assert again["upsertCustomer"]["customer"]["id"] == mine["id"]

    # brand b's customers, links, orders and timeline are exactly as they were
    assert await _b_state(t) == before


async def test_an_owner_sees_both_records_and_brand_a_writes_keep_to_its_own(
    api: Api, tenant: TenantFixture
) -> None:
    from sqlalchemy import select

    from domain.customers.models import Customer
    from domain.customers.service import upsert_customer
    from domain.platform.db import tenant_session

    t = tenant
    email = f"shared-{uuid.uuid4().hex[:8]}@b.test"
    theirs, _ = await upsert_customer(t.owner, {"email": email, "first_name": "Bee"}, brand_id=t.brands["b"])
    _, token = await t.member("marketer", brands=["a"])
    mine = (await api.data(UPSERT, {"input": {"email": email, "firstName": "Ann", "brandId": t.brand_gid("a")}},
                           token=token))["upsertCustomer"]
    assert mine["created"] is True
    # the owner writing through brand a reaches brand a's record, not b's: no second record for
    # brand a, no link of b's customer to brand a
    owner = (await api.data(UPSERT, {"input": {"email": email, "lastName": "Owner", "brandId": t.brand_gid("a")}},
                            token=t.owner_token))["upsertCustomer"]
    assert owner["created"] is False and owner["customer"]["id"] == mine["customer"]["id"]
    async with tenant_session(t.id) as s:
        rows = {(c.id, c.first_name, c.last_name, c.private_to_brand_id) for c in await s.scalars(
            select(Customer).where(Customer.tenant_id == t.id, Customer.email == email))}
    assert rows == {(theirs.id, "Bee", None, None),
                    (uuid.UUID(str(_node_id(mine["customer"]["id"]))), "Ann", "Owner", t.brands["a"])}


def _node_id(gid: str) -> uuid.UUID:
    from graph.core.ids import decode

    return decode(gid, "Customer")


UPDATE = f"""mutation($input: UpdateCustomerInput!) {{ updateCustomer(input: $input) {{
  customer {{ id {CUSTOMER} }} errors {{ field code message }} }} }}"""
CONSENT = """mutation($input: SetConsentInput!) { setConsent(input: $input) {
  consent { granted } errors { field code message } } }"""


def _limited(t: TenantFixture, brand: str):
    from domain.tenancy.policies import Principal, PrincipalKind, Role

    return Principal(tenant_id=t.id, kind=PrincipalKind.USER, id=uuid.uuid4(), role=Role.MARKETER,
                     label=f"{brand}@{t.slug}.test", brand_ids=frozenset({t.brands[brand]}))


async def test_two_brands_writing_one_new_address_at_once_learn_nothing_of_each_other(tenant: TenantFixture) -> None:
    import asyncio

    from sqlalchemy import text

    from domain.customers.service import CustomerSource, upsert_in_session
    from domain.platform.db import tenant_session

    t = tenant
    email = f"race-{uuid.uuid4().hex[:8]}@b.test"

    async def upsert_through_b():
        async with tenant_session(t.id) as s:
            customer, created = await upsert_in_session(s, _limited(t, "b"), {"email": email}, t.brands["b"],
                                                        CustomerSource.API)
            return customer.id, customer.private_to_brand_id, created

    async with tenant_session(t.id) as s:
        first, created = await upsert_in_session(s, _limited(t, "a"), {"email": email}, t.brands["a"],
                                                 CustomerSource.API)
        assert created and first.private_to_brand_id is None
        second = asyncio.create_task(upsert_through_b())
        # brand b's insert of the same address waits on brand a's uncommitted row
        for _ in range(100):
            async with tenant_session(t.id) as probe:  # (pg_stat_activity is fixed per transaction)
                waiting = await probe.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO customers%'"))
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "brand b's write did not wait on brand a's"
    # brand a commits: brand b gets a record private to it, as if a's customer had been there before
    b_id, b_private_to, b_created = await second
    assert b_created is True and b_private_to == t.brands["b"] and b_id != first.id


async def test_a_brand_limited_principal_cannot_probe_addresses_by_changing_identifiers(
    api: Api, tenant: TenantFixture
) -> None:
    t = tenant
    tag = uuid.uuid4().hex[:8]
    victim, other_known, fresh = (f"{k}-{tag}@b.test" for k in ("victim", "known", "fresh"))
    for email in (victim, other_known):
        await api.data(UPSERT, {"input": {"email": email, "brandId": t.brand_gid("b")}}, token=t.owner_token)
    before = await _b_state(t)
    _, token = await t.member("marketer", brands=["a"])
    a = t.brand_gid("a")
    # a shared throwaway of brand a's own: its identifiers are refused alike, held elsewhere or not
    mine = (await api.data(UPSERT, {"input": {"email": f"throw-{tag}@a.test", "externalId": f"x-{tag}",
                                              "brandId": a}}, token=token))["upsertCustomer"]["customer"]
    answers = []
    for email in (victim, fresh):
        got = await api.data(UPDATE, {"input": {"id": mine["id"], "email": email}}, token=token)
        answers.append([(e["field"], e["code"]) for e in got["updateCustomer"]["errors"]])
        got = await api.data(UPSERT, {"input": {"externalId": f"x-{tag}", "email": email, "brandId": a}},
                             token=token)
        answers.append([(e["field"], e["code"]) for e in got["upsertCustomer"]["errors"]])
    assert answers[:2] == answers[2:] == [[("input.email", "FORBIDDEN")]] * 2, answers
    # a record private to brand a: it may take an address only other brands know, like a new one
    private = (await api.data(UPSERT, {"input": {"email": other_known, "brandId": a}},
                              token=token))["upsertCustomer"]["customer"]
    got = await api.data(UPDATE, {"input": {"id": private["id"], "email": victim}}, token=token)
    assert got["updateCustomer"]["errors"] == [] and got["updateCustomer"]["customer"]["email"] == victim
    assert await _b_state(t) == before


async def test_a_brand_keeps_one_record_per_address(api: Api, tenant: TenantFixture) -> None:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    t = tenant
    tag = uuid.uuid4().hex[:8]
    theirs, ours = f"theirs-{tag}@b.test", f"ours-{tag}@a.test"
    shared_b = (await api.data(UPSERT, {"input": {"email": theirs, "brandId": t.brand_gid("b")}},
                               token=t.owner_token))["upsertCustomer"]["customer"]
    shared_a = (await api.data(UPSERT, {"input": {"email": ours, "brandId": t.brand_gid("a")}},
                               token=t.owner_token))["upsertCustomer"]["customer"]
    _, token = await t.member("marketer", brands=["a"])
    private = (await api.data(UPSERT, {"input": {"email": theirs, "brandId": t.brand_gid("a")}},
                              token=token))["upsertCustomer"]["customer"]

    async def links() -> list[tuple]:
        async with tenant_session(t.id) as s:
            return [tuple(r) for r in (await s.execute(text(
                "SELECT customer_id, brand_id FROM customer_brands WHERE tenant_id = :t ORDER BY 1, 2"),
                {"t": t.id})).all()]

    before = await links()
    # the private record may not take the address of a shared record brand a knows
    got = await api.data(UPDATE, {"input": {"id": private["id"], "email": ours}}, token=token)
    assert [(e["field"], e["code"]) for e in got["updateCustomer"]["errors"]] == [("input.email", "DUPLICATE")]
    # a record private to brand a is linked to no other brand
    for brand in ("b",):
        got = await api.data(CONSENT, {"input": {"customerId": private["id"], "brandId": t.brand_gid(brand),
                                                 "channel": "EMAIL", "granted": True}}, token=t.owner_token)
        assert [(e["field"], e["code"]) for e in got["setConsent"]["errors"]] == [("input.customerId", "INVALID_STATE")]
    got = await api.data(ORDER, {"input": {"brandId": t.brand_gid("b"), "externalOrderId": f"O-{tag}",
                                           "totalCents": 100, "currency": "EUR", "placedAt": "2026-11-20T10:00:00Z",
                                           "customerId": private["id"]}}, token=t.owner_token)
    assert [(e["field"], e["code"]) for e in got["recordOrder"]["errors"]] == [("input.customerId", "INVALID_STATE")]
    # nor is brand b's shared record linked to brand a, which has its own record for that address
    got = await api.data(CONSENT, {"input": {"customerId": shared_b["id"], "brandId": t.brand_gid("a"),
                                             "channel": "EMAIL", "granted": True}}, token=t.owner_token)
    assert [(e["field"], e["code"]) for e in got["setConsent"]["errors"]] == [("input.customerId", "DUPLICATE")]
    assert await links() == before
    assert shared_a["id"] != private["id"]


async def test_segment_member_import_takes_the_brands_private_record_first(tenant: TenantFixture) -> None:
    """A brand holding a private and a shared record for one address (written before links were
    checked) gets its private one, the record its writes by e-mail reach."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session
    from domain.segments.member_import import _resolve

    t = tenant
    email = f"both-{uuid.uuid4().hex[:8]}@a.test"
    private, shared = uuid.uuid4(), uuid.uuid4()
    async with tenant_session(t.id) as s:
        for cid, private_to in ((private, t.brands["a"]), (shared, None)):
            await s.execute(text("INSERT INTO customers (tenant_id, id, email, attributes, private_to_brand_id) "
                                 "VALUES (:t, :c, :e, '{}', :p)"), {"t": t.id, "c": cid, "e": email, "p": private_to})
            await s.execute(text("INSERT INTO customer_brands (tenant_id, brand_id, customer_id, source) "
                                 "VALUES (:t, :b, :c, 'api')"), {"t": t.id, "b": t.brands["a"], "c": cid})
    found = await _resolve(t.id, t.brands["a"], [(1, "email", email, "add")])
    assert found[("email", email)] == private


async def test_the_api_and_imports_match_by_external_id_first_then_by_email(api: Api, tenant: TenantFixture) -> None:
    """External id first (the brand's private record, then a shared one), then e-mail (in the
    same order), through the API as in imports: here both update the shared record the external
    id names, though a private record of the brand holds the e-mail (written before links were
    checked)."""
    from sqlalchemy import text

    from domain.customers.service import CustomerSource, upsert_customer
    from domain.imports.customer_merge import merge
    from domain.imports.customer_rows import CustomerRow
    from domain.platform.db import tenant_session

    t = tenant
    tag = uuid.uuid4().hex[:8]
    email, ext = f"both-{tag}@a.test", f"ext-{tag}"
    shared, _ = await upsert_customer(t.owner, {"email": email, "external_id": ext}, brand_id=t.brands["a"])
    private = uuid.uuid4()
    async with tenant_session(t.id) as s:
        await s.execute(text("INSERT INTO customers (tenant_id, id, email, attributes, private_to_brand_id) "
                             "VALUES (:t, :c, :e, '{}', :b)"), {"t": t.id, "c": private, "e": email, "b": t.brands["a"]})
    got = await api.data(UPSERT, {"input": {"externalId": ext, "email": email, "firstName": "Api",
                                            "brandId": t.brand_gid("a")}}, token=t.owner_token)
    assert got["upsertCustomer"]["errors"] == [] and got["upsertCustomer"]["customer"]["firstName"] == "Api"
    assert _node_id(got["upsertCustomer"]["customer"]["id"]) == shared.id
    async with tenant_session(t.id) as s:
        merged = await merge(s, t.id, t.brands["a"], [CustomerRow(2, {"external_id": ext, "email": email,
                                                                      "first_name": "Import"})],
                             source=CustomerSource.IMPORT)
    assert merged.customer_ids == [shared.id] and merged.problems == {}



async def test_a_brand_limited_import_changes_no_identifier_of_a_shared_record(tenant: TenantFixture) -> None:
    from domain.customers.service import CustomerSource, upsert_customer
    from domain.imports.customer_merge import merge
    from domain.imports.customer_rows import CustomerRow
    from domain.platform.db import tenant_session

    t = tenant
    tag = uuid.uuid4().hex[:8]
    victim, fresh = f"victim-{tag}@b.test", f"fresh-{tag}@b.test"
    await upsert_customer(t.owner, {"email": victim}, brand_id=t.brands["b"])
    mine, _ = await upsert_customer(t.owner, {"email": f"throw-{tag}@a.test", "external_id": f"x-{tag}"},
                                    brand_id=t.brands["a"])
    problems = []
    for email in (victim, fresh):
        async with tenant_session(t.id) as s:
            merged = await merge(s, t.id, t.brands["a"], [CustomerRow(2, {"external_id": f"x-{tag}", "email": email})],
                                 source=CustomerSource.IMPORT, limited_to=[str(t.brands["a"])])
        problems.append(merged.problems)
    assert problems[0] == problems[1] == {0: ("email", "a customer other brands may share keeps its email and "
                                                       "externalId: ask a principal that sees every brand to change them")}
    from sqlalchemy import text

    async with tenant_session(t.id) as s:
        assert await s.scalar(text("SELECT email FROM customers WHERE tenant_id = :t AND id = :c"),
                              {"t": t.id, "c": mine.id}) == f"throw-{tag}@a.test"


async def test_an_import_links_no_shared_record_to_a_brand_holding_its_own_for_the_address(
    tenant: TenantFixture
) -> None:
    from sqlalchemy import text

    from domain.customers.service import CustomerSource, upsert_customer
    from domain.imports.customer_merge import merge
    from domain.imports.customer_rows import CustomerRow
    from domain.platform.db import tenant_session

    t = tenant
    tag = uuid.uuid4().hex[:8]
    email, ext = f"held-{tag}@b.test", f"ext-{tag}"
    shared, _ = await upsert_customer(t.owner, {"email": email, "external_id": ext}, brand_id=t.brands["b"])
    private, created = await upsert_customer(_limited(t, "a"), {"email": email}, brand_id=t.brands["a"])
    assert created and private.private_to_brand_id == t.brands["a"]
    async with tenant_session(t.id) as s:
        merged = await merge(s, t.id, t.brands["a"], [CustomerRow(2, {"external_id": ext, "first_name": "Imp"})],
                             source=CustomerSource.IMPORT)
    assert merged.problems == {0: ("email", "the brand already has its own record for this email or externalId")}
    async with tenant_session(t.id) as s:
        links = set((await s.execute(text("SELECT customer_id, brand_id FROM customer_brands WHERE tenant_id = :t "
                                          "AND customer_id IN (:a, :b)"),
                                     {"t": t.id, "a": shared.id, "b": private.id})).all())
        first_name = await s.scalar(text("SELECT first_name FROM customers WHERE tenant_id = :t AND id = :c"),
                                    {"t": t.id, "c": shared.id})
    assert links == {(shared.id, t.brands["b"]), (private.id, t.brands["a"])} and first_name is None
