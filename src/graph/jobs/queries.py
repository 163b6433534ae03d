from __future__ import annotations

import strawberry
from strawberry import relay

from domain.errors import DomainError
from domain.jobs import service
from domain.pagination import clamp_first
from graph.core import ids
from graph.core.connection import Connection
from graph.core.context import Info
from graph.jobs.types import Job


@strawberry.type
class JobQuery:
    @strawberry.field
    async def job(self, info: Info, id: relay.GlobalID) -> Job | None:
        try:
            return Job.from_model(await service.get_job(info.context.principal, ids.decode(id, "Job")))
        except DomainError:
            return None

    @strawberry.field(description="Jobs, newest first.")
    async def jobs(self, info: Info, kind: str | None = None, first: int = 20, after: str | None = None) -> Connection[Job]:
        page = await service.list_jobs(info.context.principal, kind=kind, first=clamp_first(first), after=after)
        return Connection.of(page, Job.from_model)
