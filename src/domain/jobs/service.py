"""The one Job mechanism behind every import, export, rebuild and refresh.

A job row is written in the same transaction as the request that asks for it, and so is its
Dramatiq message (an outbox row, relayed to Redis once committed: never lost while Redis is
away). The worker moves it queued → running → succeeded | failed,
reports progress (published live on the tenant's ``job:<id>`` topic), and may attach a result
file. Job work must be idempotent: Dramatiq retries a job whose worker died.

One delivery of the message runs the job at a time, under a lease: :func:`claim` moves the row
to running with a token of its own and an expiry (one statement: the job is queued, or running
with an expired lease), a heartbeat renews the expiry while the body works, and finishing
releases it. Another copy of the message (a re-send while the queue was merely backlogged, a
redelivery) that finds a live lease leaves without doing the work and without failing the job:
if the holder dies, its lease expires and the next delivery (Dramatiq's redelivery of the dead
worker's message, its retry, or :func:`requeue_stalled`) takes the job over. A holder whose lease
passed to another delivery stops at its next progress report or renewal and writes nothing
more; every write of a running job names the lease's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import dramatiq
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import DomainError, NotFound
from domain.jobs.models import Job, JobFile
from domain.pagination import Page, PageRequest, encode_cursor
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


class JobKind(str, Enum):
    """What a job does; the values are the kinds jobs are stored and their actors declared under."""
    IMPORT_CUSTOMERS = "import_customers"
    IMPORT_ORDERS = "import_orders"
    IMPORT_SEGMENT_MEMBERS = "import_segment_members"
    EXPORT_TIMELINE = "export_timeline"
    REBUILD_PROFILES = "rebuild_profiles"
    REFRESH_SEGMENT = "refresh_segment"
    CANVA_DESIGN = "canva_design"
    GENERATE_RECOMMENDATIONS = "generate_recommendations"


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


async def jobs_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """For node lookups: the jobs the principal sees, one query."""
    authorize(principal, Action.JOB_READ)
    async with tenant_session(principal.tenant_id) as s:
        found = await s.scalars(select(Job).where(Job.tenant_id == principal.tenant_id, Job.id.in_(set(ids))))
        return {j.id: j for j in found if visible(principal, j)}


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


async def list_jobs(principal: Principal, *, kind: str | None, page: PageRequest) -> Page[Job]:
    authorize(principal, Action.JOB_READ)
    conditions = [Job.tenant_id == principal.tenant_id]
    if kind:
        conditions.append(Job.kind == kind)
    if not scoping.sees_every_brand(principal):
        conditions.append(or_(*scoping.brand_filter(principal, Job.brand_id),
                              and_(Job.brand_id.is_(None), Job.created_by_id == principal_ref(principal))))
    after, order = page.keyset([(Job.created_at, True), (Job.id, True)], datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(
            select(Job).where(*conditions, *after).order_by(*order).limit(page.size + 1)
        )).all())
    return page.page(rows, lambda j: encode_cursor(j.created_at, j.id))


async def result_file(tenant_id: uuid.UUID, job_id: uuid.UUID) -> JobFile | None:
    async with tenant_session(tenant_id) as s:
        return await s.scalar(select(JobFile).where(
            JobFile.tenant_id == tenant_id, JobFile.job_id == job_id, JobFile.role == "result"))


class LeaseLost(Exception):
    """The job's lease passed to another delivery of its message (this one stopped renewing in
    time): this delivery stops and writes nothing more."""


class Progress:
    """Progress reporting for a running job: stored and published at most ~4 times a second.
    With the lease's ``token``, a report finding the lease gone raises :class:`LeaseLost`."""

    def __init__(self, job: Job, token: uuid.UUID | None = None) -> None:
        self.job = job
        self.token = token
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
        held = [Job.lease_token == self.token] if self.token is not None else []
        async with tenant_session(self.job.tenant_id) as s:
            saved = await s.scalar(update(Job).where(Job.tenant_id == self.job.tenant_id, Job.id == self.job.id, *held)
                                   .values(progress_done=self.done, progress_total=self.total).returning(Job.id))
            if saved is None:
                raise LeaseLost(str(self.job.id))
            publish(s, self.job.tenant_id, self.job.id)


