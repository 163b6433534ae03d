"""Recording what customers buy and do: orders (idempotent on the brand's order id), tracked
events (idempotent on the event id) and products. Each new order or event links the customer to
the brand, lands on the timeline and refreshes the customer's profiles in the same transaction."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import ARRAY, cast, func, or_, select, text, true
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.campaigns.attribution import attribute_order
from domain.commerce.models import Order, OrderItem, Product, ProductKind, TrackedEvent
from domain.customers.service import (
    CustomerSource,
    clean_fields,
    link_brand,
    load_visible,
    upsert_in_session,
)
from domain.errors import DomainError, ErrorCode, NotFound, PermissionDenied, Validator
from domain.offers import stored as stored_recommendations
from domain.pagination import Page, PageRequest, encode_cursor, pages_by
from domain.platform.db import tenant_session
from domain.profiles import service as profiles
from domain.segments import changes
from domain.segments.compiler import ATTRIBUTE, PROFILE, PURCHASE, event_input
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline

# ISO 4217 active codes
CURRENCIES = frozenset("""AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP
PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP
TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split())
MAX_ITEMS = 500
_SKEW = timedelta(minutes=5)  # clock drift tolerated on "not in the future"
MAX_PROPERTIES_BYTES = 16_384


class OrderStatus(str, Enum):
    PLACED = "placed"
    PAID = "paid"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


MAX_GENRES = 20
MAX_CREATORS = 20


@dataclass
class ProductAttributes:
    """What an event or product is (docs/offers.md): matched against customers' preferences."""

    kind: str = ProductKind.PRODUCT.value
    genres: list[str] = field(default_factory=list)
    product_type: str | None = None
    creators: list[str] = field(default_factory=list)
    city: str | None = None
    country: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def values(self) -> dict[str, Any]:
        return dict(kind=self.kind, genres=self.genres, product_type=self.product_type, creators=self.creators,
                    city=self.city, country=self.country, starts_at=self.starts_at, ends_at=self.ends_at)


def _names(v: Validator, field_name: str, values: list[str] | None, limit: int, *, lower: bool) -> list[str]:
    out: list[str] = []
    if values is None:
        return out
    if len(values) > limit:
        v.add(field_name, f"at most {limit} values", ErrorCode.LIMIT_EXCEEDED)
        return out
    for i, raw in enumerate(values):
        value = validation.text(v, f"{field_name}[{i}]", raw, required=True, max_len=100)
        if value:
            value = value.lower() if lower else value
            if value not in out:
                out.append(value)
    return out


def clean_attributes(v: Validator, attrs: ProductAttributes | None, prefix: str = "") -> ProductAttributes:
    """The attributes normalised: genres and type lower case, creators trimmed, duplicates
    dropped, country upper case; errors name the field under ``prefix``."""
    a = attrs or ProductAttributes()
    kind = (a.kind or ProductKind.PRODUCT.value).lower()
    if kind not in {k.value for k in ProductKind}:
        v.add(prefix + "kind", f"kind must be one of {', '.join(k.value for k in ProductKind)}")
    product_type = validation.text(v, prefix + "type", a.product_type, required=False, max_len=100)
    city = validation.text(v, prefix + "city", a.city, required=False, max_len=100)
    country = validation.text(v, prefix + "country", a.country, required=False, max_len=2)
    if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
        v.add(prefix + "country", "an ISO 3166-1 alpha-2 code, for example FR")
    for name, at in (("startsAt", a.starts_at), ("endsAt", a.ends_at)):
        if at is not None and at.tzinfo is None:
            v.add(prefix + name, f"{name} needs a time zone offset")
    if (a.starts_at and a.ends_at and a.starts_at.tzinfo and a.ends_at.tzinfo and a.ends_at < a.starts_at):
        v.add(prefix + "endsAt", "endsAt is before startsAt")
    return ProductAttributes(
        kind=kind, genres=_names(v, prefix + "genres", a.genres, MAX_GENRES, lower=True),
        product_type=product_type.lower() if product_type else None,
        creators=_names(v, prefix + "creators", a.creators, MAX_CREATORS, lower=False),
        city=city, country=country.upper() if country else None, starts_at=a.starts_at, ends_at=a.ends_at)


