from __future__ import annotations

import strawberry
from strawberry import relay

from domain.commerce import service
from graph.commerce.types import Order, Product, ProductConnection
from graph.core import ids
from graph.core.brands import brand_or_active
from graph.core.connection import Connection, page_request
from graph.core.context import Info


@strawberry.type
class CommerceQuery:
    @strawberry.field(description="Products, by SKU; a brand's with brandId.")
    async def products(self, info: Info, brand_id: relay.GlobalID | None = None, search: str | None = None,
                       first: int | None = 20, after: str | None = None, last: int | None = None,
                       before: str | None = None) -> ProductConnection:
        brand = brand_or_active(info, brand_id)
        page = await service.list_products(info.context.principal, brand_id=brand, search=search,
                                           page=page_request(info, first, after, last, before))
        return ProductConnection.of(page, Product.from_model, lambda: service.count_products(
            info.context.principal, brand_id=brand, search=search))

    @strawberry.field(description="Orders, newest first; a brand's with brandId (or X-Brand-Id).")
    async def orders(self, info: Info, brand_id: relay.GlobalID | None = None,
                     customer_id: relay.GlobalID | None = None, first: int | None = 20,
                     after: str | None = None, last: int | None = None,
                     before: str | None = None) -> Connection[Order]:
        page = await service.list_orders(
            info.context.principal,
            brand_id=brand_or_active(info, brand_id),
            customer_id=ids.optional(customer_id, "Customer", "customerId"),
            page=page_request(info, first, after, last, before))
        return Connection.of(page, Order.from_model)
