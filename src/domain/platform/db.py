"""Database access: one async engine per event loop, and the tenant transaction.

Every read or write of tenant-owned rows goes through :func:`tenant_session`, which opens a
transaction and sets ``app.tenant_id`` for that transaction only (``set_config(..., true)``),
so a pooled connection never carries one tenant's setting into another's request. PostgreSQL's
row-level security policies read that setting; the app's role cannot bypass them.

Within :func:`shared_reads` (the API wraps each GraphQL query operation over HTTP in it), the
``tenant_session`` blocks of one tenant share one transaction instead of each opening its own;
a block that writes still commits at its own end. See :func:`shared_reads`.
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
from sqlalchemy.exc import TimeoutError as PoolTimeout
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
    """Counts SQL statements, and the transactions begun, while it is the current counter (see
    :func:`count_statements`). BEGIN and COMMIT are not statements here."""

    count: int = 0
    transactions: int = 0


_counter: contextvars.ContextVar[StatementCounter | None] = contextvars.ContextVar(
    "sql_statement_counter", default=None
)


def count_statements() -> StatementCounter:
    """Start counting the statements this task (and the tasks it spawns) run."""
    counter = StatementCounter()
    _counter.set(counter)
    return counter


@contextlib.contextmanager
def counting_statements() -> Iterator[StatementCounter]:
    """Count the statements run inside the block (by this task and the tasks it spawns); the API
    wraps each HTTP request in one, so the count covers authentication too."""
    counter = StatementCounter()
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)


def current_statement_counter() -> StatementCounter | None:
    """The counter this task counts into, if any."""
    return _counter.get()


_WROTE = "brandgraph_wrote"
_HOLDS = "brandgraph_holds"  # a reading statement took locks or changed a setting for the transaction
_FAILED = "brandgraph_failed"  # a statement failed: PostgreSQL aborted the transaction
_FLAGS = (_WROTE, _HOLDS, _FAILED)  # per transaction, on the pooled connection's info
# security-definer functions that only read; any other ``bg_`` function may write
_READ_ONLY_FUNCTIONS = ("bg_tenant_id_for_slug", "bg_tenant_ids", "bg_outbox_pending")
# row locks, advisory locks, transaction-local settings (``set_config(..., true)``): state that
# would outlive the block in a shared transaction
_HOLDING = re.compile(r"\bfor\s+(?:no\s+key\s+)?(?:key\s+)?(?:update|share)\b|\bpg_(?:try_)?advisory|\bset_config\s*\(",
                      re.IGNORECASE)


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
    elif _HOLDING.search(statement):
        conn.info[_HOLDS] = True


def _on_error(context: Any) -> None:
    if context.connection is not None and not context.connection.invalidated:
        context.connection.info[_FAILED] = True


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
        pool_timeout=10,  # waiting longer for a free connection than this is answered 503
        # UTC sessions: casts of timestamps to dates (segment rules, ages) never depend on the server
        connect_args={"server_settings": {"application_name": "brandgraph", "timezone": "UTC"}},
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _on_execute)
    event.listen(engine.sync_engine, "handle_error", _on_error)
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
    ping per checkout.

    BEGIN and the tenant setting are two round trips. Sending them as one simple-protocol script
    would save about 19 us per transaction (``bench/read_transactions_bench.py``), but SQLAlchemy
    begins asyncpg's transaction lazily, on the first statement: doing it here would take its
    private adapter calls and bypass its handling of a dead connection, and leaving it lazy
    would give up the retry above."""
    for attempt in range(3):
        session = _sessionmaker(engine())()
        try:
            await session.begin()
            if tid is not None:
                await session.execute(text("select set_config('app.tenant_id', :tid, true)"), {"tid": tid})
            info = (await session.connection()).info
            for flag in _FLAGS:  # the flags are per transaction
                info.pop(flag, None)
            counter = _counter.get()
            if counter is not None:
                counter.transactions += 1
            return session
        except Exception as exc:
            with contextlib.suppress(Exception):
                await session.close()
            if isinstance(exc, PoolTimeout):  # every connection busy for pool_timeout: answered
                raise _unavailable(exc) from exc  # like an unreachable server (503, retry shortly)
            if not is_unavailable(exc, connecting=True):
                raise
            if attempt == 2:
                raise _unavailable(exc) from exc
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _commit(session: AsyncSession, tid: str | None) -> None:
    """Write the outbox rows, commit, and note what the commit means for the request."""
    if tid is not None:
        await outbox.flush(session)
    info = (await session.connection()).info
    wrote = info.pop(_WROTE, False)
    info.pop(_HOLDS, None)
    info.pop(_FAILED, None)
    await session.commit()
    state = request_state.get()
    if wrote and state is not None:
        state.committed_write = True
    if session.info.pop("outbox_written", False):
        outbox.wake()