@dataclass
class OrderLine:
    sku: str
    quantity: int
    unit_price_cents: int
    name: str | None = None
    category: str | None = None
    product: ProductAttributes | None = None  # describes the product when the SKU is new


@dataclass
class OrderInput:
    brand_id: uuid.UUID
    external_order_id: str
    total_cents: int
    currency: str
    placed_at: datetime
    status: str = OrderStatus.PLACED.value
    customer_id: uuid.UUID | None = None
    customer: dict[str, Any] | None = None  # upsert fields when no customer_id
    items: list[OrderLine] = field(default_factory=list)


def validate_order(inp: OrderInput, v: Validator, prefix: str = "") -> None:
    for name, value in (("externalOrderId", inp.external_order_id), ("currency", inp.currency),
                         *((f"items[{i}]", (ln.sku, ln.name, ln.category)) for i, ln in enumerate(inp.items))):
        if validation.has_nul(value):
            v.add(prefix + name, "contains a NUL character")
    if not inp.external_order_id or not inp.external_order_id.strip():
        v.add(prefix + "externalOrderId", "externalOrderId is required", ErrorCode.REQUIRED)
    elif len(inp.external_order_id) > 200:
        v.add(prefix + "externalOrderId", "longer than 200 characters", ErrorCode.TOO_LONG)
    if inp.total_cents is None or inp.total_cents < 0:
        v.add(prefix + "totalCents", "the total must not be negative")
    if (inp.currency or "").upper() not in CURRENCIES:
        v.add(prefix + "currency", f"{inp.currency!r} is not an ISO 4217 currency code")
    if inp.status not in {s.value for s in OrderStatus}:
        v.add(prefix + "status", f"status must be one of {', '.join(s.value for s in OrderStatus)}")
    if inp.placed_at.tzinfo is None:
        v.add(prefix + "placedAt", "placedAt needs a time zone offset")
    elif inp.placed_at > datetime.now(UTC).replace(microsecond=0) + _SKEW:
        v.add(prefix + "placedAt", "placedAt is in the future")
    if inp.customer_id is None and not inp.customer:
        v.add(prefix + "customer", "give customerId or customer (externalId or email)", ErrorCode.REQUIRED)
    if len(inp.items) > MAX_ITEMS:
        v.add(prefix + "items", f"at most {MAX_ITEMS} items", ErrorCode.LIMIT_EXCEEDED)
    for i, line in enumerate(inp.items):
        if not line.sku or len(line.sku) > 100:
            v.add(f"{prefix}items[{i}].sku", "sku is required (at most 100 characters)", ErrorCode.REQUIRED)
        if line.quantity is None or line.quantity <= 0:
            v.add(f"{prefix}items[{i}].quantity", "quantity must be positive")
        if line.unit_price_cents is None or line.unit_price_cents < 0:
            v.add(f"{prefix}items[{i}].unitPriceCents", "the unit price must not be negative")
        if line.name is not None and len(line.name) > 300:
            v.add(f"{prefix}items[{i}].name", "longer than 300 characters", ErrorCode.TOO_LONG)
        if line.category is not None and len(line.category) > 100:
            v.add(f"{prefix}items[{i}].category", "longer than 100 characters", ErrorCode.TOO_LONG)


