"""Periodic jobs: APScheduler fires them; a Redis lock per firing makes sure that, with two
schedulers running (a rolling deploy, a spare), each firing runs once.

A periodic job only enqueues Dramatiq messages; the work itself runs in the workers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from domain.platform import redis as redis_mod

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    trigger: BaseTrigger
    run: Callable[[], Awaitable[None]]
    slot_seconds: int = 60  # firings within one slot count as one


async def claim_firing(name: str, slot_seconds: int, now: float | None = None) -> bool:
    """True for exactly one caller per job and time slot, across processes."""
    slot = int((time.time() if now is None else now) // slot_seconds)
    key = f"scheduler:{name}:{slot}"
    return bool(await redis_mod.client().set(key, "1", nx=True, ex=max(slot_seconds * 2, 120)))


async def fire(job: Periodic) -> bool:
    if not await claim_firing(job.name, job.slot_seconds):
        log.info("periodic job already fired elsewhere", extra={"job": job.name})
        return False
    log.info("periodic job firing", extra={"job": job.name})
    await job.run()
    return True


async def run_forever(jobs: list[Periodic]) -> None:
    """Fire ``jobs`` (the product's list is :func:`domain.periodic.schedule`) until SIGINT/SIGTERM."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in jobs:
        scheduler.add_job(fire, job.trigger, args=[job], id=job.name, coalesce=True,
                          max_instances=1, misfire_grace_time=300)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    scheduler.start()
    log.info("scheduler started", extra={"jobs": [j.id for j in scheduler.get_jobs()]})
    await stop.wait()
    scheduler.shutdown(wait=False)
    await redis_mod.close_client()
    log.info("scheduler stopped")
