"""Segment automations' tables (automations, their runs, and one execution per customer and
occurrence) and the enums of their triggers, actions and statuses."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from sqlalchemy import Boolean, DateTime, ForeignKeyConstraint, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps


class Trigger(str, Enum):
    ENTER = "enter"
    EXIT = "exit"
    PERIODIC = "periodic"


class ActionKind(str, Enum):
    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    WEBHOOK = "webhook"
    EVENT = "event"  # record a tracked event on the customer
    UPDATE_CUSTOMER = "update_customer"  # set or clear a custom attribute
    MESSAGE = "message"  # send one e-mail, SMS or push through the campaign pipeline (after an optional wait)
    CAMPAIGN = "campaign"  # reserved for the campaigns capability: refused for now


class ExecutionStatus(str, Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunStatus(str, Enum):
    RUNNING = "running"  # webhook deliveries still pending (being retried)
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some executions failed
    FAILED = "failed"


EVENTS = {Trigger.ENTER: "segment.entered", Trigger.EXIT: "segment.exited", Trigger.PERIODIC: "segment.periodic"}


class SegmentAutomation(TenantOwned, Timestamps, Base):
    __tablename__ = "segment_automations"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "segment_id"], ["segments.tenant_id", "segments.id"], ondelete="CASCADE"),
        Index("ix_segment_automations_segment", "tenant_id", "segment_id"),
    )

    segment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)  # enter | exit | periodic
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # add_tag | remove_tag | webhook | event | update_customer | message
    config: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AutomationExecution(Base):
    """One automation for one customer for one membership stay (entered_at), so running the
    same refresh twice never runs an enter automation twice for the same entry."""

    __tablename__ = "automation_executions"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "automation_id"], ["segment_automations.tenant_id", "segment_automations.id"],
                             ondelete="CASCADE"),
        Index("ix_automation_executions_status", "tenant_id", "automation_id", "status"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    automation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    occurrence: Mapped[str] = mapped_column(String(64), primary_key=True)  # entered_at / exited_at / period
    run_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class AutomationRun(TenantOwned, Base):
    __tablename__ = "automation_runs"
    __table_args__ = (Index("ix_automation_runs_automation", "tenant_id", "automation_id", "started_at"),)

    automation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    customers: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    succeeded: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