def publish(session: AsyncSession, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Announce the job's new state on its topic, with the transaction that changed it."""
    outbox.publish(session, tenant_id, topic(job_id), {"id": str(job_id)})


LEASE = timedelta(seconds=60)  # how long a claim holds without being renewed
RENEW_EVERY = 20.0  # seconds between renewals: two may fail (a slow database) before it expires


@dataclass(frozen=True)
class Held:
    """The job runs under another delivery's live lease, until ``seconds_left`` from now."""

    seconds_left: float


async def claim(tenant_id: uuid.UUID, job_id: uuid.UUID, *,
                max_attempts: int) -> tuple[Job, uuid.UUID] | Held | None:
    """Take the job for this delivery: queued → running, or running with an expired (or no)
    lease → running under a new one; one conditional statement, so two deliveries at once cannot
    both win. Returns the job and the lease's token; :class:`Held` while another delivery's lease
    is live; None when the job is unknown or finished. A job claimed ``max_attempts`` times
    already (each delivery stopped by its time limit or its worker's death) is failed instead."""
    token = uuid.uuid4()
    async with tenant_session(tenant_id) as s:
        job = await s.scalar(update(Job).where(
            Job.tenant_id == tenant_id, Job.id == job_id, Job.attempts < max_attempts,
            or_(Job.status == JobStatus.QUEUED.value,
                and_(Job.status == JobStatus.RUNNING.value,
                     or_(Job.lease_expires_at.is_(None), Job.lease_expires_at <= func.now()))),
        ).values(status=JobStatus.RUNNING.value, lease_token=token, lease_expires_at=func.now() + LEASE,
                 attempts=Job.attempts + 1, started_at=func.coalesce(Job.started_at, func.now()))
            .returning(Job).execution_options(synchronize_session=False))
        if job is not None:
            publish(s, tenant_id, job_id)
            return job, token
        row = (await s.execute(select(Job.status, Job.attempts, func.extract(
            "epoch", Job.lease_expires_at - func.now())).where(Job.tenant_id == tenant_id, Job.id == job_id))).first()
        if row is None or row.status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
            return None
        status, attempts, left = row
        if attempts < max_attempts:  # held, or its lease expired just now: look again after it
            return Held(max(float(left or 0), 0.0))
        # claimable but for its attempts: every delivery so far was stopped before it ended
        gave_up = await s.scalar(update(Job).where(
            Job.tenant_id == tenant_id, Job.id == job_id, Job.status == status, Job.attempts >= max_attempts,
            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at <= func.now()),
        ).values(status=JobStatus.FAILED.value, finished_at=func.now(), lease_token=None, lease_expires_at=None,
                 error_summary=f"stopped before it ended in each of {attempts} attempts (its time limit, "
                               "or its worker lost)").returning(Job.id))
        if gave_up is not None:
            log.error("job failed: every attempt was stopped", extra={"job_id": str(job_id), "attempts": attempts})
            publish(s, tenant_id, job_id)
    return None


async def renew(job: Job, token: uuid.UUID) -> bool:
    """Push the lease's expiry on; False when the lease is no longer this delivery's."""
    async with tenant_session(job.tenant_id) as s:
        return await s.scalar(update(Job).where(
            Job.tenant_id == job.tenant_id, Job.id == job.id, Job.lease_token == token,
            Job.status == JobStatus.RUNNING.value,
        ).values(lease_expires_at=func.now() + LEASE).returning(Job.id)) is not None


async def _heartbeat(job: Job, token: uuid.UUID, work: asyncio.Future) -> bool:
    """Renew the lease every :data:`RENEW_EVERY` seconds while ``work`` runs; cancel it and
    return True when the lease has passed to another delivery. A renewal that fails (the
    database away) is retried at the next beat; the lease may then expire, and the next progress
    report or renewal finds out."""
    while True:
        await asyncio.sleep(RENEW_EVERY)
        try:
            held = await renew(job, token)
        except Exception:
            log.warning("job lease not renewed", exc_info=True, extra={"job_id": str(job.id)})
            continue
        if not held:
            log.warning("job lease lost to another delivery", extra={"job_id": str(job.id)})
            work.cancel()
            return True


async def _transition(job: Job, token: uuid.UUID, *, announce: bool = True, **values: Any) -> bool:
    """Write the job's new state and release the lease, if this delivery still holds it."""
    async with tenant_session(job.tenant_id) as s:
        done = await s.scalar(update(Job).where(Job.tenant_id == job.tenant_id, Job.id == job.id,
                                                Job.lease_token == token)
                              .values(lease_token=None, lease_expires_at=None, **values).returning(Job.id))
        if done is not None and announce:
            publish(s, job.tenant_id, job.id)
    if done is None:
        log.warning("job lease lost before the job's end was written", extra={"job_id": str(job.id)})
    return done is not None


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
    """Send again the message of jobs still queued long after their last change, and of running
    jobs whose lease expired that long ago (the holder died and no redelivery came). The outbox
    loses no message while Redis is away, so this is a backstop for a Redis that lost its data (a
    crash within the last second it had not yet persisted, or no persistence) or a message
    dead-lettered by Dramatiq. A copy that finds the job held or finished leaves it, so a late
    duplicate is harmless. Returns how many were sent."""
    stalled_since = func.now() - timedelta(minutes=STALLED_AFTER_MINUTES)
    async with tenant_session(tenant_id) as s:
        stalled = list((await s.scalars(
            update(Job)
            .where(Job.tenant_id == tenant_id, Job.updated_at < stalled_since,
                   or_(Job.status == JobStatus.QUEUED.value,
                       and_(Job.status == JobStatus.RUNNING.value,
                            or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < stalled_since))))
            .values(updated_at=func.now())
            .returning(Job)
        )).all())
        for job in stalled:
            actor = ACTORS.get(job.kind)
            if actor is not None:
                outbox.send(s, actor, job.tenant_id, str(job.id))
    return len(stalled)


