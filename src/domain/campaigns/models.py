"""Campaigns, their recipients (one row per customer, the unit of exactly-once delivery), their
incrementally kept stats, and attributed conversions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps


class Status(str, Enum):
    """A campaign's status (the machine is in :mod:`domain.campaigns.service`)."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Campaign(TenantOwned, Timestamps, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"]),
        Index("ix_campaigns_brand", "tenant_id", "brand_id", "created_at", "id"),
        Index("ix_campaigns_due", "tenant_id", "scheduled_at", postgresql_where=text("status = 'scheduled'")),
        Index("ix_campaigns_sending", "tenant_id", postgresql_where=text("status = 'sending'")),
        ForeignKeyConstraint(["tenant_id", "automation_id"], ["segment_automations.tenant_id", "segment_automations.id"],
                             ondelete="CASCADE"),
        Index("ix_campaigns_automation", "tenant_id", "automation_id", postgresql_where=text("automation_id IS NOT NULL")),
    )

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)  # email | sms | push
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="draft")
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="5")  # 1 (low) .. 10
    content: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    segment_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}")
    exclusion_segment_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), nullable=False,
                                                                   server_default="{}")
    schedule_mode: Mapped[str] = mapped_column(String(16), nullable=False, server_default="now")  # now | at | local
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when sending starts
    local_send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))  # mode local: wall clock
    send_window_hours: Mapped[int] = mapped_column(Integer, nullable=False, server_default="24")
    event_ref: Mapped[str | None] = mapped_column(String(200))
    product_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    cost_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    launch_key: Mapped[str | None] = mapped_column(String(200))
    launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audience_ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    audience_snapshot: Mapped[dict | None] = mapped_column(JSONB)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(320))
    # the messages of one run of a MESSAGE automation (the campaign's id is the run's): not listed
    # with the brand's campaigns, counted in the automation's stats
    automation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class CampaignStats(Base):
    """Counters kept incrementally by every change (sends, webhooks, conversions): reading stats
    never scans recipients. ``version`` grows with each change so live readers drop stale ones."""

    __tablename__ = "campaign_stats"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    audience: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    excluded: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    queued: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    sent: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    delivered: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    bounced: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    opens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    clicks: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    unsubscribes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    complaints: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    conversions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    revenue_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    first_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Recipient(Base):
    """One customer of one campaign. Status: excluded (with the reason) | queued | sending | sent
    | delivered | bounced | failed | cancelled. A row moves forward only through conditional
    updates, which is what makes delivery exactly-once."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("ix_campaign_recipients_batch", "tenant_id", "campaign_id", "batch_no", "status"),
        # frequency caps and attribution: a customer's recent messages from a brand
        Index("ix_campaign_recipients_customer", "tenant_id", "brand_id", "customer_id"),
        Index("ix_campaign_recipients_provider_id", "tenant_id", "provider_message_id",
              postgresql_where=text("provider_message_id IS NOT NULL")),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False)
    exclusion_reason: Mapped[str | None] = mapped_column(String(24))
    address: Mapped[str | None] = mapped_column(String(512))
    batch_no: Mapped[int | None] = mapped_column(Integer)
    send_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    chunk_key: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # the provider call it went out in
    attempts: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    clicked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    complained_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    converted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revenue_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class CapLock(Base):
    """One row per customer and brand that had a recipient claimed under the brand's frequency
    cap. Each such claim locks its customers' rows (an upsert that writes nothing to an existing
    row), in key order, until it commits: two claims of one customer for two campaigns take turns,
    and the second counts the first one's message (:func:`domain.campaigns.audience.claim_within_cap`).
    Row locks live in the rows, so a claim of hundreds of customers takes nothing from
    PostgreSQL's shared lock table."""

    __tablename__ = "frequency_cap_locks"
    __table_args__ = (
        # no key to brands, as recipients have none: each new row's check would share-lock the
        # brand's one row, which every concurrent claim of the brand's campaigns does at once
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Conversion(Base):
    """An order attributed to a campaign (last engagement within the brand's window): one row
    per order, so recording the same order twice attributes it once."""

    __tablename__ = "campaign_conversions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "campaign_id"], ["campaigns.tenant_id", "campaigns.id"], ondelete="CASCADE"),
        Index("ix_campaign_conversions_campaign", "tenant_id", "campaign_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    revenue_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    touch: Mapped[str] = mapped_column(String(8), nullable=False)  # click | open
    touched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
