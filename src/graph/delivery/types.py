"""GraphQL types of a brand's delivery: the channels, providers, sending rules and suppressions."""

from __future__ import annotations

from datetime import datetime, time
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from domain.delivery import service as delivery
from domain.delivery.base import Channel as DomainChannel
from domain.delivery.registry import PROVIDERS
from graph.core.connection import Connection, TotalCount

Channel = strawberry.enum(DomainChannel, name="MessageChannel", description="How a message reaches a customer.")

# One value per provider the registry knows (the stored name is the value: "log", "smtp", ...).
DeliveryProviderKind = strawberry.enum(
    Enum("DeliveryProviderKind", {name.upper(): name for name in PROVIDERS}, type=str),  # type: ignore[misc]
    name="DeliveryProviderKind",
    description="A delivery provider: " + "; ".join(f"{n.upper()}: {p.description}" for n, p in PROVIDERS.items()))


class _SuppressionReason(str, Enum):
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


SuppressionReason = strawberry.enum(_SuppressionReason, name="SuppressionReason",
                                    description="Why a brand does not send to an address.")


@strawberry.type(description="The provider a brand sends a channel through. Credentials are write-only.")
class DeliveryProvider:
    channel: Channel
    provider: DeliveryProviderKind
    settings: JSON
    credentials_set: bool
    webhook_url: str | None = strawberry.field(description="Where to point the provider's event webhook.")
    updated_by: str | None
    updated_at: datetime

    @classmethod
    def from_model(cls, row: Any) -> DeliveryProvider:
        return cls(channel=DomainChannel(row.channel), provider=DeliveryProviderKind(row.provider), settings=row.settings or {},
                   credentials_set=bool(row.credentials_encrypted),
                   webhook_url=delivery.webhook_url(row.tenant_id, row.brand_id, row.provider),
                   updated_by=row.updated_by, updated_at=row.updated_at)


@strawberry.type(description="A brand's sending rules.")
class MessagingSettings:
    quiet_hours_start: time | None = strawberry.field(description="Local time (recipient's zone) sends pause.")
    quiet_hours_end: time | None
    frequency_cap_count: int | None = strawberry.field(description="At most this many messages per customer ...")
    frequency_cap_hours: int | None = strawberry.field(description="... within this many hours, across campaigns.")
    send_rate_per_second: int
    attribution_days: int = strawberry.field(description="Orders this many days after an open or click convert.")

    @classmethod
    def from_model(cls, m: Any) -> MessagingSettings:
        return cls(quiet_hours_start=m.quiet_hours_start, quiet_hours_end=m.quiet_hours_end,
                   frequency_cap_count=m.frequency_cap_count, frequency_cap_hours=m.frequency_cap_hours,
                   send_rate_per_second=m.send_rate_per_second, attribution_days=m.attribution_days)


@strawberry.type(description="An address a brand does not send to.")
class Suppression:
    channel: Channel
    address: str
    reason: SuppressionReason
    source: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, r: Any) -> Suppression:
        return cls(channel=DomainChannel(r.channel), address=r.address, reason=SuppressionReason(r.reason), source=r.source,
                   created_at=r.created_at)


@strawberry.type(description="A page of a brand's suppressed addresses, newest first.")
class SuppressionConnection(Connection[Suppression], TotalCount):
    pass
