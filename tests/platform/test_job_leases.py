"""Job leases: one delivery of a job's message runs it at a time. Two copies delivered at once
run the work once, and the holder's heartbeat keeps its lease past the lease's length; a copy
finding a live lease leaves the job running (not failed) and comes back after the lease; a job
stopped in every attempt fails; once the lease expires (a holder that
stopped renewing) the next copy takes over, and the old holder writes nothing more; a delivery
stopped mid-work releases its lease for the retry; the sweep
sends again the message of a job whose lease expired long ago, and the real worker finishes it.

The copies here run in this process what a job actor runs in the worker for one delivery
(``jobs.job_runner``); the job rows are written without a message, so no worker runs them
meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from conftest import TenantFixture
from domain.actors import load_actors
from domain.jobs import service as jobs
from domain.jobs.models import Job
from domain.platform.db import tenant_session

load_actors()  # the sweep re-sends through the actor of each job's kind
RUNS: dict[uuid.UUID, list[uuid.UUID | None]] = defaultdict(list)  # job id -> the lease token of each run
GATES: dict[uuid.UUID, asyncio.Event] = {}  # job id -> what its first run waits for


async def counted(job: Job, progress: jobs.Progress) -> dict[str, Any]:
    """Counts its runs; three steps of 0.6 s each; the first run of a gated job waits for the gate."""
    RUNS[job.id].append(progress.token)
    gate = GATES.get(job.id)
    if gate is not None and len(RUNS[job.id]) == 1:
        await gate.wait()
        await progress.set_total(1)  # a report: raises LeaseLost when the lease is gone
        return {"run": 1}
    await progress.set_total(3)
    for _ in range(3):
        await asyncio.sleep(0.6)
        await progress.advance()
    return {"run": len(RUNS[job.id])}


RUN = jobs.job_runner("test_lease_counted", counted)  # what a job actor runs, without declaring one


async def deliver(tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """One delivery of the job's message: what the job's actor runs for it in the worker."""
    await RUN(tenant_id, str(job_id))


async def new_job(tenant_id: uuid.UUID, kind: str = "test_lease_counted", **values: Any) -> uuid.UUID:
    job_id = uuid.uuid4()
    async with tenant_session(tenant_id) as s:
        s.add(Job(id=job_id, tenant_id=tenant_id, kind=kind, status="queued", created_by="test", params={}, **values))
    return job_id


async def job_row(tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    async with tenant_session(tenant_id) as s:
        return await s.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.id == job_id))


async def until(check, what: str, within: float = 10) -> Any:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + within
    while not (found := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-second lease renewed every 0.2 s: the work (1.8 s) outlasts the lease several times."""
    monkeypatch.setattr(jobs, "LEASE", timedelta(seconds=1))
    monkeypatch.setattr(jobs, "RENEW_EVERY", 0.2)


async def test_two_copies_at_once_run_the_work_once_and_the_heartbeat_keeps_the_lease(
        tenant: TenantFixture, short_lease: None) -> None:
    job_id = await new_job(tenant.id)
    first = asyncio.gather(deliver(tenant.id, job_id), deliver(tenant.id, job_id))
    await until(lambda: _running(tenant.id, job_id), "the job to run")
    await asyncio.sleep(1.3)  # past the first lease's expiry: only renewals keep it
    late = await _timed(deliver(tenant.id, job_id))
    assert late < 0.5, f"a copy finding a live lease took {late:.2f} s: it did work"
    await asyncio.wait_for(first, 10)

    assert len(RUNS[job_id]) == 1, RUNS[job_id]
    done = await job_row(tenant.id, job_id)
    assert (done.status, done.result, done.progress_done, done.progress_total, done.attempts) == \
        ("succeeded", {"run": 1}, 3, 3, 1), (done.status, done.result, done.attempts)
    assert done.lease_token is None and done.lease_expires_at is None and done.finished_at is not None