async def _roll_back(session: AsyncSession, exc: BaseException) -> None:
    """Roll back after ``exc``; raises :class:`DatabaseUnavailable` instead when ``exc`` says
    PostgreSQL is away."""
    with contextlib.suppress(Exception):
        await session.rollback()
    if isinstance(exc, Exception) and not isinstance(exc, DatabaseUnavailable) and is_unavailable(exc):
        raise _unavailable(exc) from exc


@asynccontextmanager
async def _transaction(tid: str | None) -> AsyncIterator[AsyncSession]:
    session = await _open(tid)
    try:
        try:
            yield session
            await _commit(session, tid)
        except BaseException as exc:
            await _roll_back(session, exc)
            raise
    finally:
        with contextlib.suppress(Exception):
            await session.close()


class _SharedReads:
    """One operation's shared transaction (see :func:`shared_reads`). ``lock`` serialises its
    use: the task holding it is the only one using ``session``."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.tenant_id: str | None = None  # the first block's tenant: the only one that shares
        self.url: str | None = None  # and its database URL override (tests), if any
        self.session: AsyncSession | None = None  # open between blocks only while it holds no writes
        self.closed = False  # the operation ended: later blocks get transactions of their own

    def admits(self, tid: str, url: str | None) -> bool:
        return self.tenant_id is None or (self.tenant_id, self.url) == (tid, url)


_shared: contextvars.ContextVar[_SharedReads | None] = contextvars.ContextVar(
    "shared_read_transaction", default=None)
# inside a tenant_session block (also in the tasks started inside one): a block opened there gets a
# transaction of its own, so the task holding the shared transaction never waits for it, nor
# does a task it started and waits on
_in_block: contextvars.ContextVar[bool] = contextvars.ContextVar("in_tenant_session", default=False)


async def _clean(session: AsyncSession) -> bool:
    """The transaction holds nothing a commit would keep: no statement since the last check
    wrote, took a lock or failed, and no row, outbox entry or callback waits for the commit."""
    try:
        info = (await session.connection()).info
    except Exception:  # the connection was invalidated
        return False
    return not (any(info.get(flag) for flag in _FLAGS) or session.info.get("outbox")
                or session.info.get("after_commit") or session.new or session.dirty or session.deleted)


async def _join_shared(tid: str) -> _SharedReads | None:
    """The operation's shared transaction, locked for this block, when this block may use it."""
    shared, url = _shared.get(), _url_override.get()
    if shared is None or shared.closed or _in_block.get() or not shared.admits(tid, url):
        return None
    await shared.lock.acquire()
    if shared.closed or not shared.admits(tid, url):
        shared.lock.release()
        return None
    shared.tenant_id, shared.url = tid, url
    return shared


@asynccontextmanager
async def _shared_block(shared: _SharedReads, tid: str) -> AsyncIterator[AsyncSession]:
    """One block in the shared transaction (``shared.lock`` is held; released here)."""
    try:
        if shared.session is None:
            shared.session = await _open(tid)
        session = shared.session
        try:
            yield session
        except BaseException as exc:
            if (isinstance(exc, Exception) and not is_unavailable(exc) and not shared.closed
                    and await _clean(session)):
                session.expunge_all()  # only reads ran, none failed: the transaction stays usable
                raise
            shared.session = None  # a fresh transaction for the blocks to come
            try:
                await _roll_back(session, exc)
            finally:
                with contextlib.suppress(Exception):
                    await session.close()
            raise
        if not shared.closed and await _clean(session):
            session.expunge_all()  # as after a transaction of its own: the block's objects are detached
            return
        shared.session = None  # it wrote (or locked, or swallowed a failed statement), or the operation ended: commit now
        try:
            try:
                await _commit(session, tid)
            except BaseException as exc:
                await _roll_back(session, exc)
                raise
        finally:
            with contextlib.suppress(Exception):
                await session.close()
    finally:
        shared.lock.release()


