from __future__ import annotations

import strawberry
from strawberry import relay

from domain.customers import service, tags
from domain.customers.service import CustomerFilter
from domain.customers.service import CustomerOrder as DomainCustomerOrder
from graph.core import ids
from graph.core.brands import brand_or_active
from graph.core.connection import Connection, page_request
from graph.core.context import Info
from graph.core.nodes import load_node
from graph.customers.types import Customer, Tag, customer_page

CustomerOrderBy = strawberry.enum(DomainCustomerOrder, name="CustomerOrderBy")


@strawberry.type
class CustomerQuery:
    @strawberry.field(description="Customers the caller may see; search matches the start of a name, e-mail or phone.")
    async def customers(
        self,
        info: Info,
        brand_id: relay.GlobalID | None = None,
        search: str | None = None,
        tag_ids: list[relay.GlobalID] | None = None,
        first: int | None = 20,
        after: str | None = None,
        order_by: CustomerOrderBy = DomainCustomerOrder.CREATED_AT_DESC,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Customer]:
        flt = CustomerFilter(
            brand_id=brand_or_active(info, brand_id),
            search=search,
            tag_ids=tuple(ids.decode_many(tag_ids, "Tag", "tagIds") or ()),
        )
        page = await service.list_customers(info.context.principal, flt, DomainCustomerOrder(order_by.value),
                                            page=page_request(info, first, after, last, before))
        return await customer_page(info, page)

    @strawberry.field(description="One customer; null when absent or not visible to the caller.")
    async def customer(self, info: Info, id: relay.GlobalID) -> Customer | None:
        return await load_node(id, "Customer", info.context.loaders.customer, Customer.from_model)

    @strawberry.field
    async def tags(self, info: Info) -> list[Tag]:
        return [Tag.from_model(t) for t in await tags.list_tags(info.context.principal)]

