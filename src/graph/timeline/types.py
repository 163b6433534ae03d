"""The typed timeline: a TimelineEvent interface, one concrete type per kind (or family of kinds).

Kinds without a type of their own yet (segments, AI actions) resolve as OtherTimelineEvent with
the raw data; typed events keep ``data`` too, for fields added later."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.commerce.service import OrderStatus as DomainOrderStatus
from domain.conversations.models import ConversationChannel as DomainConversationChannel
from domain.customers.consent import Channel as DomainConsentChannel
from domain.customers.notes import NoteType as DomainNoteType
from domain.customers.notes import NoteVisibility as DomainNoteVisibility
from domain.delivery.base import Channel as DomainMessageChannel
from domain.timeline import service as timeline
from domain.timeline.models import TimelineEntry
from domain.timeline.service import Kind
from graph.commerce.types import OrderStatus
from graph.conversations.enums import ConversationChannel, MessageDirection, _Direction
from graph.core.context import Info
from graph.core.scalars import BigInt
from graph.customers.enums import Channel, NoteType, NoteVisibility
from graph.delivery.types import Channel as MessageChannel
from graph.tenancy.types import Brand, brand_of

TimelineEventKind = strawberry.enum(Kind, name="TimelineEventKind")


# The GraphQL names are UPPER_CASE, the Python values are what the events store.
class _Touch(str, Enum):
    CLICK = "click"
    OPEN = "open"


ConversionTouch = strawberry.enum(_Touch, name="ConversionTouch",
                                  description="The engagement a conversion is credited to: CLICK or OPEN.")


def _enum(cls, value):
    """A stored value as its enum, None when absent (events recorded before a field existed)."""
    return cls(value) if value is not None else None


def _event_key(node_id: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """A timeline event's node id, ``<customer id>.<event id>``: the event's place in its table's key."""
    customer, _, event = node_id.partition(".")
    try:
        return uuid.UUID(customer), uuid.UUID(event)
    except ValueError:
        return None


async def _events_by_key(info: Info, keys: list[tuple[uuid.UUID, uuid.UUID]]) -> dict:
    return await timeline.entries_by_keys(info.context.principal, keys)


@strawberry.interface(description="Something that happened to a customer.")
class TimelineEvent(relay.Node):
    id: relay.NodeID[str]
    occurred_at: datetime
    kind: TimelineEventKind
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list:
        keys = [_event_key(n) for n in node_ids]
        found = await _events_by_key(info, [k for k in keys if k is not None])
        events = [from_entry(found[k]) if k is not None and k in found else None for k in keys]
        return [e if isinstance(e, cls) and type(e).__name__ == cls.__name__ else None for e in events]


@strawberry.type
class OrderPlacedEvent(TimelineEvent):
    order_id: relay.GlobalID
    external_order_id: str
    total_cents: BigInt
    currency: str
    status: OrderStatus
    item_count: int


@strawberry.type
class EventTrackedEvent(TimelineEvent):
    name: str
    properties: JSON


@strawberry.type
class NoteAddedEvent(TimelineEvent):
    note_id: relay.GlobalID
    note_type: NoteType
    visibility: NoteVisibility
    author: str | None
    excerpt: str


@strawberry.type
class TagAddedEvent(TimelineEvent):
    tag_id: relay.GlobalID
    tag_name: str | None
    by: str | None


@strawberry.type
class TagRemovedEvent(TimelineEvent):
    tag_id: relay.GlobalID
    tag_name: str | None
    by: str | None


@strawberry.type
class ConsentChangedEvent(TimelineEvent):
    channel: Channel
    granted: bool
    source: str


@strawberry.type
class CustomerCreatedEvent(TimelineEvent):
    source: str


if TYPE_CHECKING:
    from graph.campaigns.types import Campaign
    from graph.conversations.types import Conversation

_MESSAGE_KINDS = {Kind.MESSAGE_SENT, Kind.MESSAGE_DELIVERED, Kind.MESSAGE_OPENED, Kind.MESSAGE_CLICKED,
                  Kind.MESSAGE_BOUNCED, Kind.MESSAGE_FAILED, Kind.MESSAGE_COMPLAINED, Kind.MESSAGE_UNSUBSCRIBED}


async def _campaign(info: Info, campaign_id: str | None):
    # the GraphQL types of two areas refer to each other: imported when resolved
    from graph.campaigns.types import Campaign

    if not campaign_id:
        return None
    found = await info.context.loaders.campaign.load(uuid.UUID(campaign_id))
    return Campaign.from_model(found) if found else None


@strawberry.type(description="A step of a campaign message: sent, delivered, opened, clicked, bounced, failed, "
                             "complained or unsubscribed (the first of each kind).")
class CampaignMessageEvent(TimelineEvent):
    channel: MessageChannel | None
    url: str | None = strawberry.field(description="Clicks: where the link pointed.")
    reason: str | None = strawberry.field(description="Bounces and failures: the provider's reason.")
    source: str | None = strawberry.field(description="Who told: the provider's webhook, or our tracking.")
    data: JSON
    campaign_id: strawberry.Private[str | None]

    @strawberry.field
    async def campaign(self, info: Info) -> Annotated["Campaign", strawberry.lazy("graph.campaigns.types")] | None:  # noqa: UP037
        return await _campaign(info, self.campaign_id)


