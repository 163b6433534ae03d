"""Transactional outbox: the live events and job messages a transaction produces, relayed to Redis after commit.

Revision ID: 0006_outbox
Revises: 0005_conversations
Create Date: 2026-12-07 15:40:00
"""

from domain.platform.sqlfiles import run_sql_file

revision = '0006_outbox'
down_revision = '0005_conversations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0006_outbox.up.sql")


def downgrade() -> None:
    run_sql_file("0006_outbox.down.sql")
