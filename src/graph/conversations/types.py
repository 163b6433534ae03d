"""GraphQL types of conversations."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.conversations import canned, inbox, labels, models
from domain.conversations.models import CannedResponse as CannedModel
from domain.conversations.models import Conversation as ConversationModel
from domain.conversations.models import Label as LabelModel
from domain.conversations.models import Message as MessageModel
from graph.campaigns.types import Campaign
from graph.conversations.enums import ConversationChannel, MessageDirection
from graph.core.connection import Connection, TotalCount, page_request
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.customers.types import Customer
from graph.tenancy.types import Brand, brand_of

ConversationStatus = strawberry.enum(models.Status, name="ConversationStatus")
ConversationPriority = strawberry.enum(models.Priority, name="ConversationPriority")


@strawberry.type(description="A label of a brand's conversations.")
class ConversationLabel(relay.Node):
    id: relay.NodeID[str]
    name: str
    color: str

    @classmethod
    def from_model(cls, x: LabelModel) -> ConversationLabel:
        return cls(id=str(x.id), name=x.name, color=x.color)

    resolve_nodes = node_resolver(lambda info, keys: labels.labels_by_ids(info.context.principal, keys))


# Enum-like columns: the GraphQL names are UPPER_CASE, the Python values are what the rows store.
class _MessageKind(str, Enum):
    MESSAGE = "message"
    NOTE = "note"


class _AuthorType(str, Enum):
    CUSTOMER = "customer"
    USER = "user"
    AUTOMATION = "automation"


class _DeliveryStatus(str, Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class _StartedBy(str, Enum):
    CUSTOMER = "customer"
    USER = "user"


class _EventType(str, Enum):
    CONVERSATION_CREATED = "conversation_created"
    MESSAGE_CREATED = "message_created"
    MESSAGE_UPDATED = "message_updated"
    NOTE_ADDED = "note_added"
    STATUS_CHANGED = "status_changed"
    ASSIGNED = "assigned"
    PRIORITY_CHANGED = "priority_changed"
    LABELS_CHANGED = "labels_changed"


MessageKind = strawberry.enum(_MessageKind, name="MessageKind", description="MESSAGE, or NOTE (private).")
MessageAuthorType = strawberry.enum(_AuthorType, name="MessageAuthorType", description="Who wrote a message.")
MessageDeliveryStatus = strawberry.enum(_DeliveryStatus, name="MessageDeliveryStatus",
                                        description="Where an outbound message is on its way to the customer.")
ConversationStartedBy = strawberry.enum(_StartedBy, name="ConversationStartedBy",
                                        description="Who opened a conversation.")
ConversationEventType = strawberry.enum(_EventType, name="ConversationEventType",
                                        description="What changed in a brand's conversations.")


@strawberry.type(description="The member a conversation is assigned to, as anyone who reads conversations sees them.")
class ConversationAssignee(relay.Node):
    id: relay.NodeID[str]
    member_id: relay.GlobalID = strawberry.field(description="The Member id (assignConversation's assigneeId).")
    email: str
    name: str | None

    @classmethod
    def from_model(cls, a: inbox.Assignee) -> ConversationAssignee:
        return cls(id=str(a.member_id), member_id=relay.GlobalID("Member", str(a.member_id)), email=a.email,
                   name=a.name)

    resolve_nodes = node_resolver(lambda info, keys: inbox.assignees_by_member_ids(info.context.principal, keys))


@strawberry.type(description="A message in a conversation, or a private note (never sent to the customer).")
class ConversationMessage(relay.Node):
    id: relay.NodeID[str]
    direction: MessageDirection
    kind: MessageKind
    author_type: MessageAuthorType
    author_label: str | None
    body: str | None
    html: str | None
    attachments: JSON
    from_address: str | None
    to_address: str | None
    message_id_header: str | None = strawberry.field(description="E-mail Message-ID.")
    in_reply_to: str | None
    references: list[str]
    delivery_status: MessageDeliveryStatus | None = strawberry.field(description="Outbound messages only.")
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def from_model(cls, m: MessageModel) -> ConversationMessage:
        return cls(id=str(m.id), direction=MessageDirection(m.direction), kind=MessageKind(m.kind),
                   author_type=MessageAuthorType(m.author_type),
                   author_label=m.author_label, body=m.body_text, html=m.body_html, attachments=m.attachments or [],
                   from_address=m.from_address, to_address=m.to_address, message_id_header=m.message_id_header,
                   in_reply_to=m.in_reply_to, references=(m.references or "").split(),
                   delivery_status=MessageDeliveryStatus(m.delivery_status) if m.delivery_status else None, error=m.error, created_at=m.created_at, sent_at=m.sent_at,
                   delivered_at=m.delivered_at)

    resolve_nodes = node_resolver(lambda info, keys: inbox.messages_by_ids(info.context.principal, keys))


@strawberry.type(description="A thread between a brand and a customer on one channel.")
class Conversation(relay.Node):
    id: relay.NodeID[str]
    channel: ConversationChannel
    status: ConversationStatus
    priority: ConversationPriority
    subject: str | None
    snoozed_until: datetime | None
    started_by: ConversationStartedBy
    first_response_at: datetime | None
    resolved_at: datetime | None
    last_message_at: datetime
    message_count: int
    created_at: datetime
    brand_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]
    campaign_id: strawberry.Private[uuid.UUID | None]
    assignee_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @strawberry.field
    async def customer(self, info: Info) -> Customer | None:
        found = await info.context.loaders.customer.load(self.customer_id)
        return Customer.from_model(found) if found else None

    @strawberry.field(description="The campaign this conversation began as a reply to.")
    async def campaign(self, info: Info) -> Campaign | None:
        if self.campaign_id is None:
            return None
        found = await info.context.loaders.campaign.load(self.campaign_id)
        return Campaign.from_model(found) if found else None

    @strawberry.field
    async def assignee(self, info: Info) -> ConversationAssignee | None:
        if self.assignee_id is None:
            return None
        found = await info.context.loaders.conversation_assignee.load(self.assignee_id)
        if found is None:
            return None
        return ConversationAssignee.from_model(found)

    @strawberry.field
    async def labels(self, info: Info) -> list[ConversationLabel]:
        return [ConversationLabel.from_model(x) for x in await info.context.loaders.conversation_labels.load(
            uuid.UUID(self.id))]

    @strawberry.field(description="The latest message (notes excepted).")
    async def last_message(self, info: Info) -> ConversationMessage | None:
        found = await info.context.loaders.conversation_last_message.load(uuid.UUID(self.id))
        return ConversationMessage.from_model(found) if found else None

    @strawberry.field(description="The customer's messages the caller has not read (markConversationRead).")
    async def unread_count(self, info: Info) -> int:
        return await info.context.loaders.conversation_unread.load(uuid.UUID(self.id))

    @strawberry.field(description="Messages and notes, oldest first (newestFirst: true for the other way).")
    async def messages(self, info: Info, first: int | None = 50, after: str | None = None,
                       newest_first: bool = False, last: int | None = None,
                       before: str | None = None) -> Connection[ConversationMessage]:
        page = await info.context.loaders.conversation_messages.load(
            (uuid.UUID(self.id), page_request(info, first, after, last, before, default=50), newest_first))
        return Connection.of(page, ConversationMessage.from_model)

    @classmethod
    def from_model(cls, c: ConversationModel) -> Conversation:
        return cls(id=str(c.id), channel=models.ConversationChannel(c.channel), status=models.Status(c.status),
                   priority=models.Priority(c.priority), subject=c.subject, snoozed_until=c.snoozed_until,
                   started_by=ConversationStartedBy(c.started_by), first_response_at=c.first_response_at, resolved_at=c.resolved_at,
                   last_message_at=c.last_message_at, message_count=c.message_count, created_at=c.created_at,
                   brand_id=c.brand_id, customer_id=c.customer_id, campaign_id=c.campaign_id,
                   assignee_id=c.assignee_id)

    resolve_nodes = node_resolver(lambda info, keys: info.context.loaders.conversation.load_many(keys))


@strawberry.type(description="A page of a brand's inbox.")
class ConversationConnection(Connection[Conversation], TotalCount):
    pass


@strawberry.type(description="Conversations per status, for the inbox tabs.")
class ConversationCounts:
    open: int
    pending: int
    snoozed: int
    resolved: int
    unread: int = strawberry.field(description="Not resolved, with messages the caller has not read.")
    unassigned: int = strawberry.field(description="Open and assigned to nobody.")


@strawberry.type(description="A saved reply; its body is a template (customer, brand, profile variables).")
class CannedResponse(relay.Node):
    id: relay.NodeID[str]
    shortcode: str
    title: str
    body: str
    created_by: str | None
    updated_at: datetime

    @classmethod
    def from_model(cls, x: CannedModel) -> CannedResponse:
        return cls(id=str(x.id), shortcode=x.shortcode, title=x.title, body=x.body, created_by=x.created_by,
                   updated_at=x.updated_at)

    resolve_nodes = node_resolver(lambda info, keys: canned.canned_by_ids(info.context.principal, keys))


@strawberry.type(description="Something changed in a brand's conversations.")
class ConversationEvent:
    type: ConversationEventType
    conversation: Conversation | None
    message: ConversationMessage | None
