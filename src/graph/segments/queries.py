from __future__ import annotations

import strawberry
from strawberry import relay

from domain.segments import catalogue, inspection, membership, service
from graph.core import ids
from graph.core.brands import brand_or_active, required_brand
from graph.core.connection import page_request
from graph.core.context import Info
from graph.core.nodes import load_node
from graph.customers.types import Customer
from graph.segments.inputs import (
    CustomAttributeType,
    SegmentDefinitionInput,
    SegmentOperator,
    to_definition,
)
from graph.segments.types import (
    CustomAttribute,
    Segment,
    SegmentConnection,
    SegmentExplanation,
    SegmentField,
    SegmentPreviewConnection,
    SegmentsOverlap,
    explanation_node,
)


@strawberry.type
class SegmentQuery:
    @strawberry.field(description="Segments, newest first; a brand's with brandId (or X-Brand-Id).")
    async def segments(self, info: Info, brand_id: relay.GlobalID | None = None, include_archived: bool = False,
                       first: int | None = 20, after: str | None = None, last: int | None = None,
                       before: str | None = None) -> SegmentConnection:
        brand = brand_or_active(info, brand_id)
        page = await service.list_segments(info.context.principal, brand, include_archived=include_archived,
                                           page=page_request(info, first, after, last, before))
        return SegmentConnection.of(page, Segment.from_model, lambda: service.count_segments(
            info.context.principal, brand, include_archived=include_archived))

    @strawberry.field
    async def segment(self, info: Info, id: relay.GlobalID) -> Segment | None:
        return await load_node(id, "Segment", info.context.loaders.segment, Segment.from_model)

    @strawberry.field(description="Every field a segment rule can use for this brand, with operators and suggestions.")
    async def segment_fields(self, info: Info, brand_id: relay.GlobalID | None = None) -> list[SegmentField]:
        found = await catalogue.field_catalogue(info.context.principal, required_brand(info, brand_id))
        return [SegmentField(kind=f.kind, field=f.field, label=f.label, value_type=f.value_type,
                             operators=[SegmentOperator(o.value) for o in f.operators],
                             enum_values=list(f.enum_values), suggestions=list(f.suggestions)) for f in found]

    @strawberry.field(description=(
        "How the current members of 1 to 10 segments overlap: each one's size and members in none of the others, "
        "each pair's members in both, and the members of any; read in one statement."))
    async def segment_overlap(self, info: Info, segment_ids: list[relay.GlobalID]) -> SegmentsOverlap:
        decoded = [ids.decode(x, "Segment", f"segmentIds[{i}]") for i, x in enumerate(segment_ids)]
        return SegmentsOverlap.from_report(await membership.overlap_of(info.context.principal, decoded))

    @strawberry.field(description="The member count and first members of a definition, without saving it.")
    async def preview_segment(self, info: Info, definition: SegmentDefinitionInput, brand_id: relay.GlobalID | None = None,
                              first: int | None = 20, after: str | None = None, last: int | None = None,
                              before: str | None = None) -> SegmentPreviewConnection:
        page = await inspection.preview(info.context.principal, required_brand(info, brand_id),
                                        to_definition(definition), page=page_request(info, first, after, last, before))
        return SegmentPreviewConnection.of(page, Customer.from_model)

    @strawberry.field(description="Why a customer is in or out: each rule's result and the value it saw.")
    async def explain_segment(self, info: Info, customer_id: relay.GlobalID, segment_id: relay.GlobalID | None = None,
                              brand_id: relay.GlobalID | None = None,
                              definition: SegmentDefinitionInput | None = None) -> SegmentExplanation:
        e = await inspection.explain(
            info.context.principal, ids.decode(customer_id, "Customer", "customerId"),
            segment_id=ids.optional(segment_id, "Segment", "segmentId"),
            brand_id=brand_or_active(info, brand_id),
            definition=to_definition(definition) if definition else None)
        return SegmentExplanation(matched=e.matched, in_brand=e.in_brand, root=explanation_node(e.root))

    @strawberry.field(description="Declared custom attributes (their type decides the operators).")
    async def custom_attributes(self, info: Info) -> list[CustomAttribute]:
        return [CustomAttribute(name=c.name, type=CustomAttributeType(c.type), label=c.label)
                for c in await catalogue.list_custom_attributes(info.context.principal)]
