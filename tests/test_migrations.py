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


def test_the_memberships_downgrade_keeps_brand_private_customers_and_names_to_their_tenant() -> None:
    import uuid

    import pytest

    server = os.environ["TEST_SERVER_URL"]
    name = "brandgraph_migrations_private"
    url = with_database(server, name)
    asyncio.run(create_database(server, name, drop_first=True))
    upgrade(url)

    async def run(sql: str, **params) -> list:
        engine = owner_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL row_security = off"))
                result = await conn.execute(text(sql), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    t, b, u, c = (uuid.uuid4() for _ in range(4))
    asyncio.run(run("INSERT INTO tenants (id, slug, name) VALUES (:t, :s, 'T')", t=t, s=f"t-{t.hex[:8]}"))
    asyncio.run(run("INSERT INTO brands (tenant_id, id, name, slug) VALUES (:t, :b, 'B', 'b')", t=t, b=b))
    asyncio.run(run("INSERT INTO users (id, email) VALUES (:u, 'p@x.test')", u=u))
    asyncio.run(run("INSERT INTO memberships (tenant_id, id, user_id, email, name, role, status) "
                    "VALUES (:t, :u, :u, 'p@x.test', 'Name of T', 'owner', 'active')", t=t, u=u))
    asyncio.run(run("INSERT INTO customers (tenant_id, id, email, attributes, private_to_brand_id) "
                    "VALUES (:t, :c, 'c@x.test', '{}', :b)", t=t, c=c, b=b))
    with pytest.raises(Exception, match="private to a brand exist"):
        downgrade(url, "0006_outbox")
    assert asyncio.run(run("SELECT count(*) FROM customers"))[0][0] == 1  # nothing deleted
    asyncio.run(run("DELETE FROM customers"))
    downgrade(url, "0006_outbox")
    assert asyncio.run(run("SELECT name FROM users")) == [(None,)]  # no tenant's name on the user
