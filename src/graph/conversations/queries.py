from __future__ import annotations

import strawberry
from strawberry import relay

from domain.conversations import canned, inbox, labels, models
from graph.conversations.types import (
    CannedResponse,
    Conversation,
    ConversationConnection,
    ConversationCounts,
    ConversationLabel,
    ConversationStatus,
)
from graph.core import ids
from graph.core.brands import required_brand
from graph.core.connection import page_request
from graph.core.context import Info
from graph.core.nodes import load_node


@strawberry.type
class ConversationQuery:
    @strawberry.field(description="A brand's inbox, newest activity first.")
    async def conversations(self, info: Info, brand_id: relay.GlobalID | None = None, status: list[ConversationStatus] | None = None,
                            assignee_id: relay.GlobalID | None = None, unassigned: bool = False,
                            label_ids: list[relay.GlobalID] | None = None, unread_only: bool = False,
                            search: str | None = None, first: int | None = 25,
                            after: str | None = None, last: int | None = None,
                            before: str | None = None) -> ConversationConnection:
        flt = inbox.InboxFilter(
            brand_id=required_brand(info, brand_id),
            statuses=tuple(models.Status(s.value) for s in status or ()),
            assignee_id=ids.optional(assignee_id, "Member", "assigneeId"), unassigned=unassigned,
            label_ids=tuple(ids.decode_many(label_ids, "ConversationLabel", "labelIds") or ()),
            unread_only=unread_only, search=search)
        page = await inbox.inbox(info.context.principal, flt, page=page_request(info, first, after, last, before, default=25))
        return ConversationConnection.of(page, Conversation.from_model,
                                         lambda: inbox.count_inbox(info.context.principal, flt))

    @strawberry.field
    async def conversation(self, info: Info, id: relay.GlobalID) -> Conversation | None:
        return await load_node(id, "Conversation", info.context.loaders.conversation, Conversation.from_model)

    @strawberry.field(description="Conversations per status, for the inbox tabs.")
    async def conversation_counts(self, info: Info, brand_id: relay.GlobalID | None = None) -> ConversationCounts:
        c = await inbox.counts(info.context.principal, required_brand(info, brand_id))
        return ConversationCounts(**c)

    @strawberry.field
    async def conversation_labels(self, info: Info, brand_id: relay.GlobalID | None = None) -> list[ConversationLabel]:
        rows = await labels.list_labels(info.context.principal, required_brand(info, brand_id))
        return [ConversationLabel.from_model(x) for x in rows]

    @strawberry.field(description="A brand's saved replies, by shortcode.")
    async def canned_responses(self, info: Info, brand_id: relay.GlobalID | None = None,
                               search: str | None = None) -> list[CannedResponse]:
        rows = await canned.list_canned(info.context.principal, required_brand(info, brand_id), search)
        return [CannedResponse.from_model(x) for x in rows]

    @strawberry.field(description="A canned response filled in for the conversation's customer.")
    async def render_canned_response(self, info: Info, canned_response_id: relay.GlobalID,
                                     conversation_id: relay.GlobalID) -> str:
        return await canned.render_canned(info.context.principal,
                                          ids.decode(canned_response_id, "CannedResponse", "cannedResponseId"),
                                          ids.decode(conversation_id, "Conversation", "conversationId"))
