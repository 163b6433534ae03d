"""Insights: per-brand alert rules, the customers currently over a threshold rule, the alerts
recorded once per crossing; stored recommendations with their conversions.

Revision ID: 0021_insights
Revises: 0020_automation_messages
Create Date: 2026-12-08 02:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain.platform.sqlfiles import run_sql_file

revision = '0021_insights'
down_revision = '0020_automation_messages'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_rules',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('brand_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('threshold', sa.BigInteger(), nullable=True),
    sa.Column('segment_id', sa.UUID(), nullable=True),
    sa.Column('created_by', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'brand_id'], ['brands.tenant_id', 'brands.id'], name=op.f('fk_alert_rules_tenant_id_brand_id_brands'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'segment_id'], ['segments.tenant_id', 'segments.id'], name=op.f('fk_alert_rules_tenant_id_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_alert_rules'))
    )
    op.create_index('ix_alert_rules_brand', 'alert_rules', ['tenant_id', 'brand_id', 'kind'], unique=False)
    op.create_table('alert_states',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('rule_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_alert_states_tenant_id_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'rule_id'], ['alert_rules.tenant_id', 'alert_rules.id'], name=op.f('fk_alert_states_tenant_id_rule_id_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'rule_id', 'customer_id', name=op.f('pk_alert_states'))
    )
    op.create_index('ix_alert_states_customer', 'alert_states', ['tenant_id', 'customer_id'], unique=False)
    op.create_table('alerts',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('brand_id', sa.UUID(), nullable=False),
    sa.Column('rule_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.Column('crossed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('read_by', sa.String(length=320), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'brand_id'], ['brands.tenant_id', 'brands.id'], name=op.f('fk_alerts_tenant_id_brand_id_brands'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_alerts_tenant_id_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'rule_id'], ['alert_rules.tenant_id', 'alert_rules.id'], name=op.f('fk_alerts_tenant_id_rule_id_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_alerts'))
    )
    op.create_index('uq_alerts_crossing', 'alerts', ['tenant_id', 'rule_id', 'customer_id', 'crossed_at'], unique=True)
    op.create_index('ix_alerts_brand_crossed', 'alerts', ['tenant_id', 'brand_id', 'crossed_at', 'id'], unique=False)
    op.create_index('ix_alerts_brand_unread', 'alerts', ['tenant_id', 'brand_id'], unique=False, postgresql_where='read_at IS NULL')
    op.create_table('stored_recommendations',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('product_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.UUID(), nullable=False),
    sa.Column('brand_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.SmallInteger(), nullable=False),
    sa.Column('reasons', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('generated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('converted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('converted_order_id', sa.UUID(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id', 'brand_id'], ['brands.tenant_id', 'brands.id'], name=op.f('fk_stored_recommendations_tenant_id_brand_id_brands'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_stored_recommendations_tenant_id_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'product_id'], ['products.tenant_id', 'products.id'], name=op.f('fk_stored_recommendations_tenant_id_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'product_id', 'customer_id', name=op.f('pk_stored_recommendations'))
    )
    op.create_index('ix_stored_recommendations_customer', 'stored_recommendations', ['tenant_id', 'customer_id'], unique=False)
    run_sql_file("0021_insights.up.sql")


def downgrade() -> None:
    run_sql_file("0021_insights.down.sql")
    op.drop_index('ix_stored_recommendations_customer', table_name='stored_recommendations')
    op.drop_table('stored_recommendations')
    op.drop_index('ix_alerts_brand_unread', table_name='alerts', postgresql_where='read_at IS NULL')
    op.drop_index('ix_alerts_brand_crossed', table_name='alerts')
    op.drop_index('uq_alerts_crossing', table_name='alerts')
    op.drop_table('alerts')
    op.drop_index('ix_alert_states_customer', table_name='alert_states')
    op.drop_table('alert_states')
    op.drop_index('ix_alert_rules_brand', table_name='alert_rules')
    op.drop_table('alert_rules')
