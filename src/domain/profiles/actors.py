"""rebuildProfiles: recompute every profile of a tenant, in batches of customers."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from domain.audit import service as audit
from domain.customers.models import Customer
from domain.jobs import service as jobs
from domain.jobs.models import Job
from domain.platform.db import tenant_session
from domain.profiles import service as profiles
from domain.segments.changes import segments_changed_everywhere
from domain.tenancy.policies import Action, Principal, authorize

BATCH = 5_000


@jobs.job_actor("rebuild_profiles", time_limit=6 * 3_600_000)
async def rebuild_profiles(job: Job, progress: jobs.Progress) -> dict:
    async with tenant_session(job.tenant_id) as s:
        total = await s.scalar(select(func.count()).select_from(Customer).where(Customer.tenant_id == job.tenant_id))
    await progress.set_total(total or 0)
    last: uuid.UUID | None = None
    written = 0
    while True:  # keyset over customer ids; each batch is its own short transaction
        async with tenant_session(job.tenant_id) as s:
            stmt = select(Customer.id).where(Customer.tenant_id == job.tenant_id).order_by(Customer.id).limit(BATCH)
            if last is not None:
                stmt = stmt.where(Customer.id > last)
            ids = list((await s.scalars(stmt)).all())
            if not ids:
                break
            written += await profiles.refresh(s, job.tenant_id, ids)
        last = ids[-1]
        await progress.advance(len(ids))
    await segments_changed_everywhere(job.tenant_id)  # scores moved: rules on them may answer otherwise
    return {"profiles": written}


async def start_scheduled_rebuild(tenant_id: uuid.UUID) -> Job:
    """The nightly rebuild: recency and the 30/365-day windows move every day."""
    async with tenant_session(tenant_id) as s:
        return await jobs.create(s, None, "rebuild_profiles", rebuild_profiles, tenant_id=tenant_id)


async def start_rebuild(principal: Principal) -> Job:
    authorize(principal, Action.PROFILE_REBUILD)
    async with tenant_session(principal.tenant_id) as s:
        job = await jobs.create(s, principal, "rebuild_profiles", rebuild_profiles)
        audit.record(s, principal, "profiles.rebuild", "Job", job.id)
    return job
