"""Live events across processes: publish to Redis, fan out to local subscribers.

Any process (API, worker, webhook handler) publishes with :func:`publish`, normally after its
transaction commits (:func:`domain.platform.db.after_commit`). Each API process keeps one Redis
pub/sub connection (:class:`EventHub`) and hands each message to the local subscribers of its
channel through bounded queues. Channel names carry the tenant: ``t:<tenant>:<topic>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from domain.platform import redis as redis_mod

log = logging.getLogger(__name__)


def channel(tenant_id: uuid.UUID | str, topic: str) -> str:
    return f"t:{tenant_id}:{topic}"


async def publish(tenant_id: uuid.UUID | str, topic: str, payload: dict[str, Any]) -> None:
    await redis_mod.client().publish(channel(tenant_id, topic), json.dumps(payload, default=str))


class EventHub:
    """One pub/sub connection per process, dispatching to local asyncio queues."""

    QUEUE_SIZE = 256

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> None:
        if self._pubsub is None:
            self._pubsub = redis_mod.client().pubsub(ignore_subscribe_messages=True)
            # a pub/sub connection with no channel cannot listen yet; this one never fires
            await self._pubsub.subscribe("brandgraph:hub")
            self._reader = asyncio.create_task(self._read(), name="event-hub-reader")

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    queues = self._subscribers.get(message["channel"], ())
                    if not queues:
                        continue
                    data = json.loads(message["data"])
                    for queue in list(queues):
                        if queue.full():  # a slow consumer loses its oldest event, never blocks others
                            with contextlib.suppress(asyncio.QueueEmpty):
                                queue.get_nowait()
                        queue.put_nowait(data)
            except asyncio.CancelledError:
                raise
            except Exception:  # connection lost: resubscribe and go on
                log.exception("event hub lost its Redis connection; reconnecting")
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    channels = list(self._subscribers) or ["brandgraph:hub"]
                    await self._pubsub.subscribe(*channels)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, tenant_id: uuid.UUID | str, topic: str
    ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        name = channel(tenant_id, topic)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.QUEUE_SIZE)
        async with self._lock:
            await self._ensure_started()
            first = name not in self._subscribers
            self._subscribers.setdefault(name, set()).add(queue)
            if first:
                await self._pubsub.subscribe(name)
        try:
            yield queue
        finally:
            async with self._lock:
                queues = self._subscribers.get(name)
                if queues is not None:
                    queues.discard(queue)
                    if not queues:
                        del self._subscribers[name]
                        with contextlib.suppress(Exception):
                            await self._pubsub.unsubscribe(name)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._pubsub = None
        self._reader = None
