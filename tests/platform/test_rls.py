"""The app's database role is bound by row-level security: the second layer of isolation,
which holds even if a domain query forgot its tenant filter."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from conftest import TenantFixture
from domain.config import get_settings
from domain.platform import db

TENANT_TABLES = ["tenants", "brands", "memberships", "brand_grants", "api_keys", "audit_log", "client_apps",
                 "trusted_documents", "trusted_manifests", "recommendation_weights"]


async def test_app_role_cannot_bypass_rls() -> None:
    async with db.anonymous_session() as s:
        row = (await s.execute(text(
            "select current_user as u, rolsuper, rolbypassrls from pg_roles where rolname = current_user"
        ))).one()
        owners = set((await s.execute(text(
            "select tableowner from pg_tables where schemaname = 'public'"
        ))).scalars())
    assert row.u == "brandgraph_app"
    assert not row.rolsuper and not row.rolbypassrls
    assert "brandgraph_app" not in owners  # an owner could switch RLS off


async def test_every_tenant_table_has_forced_rls() -> None:
    async with db.anonymous_session() as s:
        rows = (await s.execute(text(
            "select relname, relrowsecurity, relforcerowsecurity from pg_class "
            "where relkind = 'r' and relnamespace = 'public'::regnamespace and relname <> 'alembic_version'"
        ))).all()
    by_name = {r.relname: r for r in rows}
    for table in [*TENANT_TABLES, "users"]:
        assert by_name[table].relrowsecurity and by_name[table].relforcerowsecurity, table
    # every table but the migration bookkeeping is covered
    assert {r.relname for r in rows if not r.relrowsecurity} == set()


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_without_tenant_setting_no_rows_are_visible(table: str, tenant: TenantFixture) -> None:
    await tenant.member("marketer", brands=["a"])  # a brand grant
    await tenant.api_key("analyst")
    if table in ("client_apps", "trusted_documents", "trusted_manifests"):  # an app with a manifest
        import hashlib

        from domain.clients import service as clients

        app = await clients.create_client_app(tenant.owner, "Partner")
        doc = "{ viewer { role } }"
        await clients.upload_manifest(tenant.owner, app.app.id, {hashlib.sha256(doc.encode()).hexdigest(): doc})
    if table == "recommendation_weights":  # a brand's own weights
        async with db.tenant_session(tenant.id) as s:
            await s.execute(text("insert into recommendation_weights (tenant_id, brand_id) values (:t, :b)"),
                            {"t": tenant.id, "b": tenant.brands["a"]})
    async with db.tenant_session(tenant.id) as s:
        assert await s.scalar(text(f"select count(*) from {table}")) > 0  # the rows exist
    async with db.anonymous_session() as s:
        assert await s.scalar(text(f"select count(*) from {table}")) == 0


async def test_other_tenant_rows_are_invisible_and_unwritable(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    await other_tenant.api_key("analyst")

    async def victims_rows() -> tuple[list, list]:
        async with db.tenant_session(other_tenant.id) as s:
            brands = [tuple(r) for r in await s.execute(text("select id, name, slug, updated_at from brands order by id"))]
            keys = [tuple(r) for r in await s.execute(text("select id, name, revoked_at from api_keys order by id"))]
        return brands, keys

    before = await victims_rows()
    assert len(before[0]) == 2 and len(before[1]) == 1
    async with db.tenant_session(tenant.id) as s:
        slugs = set((await s.execute(text("select slug from brands"))).scalars())
        assert slugs == {"brand-a", "brand-b"}
        tenants = set((await s.execute(text("select id from tenants"))).scalars())
        assert tenants == {tenant.id}
        updated = await s.execute(
            text("update brands set name = 'hijacked' where tenant_id = :other"), {"other": other_tenant.id}
        )
        assert updated.rowcount == 0
        deleted = await s.execute(text("delete from api_keys where tenant_id = :other"), {"other": other_tenant.id})
        assert deleted.rowcount == 0
    assert await victims_rows() == before  # the other tenant's rows, read as that tenant: untouched


async def test_insert_with_another_tenants_id_is_refused(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.tenant_session(tenant.id) as s:
            await s.execute(
                text("insert into brands (tenant_id, id, name, slug) values (:t, :id, 'x', 'sneaky')"),
                {"t": other_tenant.id, "id": uuid.uuid4()},
            )
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.tenant_session(tenant.id) as s:
            await s.execute(
                text("update brands set tenant_id = :other where tenant_id = :t"),
                {"t": tenant.id, "other": other_tenant.id},
            )


async def test_tenant_setting_is_transaction_local() -> None:
    """A pooled connection never carries one request's tenant into the next."""
    engine = db.engine()
    async with engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text("select set_config('app.tenant_id', :t, true)"), {"t": str(uuid.uuid4())})
            assert await conn.scalar(text("select bg_current_tenant()")) is not None
        async with conn.begin():
            assert await conn.scalar(text("select bg_current_tenant()")) is None


async def test_users_are_visible_only_through_membership(tenant: TenantFixture, other_tenant: TenantFixture) -> None:
    async with db.tenant_session(tenant.id) as s:
        emails = set((await s.execute(text("select email from users"))).scalars())
    assert emails == {f"owner@{tenant.slug}.test"}
    async with db.tenant_session(tenant.id) as s:
        with pytest.raises(DBAPIError, match="permission denied"):
            await s.execute(text("insert into users (id, email) values (gen_random_uuid(), 'x@y.test')"))


async def test_ensure_user_needs_a_tenant_transaction() -> None:
    with pytest.raises(DBAPIError, match="needs a tenant transaction"):
        async with db.anonymous_session() as s:
            await s.execute(text("select bg_ensure_user('someone@x.test')"))


def test_app_url_is_not_the_owner() -> None:
    settings = get_settings()
    assert "brandgraph_app" in settings.app_database_url()
    assert settings.app_database_url() != settings.owner_database_url()
