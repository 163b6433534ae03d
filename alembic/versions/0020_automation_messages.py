"""Automation messages: a MESSAGE automation's run sends through a campaign of its own, which
names the automation (not listed with the brand's campaigns; its stats are the automation's).

Revision ID: 0020_automation_messages
Revises: 0019_ai
Create Date: 2026-12-08 02:30:00
"""

import sqlalchemy as sa
from alembic import op

from domain.platform.sqlfiles import run_sql_file

revision = '0020_automation_messages'
down_revision = '0019_ai'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('campaigns', sa.Column('automation_id', sa.UUID(), nullable=True))
    op.create_foreign_key('fk_campaigns_tenant_id_automation_id_segment_automations', 'campaigns', 'segment_automations',
                          ['tenant_id', 'automation_id'], ['tenant_id', 'id'], ondelete='CASCADE')
    op.create_index('ix_campaigns_automation', 'campaigns', ['tenant_id', 'automation_id'], unique=False,
                    postgresql_where=sa.text('automation_id IS NOT NULL'))
    run_sql_file("0020_automation_messages.up.sql")


def downgrade() -> None:
    run_sql_file("0020_automation_messages.down.sql")
    op.drop_index('ix_campaigns_automation', table_name='campaigns',
                  postgresql_where=sa.text('automation_id IS NOT NULL'))
    op.drop_constraint('fk_campaigns_tenant_id_automation_id_segment_automations', 'campaigns', type_='foreignkey')
    op.drop_column('campaigns', 'automation_id')
