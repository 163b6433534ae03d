"""Per-brand delivery settings: which provider carries each channel (credentials encrypted), the
brand's sending rules (quiet hours, frequency cap, rate, attribution window), and suppressions."""

from __future__ import annotations

import uuid
from datetime import datetime, time

from sqlalchemy import DateTime, ForeignKeyConstraint, Integer, String, Text, Time, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base


class DeliveryProvider(Base):
    """The provider a brand sends one channel through. ``credentials_encrypted`` holds the
    provider's secrets as encrypted JSON; the API never returns them."""

    __tablename__ = "delivery_providers"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)  # email | sms | push
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    settings: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                                                 onupdate=func.now())


class MessagingSettings(Base):
    """A brand's sending rules; a brand without a row uses the defaults of the columns."""

    __tablename__ = "brand_messaging_settings"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    frequency_cap_count: Mapped[int | None] = mapped_column(Integer)  # at most N messages ...
    frequency_cap_hours: Mapped[int | None] = mapped_column(Integer)  # ... per this many hours
    send_rate_per_second: Mapped[int] = mapped_column(Integer, nullable=False, server_default="500")
    attribution_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="5")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                                                 onupdate=func.now())


class Suppression(Base):
    """An address a brand must not send to on a channel: it bounced, complained or unsubscribed."""

    __tablename__ = "suppressions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    address: Mapped[str] = mapped_column(String(512), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16), nullable=False)  # bounced | complained | unsubscribed
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
