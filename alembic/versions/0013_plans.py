"""Plans: tenants' add-ons, monthly quota use, and the API's use per consumer and hour.

Revision ID: 0013_plans
Revises: 0012_client_apps
Create Date: 2026-12-08 01:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain.platform.sqlfiles import run_sql_file

revision = '0013_plans'
down_revision = '0012_client_apps'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tenants', sa.Column('add_ons', postgresql.JSONB(astext_type=sa.Text()), server_default='{}',
                                       nullable=False))
    op.create_table('quota_usage',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('quota', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('used', sa.BigInteger(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_quota_usage_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'quota', 'period_start', name=op.f('pk_quota_usage'))
    )
    op.create_table('api_usage',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumer_kind', sa.String(length=16), nullable=False),
    sa.Column('consumer_id', sa.UUID(), nullable=False),
    sa.Column('requests', sa.Integer(), server_default='0', nullable=False),
    sa.Column('cost', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('throttled', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_usage_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'hour', 'consumer_kind', 'consumer_id', name=op.f('pk_api_usage'))
    )
    run_sql_file("0013_plans.up.sql")


def downgrade() -> None:
    run_sql_file("0013_plans.down.sql")
    op.drop_table('api_usage')
    op.drop_table('quota_usage')
    op.drop_column('tenants', 'add_ons')
