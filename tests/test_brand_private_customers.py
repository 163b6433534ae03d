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
