"""Catalogue attributes on products (upsertProduct, the order import) and the preferences the
profile machinery computes from them: the worked example of docs/profiles.md, "Preferences"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from conftest import Api, TenantFixture, gid
from domain.commerce.service import EventInput, OrderInput, OrderLine, record_order, track_event
from domain.customers.service import upsert_customer
from domain.imports.orders import import_orders
from domain.platform.db import tenant_session
from domain.profiles import service as profiles
from domain.profiles.models import ALL_BRANDS

UPSERT = """mutation($input: UpsertProductInput!) { upsertProduct(input: $input) {
  product { id sku kind genres type creators city country startsAt endsAt priceCents }
  errors { field code message } } }"""


async def test_upsert_product_keeps_catalogue_attributes_normalised(api: Api, tenant: TenantFixture) -> None:
    body = await api.data(UPSERT, {"input": {
        "sku": "EV-1", "name": "Summer Festival", "brandId": tenant.brand_gid("a"), "priceCents": 4500,
        "currency": "EUR", "kind": "EVENT", "genres": [" Rock", "rock", "Jazz"], "type": "Festival",
        "creators": ["The Band", "Miles"], "city": "Lyon", "country": "fr",
        "startsAt": "2027-07-01T18:00:00+00:00", "endsAt": "2027-07-01T23:00:00+00:00"}}, token=tenant.owner_token)
    p = body["upsertProduct"]
    assert p["errors"] == []
    assert {k: v for k, v in p["product"].items() if k not in ("id",)} == {
        "sku": "EV-1", "kind": "EVENT", "genres": ["rock", "jazz"], "type": "festival",
        "creators": ["The Band", "Miles"], "city": "Lyon", "country": "FR",
        "startsAt": "2027-07-01T18:00:00+00:00", "endsAt": "2027-07-01T23:00:00+00:00", "priceCents": 4500}


async def test_upsert_product_refuses_bad_attributes_with_field_errors(api: Api, tenant: TenantFixture) -> None:
    body = await api.data(UPSERT, {"input": {
        "sku": "EV-2", "name": "Bad", "brandId": tenant.brand_gid("a"), "country": "France",
        "genres": ["x"] * 21, "startsAt": "2027-07-02T18:00:00+00:00", "endsAt": "2027-07-01T18:00:00+00:00"}},
        token=tenant.owner_token)
    p = body["upsertProduct"]
    assert p["product"] is None
    assert {e["field"] for e in p["errors"]} == {"input.country", "input.genres", "input.endsAt"}


async def test_the_order_import_describes_new_products(tenant: TenantFixture) -> None:
    await import_orders(tenant.id, tenant.brands["a"], [{
        "externalOrderId": "IMP-1", "customerEmail": "imp@example.test", "totalCents": 3000, "currency": "EUR",
        "placedAt": "2026-11-02T20:00:00+00:00",
        "items": [{"sku": "IMP-EV", "quantity": 1, "unitPriceCents": 3000, "kind": "event",
                   "genres": ["Techno"], "type": "Club night", "creators": ["DJ One"], "city": "Berlin",
                   "country": "de", "startsAt": "2026-11-20T22:00:00+00:00"}]}])
    from sqlalchemy import select

    from domain.commerce.models import Product
    async with tenant_session(tenant.id) as s:
        p = await s.scalar(select(Product).where(Product.tenant_id == tenant.id, Product.sku == "IMP-EV"))
    assert (p.kind, p.genres, p.product_type, p.creators, p.city, p.country, p.starts_at) == (
        "event", ["techno"], "club night", ["DJ One"], "Berlin", "DE", datetime(2026, 11, 20, 22, tzinfo=UTC))


async def _product(t: TenantFixture, sku: str, **attrs) -> uuid.UUID:
    from domain.commerce.service import ProductAttributes, upsert_product
    price = attrs.pop("price")
    p = await upsert_product(t.owner, sku, sku, brand_id=t.brands["a"], price_cents=price, currency="EUR",
                             attributes=ProductAttributes(**attrs))
    return p.id


async def worked_example(t: TenantFixture, email: str = "ana@example.test", city: str | None = None):
    """docs/profiles.md, Preferences: Ana's orders and watchlist."""
    p1 = await _product(t, "ROCK-NIGHT", kind="event", genres=["rock"], product_type="concert",
                        creators=["The Band"], city="Lyon", country="FR", price=3000)
    await _product(t, "JAZZ-ROCK", kind="event", genres=["rock", "jazz"], product_type="concert",
                   creators=["Miles"], price=5000)
    p3 = await _product(t, "WINE", kind="event", product_type="tasting", price=2000)
    p4 = await _product(t, "NEXT-GIG", kind="event", genres=["jazz"], product_type="concert", price=3500)
    c, _ = await upsert_customer(t.owner, {"email": email, **({"city": city} if city else {})},
                                 brand_id=t.brands["a"])
    for ext, at, lines in (
            ("O1", datetime(2026, 11, 2, 20, 5, tzinfo=UTC), [OrderLine("ROCK-NIGHT", 2, 3000)]),
            ("O2", datetime(2026, 11, 9, 20, 30, tzinfo=UTC), [OrderLine("JAZZ-ROCK", 1, 5000)]),
            ("O3", datetime(2026, 11, 7, 10, 0, tzinfo=UTC), [OrderLine("WINE", 1, 2000)])):
        await record_order(t.owner, OrderInput(brand_id=t.brands["a"], external_order_id=f"{email}-{ext}",
                                               total_cents=sum(ln.quantity * ln.unit_price_cents for ln in lines),
                                               currency="EUR", placed_at=at, customer_id=c.id, items=lines))
    for i, (name, props) in enumerate((("watchlist_added", {"sku": "NEXT-GIG"}), ("watchlist_added", {"sku": "WINE"}),
                                        ("watchlist_removed", {"productId": str(p3)}))):
        await track_event(t.owner, EventInput(event_id=f"{email}-w{i}", name=name, brand_id=t.brands["a"],
                                              customer_id=c.id, properties=props,
                                              occurred_at=datetime(2026, 11, 10, 12, i, tzinfo=UTC)))
    return c.id, p1, p4


