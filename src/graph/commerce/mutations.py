"""Ingestion: orders, tracked events and products, each idempotent on its natural key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.commerce import service
from domain.commerce.service import EventInput, OrderInput, OrderLine, ProductAttributes
from domain.imports.actors import start_order_import
from graph.commerce.types import Order, OrderStatus, Product, ProductKind, TrackedEvent
from graph.core import ids, inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.scalars import BigInt
from graph.customers.mutations import CustomerFieldsInput, ImportFileInput
from graph.jobs.types import JobPayload, upload_job


@strawberry.input
class OrderItemInput:
    sku: str
    quantity: int
    unit_price_cents: BigInt
    name: str | None = None
    category: str | None = None


@strawberry.input
class RecordOrderInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    external_order_id: str = strawberry.field(description="The shop's order id; the order is recorded once per brand.")
    total_cents: BigInt
    currency: str = strawberry.field(description="ISO 4217, for example EUR.")
    placed_at: datetime
    status: OrderStatus = service.OrderStatus.PLACED
    customer_id: GlobalID | None = None
    customer: CustomerFieldsInput | None = strawberry.field(
        default=None, description="Identify (and upsert) the customer by externalId or email, instead of customerId.")
    items: list[OrderItemInput] = strawberry.field(default_factory=list)


@strawberry.input
class TrackEventInput:
    event_id: str = strawberry.field(description="Your id for this event; the event is recorded once per id.")
    name: str
    occurred_at: datetime | None = None
    brand_id: GlobalID | None = None
    customer_id: GlobalID | None = None
    customer: CustomerFieldsInput | None = None
    properties: JSON | None = None


@strawberry.input
class UpsertProductInput:
    sku: str
    name: str
    brand_id: GlobalID | None = None
    category: str | None = None
    price_cents: BigInt | None = None
    currency: str | None = None
    kind: ProductKind = ProductKind.PRODUCT
    genres: list[str] = strawberry.field(default_factory=list, description="Genres or styles (stored lower case).")
    type: str | None = strawberry.field(default=None, description="Concert, tasting, launch... (stored lower case).")
    creators: list[str] = strawberry.field(default_factory=list, description="Artists, makers, designers.")
    city: str | None = None
    country: str | None = strawberry.field(default=None, description="ISO 3166-1 alpha-2.")
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@strawberry.type
class OrderPayload:
    order: Order | None = None
    created: bool = strawberry.field(default=False, description="False when the order was already recorded.")
    errors: list[UserError]


@strawberry.type
class TrackEventPayload:
    event: TrackedEvent | None = None
    created: bool = False
    errors: list[UserError]


@strawberry.type
class ProductPayload:
    product: Product | None = None
    errors: list[UserError]


@strawberry.type
class CommerceMutation:
    @strawberry.mutation(description="Record an order once; sending the same order again changes nothing.")
    async def record_order(self, info: Info, input: RecordOrderInput) -> OrderPayload:
        async def run():
            inp = OrderInput(
                brand_id=inputs.brand(info, input.brand_id),
                external_order_id=input.external_order_id, total_cents=input.total_cents, currency=input.currency,
                placed_at=input.placed_at, status=input.status.value,
                customer_id=ids.optional(input.customer_id, "Customer", "customerId"),
                customer=input.customer.to_fields() if input.customer else None,
                items=[OrderLine(sku=i.sku, quantity=i.quantity, unit_price_cents=i.unit_price_cents, name=i.name,
                                 category=i.category) for i in input.items],
            )
            return await service.record_order(info.context.principal, inp)

        def build(result: tuple) -> dict[str, Any]:
            return {"order": Order.from_model(result[0]), "created": result[1]}

        return await payload(OrderPayload, run, build)

    @strawberry.mutation(description="Record an event once per eventId.")
    async def track_event(self, info: Info, input: TrackEventInput) -> TrackEventPayload:
        async def run():
            brand_id = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            inp = EventInput(
                event_id=input.event_id, name=input.name, occurred_at=input.occurred_at, brand_id=brand_id,
                customer_id=ids.optional(input.customer_id, "Customer", "customerId"),
                customer=input.customer.to_fields() if input.customer else None,
                properties=input.properties if input.properties is not None else {},
            )
            return await service.track_event(info.context.principal, inp)

        def build(result: tuple) -> dict[str, Any]:
            return {"event": TrackedEvent.from_model(result[0]), "created": result[1]}

        return await payload(TrackEventPayload, run, build)

    @strawberry.mutation
    async def upsert_product(self, info: Info, input: UpsertProductInput) -> ProductPayload:
        async def run():
            return await service.upsert_product(
                info.context.principal, input.sku, input.name,
                brand_id=ids.optional(input.brand_id, "Brand", "brandId"),
                category=input.category, price_cents=input.price_cents, currency=input.currency,
                attributes=ProductAttributes(
                    kind=input.kind.value, genres=input.genres, product_type=input.type, creators=input.creators,
                    city=input.city, country=input.country, starts_at=input.starts_at, ends_at=input.ends_at))

        return await payload(ProductPayload, run, lambda p: {"product": Product.from_model(p)})


@strawberry.type
class OrderImportMutation:
    @strawberry.mutation(description="Import orders from a CSV or NDJSON file (multipart upload), as a job.")
    async def import_orders(self, info: Info, input: ImportFileInput) -> JobPayload:
        return await upload_job(info, input.brand_id, input.file, start_order_import)
