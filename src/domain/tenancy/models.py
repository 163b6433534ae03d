"""Tenants, brands, people and credentials."""

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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps, new_id


class Tenant(Timestamps, Base):
    """A business. Its id is the tenant id every other row carries."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    plan: Mapped[str] = mapped_column(String(32), nullable=False, server_default="free")
    # add-ons raising a quota: {quota name: extra units} (domain/plans/limits.py)
    add_ons: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    copilot_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)


class Brand(TenantOwned, Timestamps, Base):
    __tablename__ = "brands"
    __table_args__ = (
        UniqueConstraint("tenant_id", "slug"),
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(63), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    from_name: Mapped[str | None] = mapped_column(String(200))
    from_email: Mapped[str | None] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    sms_sender: Mapped[str | None] = mapped_column(String(32))
    # every rule-based segment of the brand is refreshed whole at least this often (a backstop)
    segment_refresh_hours: Mapped[int] = mapped_column(Integer, nullable=False, server_default="24")
    voice_tone: Mapped[str | None] = mapped_column(String(200))
    voice_style_guide: Mapped[str | None] = mapped_column(Text)
    voice_words_to_use: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), nullable=False, server_default="{}"
    )
    voice_words_to_avoid: Mapped[list[str]] = mapped_column(
        ARRAY(String(100)), nullable=False, server_default="{}"
    )
    voice_sample_copy: Mapped[str | None] = mapped_column(Text)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person who signs in. Identity is global (one person may serve several tenants) and
    holds nothing but the address: what a tenant knows of the person (the e-mail it typed,
    the name it gave) and everything they may do live in that tenant's membership."""

    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_lower", text("lower(email)"), unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class Membership(Timestamps, Base):
    """A person's place in one tenant. ``id`` is the member id the tenant sees (its own,
    never the global user id of an invited person); ``email`` and ``name`` are what this
    tenant typed and gave. ``status`` is ``invited`` until the person accepts: an invited
    membership grants nothing."""

    __tablename__ = "memberships"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        Index("ix_memberships_user_id", "user_id"),
        UniqueConstraint("tenant_id", "id", name="uq_memberships_tenant_id_id"),
        Index("uq_memberships_email", "tenant_id", text("lower(email)"), unique=True),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, default=new_id,
                                          server_default=text("gen_random_uuid()"))
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    all_brands: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    status: Mapped[str] = mapped_column(String(8), nullable=False, server_default="invited")
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BrandGrant(Base):
    __tablename__ = "brand_grants"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["memberships.tenant_id", "memberships.user_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"
        ),
        Index(None, "tenant_id", "brand_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class ApiKey(TenantOwned, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        # the client app the key belongs to (domain/clients); deleting an app detaches its keys first
        ForeignKeyConstraint(["tenant_id", "client_app_id"], ["client_apps.tenant_id", "client_apps.id"]),
        Index("ix_api_keys_client_app", "tenant_id", "client_app_id"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    brand_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    client_app_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