EXTRA_ATTEMPTS = 2  # claims beyond the retries: takeovers after a worker died, or after a redelivery


async def _again_later(tenant_id: uuid.UUID, kind: str, job_id: str, seconds: float) -> None:
    """A copy of the job's message, delivered once a lease that is live now has expired."""
    actor = ACTORS.get(kind)
    if actor is None:
        return
    async with tenant_session(tenant_id) as s:
        outbox.send(s, actor, tenant_id, job_id, delay_ms=int((seconds + 1) * 1000))
    log.info("job held by another delivery: looking again after its lease", extra={"job_id": job_id, "kind": kind})


def job_runner(kind: str, body: JobBody, *, max_retries: int = 3) -> Callable[[uuid.UUID, str], Awaitable[None]]:
    """What one delivery of a job's message does: claim the job under a lease (or leave, when it
    is finished or held), run ``body`` with a heartbeat renewing the lease, then record the end
    and release the lease. The body gets the job and a Progress; what it returns becomes
    ``job.result``. An exception fails the job once Dramatiq has no retries left (``max_retries``);
    until then the job stays running, its lease released for the retry."""

    async def run(tenant_id: uuid.UUID, job_id: str) -> None:
        claimed = await claim(tenant_id, uuid.UUID(job_id), max_attempts=max_retries + 1 + EXTRA_ATTEMPTS)
        if claimed is None:
            log.info("job not claimed: unknown or finished", extra={"job_id": job_id, "kind": kind})
            return
        if isinstance(claimed, Held):
            # another delivery holds it: come back when its lease would have expired. If that
            # delivery finishes, this copy then leaves; if it died (or failed to release its
            # lease, its final write lost), this copy takes over. Never acknowledged into nothing.
            await _again_later(tenant_id, kind, job_id, claimed.seconds_left)
            return
        job, token = claimed
        progress = Progress(job, token)
        work = asyncio.ensure_future(body(job, progress))
        heartbeat = asyncio.ensure_future(_heartbeat(job, token, work))
        try:
            result = await work
        except LeaseLost:  # a progress report found the lease gone
            return
        except asyncio.CancelledError:
            if heartbeat.done() and not heartbeat.cancelled() and heartbeat.result():
                return  # the heartbeat found the lease gone and stopped the work
            # this delivery itself is being stopped (its time limit, the worker shutting down):
            # release the lease, so that Dramatiq's retry or redelivery need not wait for it;
            # the claim fails the job once it has been stopped max_attempts times
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(_transition(job, token, announce=False))
            raise
        except Exception as exc:
            message = dramatiq.middleware.CurrentMessage.get_current_message()
            retries = (message.options.get("retries", 0) if message else 0)
            if retries >= max_retries:
                log.exception("job failed", extra={"job_id": job_id, "kind": kind})
                await _transition(job, token, status=JobStatus.FAILED.value, finished_at=datetime.now(UTC),
                                  error_summary=error_summary(exc))
                return
            # still running: release the lease so that Dramatiq's retry claims the job at once
            # (if this fails too, the retry finds the lease live and comes back once it expired)
            with contextlib.suppress(Exception):
                await _transition(job, token, announce=False)
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await _transition(job, token, status=JobStatus.SUCCEEDED.value, finished_at=datetime.now(UTC),
                          progress_done=progress.done, progress_total=progress.total or progress.done,
                          result=result or {})

    return run


def job_actor(kind: str, *, queue_name: str = "jobs", time_limit: int = 3_600_000, max_retries: int = 3):
    """Declare the Dramatiq actor that runs jobs of ``kind`` (:func:`job_runner`); ``kind`` is one of
    :class:`JobKind`, which the API exposes."""
    JobKind(kind)  # a new kind of job is added to JobKind first

    def decorator(body: JobBody) -> dramatiq.Actor:
        run = job_runner(kind, body, max_retries=max_retries)
        run.__name__ = body.__name__
        run.__module__ = body.__module__
        run.__qualname__ = body.__qualname__
        actor = tenant_actor(queue_name=queue_name, time_limit=time_limit, max_retries=max_retries,
                             min_backoff=2_000, max_backoff=60_000)(run)
        ACTORS[kind] = actor
        return actor

    return decorator