@strawberry.type(description="An order attributed to a campaign the customer opened or clicked.")
class CampaignConversionEvent(TimelineEvent):
    order_id: relay.GlobalID | None
    revenue_cents: BigInt
    touch: ConversionTouch = strawberry.field(description="CLICK or OPEN: the engagement it is credited to.")
    data: JSON
    campaign_id: strawberry.Private[str | None]

    @strawberry.field
    async def campaign(self, info: Info) -> Annotated["Campaign", strawberry.lazy("graph.campaigns.types")] | None:  # noqa: UP037
        return await _campaign(info, self.campaign_id)


@strawberry.type(description="A message in a conversation, from or to the customer (notes are not on the timeline).")
class ConversationMessageEvent(TimelineEvent):
    direction: MessageDirection
    channel: ConversationChannel | None
    excerpt: str
    data: JSON
    conversation_id: strawberry.Private[str | None]

    @strawberry.field
    async def conversation(self, info: Info
                           ) -> Annotated["Conversation", strawberry.lazy("graph.conversations.types")] | None:  # noqa: UP037
        # the GraphQL types of two areas refer to each other: imported when resolved
        from graph.conversations.types import Conversation

        if not self.conversation_id:
            return None
        found = await info.context.loaders.conversation.load(uuid.UUID(self.conversation_id))
        return Conversation.from_model(found) if found else None


@strawberry.type(description="A kind without its own type yet; `data` holds what was recorded.")
class OtherTimelineEvent(TimelineEvent):
    data: JSON


TIMELINE_TYPES = (OrderPlacedEvent, EventTrackedEvent, NoteAddedEvent, TagAddedEvent, TagRemovedEvent,
                  ConsentChangedEvent, CustomerCreatedEvent, CampaignMessageEvent, CampaignConversionEvent,
                  ConversationMessageEvent, OtherTimelineEvent)


def _gid(type_name: str, value: str | None) -> relay.GlobalID:
    return relay.GlobalID(type_name, value or "")


def from_entry(e: TimelineEntry) -> TimelineEvent:
    base = dict(id=f"{e.customer_id}.{e.id}", occurred_at=e.occurred_at, kind=Kind(e.kind), brand_id=e.brand_id)
    d = e.data or {}
    match e.kind:
        case Kind.ORDER_PLACED.value:
            return OrderPlacedEvent(**base, order_id=_gid("Order", e.ref_id),
                                    external_order_id=d.get("external_order_id", ""), total_cents=d.get("total_cents", 0),
                                    currency=d.get("currency", ""), status=DomainOrderStatus(d.get("status", "placed")),
                                    item_count=d.get("items", 0))
        case Kind.EVENT_TRACKED.value:
            return EventTrackedEvent(**base, name=d.get("name", ""), properties=d.get("properties", {}))
        case Kind.NOTE_ADDED.value:
            return NoteAddedEvent(**base, note_id=_gid("Note", e.ref_id), note_type=DomainNoteType(d.get("type", "info")),
                                  visibility=DomainNoteVisibility(d.get("visibility", "internal")), author=d.get("author"),
                                  excerpt=d.get("excerpt", ""))
        case Kind.TAG_ADDED.value | Kind.TAG_REMOVED.value:
            cls = TagAddedEvent if e.kind == Kind.TAG_ADDED.value else TagRemovedEvent
            return cls(**base, tag_id=_gid("Tag", d.get("tag_id")), tag_name=d.get("tag"), by=d.get("by"))
        case Kind.CONSENT_CHANGED.value:
            return ConsentChangedEvent(**base, channel=DomainConsentChannel(d["channel"]), granted=bool(d.get("granted")),
                                       source=d.get("source", ""))
        case Kind.CUSTOMER_CREATED.value:
            return CustomerCreatedEvent(**base, source=d.get("source", ""))
        case Kind.CAMPAIGN_CONVERSION.value:
            return CampaignConversionEvent(**base, order_id=_gid("Order", d["order_id"]) if d.get("order_id") else None,
                                           revenue_cents=int(d.get("revenue_cents") or 0), touch=_Touch(d.get("touch", "open")),
                                           data=d, campaign_id=d.get("campaign_id"))
        case Kind.CONVERSATION_MESSAGE.value:
            return ConversationMessageEvent(**base, direction=_Direction(d.get("direction", "inbound")),
                                            channel=_enum(DomainConversationChannel, d.get("channel")),
                                            excerpt=d.get("excerpt", ""), data=d,
                                            conversation_id=d.get("conversation_id"))
    if Kind(e.kind) in _MESSAGE_KINDS:
        return CampaignMessageEvent(**base, channel=_enum(DomainMessageChannel, d.get("channel")), url=d.get("url"), reason=d.get("reason"),
                                    source=d.get("source"), data=d, campaign_id=d.get("campaign_id"))
    return OtherTimelineEvent(**base, data=d)
