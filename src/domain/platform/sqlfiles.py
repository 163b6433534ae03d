"""Loads the SQL files in ``migrations/`` (row-level security, roles, functions) for revisions."""

from __future__ import annotations

from alembic import op
from sqlalchemy.util import await_only

from domain.config import project_root


def run_sql_file(name: str) -> None:
    """Run a multi-statement SQL script inside the revision's transaction.

    asyncpg prepares every parameterised statement, so a script goes through its
    simple-query path on the raw connection.
    """
    sql = (project_root() / "migrations" / name).read_text()
    raw = op.get_bind().connection.driver_connection
    await_only(raw.execute(sql))