@asynccontextmanager
async def tenant_session(tenant_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
    """A transaction in which row-level security admits only ``tenant_id``'s rows.

    Commits when the block ends without an exception, rolls back otherwise. The live events and
    job messages the block produced (:mod:`domain.platform.outbox`) are written just before the
    commit, so they commit with the change. Then it runs the callbacks registered with
    :func:`after_commit`; a failing callback is logged, not raised (a committed change reported
    as failed is worse than a lost side effect). Raises :class:`DatabaseUnavailable` when
    PostgreSQL cannot be reached.

    Within :func:`shared_reads`, the block may run in the operation's shared transaction
    instead; to the block that is the same, as the shared transaction is committed at the
    block's end whenever the block wrote, and rolled back when it failed (see there).
    """
    tid = str(uuid.UUID(str(tenant_id)))
    shared = await _join_shared(tid)
    token = _in_block.set(True)
    try:
        if shared is not None:
            async with _shared_block(shared, tid) as session:
                yield session
        else:
            async with _transaction(tid) as session:
                yield session
    finally:
        _in_block.reset(token)
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:  # the change is committed: report, never turn it into a failure
            log.exception("after-commit callback failed", extra={"callback": getattr(callback, "__qualname__", "")})


@asynccontextmanager
async def shared_reads() -> AsyncIterator[None]:
    """Within this block, this task and the tasks it starts (a GraphQL operation's resolvers and
    dataloaders) share one transaction for their ``tenant_session`` blocks.

    * It begins with the first block (nothing is opened for an operation that reads nothing),
      for that block's tenant; a block for another tenant (or, in tests, another
      :func:`database_url`) gets a transaction of its own, so the tenant setting, and row-level
      security, stays per transaction.
    * One block uses it at a time (an ``asyncio.Lock``; the tasks run concurrently). A block
      opened inside another block, or in a task started inside one, gets a transaction of its
      own, as it would outside (no task waits for the transaction its own block holds).
    * Each block's ORM objects are detached when it ends, as after a transaction of its own.
    * A block that wrote (any statement but a plain ``SELECT``), took locks (``FOR UPDATE``,
      advisory locks), changed a setting (``set_config``), left rows, outbox entries or :func:`after_commit` callbacks, or ran a
      statement that failed, commits the shared transaction at its end, exactly as its own
      transaction would have (outbox rows, wake-up, callbacks, ``RequestState.committed_write``);
      the next block begins a fresh one. So between blocks the shared transaction holds only
      reads, and no write waits for the end of the operation.
    * A block that raises rolls the shared transaction back, and the next block begins a fresh
      one, unless it ran only reads and none of them failed (a domain error after its reads):
      then the transaction stays open for the other blocks.
    * When the block of :func:`shared_reads` ends, it waits for a block still running, commits
      the transaction (only reads: a failure is logged, not raised; the reads were served) and
      closes it. A block that starts later (a task still settling) gets a transaction of its
      own; the transaction is never reused for another operation.
    """
    shared = _SharedReads()
    token = _shared.set(shared)
    try:
        yield
    finally:
        _shared.reset(token)
        # no block joins from now on; a block still running ends the transaction itself when it
        # ends (``_shared_block``), so nothing here waits for it, and a cancelled operation leaves
        # no connection idle in its transaction
        shared.closed = True
        session = None
        if not shared.lock.locked():
            session, shared.session = shared.session, None
        if session is not None:
            try:
                await _commit(session, shared.tenant_id)
            except Exception as exc:  # it only read: what was read stands
                log.warning("committing a shared read transaction failed: %s", type(exc).__name__)
                with contextlib.suppress(Exception):
                    await session.rollback()
            finally:
                with contextlib.suppress(Exception):
                    await session.close()


@asynccontextmanager
async def anonymous_session() -> AsyncIterator[AsyncSession]:
    """A transaction with no tenant: row-level security shows no tenant-owned row.

    Used for the few security-definer functions that work across tenants (tenant lookup by
    slug, user identity), and for readiness checks.
    """
    async with _transaction(None) as session:
        yield session
