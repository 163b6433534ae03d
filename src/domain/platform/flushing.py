"""A background task that writes what a process noted in memory every few seconds, and
everything left at the process's stop (API key use, API usage per consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Flusher:
    """Calls ``flush()`` every ``seconds`` while the process runs (a failure is logged, the loop
    goes on) and ``final()`` once at :meth:`stop` (bounded to 5 s: it never holds up shutdown)."""

    def __init__(self, name: str, flush: Callable[[], Awaitable[object]], seconds: float,
                 final: Callable[[], Awaitable[object]] | None = None) -> None:
        self.name = name
        self._flush = flush
        self._final = final or flush
        self._seconds = seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._seconds)
            try:
                await self._flush()
            except Exception:  # never let the loop die
                log.exception("%s: flushing failed", self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2)  # never holds up the process's shutdown
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._final(), 5)
