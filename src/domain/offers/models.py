"""Offers: the per-brand weights of the recommendation score (docs/offers.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKeyConstraint, Index, SmallInteger, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base

# factor -> default weight (the seed's, and a brand's until it sets its own)
DEFAULT_WEIGHTS = {"genre": 25, "type": 20, "creator": 20, "price": 15, "location": 10, "engagement": 5,
                   "watchlist": 5}
ENGAGEMENT_THRESHOLD = 70


class RecommendationWeights(Base):
    __tablename__ = "recommendation_weights"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    genre: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="25")
    type: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="20")
    creator: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="20")
    price: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="15")
    location: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="10")
    engagement: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="5")
    watchlist: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="5")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class StoredRecommendation(Base):
    """A customer recommended for a product by the generation job (docs/offers.md "Stored
    recommendations"): score, reasons (reason -> points) and when; converted by a later order."""

    __tablename__ = "stored_recommendations"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "product_id"], ["products.tenant_id", "products.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        Index("ix_stored_recommendations_customer", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    reasons: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    converted_order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
