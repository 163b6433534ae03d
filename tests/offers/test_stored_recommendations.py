"""Stored recommendations (docs/offers.md "Stored recommendations"): the job an event's change
queues, what it stores (score, reasons, generation time), conversions within the brand's
attribution window (5 days by default), recommendationStats per score band, and isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from conftest import Api, TenantFixture, gid
from domain.commerce.service import OrderInput, OrderLine, record_order
from domain.jobs.models import Job
from domain.offers import stored
from domain.platform.db import tenant_session
from offers.test_recommendations import _customer, _event

STATS = """query($p: ID!) { recommendationStats(productId: $p) { generatedAt
  bands { low high recommended converted conversionRate } } }"""


async def _rows(t: TenantFixture, product) -> dict[str, tuple]:
    async with tenant_session(t.id) as s:
        rows = (await s.execute(text(
            "SELECT c.email, r.score, r.reasons, r.converted_at IS NOT NULL FROM stored_recommendations r "
            "JOIN customers c ON c.tenant_id = r.tenant_id AND c.id = r.customer_id "
            "WHERE r.tenant_id = :t AND r.product_id = :p"), {"t": t.id, "p": product})).all()
    return {email.split("@")[0]: (score, reasons, converted) for email, score, reasons, converted in rows}


async def _order(t: TenantFixture, customer, ext: str, at: datetime) -> None:
    await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=ext, total_cents=3000,
                                           currency="EUR", placed_at=at, customer_id=customer,
                                           items=[OrderLine("FEST", 1, 3000)]))


async def test_an_event_queues_generation_and_orders_in_the_window_convert(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    product = await _event(t)
    async with tenant_session(t.id) as s:  # the change queued the generation job
        jobs = list(await s.scalars(select(Job.params).where(Job.tenant_id == t.id,
                                                              Job.kind == "generate_recommendations")))
    assert jobs == [{"product_id": str(product)}]
    people = {name: await _customer(t, name, product, prefs) for name, prefs in (
        ("genre", {"genres": ["rock"]}), ("type", {"types": ["concert"]}), ("creator", {"creators": ["Miles"]}),
        ("city", {"city": "Lyon", "country": "FR"}), ("nothing", {}))}
    generated = datetime.now(UTC) - timedelta(days=10)
    assert await stored.generate(t.id, product, now=generated) == 4  # score 0 is not stored
    assert await _rows(t, product) == {"genre": (25, {"genre_match": 25}, False),
                                       "type": (20, {"type_match": 20}, False),
                                       "creator": (20, {"creator_match": 20}, False),
                                       "city": (10, {"location": 10}, False)}
    await _order(t, people["genre"], "G-1", generated + timedelta(days=2))  # inside the 5-day window
    await _order(t, people["type"], "T-1", generated + timedelta(days=6))  # after it
    await _order(t, people["creator"], "C-1", generated - timedelta(days=1))  # before the recommendation
    rows = await _rows(t, product)
    assert {name: converted for name, (_, _, converted) in rows.items()} == {
        "genre": True, "type": False, "creator": False, "city": False}

    stats = (await api.data(STATS, {"p": gid("Product", product)}, token=t.owner_token))["recommendationStats"]
    assert stats["bands"] == [
        {"low": 0, "high": 19, "recommended": 1, "converted": 0, "conversionRate": 0.0},
        {"low": 20, "high": 39, "recommended": 3, "converted": 1, "conversionRate": 0.3333},
        {"low": 40, "high": 59, "recommended": 0, "converted": 0, "conversionRate": 0.0},
        {"low": 60, "high": 79, "recommended": 0, "converted": 0, "conversionRate": 0.0},
        {"low": 80, "high": 100, "recommended": 0, "converted": 0, "conversionRate": 0.0}]
    assert datetime.fromisoformat(stats["generatedAt"]) == generated

    # generating again (nightly) keeps the converted row as it was
    await stored.generate(t.id, product)
    assert (await _rows(t, product))["genre"] == (25, {"genre_match": 25}, True)


async def test_the_nightly_pass_queues_upcoming_events_only(tenant: TenantFixture) -> None:
    await _event(tenant, "PAST", starts_at=datetime.now(UTC) - timedelta(days=1))
    await _event(tenant, "NEXT", starts_at=datetime.now(UTC) + timedelta(days=30))
    assert await stored.nightly(tenant.id) == 1


async def test_another_tenant_or_brand_sees_no_stats(api: Api, tenant: TenantFixture,
                                                     other_tenant: TenantFixture) -> None:
    product = await _event(tenant)
    await stored.generate(tenant.id, product)
    _, brand_b = await tenant.api_key("admin", brands=["b"])
    for token in (other_tenant.owner_token, brand_b):
        body = await api.gql(STATS, {"p": gid("Product", product)}, token=token)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert (body.get("data") or {}).get("recommendationStats") is None
