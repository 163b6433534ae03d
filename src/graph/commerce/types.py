"""GraphQL types of commerce: products, orders and their items, tracked events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.commerce import models
from domain.commerce import service as commerce
from domain.commerce.service import OrderStatus as DomainOrderStatus
from graph.core.batch import now
from graph.core.connection import Connection, TotalCount
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.core.scalars import BigInt
from graph.tenancy.types import Brand, brand_of

if TYPE_CHECKING:
    from graph.customers.types import Customer

OrderStatus = strawberry.enum(DomainOrderStatus, name="OrderStatus")
ProductKind = strawberry.enum(models.ProductKind, name="ProductKind",
                              description="What a catalogue entry is: a product, an event (a concert, a tasting) or a service.")



@strawberry.type
class Product(relay.Node):
    id: relay.NodeID[str]
    sku: str
    name: str
    category: str | None
    price_cents: BigInt | None
    currency: str | None
    kind: ProductKind
    genres: list[str] = strawberry.field(description="Genres or styles, lower case.")
    type: str | None = strawberry.field(description="The kind of event or product (concert, tasting), lower case.")
    creators: list[str] = strawberry.field(description="Artists, makers or designers, as written.")
    city: str | None
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2.")
    starts_at: datetime | None
    ends_at: datetime | None
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    def from_model(cls, p: models.Product) -> Product:
        return cls(id=str(p.id), sku=p.sku, name=p.name, category=p.category, price_cents=p.price_cents,
                   currency=p.currency, kind=models.ProductKind(p.kind), genres=list(p.genres or []),
                   type=p.product_type, creators=list(p.creators or []), city=p.city, country=p.country,
                   starts_at=p.starts_at, ends_at=p.ends_at, brand_id=p.brand_id)

    resolve_nodes = node_resolver(lambda info, keys: commerce.products_by_ids(info.context.principal, keys))


@strawberry.type(description="A page of products.")
class ProductConnection(Connection[Product], TotalCount):
    pass


@strawberry.type
class OrderItem:
    line_no: int
    sku: str
    name: str | None
    category: str | None
    quantity: int
    unit_price_cents: BigInt


@strawberry.type
class Order(relay.Node):
    id: relay.NodeID[str]
    external_order_id: str
    status: OrderStatus
    total_cents: BigInt
    currency: str
    placed_at: datetime
    brand_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @strawberry.field
    def items(self, info: Info) -> list[OrderItem]:
        return now(info.context.loaders.order_items, uuid.UUID(self.id), lambda rows: [
            OrderItem(line_no=i.line_no, sku=i.sku, name=i.name, category=i.category, quantity=i.quantity,
                      unit_price_cents=i.unit_price_cents) for i in rows])

    @strawberry.field
    async def customer(self, info: Info) -> Annotated[Customer, strawberry.lazy("graph.customers.types")] | None:
        # the GraphQL types of two areas refer to each other: imported when resolved
        from graph.customers.types import Customer

        found = await info.context.loaders.customer.load(self.customer_id)
        return Customer.from_model(found) if found else None

    @classmethod
    def from_model(cls, o: models.Order) -> Order:
        return cls(id=str(o.id), external_order_id=o.external_order_id, status=DomainOrderStatus(o.status),
                   total_cents=o.total_cents, currency=o.currency, placed_at=o.placed_at, brand_id=o.brand_id,
                   customer_id=o.customer_id)

    resolve_nodes = node_resolver(lambda info, keys: commerce.orders_by_ids(info.context.principal, keys))


@strawberry.type
class TrackedEvent(relay.Node):
    id: relay.NodeID[str]
    name: str
    properties: JSON
    occurred_at: datetime
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    def from_model(cls, e: models.TrackedEvent) -> TrackedEvent:
        return cls(id=str(e.id), name=e.name, properties=e.properties, occurred_at=e.occurred_at,
                   brand_id=e.brand_id)

    resolve_nodes = node_resolver(lambda info, keys: commerce.tracked_events_by_ids(info.context.principal, keys))
