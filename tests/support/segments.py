"""A small shop to segment: customers of brand "a" with known spend, events, tags and consent,
and one customer of brand "b" only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from conftest import TenantFixture
from domain.commerce.service import EventInput, OrderInput, OrderLine, record_order, track_event
from domain.customers.consent import Channel, set_consent
from domain.customers.service import upsert_customer
from domain.customers.tags import create_tag, tag_customers
from domain.platform.db import tenant_session
from domain.segments import live
from domain.segments.models import PendingEvaluation


async def make_shop(t: TenantFixture) -> dict[str, object]:
    """Five customers of brand a with known spend, events, tags and consent; one of brand b only."""
    now = datetime.now(UTC)
    vip = await create_tag(t.owner, {"name": "VIP"})
    people = {}
    for i, (email, spend, days_ago, views) in enumerate([
        ("big@x.test", 50_000, 5, 6), ("mid@x.test", 20_000, 40, 2), ("small@x.test", 2_000, 200, 0),
        ("none@x.test", 0, None, 1), ("again@x.test", 30_000, 10, 0)]):
        c, _ = await upsert_customer(t.owner, {"email": email, "country": "FR" if i % 2 else "DE",
                                               "attributes": {"plan": "pro" if i < 2 else "free"}}, brand_id=t.brands["a"])
        people[email] = c
        if days_ago is not None:
            await record_order(t.owner, OrderInput(
                brand_id=t.brands["a"], external_order_id=f"o-{i}", total_cents=spend, currency="EUR",
                placed_at=now - timedelta(days=days_ago), customer_id=c.id,
                items=[OrderLine(sku="TENT" if spend > 10_000 else "MUG", quantity=1, unit_price_cents=spend,
                                 category="Camping" if spend > 10_000 else "Kitchen")]))
        for k in range(views):
            await track_event(t.owner, EventInput(event_id=f"{email}-{k}", name="product_viewed", customer_id=c.id,
                                                  brand_id=t.brands["a"], properties={"sku": "TENT", "price": 120},
                                                  occurred_at=now - timedelta(days=1)))
    await tag_customers(t.owner, [people["big@x.test"].id, people["again@x.test"].id], [vip.id])
    await set_consent(t.owner, people["big@x.test"].id, t.brands["a"], Channel.EMAIL, True)
    other, _ = await upsert_customer(t.owner, {"email": "brand-b-only@x.test"}, brand_id=t.brands["b"])
    await record_order(t.owner, OrderInput(brand_id=t.brands["b"], external_order_id="b-1", total_cents=99_000,
                                           currency="EUR", placed_at=now - timedelta(days=1), customer_id=other.id))
    return {"people": people, "vip": vip}



async def settle(tenant_id: uuid.UUID) -> None:
    """Until no customer of the tenant waits for live segment evaluation (evaluated here, or by
    a worker that took them: its rows stay until it commits)."""
    for _ in range(400):
        await live.evaluate_batch(tenant_id)
        async with tenant_session(tenant_id) as s:
            if not await s.scalar(select(func.count()).select_from(PendingEvaluation).where(
                    PendingEvaluation.tenant_id == tenant_id)):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("live segment evaluation did not settle")
