"""Enums of conversations the timeline's typed events use too (kept apart from the types, which
import the customers' types, which import the timeline)."""

from __future__ import annotations

from enum import Enum

import strawberry

from domain.conversations import models

ConversationChannel = strawberry.enum(models.ConversationChannel, name="ConversationChannel")


# The GraphQL names are UPPER_CASE, the Python values are what the rows store.
class _Direction(str, Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


MessageDirection = strawberry.enum(_Direction, name="MessageDirection",
                                   description="INBOUND (from the customer) or OUTBOUND.")