async def record_order(principal: Principal, inp: OrderInput) -> tuple[Order, bool]:
    """Record an order once: the same (brand, external order id) again returns the stored order
    and changes nothing. Returns (order, created)."""
    authorize(principal, Action.COMMERCE_WRITE)
    v = Validator()
    inp.currency = (inp.currency or "").upper()
    validate_order(inp, v)
    customer_fields = clean_fields(inp.customer or {}, v, prefix="customer.") if inp.customer else None
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, inp.brand_id)
        await _serialise(s, f"order:{inp.brand_id}:{inp.external_order_id}")
        existing = await s.scalar(select(Order).where(
            Order.tenant_id == principal.tenant_id, Order.brand_id == inp.brand_id,
            Order.external_order_id == inp.external_order_id))
        if existing is not None:
            return existing, False
        customer = await _customer_of(s, principal, inp.customer_id, customer_fields, inp.brand_id,
                                      CustomerSource.ORDER)
        order = Order(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=inp.brand_id, customer_id=customer.id,
                      external_order_id=inp.external_order_id, status=inp.status, total_cents=inp.total_cents,
                      currency=inp.currency, placed_at=inp.placed_at)
        inserted = await s.execute(
            insert(Order).values(
                id=order.id, tenant_id=order.tenant_id, brand_id=order.brand_id, customer_id=order.customer_id,
                external_order_id=order.external_order_id, status=order.status, total_cents=order.total_cents,
                currency=order.currency, placed_at=order.placed_at,
            ).on_conflict_do_nothing().returning(Order.id)
        )
        if inserted.first() is None:  # a concurrent request recorded it first
            return await s.scalar(select(Order).where(
                Order.tenant_id == principal.tenant_id, Order.brand_id == inp.brand_id,
                Order.external_order_id == inp.external_order_id)), False
        await _write_items(s, principal, order, inp.items)
        await _after_activity(s, principal.tenant_id, customer.id, inp.brand_id, CustomerSource.ORDER, inp.placed_at,
                              [PURCHASE, *([ATTRIBUTE] if customer_fields else [])])
        timeline.write(s, principal.tenant_id, customer.id, timeline.Kind.ORDER_PLACED, inp.placed_at,
                       brand_id=inp.brand_id, ref=("Order", order.id),
                       data={"external_order_id": inp.external_order_id, "total_cents": inp.total_cents,
                             "currency": inp.currency, "status": inp.status, "items": len(inp.items)})
        audit.record(s, principal, "order.record", "Order", order.id, brand_id=inp.brand_id,
                     summary={"external_order_id": inp.external_order_id, "total_cents": inp.total_cents})
        order = await s.scalar(select(Order).where(Order.tenant_id == principal.tenant_id, Order.id == order.id))
        await attribute_order(s, order)
        await stored_recommendations.mark_converted(s, principal.tenant_id, [order.id])
    return order, True


async def _customer_of(s: AsyncSession, principal: Principal, customer_id: uuid.UUID | None,
                       customer_fields: dict[str, Any] | None, brand_id: uuid.UUID | None,
                       source: CustomerSource) -> Any:
    """The customer an order or event is about: the one given by id (visible to the principal),
    or the one its customer fields name, created or updated."""
    if customer_id is not None:
        return await load_visible(s, principal, customer_id)
    customer, _ = await upsert_in_session(s, principal, customer_fields or {}, brand_id, source,
                                          prefix="customer.")
    return customer


