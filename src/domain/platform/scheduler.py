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
from apscheduler.triggers.cron import CronTrigger

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


def schedule() -> list[Periodic]:
    """Every periodic job of the product."""
    from domain.audit.actors import prune_audit_log
    from domain.platform.jobs import enqueue
    from domain.tenancy.tenants import all_tenant_ids

    from domain.jobs.service import requeue_stalled
    from domain.profiles.actors import start_scheduled_rebuild
    from domain.actors import load_actors

    load_actors()  # requeueing needs every job kind's actor

    async def prune_audit_logs() -> None:
        for tenant_id in await all_tenant_ids():
            await enqueue(prune_audit_log, tenant_id)

    async def rebuild_profiles() -> None:
        for tenant_id in await all_tenant_ids():
            await start_scheduled_rebuild(tenant_id)

    from domain.segments.refresh import refresh_stale

    async def refresh_stale_segments() -> None:
        for tenant_id in await all_tenant_ids():
            await refresh_stale(tenant_id)

    async def requeue_stalled_jobs() -> None:
        from domain.conversations.sending import requeue_stalled_messages
        from domain.segments.automations import requeue_stalled_runs

        for tenant_id in await all_tenant_ids():
            await requeue_stalled(tenant_id)
            await requeue_stalled_runs(tenant_id)
            await requeue_stalled_messages(tenant_id)

    from domain.segments import automations

    async def run_periodic_automations() -> None:
        for tenant_id in await all_tenant_ids():
            await enqueue(automations.run_periodic_automations, tenant_id)

    from domain.campaigns.sending import dispatch_due
    from domain.campaigns.service import launch_due

    from domain.conversations.service import wake_snoozed

    async def run_campaigns() -> None:
        for tenant_id in await all_tenant_ids():
            await launch_due(tenant_id)
            await dispatch_due(tenant_id)

    async def wake_snoozed_conversations() -> None:
        for tenant_id in await all_tenant_ids():
            await wake_snoozed(tenant_id)

    return [
        Periodic("run_campaigns", CronTrigger(minute="*"), run_campaigns),
        Periodic("wake_snoozed_conversations", CronTrigger(minute="*"), wake_snoozed_conversations),
        Periodic("refresh_stale_segments", CronTrigger(minute="*"), refresh_stale_segments),
        Periodic("requeue_stalled_jobs", CronTrigger(minute="*/5"), requeue_stalled_jobs, slot_seconds=300),
        Periodic("prune_audit_logs", CronTrigger(hour=3, minute=17), prune_audit_logs),
        Periodic("rebuild_profiles", CronTrigger(hour=2, minute=7), rebuild_profiles),
        Periodic("run_periodic_automations", CronTrigger(minute=5), run_periodic_automations),
    ]


async def run_forever() -> None:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in schedule():
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
