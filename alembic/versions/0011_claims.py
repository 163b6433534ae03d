"""Claims: a lock row per customer and brand that frequency-capped sends claim in turn, and the
lease under which one delivery of a job's message runs the job.

Revision ID: 0011_claims
Revises: 0010_customer_search
Create Date: 2026-12-07 22:10:00
"""

import sqlalchemy as sa
from alembic import op

from domain.platform.sqlfiles import run_sql_file

revision = '0011_claims'
down_revision = '0010_customer_search'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('frequency_cap_locks',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('brand_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_frequency_cap_locks_tenant_id_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'brand_id', 'customer_id', name=op.f('pk_frequency_cap_locks'))
    )
    op.add_column('jobs', sa.Column('lease_token', sa.UUID(), nullable=True))
    op.add_column('jobs', sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('jobs', sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
    run_sql_file("0011_claims.up.sql")


def downgrade() -> None:
    run_sql_file("0011_claims.down.sql")
    op.drop_column('jobs', 'attempts')
    op.drop_column('jobs', 'lease_expires_at')
    op.drop_column('jobs', 'lease_token')
    op.drop_table('frequency_cap_locks')
