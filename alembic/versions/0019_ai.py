"""AI settings and the copilot: provider connections (encrypted credentials), model choices,
copilot runs and the monthly usage meter.

Revision ID: 0019_ai
Revises: 0017_live_segments
Create Date: 2026-12-08 01:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain.platform.sqlfiles import run_sql_file

revision = '0019_ai'
down_revision = '0018_offers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ai_connections',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('credentials_encrypted', sa.Text(), nullable=True),
    sa.Column('credential_hint', sa.String(length=32), nullable=True),
    sa.Column('settings', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('default_model', sa.String(length=128), nullable=True),
    sa.Column('live_models', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('last_test_status', sa.String(length=16), nullable=True),
    sa.Column('last_test_message', sa.String(length=500), nullable=True),
    sa.Column('last_test_latency_ms', sa.Integer(), nullable=True),
    sa.Column('last_tested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_by', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ai_connections_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'provider', name=op.f('pk_ai_connections'))
    )
    op.create_table('ai_settings',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('default_provider', sa.String(length=80), nullable=True),
    sa.Column('default_model', sa.String(length=128), nullable=True),
    sa.Column('feature_models', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('updated_by', sa.String(length=320), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ai_settings_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_ai_settings'))
    )
    op.create_table('ai_usage',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('provider', sa.String(length=80), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('feature', sa.String(length=32), nullable=False),
    sa.Column('principal_id', sa.String(length=64), nullable=False),
    sa.Column('runs', sa.Integer(), server_default='0', nullable=False),
    sa.Column('tokens_in', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('tokens_out', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost_micro_usd', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ai_usage_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'month', 'provider', 'model', 'feature', 'principal_id', name=op.f('pk_ai_usage'))
    )
    op.create_table('copilot_runs',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('brand_id', sa.UUID(), nullable=False),
    sa.Column('feature', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=80), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('input_ref', sa.String(length=120), nullable=True),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error_code', sa.String(length=40), nullable=True),
    sa.Column('error_message', sa.String(length=500), nullable=True),
    sa.Column('retry_after', sa.Float(), nullable=True),
    sa.Column('tokens_in', sa.Integer(), server_default='0', nullable=False),
    sa.Column('tokens_out', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cost_micro_usd', sa.BigInteger(), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_by_label', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'brand_id'], ['brands.tenant_id', 'brands.id'], name=op.f('fk_copilot_runs_tenant_id_brand_id_brands'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_copilot_runs'))
    )
    op.create_index('ix_copilot_runs_tenant_id_created_at', 'copilot_runs', ['tenant_id', 'created_at'], unique=False)
    run_sql_file("0019_ai.up.sql")


def downgrade() -> None:
    run_sql_file("0019_ai.down.sql")
    op.drop_index('ix_copilot_runs_tenant_id_created_at', table_name='copilot_runs')
    op.drop_table('copilot_runs')
    op.drop_table('ai_usage')
    op.drop_table('ai_settings')
    op.drop_table('ai_connections')
