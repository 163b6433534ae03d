"""Every revision applies on an empty database and reverts to nothing."""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import text

from conftest import with_database
from domain.platform.db import owner_engine
from domain.platform.migrations import create_database, downgrade, upgrade


async def _tables(url: str) -> set[str]:
    engine = owner_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "select tablename from pg_tables where schemaname = 'public' "
                "union all select proname from pg_proc where proname like 'bg\\_%'"
            ))
            return set(rows.scalars())
    finally:
        await engine.dispose()


def test_upgrade_head_then_downgrade_base_on_an_empty_database() -> None:
    server = os.environ["TEST_SERVER_URL"]
    url = with_database(server, "brandgraph_migrations")
    asyncio.run(create_database(server, "brandgraph_migrations", drop_first=True))
    assert asyncio.run(_tables(url)) == set()

    upgrade(url)
    after_up = asyncio.run(_tables(url))
    assert {"tenants", "brands", "users", "memberships", "brand_grants", "api_keys", "audit_log",
            "alembic_version", "bg_ensure_user", "bg_current_tenant"} <= after_up

    downgrade(url)
    assert asyncio.run(_tables(url)) == {"alembic_version"}

    upgrade(url)  # and it applies again after a full revert
    assert asyncio.run(_tables(url)) == after_up