async def _serialise(s: AsyncSession, key: str) -> None:
    """Requests for one natural key (an order id, an event id) run one after the other: the
    second sees the first's row and changes nothing, instead of racing it."""
    await s.execute(text("select pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


async def _write_items(s: AsyncSession, principal: Principal, order: Order, lines: list[OrderLine]) -> None:
    if not lines:
        return
    skus = {line.sku for line in lines}
    # unknown SKUs become products of the order's brand
    await s.execute(insert(Product).values([
        dict(tenant_id=principal.tenant_id, id=uuid.uuid4(), sku=line.sku, name=line.name or line.sku,
             category=line.category, brand_id=order.brand_id, price_cents=line.unit_price_cents,
             currency=order.currency, **(line.product or ProductAttributes()).values())
        for line in {ln.sku: ln for ln in lines}.values()
    ]).on_conflict_do_nothing())
    products = dict((await s.execute(select(Product.sku, Product).where(
        Product.tenant_id == principal.tenant_id, Product.sku.in_(skus)))).all())
    await s.execute(insert(OrderItem).values([
        dict(tenant_id=principal.tenant_id, order_id=order.id, line_no=i + 1, product_id=products[line.sku].id,
             sku=line.sku, name=line.name or products[line.sku].name,
             category=line.category or products[line.sku].category, quantity=line.quantity,
             unit_price_cents=line.unit_price_cents)
        for i, line in enumerate(lines)
    ]))


async def _after_activity(s: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, brand_id: uuid.UUID | None,
                          source: CustomerSource, at: datetime, inputs: list[str]) -> None:
    if brand_id is not None:
        await link_brand(s, tenant_id, customer_id, brand_id, source, at)
    await profiles.refresh(s, tenant_id, [customer_id])
    # live evaluation of the customer's segments: what it did, and the profile it recomputed
    await changes.customers_changed(s, tenant_id, [customer_id], [*inputs, PROFILE])


@dataclass
class EventInput:
    event_id: str
    name: str
    occurred_at: datetime | None = None
    brand_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    customer: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)


async def track_event(principal: Principal, inp: EventInput) -> tuple[TrackedEvent, bool]:
    """Record an event once per event id; returns (event, created)."""
    authorize(principal, Action.COMMERCE_WRITE)
    v = Validator()
    if not inp.event_id or len(inp.event_id) > 200:
        v.add("eventId", "eventId is required (at most 200 characters)", ErrorCode.REQUIRED)
    if not inp.name or not re.match(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$", inp.name):
        v.add("name", "use 1 to 100 letters, digits, _ . : - starting with a letter")
    if not isinstance(inp.properties, dict):
        v.add("properties", "properties must be a JSON object")
    elif validation.has_nul(inp.properties) or validation.has_nul(inp.event_id):
        v.add("properties" if validation.has_nul(inp.properties) else "eventId", "contains a NUL character")
    elif len(json.dumps(inp.properties, default=str)) > MAX_PROPERTIES_BYTES:
        v.add("properties", f"properties exceed {MAX_PROPERTIES_BYTES} bytes", ErrorCode.TOO_LONG)
    occurred_at = inp.occurred_at or datetime.now(UTC)
    if occurred_at.tzinfo is None:
        v.add("occurredAt", "occurredAt needs a time zone offset")
    elif occurred_at > datetime.now(UTC) + _SKEW:
        v.add("occurredAt", "occurredAt is in the future")
    if inp.customer_id is None and not inp.customer:
        v.add("customer", "give customerId or customer (externalId or email)", ErrorCode.REQUIRED)
    customer_fields = clean_fields(inp.customer or {}, v, prefix="customer.") if inp.customer else None
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        scoping.require_brand_if_limited(principal, inp.brand_id)
        if inp.brand_id is not None:
            await scoping.check_brand(s, principal, inp.brand_id)
        await _serialise(s, f"event:{principal.tenant_id}:{inp.event_id}")
        existing = await s.scalar(select(TrackedEvent).where(
            TrackedEvent.tenant_id == principal.tenant_id, TrackedEvent.idempotency_key == inp.event_id))
        if existing is not None:
            if not scoping.may_use_brand(principal, existing.brand_id):
                raise DomainError("this eventId was already used for another event", field="eventId",
                                  code=ErrorCode.DUPLICATE)
            return existing, False
        customer = await _customer_of(s, principal, inp.customer_id, customer_fields, inp.brand_id,
                                      CustomerSource.EVENT)
        event_id = uuid.uuid4()
        inserted = await s.execute(insert(TrackedEvent).values(
            id=event_id, tenant_id=principal.tenant_id, customer_id=customer.id, brand_id=inp.brand_id,
            name=inp.name, properties=inp.properties, occurred_at=occurred_at, idempotency_key=inp.event_id,
        ).on_conflict_do_nothing().returning(TrackedEvent.id))
        if inserted.first() is None:
            return await s.scalar(select(TrackedEvent).where(
                TrackedEvent.tenant_id == principal.tenant_id, TrackedEvent.idempotency_key == inp.event_id)), False
        await _after_activity(s, principal.tenant_id, customer.id, inp.brand_id, CustomerSource.EVENT, occurred_at,
                              [event_input(inp.name), *([ATTRIBUTE] if customer_fields else [])])
        timeline.write(s, principal.tenant_id, customer.id, timeline.Kind.EVENT_TRACKED, occurred_at,
                       brand_id=inp.brand_id, ref=("TrackedEvent", event_id),
                       data={"name": inp.name, "properties": inp.properties})
        event = await s.scalar(select(TrackedEvent).where(
            TrackedEvent.tenant_id == principal.tenant_id, TrackedEvent.id == event_id))
        audit.record(s, principal, "event.track", "TrackedEvent", event_id, brand_id=inp.brand_id,
                     summary={"name": inp.name, "event_id": inp.event_id})
    return event, True


async def upsert_product(principal: Principal, sku: str, name: str, *, brand_id: uuid.UUID | None,
                         category: str | None = None, price_cents: int | None = None,
                         currency: str | None = None, attributes: ProductAttributes | None = None) -> Product:
    """Create or replace the product of ``sku``: every field takes the value given (attributes
    left out are cleared)."""
    authorize(principal, Action.COMMERCE_WRITE)
    v = Validator()
    attrs = clean_attributes(v, attributes)
    sku = validation.text(v, "sku", sku, required=True, max_len=100)
    name = validation.text(v, "name", name, required=True, max_len=300)
    category = validation.text(v, "category", category, required=False, max_len=100)
    if price_cents is not None and price_cents < 0:
        v.add("priceCents", "the price must not be negative")
    if currency is not None and currency.upper() not in CURRENCIES:
        v.add("currency", f"{currency!r} is not an ISO 4217 currency code")
    v.check()
    scoping.require_brand_if_limited(principal, brand_id)
    values = dict(name=name, category=category, brand_id=brand_id, price_cents=price_cents,
                  currency=currency.upper() if currency else None, **attrs.values())
    async with tenant_session(principal.tenant_id) as s:
        if brand_id is not None:
            await scoping.check_brand(s, principal, brand_id)
        current = await s.scalar(select(Product).where(Product.tenant_id == principal.tenant_id, Product.sku == sku))
        if current is not None and not scoping.may_use_brand(principal, current.brand_id):
            if current.brand_id is not None:
                raise NotFound("product not found", field="sku")
            raise PermissionDenied("a product shared by every brand is changed by a principal who sees every brand",
                                   field="sku")
        await s.execute(insert(Product).values(tenant_id=principal.tenant_id, id=uuid.uuid4(), sku=sku, **values)
                        .on_conflict_do_update(index_elements=["tenant_id", "sku"], set_=values))
        product = await s.scalar(select(Product).where(Product.tenant_id == principal.tenant_id, Product.sku == sku))
        audit.record(s, principal, "product.upsert", "Product", product.id, brand_id=brand_id,
                     summary={"sku": sku, "kind": attrs.kind})
        if product.brand_id is not None:  # recommendation_score rules read the product
            await changes.segments_changed(s, principal.tenant_id, product.brand_id)
        await stored_recommendations.request_generation(s, principal, product)  # an event: stored anew
    return product


async def list_orders(principal: Principal, *, brand_id: uuid.UUID | None, customer_id: uuid.UUID | None,
                      page: PageRequest) -> Page[Order]:
    authorize(principal, Action.CUSTOMER_READ)
    after, order = page.keyset(_newest(), datetime, uuid.UUID)
    conditions = [Order.tenant_id == principal.tenant_id, *scoping.brand_filter(principal, Order.brand_id, brand_id),
                  *after]
    if customer_id is not None:
        conditions.append(Order.customer_id == customer_id)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(Order).where(*conditions).order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, _order_cursor)


def _order_cursor(o: Order) -> str:
    return encode_cursor(o.placed_at, o.id)


def _newest(order=Order) -> list:
    return [(order.placed_at, True), (order.id, True)]


async def orders_of_customers(principal: Principal, customer_ids: list[uuid.UUID], *, brand_id: uuid.UUID | None,
                              page: PageRequest) -> dict[uuid.UUID, Page[Order]]:
    """The same page of several customers' orders, newest first, in one query (LATERAL). A
    ``brand_id`` the principal may not use matches no order (a field of a visible customer)."""
    authorize(principal, Action.CUSTOMER_READ)
    ids = select(func.unnest(cast(list(customer_ids), ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery("c")
    after, inner = page.keyset(_newest(), datetime, uuid.UUID)
    each = (select(Order).where(Order.tenant_id == principal.tenant_id, Order.customer_id == ids.c.id,
                                *scoping.brand_filter(principal, Order.brand_id, brand_id, nested=True), *after)
            .order_by(*inner).limit(page.size + 1).lateral("o"))
    order = aliased(Order, each)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(order).select_from(ids).join(each, true())
                                     .order_by(order.customer_id, *page.ordering(_newest(order))))).all())
    return pages_by(customer_ids, rows, lambda o: o.customer_id, page, _order_cursor)


async def list_products(principal: Principal, *, brand_id: uuid.UUID | None, search: str | None,
                        page: PageRequest) -> Page[Product]:
    authorize(principal, Action.CUSTOMER_READ)
    conditions = _product_conditions(principal, brand_id, search)
    after, order = page.keyset([(Product.sku, False)], str)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(Product).where(*conditions, *after).order_by(*order)
                                     .limit(page.size + 1))).all())
    return page.page(rows, lambda p: encode_cursor(p.sku))


