from __future__ import annotations

import strawberry
from strawberry import relay

from domain.errors import DomainError
from domain.jobs import service
from graph.core import ids
from graph.core.connection import Connection, page_request
from graph.core.context import Info
from graph.jobs.types import Job, JobKind


@strawberry.type
class JobQuery:
    @strawberry.field
    async def job(self, info: Info, id: relay.GlobalID) -> Job | None:
        try:
            return Job.from_model(await service.get_job(info.context.principal, ids.decode(id, "Job")))
        except DomainError:
            return None

    @strawberry.field(description="Jobs, newest first.")
    async def jobs(self, info: Info, kind: JobKind | None = None, first: int | None = 20, after: str | None = None,
                   last: int | None = None, before: str | None = None) -> Connection[Job]:
        page = await service.list_jobs(info.context.principal, kind=kind.value if kind else None, page=page_request(info, first, after, last, before))
        return Connection.of(page, Job.from_model)
