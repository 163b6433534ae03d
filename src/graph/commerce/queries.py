from __future__ import annotations

import strawberry
from strawberry import relay

from domain.commerce import service
from domain.pagination import clamp_first
from graph.commerce.types import Order, Product
from graph.core import ids
from graph.core.connection import Connection
from graph.core.context import Info


@strawberry.type
class CommerceQuery:
    @strawberry.field(description="Products, by SKU; a brand's with brandId.")
    async def products(self, info: Info, brand_id: relay.GlobalID | None = None, search: str | None = None,
                       first: int = 20, after: str | None = None) -> Connection[Product]:
        page = await service.list_products(
            info.context.principal, brand_id=ids.optional(brand_id, "Brand", "brandId"),
            search=search, first=clamp_first(first), after=after)
        return Connection.of(page, Product.from_model)

    @strawberry.field(description="Orders, newest first; a brand's with brandId (or X-Brand-Id).")
    async def orders(self, info: Info, brand_id: relay.GlobalID | None = None,
                     customer_id: relay.GlobalID | None = None, first: int = 20,
                     after: str | None = None) -> Connection[Order]:
        page = await service.list_orders(
            info.context.principal,
            brand_id=ids.decode(brand_id, "Brand", "brandId") if brand_id else info.context.brand_id,
            customer_id=ids.optional(customer_id, "Customer", "customerId"),
            first=clamp_first(first), after=after)
        return Connection.of(page, Order.from_model)