async def count_products(principal: Principal, *, brand_id: uuid.UUID | None, search: str | None) -> int:
    """How many products ``list_products`` lists (a catalogue, read on its SKU index)."""
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await s.scalar(select(func.count()).select_from(Product)
                              .where(*_product_conditions(principal, brand_id, search)))


def _product_conditions(principal: Principal, brand_id: uuid.UUID | None, search: str | None) -> list:
    conditions = [Product.tenant_id == principal.tenant_id]
    conditions += scoping.brand_filter(principal, Product.brand_id, brand_id)
    if search:
        term = search.strip().lower().replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(or_(func.lower(Product.sku).like(term), func.lower(Product.name).like(term)))
    return conditions


async def last_orders(principal: Principal, keys: list[tuple[uuid.UUID, uuid.UUID | None]]
                      ) -> dict[tuple[uuid.UUID, uuid.UUID | None], Order]:
    """The latest order per (customer, brand or None for any visible brand): one query."""
    authorize(principal, Action.CUSTOMER_READ)
    customer_ids = {c for c, _ in keys}
    conditions = [Order.tenant_id == principal.tenant_id, Order.customer_id.in_(customer_ids)]
    conditions += scoping.brand_filter(principal, Order.brand_id)
    ranked = select(Order, func.row_number().over(
        partition_by=(Order.customer_id, Order.brand_id), order_by=(Order.placed_at.desc(), Order.id.desc())
    ).label("rn")).where(*conditions).subquery()

    latest = aliased(Order, ranked)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(latest).where(ranked.c.rn == 1))).all())
    out: dict[tuple[uuid.UUID, uuid.UUID | None], Order] = {}
    for order in rows:
        out[(order.customer_id, order.brand_id)] = order
        current = out.get((order.customer_id, None))
        if current is None or (order.placed_at, order.id) > (current.placed_at, current.id):
            out[(order.customer_id, None)] = order
    return {k: out[k] for k in keys if k in out}


