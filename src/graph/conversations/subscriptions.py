from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay

from domain.conversations import events, inbox
from graph.conversations.types import (
    Conversation,
    ConversationEvent,
    ConversationEventType,
    ConversationMessage,
)
from graph.core.brands import required_brand
from graph.core.context import Info


@strawberry.type
class ConversationSubscription:
    @strawberry.subscription(description="A brand's inbox live: new conversations and messages, status, assignment, "
                                         "priority and label changes. Published across API processes.")
    async def conversation_events(self, info: Info, brand_id: relay.GlobalID | None = None
                                  ) -> AsyncGenerator[ConversationEvent, None]:
        principal = info.context.principal
        bid = required_brand(info, brand_id)
        await inbox.check_inbox(principal, bid)  # a brand of the caller's tenant it may use, or NOT_FOUND
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, events.topic(bid)) as queue:
            while True:
                event = await queue.get()
                await info.context.recheck()
                principal = info.context.principal
                cid = uuid.UUID(event["conversation_id"])
                found = (await inbox.conversations_by_ids(principal, [cid])).get(cid)
                if found is None:
                    continue
                message = None
                if event.get("message_id"):
                    m = await inbox.message_by_id(principal, cid, uuid.UUID(event["message_id"]))
                    message = ConversationMessage.from_model(m) if m else None
                info.context.fresh_loaders()
                yield ConversationEvent(type=ConversationEventType(event["type"]), conversation=Conversation.from_model(found), message=message)
