"""Conversation mutations: start, reply, notes, assignment, status, snooze, priority, labels,
read markers, chat messages from integrations, canned responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.relay import GlobalID

from domain.conversations import canned, inbound, labels, models, replies, service
from graph.conversations.types import (
    CannedResponse,
    Conversation,
    ConversationChannel,
    ConversationLabel,
    ConversationMessage,
    ConversationPriority,
    ConversationStatus,
)
from graph.core import ids, inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload


@strawberry.input
class StartConversationInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    customer_id: GlobalID
    channel: ConversationChannel
    subject: str | None = strawberry.field(default=None, description="Required for e-mail.")
    body: str
    html: str | None = None
    idempotency_key: str


@strawberry.input
class ReplyToConversationInput:
    conversation_id: GlobalID
    body: str
    html: str | None = None
    idempotency_key: str = strawberry.field(description="The same key twice sends once.")


@strawberry.input(description="A customer's chat message, posted by the brand's chat integration.")
class ReceiveChatMessageInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    customer_id: GlobalID
    body: str
    idempotency_key: str


@strawberry.input
class CannedResponseInput:
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")
    shortcode: str
    title: str
    body: str


@strawberry.input
class UpdateCannedResponseInput:
    id: GlobalID
    shortcode: str | None = UNSET
    title: str | None = UNSET
    body: str | None = UNSET


@strawberry.input
class AddConversationNoteInput:
    conversation_id: GlobalID
    body: str


@strawberry.input
class AssignConversationInput:
    conversation_id: GlobalID
    assignee_id: GlobalID | None = strawberry.field(default=None, description="Null unassigns.")


@strawberry.input
class SetConversationStatusInput:
    conversation_id: GlobalID
    status: ConversationStatus


@strawberry.input
class SnoozeConversationInput:
    conversation_id: GlobalID
    until: datetime


@strawberry.input
class SetConversationPriorityInput:
    conversation_id: GlobalID
    priority: ConversationPriority


@strawberry.input
class ConversationLabelsInput:
    conversation_id: GlobalID
    label_ids: list[GlobalID]


@strawberry.input
class MarkConversationReadInput:
    conversation_id: GlobalID


@strawberry.input
class CreateConversationLabelInput:
    name: str
    color: str | None = None
    brand_id: GlobalID | None = strawberry.field(default=None, description="Falls back to X-Brand-Id.")


@strawberry.input
class DeleteCannedResponseInput:
    id: GlobalID


@strawberry.type
class ConversationPayload:
    conversation: Conversation | None = None
    errors: list[UserError]


@strawberry.type
class ConversationMessagePayload:
    conversation: Conversation | None = None
    message: ConversationMessage | None = None
    errors: list[UserError]


@strawberry.type
class ConversationLabelPayload:
    label: ConversationLabel | None = None
    errors: list[UserError]


@strawberry.type
class CannedResponsePayload:
    canned_response: CannedResponse | None = None
    errors: list[UserError]


@strawberry.type
class DeleteCannedResponsePayload:
    deleted_id: GlobalID | None = None
    errors: list[UserError]


def _conv(c: Any) -> dict[str, Any]:
    return {"conversation": Conversation.from_model(c)}


def _conv_message(r: tuple) -> dict[str, Any]:
    c, m = r
    return {"conversation": Conversation.from_model(c), "message": ConversationMessage.from_model(m)}


def _cid(gid: GlobalID) -> Any:
    return ids.decode(gid, "Conversation", "conversationId")


@strawberry.type
class ConversationMutation:
    @strawberry.mutation(description="Open a conversation with a customer and send the first message (needs the "
                                      "customer's consent for the channel, chat excepted).")
    async def start_conversation(self, info: Info, input: StartConversationInput) -> ConversationMessagePayload:
        async def run():
            return await replies.start_conversation(
                info.context.principal, inputs.brand(info, input.brand_id),
                ids.decode(input.customer_id, "Customer", "customerId"),
                models.ConversationChannel(input.channel.value), input.subject, input.body, input.html,
                input.idempotency_key)

        return await payload(ConversationMessagePayload, run, _conv_message)

    @strawberry.mutation(description="Answer in the thread, through the brand's provider. The same key sends once.")
    async def reply_to_conversation(self, info: Info, input: ReplyToConversationInput) -> ConversationMessagePayload:
        return await payload(ConversationMessagePayload, lambda: replies.reply(
            info.context.principal, _cid(input.conversation_id), input.body, input.html, input.idempotency_key),
            _conv_message)

    @strawberry.mutation(description="A private note for the team; never sent to the customer.")
    async def add_conversation_note(self, info: Info, input: AddConversationNoteInput) -> ConversationMessagePayload:
        return await payload(ConversationMessagePayload, lambda: replies.add_note(
            info.context.principal, _cid(input.conversation_id), input.body), _conv_message)

    @strawberry.mutation(description="Record a customer's chat message (chat integrations). The same key once.")
    async def receive_chat_message(self, info: Info, input: ReceiveChatMessageInput) -> ConversationMessagePayload:
        return await payload(ConversationMessagePayload, lambda: inbound.receive_chat(
            info.context.principal, inputs.brand(info, input.brand_id),
            ids.decode(input.customer_id, "Customer", "customerId"), input.body, input.idempotency_key),
            _conv_message)

    @strawberry.mutation(description="Assign to a member with access to the brand; null unassigns.")
    async def assign_conversation(self, info: Info, input: AssignConversationInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: service.assign(
            info.context.principal, _cid(input.conversation_id),
            ids.optional(input.assignee_id, "Member", "assigneeId")), _conv)

    @strawberry.mutation(description="OPEN, PENDING or RESOLVED (snooze with snoozeConversation).")
    async def set_conversation_status(self, info: Info, input: SetConversationStatusInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: service.set_status(
            info.context.principal, _cid(input.conversation_id), models.Status(input.status.value)), _conv)

    @strawberry.mutation(description="Hide until a time; then (or at the customer's next message) it opens again.")
    async def snooze_conversation(self, info: Info, input: SnoozeConversationInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: service.snooze(
            info.context.principal, _cid(input.conversation_id), input.until), _conv)

    @strawberry.mutation
    async def set_conversation_priority(self, info: Info, input: SetConversationPriorityInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: service.set_priority(
            info.context.principal, _cid(input.conversation_id), models.Priority(input.priority.value)), _conv)

    @strawberry.mutation
    async def label_conversation(self, info: Info, input: ConversationLabelsInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: labels.change_labels(
            info.context.principal, _cid(input.conversation_id),
            ids.decode_many(input.label_ids, "ConversationLabel", "labelIds"), []), _conv)

    @strawberry.mutation
    async def unlabel_conversation(self, info: Info, input: ConversationLabelsInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: labels.change_labels(
            info.context.principal, _cid(input.conversation_id), [],
            ids.decode_many(input.label_ids, "ConversationLabel", "labelIds")), _conv)

    @strawberry.mutation(description="Everything in the conversation so far counts as read by the caller.")
    async def mark_conversation_read(self, info: Info, input: MarkConversationReadInput) -> ConversationPayload:
        return await payload(ConversationPayload, lambda: service.mark_read(
            info.context.principal, _cid(input.conversation_id)), _conv)

    @strawberry.mutation
    async def create_conversation_label(self, info: Info, input: CreateConversationLabelInput) -> ConversationLabelPayload:
        return await payload(ConversationLabelPayload, lambda: labels.create_label(
            info.context.principal, inputs.brand(info, input.brand_id), input.name, input.color),
            lambda x: {"label": ConversationLabel.from_model(x)})

    @strawberry.mutation
    async def create_canned_response(self, info: Info, input: CannedResponseInput) -> CannedResponsePayload:
        return await payload(CannedResponsePayload, lambda: canned.create_canned(
            info.context.principal, inputs.brand(info, input.brand_id),
            {"shortcode": input.shortcode, "title": input.title, "body": input.body}),
            lambda x: {"canned_response": CannedResponse.from_model(x)})

    @strawberry.mutation
    async def update_canned_response(self, info: Info, input: UpdateCannedResponseInput) -> CannedResponsePayload:
        data = {k: v for k, v in {"shortcode": input.shortcode, "title": input.title, "body": input.body}.items()
                if v is not UNSET}
        return await payload(CannedResponsePayload, lambda: canned.update_canned(
            info.context.principal, ids.decode(input.id, "CannedResponse"), data),
            lambda x: {"canned_response": CannedResponse.from_model(x)})

    @strawberry.mutation
    async def delete_canned_response(self, info: Info, input: DeleteCannedResponseInput) -> DeleteCannedResponsePayload:
        return await payload(DeleteCannedResponsePayload, lambda: canned.delete_canned(
            info.context.principal, ids.decode(input.id, "CannedResponse")), lambda _: {"deleted_id": input.id})
