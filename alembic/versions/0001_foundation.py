"""Foundation: tenants, brands, users, memberships, brand grants, API keys, audit log,
with row-level security.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from domain.platform.sqlfiles import run_sql_file

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False, default: str | None = "now()") -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.text(default) if default else None,
    )


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False, server_default="free"),
        sa.Column("copilot_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_table(
        "brands",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("from_name", sa.String(200)),
        sa.Column("from_email", sa.String(320)),
        sa.Column("reply_to", sa.String(320)),
        sa.Column("sms_sender", sa.String(32)),
        sa.Column("voice_tone", sa.String(200)),
        sa.Column("voice_style_guide", sa.Text),
        sa.Column("voice_words_to_use", ARRAY(sa.String(100)), nullable=False, server_default="{}"),
        sa.Column("voice_words_to_avoid", ARRAY(sa.String(100)), nullable=False, server_default="{}"),
        sa.Column("voice_sample_copy", sa.Text),
        _ts("archived_at", nullable=True, default=None),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("tenant_id", "slug", name="uq_brands_tenant_id_slug"),
    )
    op.create_table(
        "users",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200)),
        _ts("created_at"),
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "memberships",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("all_brands", sa.Boolean, nullable=False, server_default=sa.true()),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("role in ('owner','admin','marketer','agent','analyst')", name="role"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "brand_grants",
        sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("brand_id", UUID(as_uuid=True), primary_key=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["tenant_id", "user_id"], ["memberships.tenant_id", "memberships.user_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id", "brand_id"], ["brands.tenant_id", "brands.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_brand_grants_tenant_id_brand_id", "brand_grants", ["tenant_id", "brand_id"])
    op.create_table(
        "api_keys",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("brand_ids", ARRAY(UUID(as_uuid=True))),
        sa.Column("created_by", sa.String(200)),
        _ts("created_at"),
        _ts("last_used_at", nullable=True, default=None),
        _ts("revoked_at", nullable=True, default=None),
        sa.CheckConstraint("role in ('owner','admin','marketer','agent','analyst')", name="role"),
    )
    op.create_table(
        "audit_log",
        sa.Column("tenant_id", UUID(as_uuid=True), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        _ts("occurred_at", default="clock_timestamp()"),
        sa.Column("principal_type", sa.String(16), nullable=False),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("principal_label", sa.String(320)),
        sa.Column("brand_id", UUID(as_uuid=True)),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(64)),
        sa.Column("summary", JSONB, nullable=False, server_default="{}"),
        sa.Column("request_id", sa.String(64)),
    )
    op.create_index("ix_audit_log_tenant_id_occurred_at_id", "audit_log", ["tenant_id", "occurred_at", "id"])
    run_sql_file("0001_foundation.up.sql")


def downgrade() -> None:
    run_sql_file("0001_foundation.down.sql")
    for table in ("audit_log", "api_keys", "brand_grants", "memberships", "users", "brands", "tenants"):
        op.drop_table(table)
