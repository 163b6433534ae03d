"""The demo: Kettle & Crumb's next event has best-fit customers with reasons, a segment made
from them holds them, and its dashboard has real figures."""

from __future__ import annotations

from sqlalchemy import select

from brandgraph.demo.commerce import CATALOGUE, seed_commerce
from conftest import create_tenant_fixture
from domain.commerce.models import Product
from domain.insights import dashboard
from domain.offers import service as offers
from domain.platform.db import tenant_session
from domain.segments.models import Segment
from domain.segments.refresh import refresh


async def test_the_demo_event_brand_shows_best_fit_customers_a_segment_and_a_dashboard() -> None:
    # the demo's commerce data in a tenant of its own (the demo tenant itself is the import test's)
    t = await create_tenant_fixture(brands=tuple(CATALOGUE))
    owner, kettle = t.owner, t.brands["kettle"]
    await seed_commerce(owner, dict(t.brands), customers_per_brand=40)
    async with tenant_session(t.id) as s:
        event = await s.scalar(select(Product).where(Product.tenant_id == t.id, Product.sku == "KET-EV-SUMMER"))
    assert event is not None and event.kind == "event" and event.brand_id == kettle
    found = await offers.recommended_customers(owner, event.id, min_score=20, first=10)
    assert found.total_count > 0 and found.page.items
    best = found.page.items[0]
    assert best.score >= 20 and {r.reason for r in best.reasons} & {"genre_match", "creator_match", "type_match"}
    assert sum(r.weight for r in best.reasons) >= best.score
    segment = await offers.create_segment_from_recommendations(owner, event.id, 20, "Best fit: Summer Bread Festival")
    await refresh(t.id, segment.id)
    async with tenant_session(t.id) as s:
        count = await s.scalar(select(Segment.member_count).where(Segment.tenant_id == t.id, Segment.id == segment.id))
    assert count == found.total_count
    d = await dashboard.dashboard(owner, kettle)
    assert d.customers_total > 0 and d.orders + d.previous_orders > 0 and d.segments
