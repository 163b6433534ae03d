"""Alerts: per-brand rules (lifetime value crosses X, churn risk crosses Y, entered a segment)
and the alerts recorded when a customer crosses one (docs/insights.md "Alerts")."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from sqlalchemy import BigInteger, DateTime, ForeignKeyConstraint, Index, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base


class AlertKind(str, Enum):
    LIFETIME_VALUE = "lifetime_value"  # the brand profile's total order value reaches threshold (cents)
    CHURN_RISK = "churn_risk"  # the brand profile's churn risk reaches threshold (0-100)
    SEGMENT_ENTERED = "segment_entered"  # the customer entered segment_id


class AlertRule(Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "segment_id"], ["segments.tenant_id", "segments.id"], ondelete="CASCADE"),
        Index("ix_alert_rules_brand", "tenant_id", "brand_id", "kind"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    threshold: Mapped[int | None] = mapped_column(BigInteger)
    segment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class AlertState(Base):
    """A customer currently at or over a threshold rule: a crossing starts when the row is
    inserted and ends when it is deleted (the customer fell below), so the next one is new."""

    __tablename__ = "alert_states"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["alert_rules.tenant_id", "alert_rules.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("ix_alert_states_customer", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Alert(Base):
    """One crossing: unique per (rule, customer, crossing time), so a retry records it once."""

    __tablename__ = "alerts"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["alert_rules.tenant_id", "alert_rules.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("uq_alerts_crossing", "tenant_id", "rule_id", "customer_id", "crossed_at", unique=True),
        Index("ix_alerts_brand_crossed", "tenant_id", "brand_id", "crossed_at", "id"),
        Index("ix_alerts_brand_unread", "tenant_id", "brand_id", postgresql_where="read_at IS NULL"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    rule_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[int | None] = mapped_column(BigInteger)
    crossed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_by: Mapped[str | None] = mapped_column(String(320))