async def test_a_live_lease_turns_a_copy_away_and_an_expired_one_is_taken_over(tenant: TenantFixture) -> None:
    job_id = await new_job(tenant.id)
    GATES[job_id] = asyncio.Event()
    holder = asyncio.ensure_future(deliver(tenant.id, job_id))
    held = await until(lambda: _running(tenant.id, job_id), "the first delivery to hold the job")
    assert held.attempts == 1 and held.lease_expires_at is not None

    # a copy while the lease is live: leaves at once, the job running and not failed
    await asyncio.wait_for(deliver(tenant.id, job_id), 5)
    now = await job_row(tenant.id, job_id)
    assert (now.status, now.lease_token, now.attempts, now.error_summary) == ("running", held.lease_token, 1, None)
    assert len(RUNS[job_id]) == 1

    # the holder stops renewing: its lease runs out
    async with tenant_session(tenant.id) as s:
        await s.execute(update(Job).where(Job.tenant_id == tenant.id, Job.id == job_id)
                        .values(lease_expires_at=func.now() - timedelta(seconds=1)))
    await asyncio.wait_for(deliver(tenant.id, job_id), 10)  # the next copy takes over and finishes
    assert len(RUNS[job_id]) == 2 and RUNS[job_id][1] != RUNS[job_id][0]
    done = await job_row(tenant.id, job_id)
    assert (done.status, done.result, done.progress_done, done.progress_total, done.attempts) == \
        ("succeeded", {"run": 2}, 3, 3, 2)

    # the old holder wakes up: its next report finds the lease gone, and it writes nothing more
    GATES[job_id].set()
    await asyncio.wait_for(holder, 5)
    after = await job_row(tenant.id, job_id)
    assert (after.status, after.result, after.progress_done, after.progress_total, after.updated_at) == \
        ("succeeded", {"run": 2}, 3, 3, done.updated_at)


async def test_a_delivery_stopped_mid_work_releases_its_lease_for_the_retry(tenant: TenantFixture) -> None:
    """Dramatiq stops a delivery at its time limit (or the worker shuts down) by cancelling it:
    the job stays running, without a lease, and the retry takes it over at once."""
    job_id = await new_job(tenant.id)
    GATES[job_id] = asyncio.Event()  # never set: the first run works until it is stopped
    stopped = asyncio.ensure_future(deliver(tenant.id, job_id))
    await until(lambda: _running(tenant.id, job_id), "the first delivery to hold the job")
    stopped.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopped
    left = await job_row(tenant.id, job_id)
    assert (left.status, left.lease_token, left.lease_expires_at, left.attempts) == ("running", None, None, 1)

    await asyncio.wait_for(deliver(tenant.id, job_id), 10)
    done = await job_row(tenant.id, job_id)
    assert (done.status, done.result, done.attempts, len(RUNS[job_id])) == ("succeeded", {"run": 2}, 2, 2)


async def test_a_finished_job_is_not_claimed_again(tenant: TenantFixture) -> None:
    job_id = await new_job(tenant.id)
    async with tenant_session(tenant.id) as s:
        await s.execute(update(Job).where(Job.tenant_id == tenant.id, Job.id == job_id)
                        .values(status="failed", error_summary="earlier"))
    assert await jobs.claim(tenant.id, job_id, max_attempts=5) is None
    await deliver(tenant.id, job_id)
    assert RUNS[job_id] == [] and (await job_row(tenant.id, job_id)).status == "failed"


