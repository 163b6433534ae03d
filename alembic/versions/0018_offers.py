"""Offers: descriptive catalogue attributes on products (kind, genres, type, creators, place,
dates), preferences in customer profiles, per-brand recommendation weights, and the SQL functions
that compute preferences and recommendation scores.

Revision ID: 0018_offers
Revises: 0017_live_segments
Create Date: 2026-12-08 01:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain.platform.sqlfiles import run_sql_file

revision = '0018_offers'
down_revision = '0017_live_segments'
branch_labels = None
depends_on = None

TEXTS = postgresql.ARRAY(sa.String())


def CUSTOMER_COLUMNS() -> list[sa.Column]:  # noqa: N802 - fresh Column objects each call
    """Overrides of churn risk and lifetime value, contact preference and account manager."""
    return [sa.Column('risk_override', sa.SmallInteger(), nullable=True),
            sa.Column('risk_override_reason', sa.String(500), nullable=True),
            sa.Column('risk_override_by', sa.String(320), nullable=True),
            sa.Column('risk_override_at', sa.DateTime(timezone=True), nullable=True),
            sa.Column('value_override_cents', sa.BigInteger(), nullable=True),
            sa.Column('value_override_reason', sa.String(500), nullable=True),
            sa.Column('value_override_by', sa.String(320), nullable=True),
            sa.Column('value_override_at', sa.DateTime(timezone=True), nullable=True),
            sa.Column('preferred_contact_method', sa.String(8), nullable=True),
            sa.Column('account_manager_id', sa.UUID(), nullable=True)]


def upgrade() -> None:
    op.add_column('products', sa.Column('kind', sa.String(16), server_default='product', nullable=False))
    op.add_column('products', sa.Column('genres', TEXTS, server_default='{}', nullable=False))
    op.add_column('products', sa.Column('product_type', sa.String(100), nullable=True))
    op.add_column('products', sa.Column('creators', TEXTS, server_default='{}', nullable=False))
    op.add_column('products', sa.Column('city', sa.String(100), nullable=True))
    op.add_column('products', sa.Column('country', sa.String(2), nullable=True))
    op.add_column('products', sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('products', sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_products_brand_kind_starts', 'products', ['tenant_id', 'brand_id', 'kind', 'starts_at'])

    for _name, column in (('genre_weights', sa.Column('genre_weights', postgresql.JSONB(), server_default='{}', nullable=False)),
                         ('genres', sa.Column('genres', TEXTS, server_default='{}', nullable=False)),
                         ('type_weights', sa.Column('type_weights', postgresql.JSONB(), server_default='{}', nullable=False)),
                         ('types', sa.Column('types', TEXTS, server_default='{}', nullable=False)),
                         ('creators', sa.Column('creators', TEXTS, server_default='{}', nullable=False)),
                         ('price_low_cents', sa.Column('price_low_cents', sa.BigInteger(), nullable=True)),
                         ('price_high_cents', sa.Column('price_high_cents', sa.BigInteger(), nullable=True)),
                         ('preferred_days', sa.Column('preferred_days', postgresql.ARRAY(sa.SmallInteger()), server_default='{}', nullable=False)),
                         ('preferred_hours', sa.Column('preferred_hours', postgresql.ARRAY(sa.SmallInteger()), server_default='{}', nullable=False)),
                         ('city', sa.Column('city', sa.String(100), nullable=True)),
                         ('country', sa.Column('country', sa.String(2), nullable=True)),
                         ('watchlist', sa.Column('watchlist', postgresql.ARRAY(sa.UUID()), server_default='{}', nullable=False))):
        op.add_column('customer_profiles', column)

    op.create_table('recommendation_weights',
    sa.Column('tenant_id', sa.UUID(), nullable=False),
    sa.Column('brand_id', sa.UUID(), nullable=False),
    sa.Column('genre', sa.SmallInteger(), server_default='25', nullable=False),
    sa.Column('type', sa.SmallInteger(), server_default='20', nullable=False),
    sa.Column('creator', sa.SmallInteger(), server_default='20', nullable=False),
    sa.Column('price', sa.SmallInteger(), server_default='15', nullable=False),
    sa.Column('location', sa.SmallInteger(), server_default='10', nullable=False),
    sa.Column('engagement', sa.SmallInteger(), server_default='5', nullable=False),
    sa.Column('watchlist', sa.SmallInteger(), server_default='5', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'brand_id'], ['brands.tenant_id', 'brands.id'], name=op.f('fk_recommendation_weights_tenant_id_brand_id_brands'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'brand_id', name=op.f('pk_recommendation_weights'))
    )
    for column in CUSTOMER_COLUMNS():
        op.add_column('customers', column)
    run_sql_file("0018_offers.up.sql")


def downgrade() -> None:
    run_sql_file("0018_offers.down.sql")
    for column in CUSTOMER_COLUMNS():
        op.drop_column('customers', column.name)
    op.drop_table('recommendation_weights')
    for name in ('genre_weights', 'genres', 'type_weights', 'types', 'creators', 'price_low_cents', 'price_high_cents',
                 'preferred_days', 'preferred_hours', 'city', 'country', 'watchlist'):
        op.drop_column('customer_profiles', name)
    op.drop_index('ix_products_brand_kind_starts', table_name='products')
    for name in ('kind', 'genres', 'product_type', 'creators', 'city', 'country', 'starts_at', 'ends_at'):
        op.drop_column('products', name)
