"""The live events of a brand's conversation inbox: each change to a conversation announces
itself on the brand's topic, with the transaction that makes it (an outbox row).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain.conversations.models import Conversation
from domain.platform import outbox


def topic(brand_id: uuid.UUID) -> str:
    return f"conversations:{brand_id}"


def announce(s: AsyncSession, c: Conversation, kind: str, **extra: Any) -> None:
    """Publish a conversation event for the brand's live inbox with the transaction."""
    payload = {"type": kind, "conversation_id": str(c.id), **{k: str(v) if v is not None else None
                                                                for k, v in extra.items()}}
    outbox.publish(s, c.tenant_id, topic(c.brand_id), payload)
