"""The one Job mechanism behind every import, export, rebuild and refresh.

A job row is written in the same transaction as the request that asks for it, and so is its
Dramatiq message (an outbox row, relayed to Redis once committed: never lost while Redis is
away). The worker moves it queued → running → succeeded | failed,
reports progress (published live on the tenant's ``job:<id>`` topic), and may attach a result
file. Job work must be idempotent: Dramatiq retries a job whose worker died.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import dramatiq
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, NotFound
from domain.jobs.models import Job, JobFile
from domain.pagination import Page, decode_cursor, encode_cursor
from domain.platform import outbox
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

log = logging.getLogger(__name__)


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def topic(job_id: uuid.UUID) -> str:
    return f"job:{job_id}"


async def create(
    session: AsyncSession,
    principal: Principal | None,
    kind: str,
    actor: dramatiq.Actor,
    *,
    brand_id: uuid.UUID | None = None,
    params: dict[str, Any] | None = None,
    input_file: tuple[str, str, bytes] | None = None,
    tenant_id: uuid.UUID | None = None,
) -> Job:
    """Add a job (and its input file) and its message to the session.
    ``principal`` None is the system (the scheduler) acting for ``tenant_id``."""
    job = Job(
        id=uuid.uuid4(), tenant_id=principal.tenant_id if principal else tenant_id, kind=kind,
        status=JobStatus.QUEUED.value, brand_id=brand_id,
        created_by=principal.label if principal else "scheduler", created_by_id=principal_ref(principal),
        params=params or {},
    )
    session.add(job)
    await session.flush()
    if input_file is not None:
        filename, content_type, content = input_file
        session.add(JobFile(tenant_id=job.tenant_id, job_id=job.id, role="input", filename=filename,
                            content_type=content_type, content=content))
    outbox.send(session, actor, job.tenant_id, str(job.id))
    return job


async def get_job(principal: Principal, job_id: uuid.UUID) -> Job:
    authorize(principal, Action.JOB_READ)
    async with tenant_session(principal.tenant_id) as s:
        job = await s.scalar(select(Job).where(Job.tenant_id == principal.tenant_id, Job.id == job_id))
    if job is None or not visible(principal, job):
        raise NotFound("job not found", field="id")
    return job


def visible(principal: Principal, job: Job) -> bool:
    """A brand-limited principal sees its brands' jobs and the brand-less jobs it started (an
    export of a customer, say), never tenant-wide work about brands it cannot see."""
    if scoping.sees_every_brand(principal):
        return True
    if job.brand_id is not None:
        return scoping.may_use_brand(principal, job.brand_id)
    return job.created_by_id == principal_ref(principal)


def principal_ref(principal: Principal | None) -> str | None:
    return f"{principal.kind.value}:{principal.id}" if principal is not None else None


async def list_jobs(principal: Principal, *, kind: str | None, first: int, after: str | None) -> Page[Job]:
    authorize(principal, Action.JOB_READ)
    conditions = [Job.tenant_id == principal.tenant_id]
    if kind:
        conditions.append(Job.kind == kind)
    if not scoping.sees_every_brand(principal):
        conditions.append(or_(*scoping.brand_filter(principal, Job.brand_id),
                              and_(Job.brand_id.is_(None), Job.created_by_id == principal_ref(principal))))
    if after:
        at, last = decode_cursor(after, datetime, uuid.UUID)
        conditions.append(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < last)))
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(
            select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id.desc()).limit(first + 1)
        )).all())
    return Page.of(rows, first, lambda j: encode_cursor(j.created_at, j.id))


async def result_file(tenant_id: uuid.UUID, job_id: uuid.UUID) -> JobFile | None:
    async with tenant_session(tenant_id) as s:
        return await s.scalar(select(JobFile).where(
            JobFile.tenant_id == tenant_id, JobFile.job_id == job_id, JobFile.role == "result"))


class Progress:
    """Progress reporting for a running job: stored and published at most ~4 times a second."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.done = 0  # a retried job runs again from the start (bodies are idempotent)
        self.total = job.progress_total
        self._last = 0.0

    async def set_total(self, total: int) -> None:
        self.total = total
        await self._save(force=True)

    async def advance(self, n: int = 1) -> None:
        self.done += n
        await self._save()

    async def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.25 and (self.total is None or self.done < self.total):
            return
        self._last = now
        async with tenant_session(self.job.tenant_id) as s:
            await s.execute(update(Job).where(Job.tenant_id == self.job.tenant_id, Job.id == self.job.id)
                            .values(progress_done=self.done, progress_total=self.total))
            publish(s, self.job.tenant_id, self.job.id)


