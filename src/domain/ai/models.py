"""AI settings: a tenant's connection to each AI provider (credentials encrypted), its model
choices, and the enums the service, the providers and the runs share."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import Enum

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned


class Provider(str, Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    PERPLEXITY = "perplexity"
    JASPER = "jasper"
    CANVA = "canva"


class Feature(str, Enum):
    """What the copilot drafts; each may have its own provider and model."""

    CAMPAIGN_COPY = "campaign_copy"
    REWRITE = "rewrite"
    REPLY_SUGGESTION = "reply_suggestion"
    SUMMARY = "summary"
    SEGMENT = "segment"
    DESIGN = "design"


class TestStatus(str, Enum):
    OK = "ok"
    AUTH_FAILED = "auth_failed"
    RATE_LIMITED = "rate_limited"
    UNREACHABLE = "unreachable"
    ERROR = "error"  # the provider answered with another error (5xx, overloaded, bad request)


class AiConnection(Base):
    """A tenant's connection to one provider. ``credentials_encrypted`` is encrypted JSON (an API
    key, or Canva's OAuth tokens); ``credential_hint`` a masked form (``sk-…a1b2``), the only trace
    of the secret the API shows. ``settings`` holds the provider-specific choices."""

    __tablename__ = "ai_connections"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    credential_hint: Mapped[str | None] = mapped_column(String(32))
    settings: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    default_model: Mapped[str | None] = mapped_column(String(128))
    live_models: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")
    last_test_status: Mapped[str | None] = mapped_column(String(16))
    last_test_message: Mapped[str | None] = mapped_column(String(500))
    last_test_latency_ms: Mapped[int | None] = mapped_column(Integer)
    last_tested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                                                 onupdate=func.now())


class AiSettings(Base):
    """The tenant's default provider and model, and per-feature choices
    (``feature_models``: ``{feature: {"provider": ..., "model": ...}}``). ``provider`` is one of
    :class:`Provider` or ``endpoint:<name>``, an operator-declared OpenAI-compatible endpoint."""

    __tablename__ = "ai_settings"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    default_provider: Mapped[str | None] = mapped_column(String(80))
    default_model: Mapped[str | None] = mapped_column(String(128))
    feature_models: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    updated_by: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now(),
                                                 onupdate=func.now())


class AiUsage(Base):
    """Tokens the copilot used, per tenant and calendar month (UTC), provider, model, feature
    and principal (the tenant-facing id of who asked): the meter the quota reads."""

    __tablename__ = "ai_usage"
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    provider: Mapped[str] = mapped_column(String(80), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    feature: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    tokens_in: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    tokens_out: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class RunStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CopilotRun(TenantOwned, Base):
    """One copilot request: what was asked, of which provider and model, and what came back. A
    draft only: nothing the copilot returns is sent, saved elsewhere or launched by it."""

    __tablename__ = "copilot_runs"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        Index("ix_copilot_runs_tenant_id_created_at", "tenant_id", "created_at"),
    )

    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    feature: Mapped[str] = mapped_column(String(32), nullable=False)
    provider: Mapped[str] = mapped_column(String(80), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    input_ref: Mapped[str | None] = mapped_column(String(120))  # e.g. Campaign:<uuid>
    params: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    output: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(String(500))
    retry_after: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    tokens_out: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cost_micro_usd: Mapped[int | None] = mapped_column(BigInteger)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_by_label: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
