"""Purchase and engagement metrics per customer, per brand and across the tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base

ALL_BRANDS = uuid.UUID(int=0)  # brand_id of the tenant-wide profile


class CustomerProfile(Base):
    __tablename__ = "customer_profiles"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("ix_customer_profiles_customer", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    total_order_value_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    total_order_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    average_order_value_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    orders_last_365d: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    events_last_30d: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    purchase_frequency: Mapped[Decimal] = mapped_column(Numeric(10, 3), nullable=False, server_default="0")
    engagement_score: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    churn_risk: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    # preferences (docs/profiles.md "Preferences"), written by bg_refresh_preferences
    genre_weights: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    genres: Mapped[list[str]] = mapped_column(ARRAY(String), nullable=False, server_default="{}")
    type_weights: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    types: Mapped[list[str]] = mapped_column(ARRAY(String), nullable=False, server_default="{}")
    creators: Mapped[list[str]] = mapped_column(ARRAY(String), nullable=False, server_default="{}")
    price_low_cents: Mapped[int | None] = mapped_column(BigInteger)
    price_high_cents: Mapped[int | None] = mapped_column(BigInteger)
    preferred_days: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger), nullable=False, server_default="{}")
    preferred_hours: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger), nullable=False, server_default="{}")
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    watchlist: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}")
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
