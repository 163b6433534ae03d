"""Conversations, their messages, labels, per-user read markers and canned responses, and the
enums of a conversation's status, priority and channel."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from sqlalchemy import DateTime, ForeignKeyConstraint, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps


class Status(str, Enum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Priority(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class ConversationChannel(str, Enum):
    EMAIL = "email"
    SMS = "sms"
    CHAT = "chat"


class Conversation(TenantOwned, Timestamps, Base):
    """One thread between a brand and a customer on one channel. ``thread_key`` identifies the
    thread on the wire: the customer's address pair for SMS, the customer's address for chat;
    e-mail threads are found by their messages' Message-ID headers."""

    __tablename__ = "conversations"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"]),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("ix_conversations_inbox", "tenant_id", "brand_id", "last_message_at", "id"),
        Index("ix_conversations_status", "tenant_id", "brand_id", "status", "last_message_at", "id"),
        Index("ix_conversations_customer", "tenant_id", "customer_id", "brand_id", "channel"),
        Index("ix_conversations_snoozed", "tenant_id", "snoozed_until", postgresql_where=text("status = 'snoozed'")),
    )

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    channel: Mapped[str] = mapped_column(String(8), nullable=False)  # email | sms | chat
    status: Mapped[str] = mapped_column(String(12), nullable=False, server_default="open")
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[str] = mapped_column(String(8), nullable=False, server_default="medium")
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject: Mapped[str | None] = mapped_column(String(500))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    started_by: Mapped[str] = mapped_column(String(8), nullable=False)  # customer | user
    customer_address: Mapped[str | None] = mapped_column(String(512))
    brand_address: Mapped[str | None] = mapped_column(String(512))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_message_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class Message(TenantOwned, Base):
    __tablename__ = "conversation_messages"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "conversation_id"], ["conversations.tenant_id", "conversations.id"],
                             ondelete="CASCADE"),
        Index("ix_conversation_messages_conversation", "tenant_id", "conversation_id", "created_at", "id"),
        # duplicate deliveries of one inbound message (providers retry) create one message
        Index("uq_conversation_messages_inbound", "tenant_id", "provider", "provider_message_id", unique=True,
              postgresql_where=text("direction = 'inbound' AND provider_message_id IS NOT NULL")),
        Index("uq_conversation_messages_idempotency", "tenant_id", "conversation_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        # delivery events (Twilio) and threading through providers that set their own Message-ID
        Index("ix_conversation_messages_provider_id", "tenant_id", "provider_message_id",
              postgresql_where=text("provider_message_id IS NOT NULL")),
        # e-mail threading: a reply's In-Reply-To / References name earlier messages' Message-IDs
        Index("ix_conversation_messages_header", "tenant_id", "message_id_header",
              postgresql_where=text("message_id_header IS NOT NULL")),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)  # inbound | outbound
    kind: Mapped[str] = mapped_column(String(8), nullable=False, server_default="message")  # message | note
    author_type: Mapped[str] = mapped_column(String(12), nullable=False)  # customer | user | automation
    author_id: Mapped[str | None] = mapped_column(String(64))
    author_label: Mapped[str | None] = mapped_column(String(320))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")
    from_address: Mapped[str | None] = mapped_column(String(512))
    to_address: Mapped[str | None] = mapped_column(String(512))
    message_id_header: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    delivery_status: Mapped[str | None] = mapped_column(String(12))  # queued | sending | sent | delivered | failed
    # the Dramatiq message that claimed the send (queued → sending): only it may send again
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Label(TenantOwned, Base):
    __tablename__ = "conversation_labels"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        Index("uq_conversation_labels_name", "tenant_id", "brand_id", text("lower(name)"), unique=True),
    )

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    color: Mapped[str] = mapped_column(String(7), nullable=False, server_default="#6b7280")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ConversationLabel(Base):
    __tablename__ = "conversation_label_links"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "conversation_id"], ["conversations.tenant_id", "conversations.id"],
                             ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "label_id"], ["conversation_labels.tenant_id", "conversation_labels.id"],
                             ondelete="CASCADE"),
        Index("ix_conversation_label_links_label", "tenant_id", "label_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    label_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ReadMarker(Base):
    """How far a user has read a conversation: messages after ``read_at`` are unread for them."""

    __tablename__ = "conversation_reads"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "conversation_id"], ["conversations.tenant_id", "conversations.id"],
                             ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CannedResponse(TenantOwned, Timestamps, Base):
    __tablename__ = "canned_responses"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        Index("uq_canned_responses_shortcode", "tenant_id", "brand_id", text("lower(shortcode)"), unique=True),
    )

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    shortcode: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(320))
