"""Segments, their membership history and custom attribute declarations."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps


class SegmentKind(str, Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"
    LOOKALIKE = "lookalike"


class MembershipCause(str, Enum):
    """Why a customer entered or left: a full refresh, live evaluation after a change to the
    customer's data, the clock (a time window's edge), or a hand-made change (static segments)."""

    REFRESH = "refresh"
    CHANGE = "change"
    TIME = "time"
    MANUAL = "manual"


class Segment(TenantOwned, Timestamps, Base):
    __tablename__ = "segments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"]),
        Index("ix_segments_brand", "tenant_id", "brand_id", "created_at", "id"),
    )

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # dynamic | static | lookalike
    definition: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    definition_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    lookalike_source_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    lookalike_size: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    member_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_refresh_ms: Mapped[int | None] = mapped_column(Integer)
    last_manual_refresh_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stale_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # dynamic segments: evaluated for each changed customer (True), or only by refreshes
    live: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # what the compiled definition reads (compiler.inputs_of); None: not known yet (reads anything)
    inputs: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # stale while change_seq > refreshed_seq (segment_change_seq values)
    change_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    refreshed_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # live segments with time rules: the clock up to which window edges were evaluated
    time_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(320))


class SegmentMembership(Base):
    """One stay of a customer in a segment: open while exited_at is null. The rows are the
    membership history; the open ones are the current members."""

    __tablename__ = "segment_memberships"
    # Two index entries per new member, no more: the key (ordered by entered_at) serves the
    # members and history pages; the partial unique index on open stays serves refresh diffs and
    # "member of" rules; exits get a partial index of their own (closed rows only).
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "segment_id"], ["segments.tenant_id", "segments.id"], ondelete="CASCADE"),
        Index("uq_segment_memberships_open", "tenant_id", "segment_id", "customer_id", unique=True,
              postgresql_where=text("exited_at IS NULL")),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    exited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    score: Mapped[float | None] = mapped_column(Float)
    entry_cause: Mapped[str] = mapped_column(String(8), nullable=False, server_default="refresh")
    exit_cause: Mapped[str | None] = mapped_column(String(8))


class PendingEvaluation(Base):
    """A customer whose segment inputs changed, waiting for live evaluation: one row per
    customer (a burst of changes coalesces into it), ``inputs`` the union of what changed."""

    __tablename__ = "segment_pending_evaluations"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("ix_segment_pending_evaluations_seq", "tenant_id", "seq"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    inputs: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("nextval('segment_change_seq')"))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class CustomAttribute(Base):
    """A declared custom attribute: its type decides the operators segments may use on it."""

    __tablename__ = "custom_attributes"

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), nullable=False)  # string | number | boolean | date
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
