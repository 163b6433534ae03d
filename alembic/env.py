"""Alembic environment: async, always as the schema owner (DATABASE_URL).

The URL comes from the ``sqlalchemy.url`` main option when the caller set one (tests,
``brandgraph migrate``), else from the settings.
"""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from domain.config import asyncpg_url, get_settings
from domain.registry import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    return asyncpg_url(config.get_main_option("sqlalchemy.url") or get_settings().owner_database_url())


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
