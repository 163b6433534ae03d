"""A conversation reply records the message that claimed its send.

Revision ID: 0008_message_claims
Revises: 0007_memberships
Create Date: 2026-12-07 17:20:00
"""

from domain.platform.sqlfiles import run_sql_file

revision = '0008_message_claims'
down_revision = '0007_memberships'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0008_message_claims.up.sql")


def downgrade() -> None:
    run_sql_file("0008_message_claims.down.sql")
