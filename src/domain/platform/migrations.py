"""Schema migrations (Alembic, as the schema owner) and the runtime role's login."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from domain.config import APP_ROLE, get_settings, project_root, with_database
from domain.platform.db import owner_engine


def alembic_config(owner_url: str) -> Config:
    root = project_root()
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "alembic"))
    cfg.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    return cfg


def upgrade(owner_url: str, revision: str = "head") -> None:
    """Apply migrations. Synchronous: Alembic's env runs its own event loop."""
    command.upgrade(alembic_config(owner_url), revision)


def downgrade(owner_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(owner_url), revision)


async def enable_app_login(owner_url: str, password: str | None) -> None:
    """Let the runtime role log in (with ``password`` when given). Needs CREATEROLE (or a
    superuser); operators who manage roles themselves set DATABASE_APP_URL instead."""
    engine = owner_engine(owner_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("select set_config('brandgraph.app_password', :pw, true)"), {"pw": password or ""})
            await conn.execute(
                text(
                    f"""
                    DO $$
                    DECLARE pw text := current_setting('brandgraph.app_password');
                    BEGIN
                      IF pw = '' THEN
                        EXECUTE 'ALTER ROLE {APP_ROLE} WITH LOGIN';
                      ELSE
                        EXECUTE format('ALTER ROLE {APP_ROLE} WITH LOGIN PASSWORD %L', pw);
                      END IF;
                    END $$;
                    """
                )
            )
    finally:
        await engine.dispose()


async def create_database(owner_url: str, name: str, *, drop_first: bool = False) -> None:
    """Create a database on the server of ``owner_url`` (embedded default, tests)."""
    engine = owner_engine(owner_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if drop_first:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = await conn.scalar(text("select 1 from pg_database where datname = :n"), {"n": name})
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


def provision(server_url: str, name: str, *, fresh: bool = False) -> str:
    """Database ``name`` on the server of ``server_url`` (an owner URL), created when missing
    (dropped first when ``fresh``), migrated to head, with the app role's login enabled. Returns
    the database's owner URL. Synchronous (migrations run their own event loop); used by the
    embedded development default, the tests and the benches."""
    asyncio.run(create_database(server_url, name, drop_first=fresh))
    url = with_database(server_url, name)
    upgrade(url)
    settings = get_settings()
    if not settings.database_app_url:
        asyncio.run(enable_app_login(url, settings.app_password()))
    return url