async def items_by_order(principal: Principal, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[OrderItem]]:
    authorize(principal, Action.CUSTOMER_READ)
    out: dict[uuid.UUID, list[OrderItem]] = {}
    async with tenant_session(principal.tenant_id) as s:
        for item in await s.scalars(select(OrderItem).where(
                OrderItem.tenant_id == principal.tenant_id, OrderItem.order_id.in_(set(order_ids)))
                .order_by(OrderItem.order_id, OrderItem.line_no)):
            out.setdefault(item.order_id, []).append(item)
    return out



async def orders_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Order]:
    authorize(principal, Action.CUSTOMER_READ)
    conditions = [Order.tenant_id == principal.tenant_id, Order.id.in_(set(ids)),
                  *scoping.brand_filter(principal, Order.brand_id)]
    async with tenant_session(principal.tenant_id) as s:
        return {o.id: o for o in await s.scalars(select(Order).where(*conditions))}


async def products_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Product]:
    authorize(principal, Action.CUSTOMER_READ)
    conditions = [Product.tenant_id == principal.tenant_id, Product.id.in_(set(ids))]
    conditions += scoping.brand_filter(principal, Product.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return {p.id: p for p in await s.scalars(select(Product).where(*conditions))}


async def tracked_events_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, TrackedEvent]:
    """For node lookups: tracked events of the principal's brands (brand-less ones for a
    principal who sees every brand)."""
    authorize(principal, Action.CUSTOMER_READ)
    conditions = [TrackedEvent.tenant_id == principal.tenant_id, TrackedEvent.id.in_(set(ids)),
                  *scoping.brand_filter(principal, TrackedEvent.brand_id)]
    async with tenant_session(principal.tenant_id) as s:
        return {e.id: e for e in await s.scalars(select(TrackedEvent).where(*conditions))}
