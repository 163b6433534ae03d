from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay

from domain.jobs import service
from graph.core import ids
from graph.core.context import Info
from graph.jobs.types import Job


@strawberry.type
class JobSubscription:
    @strawberry.subscription(description="The job now, then after each change, until it finishes.")
    async def job_progress(self, info: Info, id: relay.GlobalID) -> AsyncGenerator[Job, None]:
        principal = info.context.principal
        job_id = ids.decode(id, "Job")
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, service.topic(job_id)) as queue:
            job = await service.get_job(principal, job_id)  # after subscribing: no change is missed
            yield Job.from_model(job)
            while job.status not in (service.JobStatus.SUCCEEDED.value, service.JobStatus.FAILED.value):
                await queue.get()
                while not queue.empty():  # coalesce bursts into one frame
                    queue.get_nowait()
                await info.context.recheck()
                principal = info.context.principal
                job = await service.get_job(principal, job_id)
                info.context.fresh_loaders()
                yield Job.from_model(job)