async def test_the_sweep_resends_a_job_whose_lease_expired_long_ago_and_the_worker_finishes_it(
        tenant: TenantFixture, worker) -> None:
    """A rebuild_profiles job left running by a holder that died 20 minutes ago, and one whose
    lease is live: the sweep re-sends the first only; the real worker takes it over."""
    stale = timedelta(minutes=jobs.STALLED_AFTER_MINUTES + 5)
    dead = await new_job(tenant.id, "rebuild_profiles")
    alive = await new_job(tenant.id, "rebuild_profiles")
    async with tenant_session(tenant.id) as s:
        for job_id, expires in ((dead, func.now() - stale), (alive, func.now() + timedelta(minutes=5))):
            await s.execute(update(Job).where(Job.tenant_id == tenant.id, Job.id == job_id).values(
                status="running", lease_token=uuid.uuid4(), lease_expires_at=expires, attempts=1,
                updated_at=func.now() - stale))
    assert await jobs.requeue_stalled(tenant.id) == 1

    async def finished() -> Job | None:
        found = await job_row(tenant.id, dead)
        return found if found.status == "succeeded" else None

    done = await until(finished, "the worker to take the job over", within=20)
    assert done.attempts == 2 and done.lease_token is None and done.result == {"profiles": 0}
    still = await job_row(tenant.id, alive)
    assert (still.status, still.attempts) == ("running", 1)


async def test_a_copy_finding_a_live_lease_comes_back_after_it_and_takes_over_a_dead_holder(
        tenant: TenantFixture, worker) -> None:
    """A delivery that finds the job held (here by a holder that dies without releasing: its lease
    still has 2 s to run) is not acknowledged into nothing: it sends itself again for after the
    lease, and that copy, run by the real worker, takes the job over and finishes it."""
    job_id = await new_job(tenant.id, "rebuild_profiles")
    async with tenant_session(tenant.id) as s:
        await s.execute(update(Job).where(Job.tenant_id == tenant.id, Job.id == job_id).values(
            status="running", lease_token=uuid.uuid4(), lease_expires_at=func.now() + timedelta(seconds=2),
            attempts=1))
    copy = jobs.job_runner("rebuild_profiles", counted)  # this copy's own work would be counted
    await copy(tenant.id, str(job_id))
    assert RUNS[job_id] == [] and (await job_row(tenant.id, job_id)).status == "running"

    async def finished() -> Job | None:
        found = await job_row(tenant.id, job_id)
        return found if found.status == "succeeded" else None

    done = await until(finished, "the copy sent for after the lease to take the job over", within=25)
    assert done.attempts == 2 and done.result == {"profiles": 0} and RUNS[job_id] == []


async def test_a_job_stopped_in_every_attempt_fails_instead_of_running_for_ever(tenant: TenantFixture) -> None:
    """Each delivery stopped before the end (its time limit, its worker killed) leaves the job
    running for a retry or the sweep; after max_retries + 1 + EXTRA_ATTEMPTS claims, the next
    delivery fails it instead of running it again."""
    cap = 3 + 1 + jobs.EXTRA_ATTEMPTS  # job_runner's default max_retries is 3
    job_id = await new_job(tenant.id)
    async with tenant_session(tenant.id) as s:
        await s.execute(update(Job).where(Job.tenant_id == tenant.id, Job.id == job_id).values(
            status="running", lease_token=uuid.uuid4(), lease_expires_at=func.now() - timedelta(seconds=1),
            attempts=cap - 1))
    await asyncio.wait_for(deliver(tenant.id, job_id), 10)  # the last attempt still runs
    assert len(RUNS[job_id]) == 1 and (await job_row(tenant.id, job_id)).status == "succeeded"

    spent = await new_job(tenant.id)
    async with tenant_session(tenant.id) as s:
        await s.execute(update(Job).where(Job.tenant_id == tenant.id, Job.id == spent).values(
            status="running", lease_token=uuid.uuid4(), lease_expires_at=func.now() - timedelta(seconds=1),
            attempts=cap))
    await deliver(tenant.id, spent)
    failed = await job_row(tenant.id, spent)
    assert RUNS[spent] == [] and failed.status == "failed" and failed.lease_token is None
    assert failed.error_summary.startswith(f"stopped before it ended in each of {cap} attempts"), failed.error_summary


async def _running(tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    found = await job_row(tenant_id, job_id)
    return found if found.status == "running" and found.lease_token is not None else None


async def _timed(coro) -> float:  # noqa: ANN001
    started = asyncio.get_running_loop().time()
    await coro
    return asyncio.get_running_loop().time() - started
