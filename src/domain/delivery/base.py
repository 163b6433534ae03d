"""The one small interface every delivery provider implements, and what flows through it.

A provider takes a list of rendered messages for one sender and reports, per message, whether it
was accepted (with the provider's message id), refused for good (an invalid address), or could
not be handled now. A failure of the whole call that is worth retrying later (rate limited,
server error, network) raises :class:`ProviderUnavailable`; a configuration the provider refuses
(bad credentials) raises :class:`ProviderRejected`.

Every message carries ``key``: our stable id for it (``c.<campaign>.<customer>`` for campaign
messages). Providers send it along where their API echoes custom data back in webhooks, so an
event finds its message without a lookup table. ``batch_key`` identifies one call's exact list of
messages: providers whose API takes an idempotency key pass it, so a retried call after a crash
is processed once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol


class Channel(str, Enum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


@dataclass(frozen=True)
class Sender:
    """The sending identity, from the brand."""

    from_email: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    sms_sender: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    key: str
    to: str  # e-mail address, E.164 phone number, or device registration token
    to_name: str | None = None
    # email
    subject: str | None = None
    preheader: str | None = None
    html: str | None = None
    text: str | None = None  # also the SMS body
    headers: dict[str, str] = field(default_factory=dict)  # e.g. List-Unsubscribe, Message-ID
    # push
    title: str | None = None
    body: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    # echoed back by providers that support custom data on events
    metadata: dict[str, str] = field(default_factory=dict)


class Outcome(str, Enum):
    ACCEPTED = "accepted"  # the provider took it; events follow
    REJECTED = "rejected"  # refused for good (invalid address, unregistered device): do not retry
    RETRY = "retry"  # this message could not be handled now; try again later


@dataclass(frozen=True)
class SendResult:
    key: str
    outcome: Outcome
    provider_message_id: str | None = None
    error: str | None = None


class ProviderError(Exception):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class ProviderUnavailable(ProviderError):
    """Nothing of this call was sent; try the whole call again later (after ``retry_after``)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    """The provider refuses this account or request as configured (bad credentials, sender not
    verified): retrying will not help until someone changes the settings."""


class Provider(Protocol):
    name: str
    channel: Channel
    max_batch: int  # messages per send() call
    idempotent: bool  # whether a repeated batch_key is processed once by the provider

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        """One result per message, in order. Raises ProviderUnavailable / ProviderRejected."""
        ...

    async def aclose(self) -> None: ...


class EventKind(str, Enum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    FAILED = "failed"  # not delivered for another reason (SMS undelivered, push unregistered)
    OPENED = "opened"
    CLICKED = "clicked"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True)
class DeliveryEvent:
    """One provider event about one message, normalised."""

    kind: EventKind
    occurred_at: datetime
    message_key: str | None = None  # our key, when the provider echoes it
    provider_message_id: str | None = None
    url: str | None = None  # clicks
    reason: str | None = None  # bounces, failures
    raw: dict[str, Any] = field(default_factory=dict)


class WebhookRejected(Exception):
    """The request is not from the provider (bad or missing signature) or is malformed."""
