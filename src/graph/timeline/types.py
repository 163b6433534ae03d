"""The typed timeline: a TimelineEvent interface, one concrete type per kind.

Kinds that later capabilities write (messages, segments, campaigns, AI) are in the enum already;
until their own types exist they resolve as OtherTimelineEvent with the raw data."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from domain.timeline.models import TimelineEntry
from domain.timeline.service import Kind
from graph.core.context import Info
from graph.tenancy.types import Brand, brand_of

TimelineEventKind = strawberry.enum(Kind, name="TimelineEventKind")


@strawberry.interface(description="Something that happened to a customer.")
class TimelineEvent:
    id: strawberry.ID
    occurred_at: datetime
    kind: TimelineEventKind
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)


@strawberry.type
class OrderPlacedEvent(TimelineEvent):
    order_id: strawberry.ID
    external_order_id: str
    total_cents: int
    currency: str
    status: str
    item_count: int


@strawberry.type
class EventTrackedEvent(TimelineEvent):
    name: str
    properties: JSON


@strawberry.type
class NoteAddedEvent(TimelineEvent):
    note_id: strawberry.ID
    note_type: str
    visibility: str
    author: str | None
    excerpt: str


@strawberry.type
class TagAddedEvent(TimelineEvent):
    tag_id: strawberry.ID
    tag_name: str | None
    by: str | None


@strawberry.type
class TagRemovedEvent(TimelineEvent):
    tag_id: strawberry.ID
    tag_name: str | None
    by: str | None


@strawberry.type
class ConsentChangedEvent(TimelineEvent):
    channel: str
    granted: bool
    source: str


@strawberry.type
class CustomerCreatedEvent(TimelineEvent):
    source: str


@strawberry.type(description="A kind without its own type yet; `data` holds what was recorded.")
class OtherTimelineEvent(TimelineEvent):
    data: JSON


TIMELINE_TYPES = (OrderPlacedEvent, EventTrackedEvent, NoteAddedEvent, TagAddedEvent, TagRemovedEvent,
                  ConsentChangedEvent, CustomerCreatedEvent, OtherTimelineEvent)


def from_entry(e: TimelineEntry) -> TimelineEvent:
    base = dict(id=strawberry.ID(str(e.id)), occurred_at=e.occurred_at, kind=Kind(e.kind), brand_id=e.brand_id)
    d = e.data or {}
    match e.kind:
        case Kind.ORDER_PLACED.value:
            return OrderPlacedEvent(**base, order_id=strawberry.ID(e.ref_id or ""),
                                    external_order_id=d.get("external_order_id", ""), total_cents=d.get("total_cents", 0),
                                    currency=d.get("currency", ""), status=d.get("status", ""),
                                    item_count=d.get("items", 0))
        case Kind.EVENT_TRACKED.value:
            return EventTrackedEvent(**base, name=d.get("name", ""), properties=d.get("properties", {}))
        case Kind.NOTE_ADDED.value:
            return NoteAddedEvent(**base, note_id=strawberry.ID(e.ref_id or ""), note_type=d.get("type", ""),
                                  visibility=d.get("visibility", ""), author=d.get("author"),
                                  excerpt=d.get("excerpt", ""))
        case Kind.TAG_ADDED.value | Kind.TAG_REMOVED.value:
            cls = TagAddedEvent if e.kind == Kind.TAG_ADDED.value else TagRemovedEvent
            return cls(**base, tag_id=strawberry.ID(d.get("tag_id", "")), tag_name=d.get("tag"), by=d.get("by"))
        case Kind.CONSENT_CHANGED.value:
            return ConsentChangedEvent(**base, channel=d.get("channel", ""), granted=bool(d.get("granted")),
                                       source=d.get("source", ""))
        case Kind.CUSTOMER_CREATED.value:
            return CustomerCreatedEvent(**base, source=d.get("source", ""))
    return OtherTimelineEvent(**base, data=d)
