from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.file_uploads import Upload
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.exports.timeline import result_url
from domain.jobs import service as jobs
from domain.jobs.models import Job as JobModel
from domain.tenancy.policies import Principal
from graph.core import inputs
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.nodes import node_resolver
from graph.core.uploads import read_upload
from graph.tenancy.types import Brand, brand_of

JobStatus = strawberry.enum(jobs.JobStatus, name="JobStatus")
JobKind = strawberry.enum(jobs.JobKind, name="JobKind", description="What a job does.")


@strawberry.type
class JobProgress:
    done: int
    total: int | None

    @strawberry.field(description="0 to 100, null while the total is unknown.")
    def percent(self) -> float | None:
        if not self.total:
            return None
        return round(100 * min(self.done, self.total) / self.total, 1)


async def _jobs_by_id(info: Info, job_ids: list[uuid.UUID]) -> dict:
    return await jobs.jobs_by_ids(info.context.principal, job_ids)


@strawberry.type(description="Long work: an import, export, rebuild or refresh. Poll it or follow jobProgress.")
class Job(relay.Node):
    id: relay.NodeID[str]
    kind: JobKind
    status: JobStatus
    created_by: str | None
    progress: JobProgress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_summary: str | None
    result: JSON
    result_path: strawberry.Private[str | None]
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @strawberry.field(description="A signed link to the job's file (exports), valid for an hour.")
    def result_url(self, info: Info) -> str | None:
        if self.result_path is None:
            return None
        request = info.context.request
        return str(request.base_url).rstrip("/") + self.result_path

    @classmethod
    def from_model(cls, j: JobModel) -> Job:
        return cls(id=str(j.id), kind=jobs.JobKind(j.kind), status=jobs.JobStatus(j.status), created_by=j.created_by,
                   progress=JobProgress(done=j.progress_done, total=j.progress_total), created_at=j.created_at,
                   started_at=j.started_at, finished_at=j.finished_at, error_summary=j.error_summary,
                   result=j.result or {}, result_path=result_url(j), brand_id=j.brand_id)

    resolve_nodes = node_resolver(_jobs_by_id)


@strawberry.type
class JobPayload:
    job: Job | None = None
    errors: list[UserError]


def job_result(job: JobModel) -> dict:
    """The JobPayload fields of a job a mutation started."""
    return {"job": Job.from_model(job)}


async def upload_job(
    info: Info, brand_id: GlobalID | None, file: Upload,
    start: Callable[[Principal, uuid.UUID, str, str, bytes], Awaitable[JobModel]],
) -> JobPayload:
    """The JobPayload of the job ``start(principal, brand_id, name, content_type, content)``
    starts for an uploaded file (an import)."""

    async def run() -> JobModel:
        name, content_type, content = await read_upload(file)
        return await start(info.context.principal, inputs.brand(info, brand_id), name, content_type, content)

    return await payload(JobPayload, run, job_result)
