"""The profile formulas in SQL give the figures docs/profiles.md promises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import TenantFixture
from domain.commerce.service import EventInput, OrderInput, record_order, track_event
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session
from domain.profiles import service as profiles
from domain.profiles.models import ALL_BRANDS, CustomerProfile


async def _customer_with(t: TenantFixture, email: str, orders: list[tuple[int, int]], events: int):
    """orders: (days ago, total cents)."""
    c, _ = await upsert_customer(t.owner, {"email": email}, brand_id=t.brands["a"])
    now = datetime.now(UTC)
    for i, (days, cents) in enumerate(orders):
        await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=f"{email}-{i}",
                                               total_cents=cents, currency="EUR",
                                               placed_at=now - timedelta(days=days), customer_id=c.id))
    for i in range(events):
        await track_event(t.owner, EventInput(event_id=f"{email}-e{i}", name="page_viewed", customer_id=c.id,
                                              brand_id=t.brands["a"], occurred_at=now - timedelta(days=1)))
    found = await profiles.profiles_for(t.owner, [(c.id, None), (c.id, t.brands["a"]), (c.id, t.brands["b"])])
    return found


@pytest.mark.parametrize(("orders", "events", "engagement", "churn"), [
    # docs/profiles.md, "Examples": a monthly buyer (12 orders in the year, the last 3 days ago)
    ([(3, 125_000 - 11 * 100)] + [(30 * k, 100) for k in range(1, 12)], 4, 80, 8),
    ([(200, 8_000)], 0, 15, 42),
    ([], 2, 5, 90),
])
async def test_scores_match_the_documented_examples(tenant: TenantFixture, orders, events, engagement, churn) -> None:
    found = await _customer_with(tenant, f"p{len(orders)}-{events}@example.test", orders, events)
    profile = found[next(k for k in found if k[1] == ALL_BRANDS)]
    assert (profile.engagement_score, profile.churn_risk) == (engagement, churn)
    assert profile.total_order_count == len(orders)
    assert profile.total_order_value_cents == sum(c for _, c in orders)


async def test_brand_profiles_count_only_that_brand(tenant: TenantFixture) -> None:
    found = await _customer_with(tenant, "brand@example.test", [(10, 5_000), (5, 3_000)], 0)
    c_id = next(iter(found))[0]
    assert found[(c_id, tenant.brands["a"])].total_order_count == 2
    assert (c_id, tenant.brands["b"]) not in found  # no activity in brand b


async def test_rebuild_recomputes_what_the_incremental_path_wrote(tenant: TenantFixture) -> None:
    found = await _customer_with(tenant, "rebuild@example.test", [(40, 2_000)], 1)
    before = {k: (p.engagement_score, p.churn_risk, p.total_order_value_cents) for k, p in found.items()}
    async with tenant_session(tenant.id) as s:
        await s.execute(CustomerProfile.__table__.delete().where(
            CustomerProfile.tenant_id == tenant.id))
        assert await profiles.refresh(s, tenant.id, None) == len(before)
    after = await profiles.profiles_for(tenant.owner, list(found))
    assert {k: (p.engagement_score, p.churn_risk, p.total_order_value_cents) for k, p in after.items()} == before
