"""Customer search reads indexes under row-level security: stored lower-cased e-mail and names,
and prefix indexes leading with the tenant.

Revision ID: 0010_customer_search
Revises: 0008_message_claims
Create Date: 2026-12-07 22:15:00
"""

from domain.platform.sqlfiles import run_sql_file

revision = '0010_customer_search'
down_revision = '0008_message_claims'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0010_customer_search.up.sql")


def downgrade() -> None:
    run_sql_file("0010_customer_search.down.sql")
