"""Every revision applies on an empty database and reverts to nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

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


def _empty_database(name: str) -> str:
    """The URL of database ``name`` on the test server, dropped and created empty."""
    server = os.environ["TEST_SERVER_URL"]
    asyncio.run(create_database(server, name, drop_first=True))
    return with_database(server, name)


def _owner_sql(url: str) -> Callable[..., Coroutine[Any, Any, list]]:
    """Runs one statement on ``url`` as the owner with row security off; its rows, if any."""
    async def run(sql: str, **params: Any) -> list:
        engine = owner_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL row_security = off"))
                result = await conn.execute(text(sql), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return run


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

    name = "brandgraph_migrations_private"
    url = _empty_database(name)
    upgrade(url)

    run = _owner_sql(url)

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


def test_existing_memberships_get_fresh_member_ids_and_the_audit_log_follows() -> None:
    """Memberships made before member ids existed get fresh random ones, different in each
    tenant and from the user id; the audit entries naming them follow; grants keep the user id."""
    import json
    import uuid

    name = "brandgraph_migrations_member_ids"
    url = _empty_database(name)
    upgrade(url, "0006_outbox")

    run = _owner_sql(url)

    u, other = uuid.uuid4(), uuid.uuid4()
    tenants = [uuid.uuid4(), uuid.uuid4()]
    asyncio.run(run("INSERT INTO users (id, email) VALUES (:u, 'p@x.test'), (:o, 'o@x.test')", u=u, o=other))
    for t in tenants:
        b = uuid.uuid4()
        asyncio.run(run("INSERT INTO tenants (id, slug, name) VALUES (:t, :s, 'T')", t=t, s=f"t-{t.hex[:8]}"))
        asyncio.run(run("INSERT INTO brands (tenant_id, id, name, slug) VALUES (:t, :b, 'B', 'b')", t=t, b=b))
        asyncio.run(run("INSERT INTO memberships (tenant_id, user_id, role) VALUES (:t, :u, 'owner')", t=t, u=u))
        asyncio.run(run("INSERT INTO brand_grants (tenant_id, user_id, brand_id) VALUES (:t, :u, :b)", t=t, u=u, b=b))
        for action, target_type, target, summary in (
            ("member.add", "Member", str(u), {}),
            ("conversation.assign", "Conversation", str(uuid.uuid4()), {"assignee_id": str(u)}),
            ("member.add", "Member", str(other), {}),  # no membership here: left as it is
        ):
            asyncio.run(run("INSERT INTO audit_log (id, tenant_id, principal_type, principal_id, action, target_type, "
                            "target_id, summary) VALUES (:i, :t, 'user', :p, :a, :tt, :ti, CAST(:s AS jsonb))",
                            i=uuid.uuid4(), t=t, p=str(u), a=action, tt=target_type, ti=target, s=json.dumps(summary)))
    upgrade(url)

    ids = dict(asyncio.run(run("SELECT tenant_id, id FROM memberships WHERE user_id = :u", u=u)))
    assert set(ids) == set(tenants) and len(set(ids.values())) == 2 and u not in ids.values()
    for t in tenants:
        member = str(ids[t])
        rows = asyncio.run(run("SELECT action, principal_id, target_type, target_id, summary FROM audit_log "
                               "WHERE tenant_id = :t ORDER BY action, target_id", t=t))
        for action, principal_id, _type, target_id, summary in rows:
            assert principal_id == member
            if action == "conversation.assign":
                assert summary == {"assignee_id": member}
            elif target_id != str(other):
                assert target_id == member
        assert asyncio.run(run("SELECT user_id FROM brand_grants WHERE tenant_id = :t", t=t)) == [(u,)]

    downgrade(url, "0006_outbox")  # and back: the audit log names the user again
    assert {r[0] for r in asyncio.run(run("SELECT principal_id FROM audit_log"))} == {str(u)}
    assert {r[0] for r in asyncio.run(run("SELECT summary->>'assignee_id' FROM audit_log "
                                          "WHERE action = 'conversation.assign'"))} == {str(u)}
