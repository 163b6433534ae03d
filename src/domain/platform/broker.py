"""Dramatiq on Redis: the broker, and the decorator every product actor uses.

Each actor message carries its tenant id as the first argument; the actor body reaches the
database only through tenant transactions for that tenant. Retries, time limits and age limits
are set per actor (Dramatiq's ``max_retries``, ``time_limit`` and ``max_age`` options).

Worker processes start through ``domain.worker``, which adds the outbox relay's middleware
(:mod:`domain.platform.outbox_relay`) to this broker: a Dramatiq worker started any other way
runs no relay of its own.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, CurrentMessage

from domain.config import get_settings
from domain.platform.observability import new_request_id, request_id_var

P = ParamSpec("P")
# Used only until REDIS_URL is known; the client connects lazily, on first use.
_FALLBACK_URL = "redis://127.0.0.1:6379/0"


def _make_broker() -> RedisBroker:
    broker = RedisBroker(url=get_settings().redis_url or _FALLBACK_URL)
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    return broker


broker = _make_broker()
dramatiq.set_broker(broker)


def tenant_actor(
    *,
    queue_name: str = "default",
    max_retries: int = 10,
    min_backoff: int = 1_000,
    max_backoff: int = 300_000,
    time_limit: int = 60_000,
    max_age: int = 24 * 3600 * 1000,
    actor_name: str | None = None,
    **options: Any,
) -> Callable[[Callable[..., Awaitable[None]]], dramatiq.Actor]:
    """Declare an async actor ``fn(tenant_id: UUID, ...)``; messages carry the id as text. Its
    name is the module without ``domain.`` plus the function, unless ``actor_name`` keeps the
    name of a function that moved (queued messages and job rows name it)."""

    def decorator(fn: Callable[..., Awaitable[None]]) -> dramatiq.Actor:
        @functools.wraps(fn)
        async def run(tenant_id: str, *args: Any, **kwargs: Any) -> None:
            message = CurrentMessage.get_current_message()
            request_id_var.set(message.message_id if message else new_request_id())
            await fn(uuid.UUID(tenant_id), *args, **kwargs)

        return dramatiq.actor(
            run,
            actor_name=actor_name or f"{fn.__module__.removeprefix('domain.')}.{fn.__name__}",
            queue_name=queue_name,
            max_retries=max_retries,
            min_backoff=min_backoff,
            max_backoff=max_backoff,
            time_limit=time_limit,
            max_age=max_age,
            **options,
        )

    return decorator


async def enqueue(actor: dramatiq.Actor, tenant_id: uuid.UUID, *args: Any, **kwargs: Any) -> None:
    """Send a message now, without blocking the event loop. It is lost if Redis is away: inside a
    transaction use :func:`domain.platform.outbox.send` instead."""
    await asyncio.to_thread(actor.send, str(tenant_id), *args, **kwargs)
