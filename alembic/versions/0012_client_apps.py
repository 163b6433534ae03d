"""Client apps: a tenant's partner integrations and SPAs, the API keys that belong to them, and
their trusted documents (persisted operations), uploaded as versioned manifests.

Revision ID: 0012_client_apps
Revises: 0011_claims
Create Date: 2026-12-08 01:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain.platform.sqlfiles import run_sql_file

revision = '0012_client_apps'
down_revision = '0011_claims'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('client_apps',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('persisted_only', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('rate_plan', sa.String(length=32), nullable=True),
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_client_apps_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_client_apps'))
    )
    op.create_index('ix_client_apps_created', 'client_apps', ['tenant_id', 'created_at', 'id'], unique=False)
    op.create_table('trusted_documents',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('client_app_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('operation_type', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'client_app_id'], ['client_apps.tenant_id', 'client_apps.id'], name=op.f('fk_trusted_documents_tenant_id_client_app_id_client_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'client_app_id', 'id', name=op.f('pk_trusted_documents'))
    )
    op.create_table('trusted_manifests',
    sa.Column('client_app_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document_ids', postgresql.ARRAY(sa.String(length=64)), nullable=False),
    sa.Column('uploaded_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'client_app_id'], ['client_apps.tenant_id', 'client_apps.id'], name=op.f('fk_trusted_manifests_tenant_id_client_app_id_client_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_trusted_manifests')),
    sa.UniqueConstraint('tenant_id', 'client_app_id', 'version', name=op.f('uq_trusted_manifests_tenant_id_client_app_id_version'))
    )
    op.add_column('api_keys', sa.Column('client_app_id', sa.UUID(), nullable=True))
    op.create_index('ix_api_keys_client_app', 'api_keys', ['tenant_id', 'client_app_id'], unique=False)
    op.create_foreign_key(op.f('fk_api_keys_tenant_id_client_app_id_client_apps'), 'api_keys', 'client_apps',
                          ['tenant_id', 'client_app_id'], ['tenant_id', 'id'])
    run_sql_file("0012_client_apps.up.sql")


def downgrade() -> None:
    run_sql_file("0012_client_apps.down.sql")
    op.drop_constraint(op.f('fk_api_keys_tenant_id_client_app_id_client_apps'), 'api_keys', type_='foreignkey')
    op.drop_index('ix_api_keys_client_app', table_name='api_keys')
    op.drop_column('api_keys', 'client_app_id')
    op.drop_table('trusted_manifests')
    op.drop_table('trusted_documents')
    op.drop_index('ix_client_apps_created', table_name='client_apps')
    op.drop_table('client_apps')
