"""Live events across processes: one Redis stream, fanned out to local subscribers.

A change announces itself with :func:`domain.platform.outbox.publish`, in its own transaction;
the outbox relay appends the event to the Redis stream ``events`` (bounded to the most recent
:data:`STREAM_MAXLEN` entries). Each API process keeps one reader (:class:`EventHub`) that follows
the stream from where it started and hands each entry to the local subscribers of its channel
through bounded queues. Channel names carry the tenant: ``t:<tenant>:<topic>``.

Across a Redis gap the relay holds events while Redis is away and appends them when it is
back; the hub reconnects and reads on from the last entry it handed out, so an event committed
while a subscriber was connected reaches it once, in the order written, except: a subscriber
whose queue is full loses its oldest event; entries trimmed from the stream (about the last
:data:`STREAM_MAXLEN` are kept) before the hub read them are skipped; a Redis crash loses what
it had not yet persisted; and if Redis comes back with less than the hub had read (it lost the
stream, or its last writes), the hub reads on after the last entry it handed out: what Redis lost
is not delivered, and nothing is delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from domain.platform import redis as redis_mod

log = logging.getLogger(__name__)

STREAM = "events"
STREAM_MAXLEN = 100_000


def channel(tenant_id: uuid.UUID | str, topic: str) -> str:
    return f"t:{tenant_id}:{topic}"


def entry(tenant_id: uuid.UUID | str, topic: str, payload: dict[str, Any]) -> tuple[str, str]:
    """One stream entry's fields ``c`` (the channel) and ``d`` (the payload as JSON)."""
    return channel(tenant_id, topic), json.dumps(payload, default=str)


def add_to(pipe: Any, tenant_id: uuid.UUID | str, topic: str, payload: dict[str, Any]) -> None:
    """Queue the append of one event on a Redis pipeline (the outbox relay appends with its own
    script instead, see :mod:`domain.platform.outbox`)."""
    c, d = entry(tenant_id, topic, payload)
    pipe.xadd(STREAM, {"c": c, "d": d}, maxlen=STREAM_MAXLEN, approximate=True)


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventHub:
    """One stream reader per process, dispatching to local asyncio queues."""

    QUEUE_SIZE = 256
    BLOCK_MS = 5_000

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._last_id: str | None = None
        self._lock = asyncio.Lock()
        self._client: Any = None

    def _redis(self) -> Any:
        # its own client: a blocking read holds a connection, and must not wait behind others
        if self._client is None:
            self._client = aioredis.Redis.from_url(redis_mod.redis_url(), decode_responses=True,
                                                   socket_connect_timeout=2, retry=redis_mod.retry_policy(),
                                                   # longer than a blocking read, or an idle hub times out
                                                   socket_timeout=self.BLOCK_MS / 1000 + 5)
        return self._client

    async def _tail(self) -> str:
        """The id of the stream's last entry ("0-0" when empty)."""
        last = await self._redis().xrevrange(STREAM, count=1)
        return last[0][0] if last else "0-0"

    async def _ensure_started(self) -> None:
        if self._reader is not None:
            return
        try:
            self._last_id = await asyncio.wait_for(self._tail(), 2)
        except Exception:  # Redis away: nothing can be appended meanwhile; start from now
            self._last_id = f"{int(time.time() * 1000)}-0"
        self._reader = asyncio.create_task(self._read(), name="event-hub-reader")

    def _dispatch(self, fields: dict[str, str]) -> None:
        queues = self._subscribers.get(fields.get("c", ""), ())
        if not queues:
            return
        data = json.loads(fields["d"])
        for queue in list(queues):
            if queue.full():  # a slow consumer loses its oldest event, never blocks others
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(data)

    async def _read(self) -> None:
        failed = False
        while True:
            try:
                if failed:  # Redis came back
                    tail = await self._tail()
                    if self._last_id and _id(tail) < _id(self._last_id):
                        # it came back with less than it had handed out (lost writes, or no stream
                        # at all): read on after the last entry handed out, never from the start,
                        # which would hand every entry still there out again. Entries appended from
                        # now on take ids from Redis's clock, later than that one.
                        log.warning("event stream came back shorter than the hub had read; "
                                    "events it lost are not delivered")
                    failed = False
                found = await self._redis().xread({STREAM: self._last_id or "$"}, count=500, block=self.BLOCK_MS)
                for _stream, entries in found or ():
                    for entry_id, fields in entries:
                        self._last_id = entry_id
                        self._dispatch(fields)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: read on from the last entry once back
                if not failed:
                    log.warning("event hub lost Redis (%s); reconnecting", type(exc).__name__, extra={"error": str(exc)[:200]})
                failed = True
                await asyncio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, tenant_id: uuid.UUID | str, topic: str
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        name = channel(tenant_id, topic)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.QUEUE_SIZE)
        async with self._lock:
            await self._ensure_started()
            self._subscribers.setdefault(name, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(name)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[name]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._client = None
        self._reader = None
