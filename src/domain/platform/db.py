"""Database access: one async engine per event loop, and the tenant transaction.

Every read or write of tenant-owned rows goes through :func:`tenant_session`, which opens a
transaction and sets ``app.tenant_id`` for that transaction only (``set_config(..., true)``),
so a pooled connection never carries one tenant's setting into another's request. PostgreSQL's
row-level security policies read that setting; the app's role cannot bypass them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from domain.config import asyncpg_url, get_settings
from domain.platform import outbox

AfterCommit = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)

# per event loop, one engine per database URL in use on it
_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)
_url_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("database_url_override", default=None)


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


_WROTE = "brandgraph_wrote"
# security-definer functions that only read; any other ``bg_`` function may write
_READ_ONLY_FUNCTIONS = ("bg_tenant_id_for_slug", "bg_tenant_ids", "bg_outbox_pending")


def _may_write(statement: str) -> bool:
    """False only for a statement that cannot change a row: a SELECT that calls none of our
    functions but the read-only ones (``FOR UPDATE`` only locks)."""
    head = statement.lstrip()[:6].lower()
    if head not in ("select", "show"):
        return True
    called = set(re.findall(r"\bbg_\w+", statement))
    return not called.issubset(_READ_ONLY_FUNCTIONS)


def _on_execute(conn: Any, _cursor: object, statement: str, *_args: object) -> None:
    counter = _counter.get()
    if counter is not None:
        counter.count += 1
    if _may_write(statement):
        conn.info[_WROTE] = True


@contextlib.contextmanager
def database_url(url: str) -> Iterator[None]:
    """Within this block, this task (and the tasks it starts) use another runtime database URL
    (tests); other tasks keep theirs. Its engine lives until :func:`dispose_engine`."""
    token = _url_override.set(url)
    try:
        yield
    finally:
        _url_override.reset(token)


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
    url = _url_override.get() or get_settings().app_database_url()
    engines = _engines.setdefault(loop, {})
    found = engines.get(url)
    if found is None:
        found = engines[url] = _make_engine(url)
    return found


async def dispose_engine() -> None:
    """Close this event loop's engines and their pooled connections."""
    loop = asyncio.get_running_loop()
    for found in _engines.pop(loop, {}).values():
        await found.dispose()


def owner_engine(url: str | None = None) -> AsyncEngine:
    """A short-lived engine as the schema owner (migrations, provisioning). Caller disposes it."""
    return create_async_engine(
        asyncpg_url(url or get_settings().owner_database_url()), poolclass=NullPool
    )


def _sessionmaker(bind: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's transaction has committed (never on rollback).

    Only for what may be lost: a callback that fails (Redis away) is logged and dropped. Live
    events and job messages go through :mod:`domain.platform.outbox` instead."""
    session.info.setdefault("after_commit", []).append(callback)


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached (restarting, down, connection lost). Nothing of the
    interrupted transaction was committed, unless the connection was lost during the commit
    itself (then the outcome is unknown, as with any commit whose reply never came). The API
    answers 503 ``DATABASE_UNAVAILABLE`` when the request committed no write before (see
    :class:`RequestState`), and a field error with that code otherwise."""


@dataclass
class RequestState:
    """What one HTTP request met: PostgreSQL unreachable, and whether a transaction that wrote
    committed (then retrying the whole request would repeat that write)."""

    unavailable: bool = False
    committed_write: bool = False


# set per HTTP request by the API: resolvers run in child tasks, which share the one object
request_state: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "database_request_state", default=None)
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}


def is_unavailable(exc: BaseException, *, connecting: bool = False) -> bool:
    """True for errors that mean the server is away rather than that the statement failed:
    database errors only, or, while ``connecting``, also the socket's own errors."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not connecting and not isinstance(exc, (DBAPIError, asyncpg.exceptions.PostgresError,
                                               asyncpg.exceptions.InterfaceError)):
        return False
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (ConnectionError, TimeoutError, FileNotFoundError)):
            return True
        if isinstance(cur, OSError) and cur.errno is not None:
            return True
        if isinstance(cur, (asyncpg.exceptions.ConnectionDoesNotExistError,
                            asyncpg.exceptions.CannotConnectNowError)):
            return True
        if getattr(cur, "sqlstate", None) in _UNAVAILABLE_SQLSTATES:
            return True
        cur = getattr(cur, "orig", None) or cur.__cause__ or cur.__context__
    return False


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    state = request_state.get()
    if state is not None:
        state.unavailable = True
    log.warning("database unavailable: %s", type(exc).__name__)
    return DatabaseUnavailable("the database is unavailable; retry shortly")


async def _open(tid: str | None) -> AsyncSession:
    """A session with its transaction begun (and the tenant set). A pooled connection that died
    with its server fails on this first statement, before any caller's work: the pool is then
    invalidated and a fresh connection tried, so a restarted PostgreSQL costs no request and no
    ping per checkout."""
    for attempt in range(3):
        session = _sessionmaker(engine())()
        try:
            await session.begin()
            if tid is not None:
                await session.execute(text("select set_config('app.tenant_id', :tid, true)"), {"tid": tid})
            (await session.connection()).info.pop(_WROTE, None)  # the flag is per transaction
            return session
        except Exception as exc:
            with contextlib.suppress(Exception):
                await session.close()
            if not is_unavailable(exc, connecting=True):
                raise
            if attempt == 2:
                raise _unavailable(exc) from exc
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


@asynccontextmanager
async def _transaction(tid: str | None) -> AsyncIterator[AsyncSession]:
    session = await _open(tid)
    try:
        try:
            yield session
            if tid is not None:
                await outbox.flush(session)
            wrote = (await session.connection()).info.pop(_WROTE, False)
            await session.commit()
            state = request_state.get()
            if wrote and state is not None:
                state.committed_write = True
            if session.info.pop("outbox_written", False):
                outbox.wake()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await session.rollback()
            if isinstance(exc, Exception) and not isinstance(exc, DatabaseUnavailable) and is_unavailable(exc):
                raise _unavailable(exc) from exc
            raise
    finally:
        with contextlib.suppress(Exception):
            await session.close()


@asynccontextmanager
async def tenant_session(tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
    """A transaction in which row-level security admits only ``tenant_id``'s rows.

    Commits when the block ends without an exception, rolls back otherwise. The live events and
    job messages the block produced (:mod:`domain.platform.outbox`) are written just before the
    commit, so they commit with the change. Then it runs the callbacks registered with
    :func:`after_commit`; a failing callback is logged, not raised (a committed change reported
    as failed is worse than a lost side effect). Raises :class:`DatabaseUnavailable` when
    PostgreSQL cannot be reached.
    """
    tid = str(uuid.UUID(str(tenant_id)))
    async with _transaction(tid) as session:
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
    async with _transaction(None) as session:
        yield session
