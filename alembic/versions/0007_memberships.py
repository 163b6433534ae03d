"""Memberships own what a tenant knows of a person (name); invitations are accepted before access;
brand-private customer records.

Revision ID: 0007_memberships
Revises: 0006_outbox
Create Date: 2026-12-07 15:40:00
"""

from domain.platform.sqlfiles import run_sql_file

revision = '0007_memberships'
down_revision = '0006_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0007_memberships.up.sql")


def downgrade() -> None:
    run_sql_file("0007_memberships.down.sql")
