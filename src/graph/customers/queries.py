from __future__ import annotations

from typing import Annotated

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
from graph.core.scalars import BigInt
from graph.customers.types import Channel, Customer, Tag, customer_page

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
        segment_ids: Annotated[list[relay.GlobalID] | None, strawberry.argument(
            description="A current member of any of these segments (at most 20).")] = None,
        churn_risk_min: Annotated[int | None, strawberry.argument(
            description="Effective churn risk (the override, else the brand profile's) at least this.")] = None,
        churn_risk_max: int | None = None,
        lifetime_value_min_cents: Annotated[BigInt | None, strawberry.argument(
            description="Effective lifetime value (the override, else the brand profile's) at least this.")] = None,
        lifetime_value_max_cents: BigInt | None = None,
        consented_channels: Annotated[list[Channel] | None, strawberry.argument(
            description="Consent granted to the brand on every one of these channels (needs the brand).")] = None,
        city: str | None = None,
        country: str | None = None,
        account_manager_id: relay.GlobalID | None = None,
    ) -> Connection[Customer]:
        flt = CustomerFilter(
            brand_id=brand_or_active(info, brand_id),
            search=search,
            tag_ids=tuple(ids.decode_many(tag_ids, "Tag", "tagIds") or ()),
            segment_ids=tuple(ids.decode_many(segment_ids, "Segment", "segmentIds") or ()),
            churn_risk_min=churn_risk_min, churn_risk_max=churn_risk_max,
            lifetime_value_min_cents=lifetime_value_min_cents, lifetime_value_max_cents=lifetime_value_max_cents,
            consented_channels=tuple(c.value for c in consented_channels or ()),
            city=city, country=country,
            account_manager_id=ids.decode(account_manager_id, "Member", "accountManagerId")
            if account_manager_id else None,
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

