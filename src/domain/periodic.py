"""Every periodic job of the product: what the scheduler (:mod:`domain.platform.scheduler`)
fires, and when. Each job only enqueues work or makes a quick set-based pass per tenant."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

from domain.actors import load_actors
from domain.audit.actors import prune_audit_log
from domain.automations.running import run_periodic_automations as run_periodic_automations_job
from domain.automations.webhooks import requeue_stalled_runs
from domain.campaigns.sending import dispatch_due
from domain.campaigns.service import launch_due
from domain.conversations.sending import requeue_stalled_messages
from domain.conversations.service import wake_snoozed
from domain.jobs.service import requeue_stalled
from domain.offers.stored import nightly as generate_recommendations_nightly
from domain.platform.broker import enqueue
from domain.platform.scheduler import Periodic
from domain.profiles.actors import start_scheduled_rebuild
from domain.segments.live import requeue_pending, sweep_time_rules
from domain.segments.refresh import refresh_stale
from domain.tenancy.tenants import all_tenant_ids


def schedule() -> list[Periodic]:
    """Every periodic job of the product."""
    load_actors()  # requeueing needs every job kind's actor

    async def prune_audit_logs() -> None:
        for tenant_id in await all_tenant_ids():
            await enqueue(prune_audit_log, tenant_id)

    async def rebuild_profiles() -> None:
        for tenant_id in await all_tenant_ids():
            await start_scheduled_rebuild(tenant_id)

    async def generate_recommendations() -> None:
        for tenant_id in await all_tenant_ids():
            await generate_recommendations_nightly(tenant_id)

    async def refresh_stale_segments() -> None:
        for tenant_id in await all_tenant_ids():
            await refresh_stale(tenant_id)
            await requeue_pending(tenant_id)

    async def sweep_segment_time_rules() -> None:
        for tenant_id in await all_tenant_ids():
            await enqueue(sweep_time_rules, tenant_id)

    async def requeue_stalled_jobs() -> None:
        for tenant_id in await all_tenant_ids():
            await requeue_stalled(tenant_id)
            await requeue_stalled_runs(tenant_id)
            await requeue_stalled_messages(tenant_id)

    async def run_periodic_automations() -> None:
        for tenant_id in await all_tenant_ids():
            await enqueue(run_periodic_automations_job, tenant_id)

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
        Periodic("sweep_segment_time_rules", CronTrigger(minute="*"), sweep_segment_time_rules),
        Periodic("requeue_stalled_jobs", CronTrigger(minute="*/5"), requeue_stalled_jobs, slot_seconds=300),
        Periodic("prune_audit_logs", CronTrigger(hour=3, minute=17), prune_audit_logs),
        Periodic("rebuild_profiles", CronTrigger(hour=2, minute=7), rebuild_profiles),
        # after the profiles' rebuild (preferences current)
        Periodic("generate_recommendations", CronTrigger(hour=3, minute=37), generate_recommendations),
        Periodic("run_periodic_automations", CronTrigger(minute=5), run_periodic_automations),
    ]
