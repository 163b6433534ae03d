"""Live segments: customers queued for evaluation after a change, each segment's inputs and
evaluation mode, a per-segment change sequence in place of the stale flag, and the cause of each
membership entry and exit.

Revision ID: 0017_live_segments
Revises: 0013_plans
Create Date: 2026-12-08 01:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain.platform.sqlfiles import run_sql_file

revision = '0017_live_segments'
down_revision = '0013_plans'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE segment_change_seq")
    op.create_table('segment_pending_evaluations',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('inputs', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('seq', sa.BigInteger(), server_default=sa.text("nextval('segment_change_seq')"), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_segment_pending_evaluations_tenant_id_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'customer_id', name=op.f('pk_segment_pending_evaluations'))
    )
    op.create_index('ix_segment_pending_evaluations_seq', 'segment_pending_evaluations', ['tenant_id', 'seq'], unique=False)
    op.add_column('segments', sa.Column('live', sa.Boolean(), server_default='true', nullable=False))
    op.add_column('segments', sa.Column('inputs', postgresql.ARRAY(sa.Text()), nullable=True))
    op.add_column('segments', sa.Column('change_seq', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('segments', sa.Column('refreshed_seq', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('brands', sa.Column('segment_refresh_hours', sa.Integer(), server_default='24', nullable=False))
    op.add_column('segments', sa.Column('time_checked_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('segment_memberships', sa.Column('entry_cause', sa.String(length=8), server_default='refresh', nullable=False))
    op.add_column('segment_memberships', sa.Column('exit_cause', sa.String(length=8), nullable=True))
    run_sql_file("0017_live_segments.up.sql")


def downgrade() -> None:
    run_sql_file("0017_live_segments.down.sql")
    op.drop_column('segment_memberships', 'exit_cause')
    op.drop_column('segment_memberships', 'entry_cause')
    op.drop_column('segments', 'time_checked_at')
    op.drop_column('brands', 'segment_refresh_hours')
    op.drop_column('segments', 'refreshed_seq')
    op.drop_column('segments', 'change_seq')
    op.drop_column('segments', 'inputs')
    op.drop_column('segments', 'live')
    op.drop_index('ix_segment_pending_evaluations_seq', table_name='segment_pending_evaluations')
    op.drop_table('segment_pending_evaluations')
    op.execute("DROP SEQUENCE segment_change_seq")
