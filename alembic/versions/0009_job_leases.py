"""A running job is held under a lease by one delivery of its message at a time.

Revision ID: 0009_job_leases
Revises: 0008_message_claims
Create Date: 2026-12-07 22:10:00
"""

from domain.platform.sqlfiles import run_sql_file

revision = '0009_job_leases'
down_revision = '0008_message_claims'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_file("0009_job_leases.up.sql")


def downgrade() -> None:
    run_sql_file("0009_job_leases.down.sql")
