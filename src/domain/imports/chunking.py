"""Running an import chunk by chunk, one transaction per chunk: the sizes of the chunks (a ramp
of small ones first), progress counted in source rows, running a chunk again when it raced a
concurrent writer, and the session helpers of a chunk's set-based statements (the raw
connection for COPY, turning nested-loop joins off and on). Customer and order imports share it.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.imports.parsing import CHUNK

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRYABLE = {"23505", "40P01", "40001"}  # a concurrent writer got there first: run the chunk again
RAMP = (500, 1_000, 2_000)


class ConcurrentChange(Exception):
    """A customer appeared between resolving a chunk and inserting it: the chunk runs again."""


async def raw_connection(session: AsyncSession):
    """The asyncpg connection under the session's transaction (for COPY)."""
    conn = await session.connection()
    return (await conn.get_raw_connection()).driver_connection


async def nested_loops(session: AsyncSession, enabled: bool) -> None:
    """Allow or forbid nested-loop joins for the rest of the transaction (or until changed)."""
    await session.execute(text(f"SET LOCAL enable_nestloop = {'on' if enabled else 'off'}"))


async def with_retries(work: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """Run one chunk's transaction; run it again when a concurrent writer won a race."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except ConcurrentChange:
            if attempt == attempts:
                raise
        except DBAPIError as exc:
            if attempt == attempts or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
                raise
        log.info("import chunk raced a concurrent change; running it again", extra={"attempt": attempt})
        await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


class ChunkProgress:
    """Reports progress in source rows: a chunk covers the lines after the previous chunk's last
    row up to its own last row (rejected and merged rows included), so done reaches total."""

    def __init__(self, progress: Any, lines: list[int], chunk_list: list[list[Any]]) -> None:
        self.progress = progress
        self.total = len(lines)
        self.covers: list[int] = []
        before = 0
        for i, chunk in enumerate(chunk_list):
            upto = self.total if i == len(chunk_list) - 1 else bisect.bisect_right(lines, chunk[-1].line)
            self.covers.append(upto - before)
            before = upto
        self.rest = self.total - before

    async def start(self) -> None:
        if self.progress is not None:
            if hasattr(self.progress, "done"):
                self.progress.done = 0  # a retried job starts over
            await self.progress.set_total(self.total)

    async def chunk_done(self, i: int) -> None:
        if self.progress is not None and self.covers[i]:
            await self.progress.advance(self.covers[i])

    async def finish(self) -> None:
        if self.progress is not None and self.rest:
            await self.progress.advance(self.rest)


async def run_chunks(chunk_list: list[list[T]], work: Callable[[list[T]], Awaitable[Any]],
                     done: Callable[[int, list[T], Any], Awaitable[None]], concurrency: int = 1) -> None:
    """Run ``work`` (one transaction) per chunk: the first few in order, then up to
    ``concurrency`` at once; ``done`` gets each result as it comes."""
    async def one(i: int) -> None:
        chunk = chunk_list[i]
        result = await with_retries(lambda: work(chunk))
        await done(i, chunk, result)

    head = min(len(RAMP), len(chunk_list)) if concurrency > 1 else len(chunk_list)
    for i in range(head):
        await one(i)
    if head < len(chunk_list):
        gate = asyncio.Semaphore(concurrency)

        async def gated(i: int) -> None:
            async with gate:
                await one(i)

        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other chunks
                for i in range(head, len(chunk_list)):
                    group.create_task(gated(i))
        except BaseExceptionGroup as group_error:
            first = group_error.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None


def chunks(items: list[T], size: int = CHUNK) -> Iterable[list[T]]:
    """Chunks of ``size``, after a few smaller ones. In a new database the planner believes the
    tables empty until autovacuum analyzes them, and plans the foreign-key checks of a big first
    chunk as scans of the rows just written (quadratic); small first chunks keep that cheap until
    the tables' real size shows (see :func:`domain.imports.customer_merge.merge`, which also drops plans made meanwhile)."""
    start, steps = 0, list(RAMP)
    while start < len(items):
        step = min(size, steps.pop(0)) if steps else size
        yield items[start:start + step]
        start += step