PREFS = """query($id: ID!, $b: ID) { customer(id: $id) { profile(brandId: $b) { preferences {
  genres { name weight } types { name weight } creators priceLowCents priceHighCents preferredDays preferredHours
  city country watchlistProductIds } } } }"""


async def test_preferences_follow_the_documented_worked_example(api: Api, tenant: TenantFixture) -> None:
    customer, _, next_gig = await worked_example(tenant)
    expected = {
        "genres": [{"name": "rock", "weight": 0.833}, {"name": "jazz", "weight": 0.167}],
        "types": [{"name": "concert", "weight": 0.75}, {"name": "tasting", "weight": 0.25}],
        "creators": ["Miles", "The Band"], "priceLowCents": 2500, "priceHighCents": 4000,
        "preferredDays": [1], "preferredHours": [20], "city": "Lyon", "country": "FR",
        "watchlistProductIds": [gid("Product", next_gig)]}
    for brand in (tenant.brand_gid("a"), None):  # the brand's profile and the tenant-wide one
        body = await api.data(PREFS, {"id": gid("Customer", customer), "b": brand}, token=tenant.owner_token)
        assert body["customer"]["profile"]["preferences"] == expected


async def test_a_declared_city_wins_and_a_rebuild_computes_the_same(tenant: TenantFixture) -> None:
    customer, _, _ = await worked_example(tenant, "declared@example.test", city="Paris")
    keys = [(customer, tenant.brands["a"]), (customer, None)]
    before = await profiles.profiles_for(tenant.owner, keys)
    assert {p.city for p in before.values()} == {"Paris"}
    async with tenant_session(tenant.id) as s:
        from sqlalchemy import text
        await s.execute(text("UPDATE customer_profiles SET genres = '{}', city = NULL WHERE tenant_id = :t"),
                        {"t": tenant.id})
        await profiles.refresh(s, tenant.id, None)
    after = await profiles.profiles_for(tenant.owner, keys)
    assert {k: (p.genres, p.city, p.price_low_cents) for k, p in after.items()} == {
        k: (p.genres, p.city, p.price_low_cents) for k, p in before.items()}
    assert (customer, ALL_BRANDS) in after


async def test_cancelled_orders_leave_the_preferences(tenant: TenantFixture) -> None:
    await _product(tenant, "SOLO", genres=["folk"], product_type="concert", price=1000)
    c, _ = await upsert_customer(tenant.owner, {"email": "folk@example.test"}, brand_id=tenant.brands["a"])
    await record_order(tenant.owner, OrderInput(
        brand_id=tenant.brands["a"], external_order_id="F-1", total_cents=1000, currency="EUR", status="cancelled",
        placed_at=datetime(2026, 11, 3, 9, tzinfo=UTC), customer_id=c.id, items=[OrderLine("SOLO", 1, 1000)]))
    await track_event(tenant.owner, EventInput(event_id="folk-e", name="page_viewed", brand_id=tenant.brands["a"],
                                               customer_id=c.id))
    found = await profiles.profiles_for(tenant.owner, [(c.id, tenant.brands["a"])])
    p = found[(c.id, tenant.brands["a"])]
    assert (p.genres, p.types, p.price_low_cents, p.preferred_days) == ([], [], None, [])
