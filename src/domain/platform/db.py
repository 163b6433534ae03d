"""Database access: one async engine per event loop, and the tenant transaction.

Every read or write of tenant-owned rows goes through :func:`tenant_session`, which opens a
transaction and sets ``app.tenant_id`` for that transaction only (``set_config(..., true)``),
so a pooled connection never carries one tenant's setting into another's request. PostgreSQL's
row-level security policies read that setting; the app's role cannot bypass them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from domain.config import asyncpg_url, get_settings

AfterCommit = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)

_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
    weakref.WeakKeyDictionary()
)
_url_override: str | None = None


@dataclass
class StatementCounter:
    """Counts SQL statements run while it is the current counter (see :func:`count_statements`)."""

    count: int = 0


_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "sql_statement_counter", default=None
)


def count_statements() -> StatementCounter:
    """Start counting the statements this task (and the tasks it spawns) run."""
    counter = StatementCounter()
    _counter.set(counter)
    return counter


def _on_execute(*_args: object) -> None:
    counter = _counter.get()
    if counter is not None:
        counter.count += 1


def use_database_url(url: str | None) -> None:
    """Point this process at another runtime database URL (tests, the dev runner)."""
    global _url_override
    _url_override = url
    _engines.clear()


def _make_engine(url: str) -> AsyncEngine:
    settings = get_settings()
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=False,
        pool_recycle=1800,
        # UTC sessions: casts of timestamps to dates (segment rules, ages) never depend on the server
        connect_args={"server_settings": {"application_name": "brandgraph", "timezone": "UTC"}},
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _on_execute)
    return engine


def engine() -> AsyncEngine:
    """The engine for the running event loop (asyncpg connections belong to one loop)."""
    loop = asyncio.get_running_loop()
    found = _engines.get(loop)
    if found is None:
        found = _make_engine(_url_override or get_settings().app_database_url())
        _engines[loop] = found
    return found


async def dispose_engine() -> None:
    loop = asyncio.get_running_loop()
    found = _engines.pop(loop, None)
    if found is not None:
        await found.dispose()


def owner_engine(url: str | None = None) -> AsyncEngine:
    """A short-lived engine as the schema owner (migrations, provisioning). Caller disposes it."""
    return create_async_engine(
        asyncpg_url(url or get_settings().owner_database_url()), poolclass=NullPool
    )


def _sessionmaker(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault("after_commit", []).append(callback)


@asynccontextmanager
async def tenant_session(tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
    """A transaction in which row-level security admits only ``tenant_id``'s rows.

    Commits when the block ends without an exception, rolls back otherwise, then runs the
    callbacks registered with :func:`after_commit` (publishing events, enqueueing jobs). A failing
    callback is logged, not raised: what it would have done is recoverable (a queued job whose
    message was lost is sent again by the scheduler), a committed change reported as failed is not.
    """
    tid = str(uuid.UUID(str(tenant_id)))
    async with _sessionmaker(engine())() as session:
        async with session.begin():
            await session.execute(
                text("select set_config('app.tenant_id', :tid, true)"), {"tid": tid}
            )
            yield session
        callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # the change is committed: report, never turn it into a failure
            log.exception("after-commit callback failed", extra={"callback": getattr(callback, "__qualname__", "")})


@asynccontextmanager
async def anonymous_session() -> AsyncIterator[AsyncSession]:
    """A transaction with no tenant: row-level security shows no tenant-owned row.

    Used for the few security-definer functions that work across tenants (tenant lookup by
    slug, user identity), and for readiness checks.
    """
    async with _sessionmaker(engine())() as session:
        async with session.begin():
            yield session
