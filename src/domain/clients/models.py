"""Client apps (a partner's integration, the tenant's own SPA), the API keys that belong to them
and their trusted documents: the operations an app may run by id, uploaded as manifests."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps


class ClientApp(TenantOwned, Timestamps, Base):
    __tablename__ = "client_apps"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("ix_client_apps_created", "tenant_id", "created_at", "id"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # its API keys run trusted documents only, never a document sent in full
    persisted_only: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # one of tenants.PLANS, or None: the tenant's plan
    rate_plan: Mapped[str | None] = mapped_column(String(32))


class TrustedDocument(Base):
    """One document an app may run by id: ``id`` is the SHA-256 (hex) of the document's exact
    UTF-8 text. Kept until removed; a manifest lists the ids it brought."""

    __tablename__ = "trusted_documents"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "client_app_id"], ["client_apps.tenant_id", "client_apps.id"],
                             ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    client_app_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    operation_type: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class TrustedManifest(TenantOwned, Base):
    """One upload of an app's manifest: its version (1, 2, … per app) and the document ids it
    listed. The newest is the app's current manifest."""

    __tablename__ = "trusted_manifests"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "client_app_id"], ["client_apps.tenant_id", "client_apps.id"],
                             ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "client_app_id", "version"),
    )

    client_app_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    document_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    uploaded_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