def publish(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Announce the job's new state on its topic, with the transaction that changed it."""
    outbox.publish(session, tenant_id, topic(job_id), {"id": str(job_id)})


async def _transition(job: Job, **values: Any) -> None:
    async with tenant_session(job.tenant_id) as s:
        await s.execute(update(Job).where(Job.tenant_id == job.tenant_id, Job.id == job.id).values(**values))
        publish(s, job.tenant_id, job.id)


def error_summary(exc: BaseException) -> str:
    """What a client may read about a failure: a domain error's message; for anything else only
    the kind of failure (database errors carry SQL and values, which stay in the logs)."""
    if isinstance(exc, DomainError):
        return exc.message[:500]
    return f"internal error ({type(exc).__name__}); the logs carry the details under the job id"


JobBody = Callable[[Job, Progress], Awaitable[dict[str, Any] | None]]
ACTORS: dict[str, dramatiq.Actor] = {}  # job kind -> the actor that runs it
STALLED_AFTER_MINUTES = 15


async def requeue_stalled(tenant_id: uuid.UUID) -> int:
    """Send again the message of jobs still queued long after creation. The outbox loses no
    message while Redis is away, so this is a backstop for a Redis that lost its data (a crash
    within the last second it had not yet persisted, or no persistence) or a message
    dead-lettered by Dramatiq. Job bodies are idempotent, so a late duplicate is harmless.
    Returns how many were sent."""
    async with tenant_session(tenant_id) as s:
        stalled = list((await s.scalars(
            update(Job)
            .where(Job.tenant_id == tenant_id, Job.status == JobStatus.QUEUED.value,
                   Job.updated_at < func.now() - timedelta(minutes=STALLED_AFTER_MINUTES))
            .values(updated_at=func.now())
            .returning(Job)
        )).all())
        for job in stalled:
            actor = ACTORS.get(job.kind)
            if actor is not None:
                outbox.send(s, actor, job.tenant_id, str(job.id))
    return len(stalled)


def job_actor(kind: str, *, queue_name: str = "jobs", time_limit: int = 3_600_000, max_retries: int = 3):
    """Declare the Dramatiq actor that runs jobs of ``kind``. The body gets the job and a
    Progress; what it returns becomes ``job.result``. An exception fails the job once Dramatiq
    has no retries left; until then the job stays running and is retried."""

    def decorator(body: JobBody) -> dramatiq.Actor:
        async def run(tenant_id: uuid.UUID, job_id: str) -> None:
            async with tenant_session(tenant_id) as s:
                job = await s.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.id == uuid.UUID(job_id)))
            if job is None or job.status in (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value):
                return  # unknown, or a redelivery of finished work
            await _transition(job, status=JobStatus.RUNNING.value,
                              started_at=job.started_at or datetime.now(UTC))
            progress = Progress(job)
            try:
                result = await body(job, progress)
            except Exception as exc:
                message = dramatiq.middleware.CurrentMessage.get_current_message()
                retries = (message.options.get("retries", 0) if message else 0)
                if retries >= max_retries:
                    log.exception("job failed", extra={"job_id": job_id, "kind": kind})
                    await _transition(job, status=JobStatus.FAILED.value, finished_at=datetime.now(UTC),
                                      error_summary=error_summary(exc))
                    return
                raise
            await _transition(job, status=JobStatus.SUCCEEDED.value, finished_at=datetime.now(UTC),
                              progress_done=progress.done, progress_total=progress.total or progress.done,
                              result=result or {})

        run.__name__ = body.__name__
        run.__module__ = body.__module__
        run.__qualname__ = body.__qualname__
        actor = tenant_actor(queue_name=queue_name, time_limit=time_limit, max_retries=max_retries,
                             min_backoff=2_000, max_backoff=60_000)(run)
        ACTORS[kind] = actor
        return actor

    return decorator
