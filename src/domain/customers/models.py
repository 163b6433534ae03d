"""Customers of a tenant, their relationships with brands, tags, notes and consent."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Computed,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from domain.models import Base, TenantOwned, Timestamps

NO_BRAND = "00000000-0000-0000-0000-000000000000"


class Customer(TenantOwned, Timestamps, Base):
    __tablename__ = "customers"
    __table_args__ = (
        # unique among shared records and, separately, among each brand's private records
        Index("uq_customers_external_id", "tenant_id", "external_id", text(f"coalesce(private_to_brand_id, '{NO_BRAND}'::uuid)"),
              unique=True, postgresql_where=text("external_id IS NOT NULL")),
        # e-mails are stored lower-cased, so a plain (leakproof) equality serves lookups under RLS
        Index("uq_customers_email", "tenant_id", "email", text(f"coalesce(private_to_brand_id, '{NO_BRAND}'::uuid)"),
              unique=True, postgresql_where=text("email IS NOT NULL")),
        ForeignKeyConstraint(["tenant_id", "private_to_brand_id"], ["brands.tenant_id", "brands.id"],
                             ondelete="CASCADE", name="fk_customers_private_to_brand"),
        Index("ix_customers_created", "tenant_id", "created_at", "id"),
    )

    external_id: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(20))
    push_token: Mapped[str | None] = mapped_column(String(512))  # device registration token (FCM)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200))
    buyer_type: Mapped[str | None] = mapped_column(String(50))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    birth_date: Mapped[date | None] = mapped_column(Date)
    attributes: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    # overrides an owner or admin sets with a reason (docs/customers.md, "Overrides")
    risk_override: Mapped[int | None] = mapped_column(SmallInteger)
    risk_override_reason: Mapped[str | None] = mapped_column(String(500))
    risk_override_by: Mapped[str | None] = mapped_column(String(320))
    risk_override_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    value_override_cents: Mapped[int | None] = mapped_column(BigInteger)
    value_override_reason: Mapped[str | None] = mapped_column(String(500))
    value_override_by: Mapped[str | None] = mapped_column(String(320))
    value_override_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    preferred_contact_method: Mapped[str | None] = mapped_column(String(8))  # email | sms | phone | push
    account_manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # a member id
    # set: a record private to this brand, made by a principal limited to some brands whose
    # address or external id only customers it cannot see held (docs/security.md)
    private_to_brand_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # what search matches (customers.service.search_conditions), lower-cased by PostgreSQL on
    # every write (generated; not loaded with the customer); their indexes, and the phone's, are
    # in migrations/0010_customer_search.up.sql: lower() is not leakproof, so under row-level
    # security an index on lower(email) cannot serve a search, one on a stored column can
    search_email: Mapped[str | None] = mapped_column(Text, Computed("lower(email)", persisted=True), deferred=True)
    search_first_name: Mapped[str | None] = mapped_column(Text, Computed("lower(first_name)", persisted=True),
                                                          deferred=True)
    search_last_name: Mapped[str | None] = mapped_column(Text, Computed("lower(last_name)", persisted=True),
                                                         deferred=True)


class CustomerBrand(Base):
    """A customer known to a brand: since when, and how (order, subscription, message, import)."""

    __tablename__ = "customer_brands"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        Index("ix_customer_brands_customer", "tenant_id", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    source: Mapped[str] = mapped_column(String(32), nullable=False)


class Tag(TenantOwned, Base):
    __tablename__ = "tags"
    __table_args__ = (Index("uq_tags_name", "tenant_id", text("lower(name)"), unique=True),)

    name: Mapped[str] = mapped_column(String(64), nullable=False)
    color: Mapped[str] = mapped_column(String(7), nullable=False, server_default="#6b7280")
    description: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class CustomerTag(Base):
    __tablename__ = "customer_tags"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "tag_id"], ["tags.tenant_id", "tags.id"], ondelete="CASCADE"),
        Index("ix_customer_tags_tag", "tenant_id", "tag_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    assigned_by: Mapped[str | None] = mapped_column(String(320))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Note(TenantOwned, Base):
    __tablename__ = "customer_notes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        Index("ix_customer_notes_customer", "tenant_id", "customer_id", "created_at", "id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    brand_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)  # info | warning | action
    visibility: Mapped[str] = mapped_column(String(16), nullable=False)  # internal | shared
    author_type: Mapped[str] = mapped_column(String(16), nullable=False)
    author_id: Mapped[str] = mapped_column(String(64), nullable=False)
    author_label: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Consent(Base):
    """Whether a brand may reach a customer on a channel. The one place sends and exports ask."""

    __tablename__ = "customer_consents"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
        Index("ix_customer_consents_brand_channel", "tenant_id", "brand_id", "channel", "customer_id"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    brand_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)  # email | sms | push | ads
    granted: Mapped[bool] = mapped_column(nullable=False)
    granted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
