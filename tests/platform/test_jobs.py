"""Background work: Dramatiq actors run by a real worker, and the scheduler with its Redis lock."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import ROOT, Process, TenantFixture


async def poll(check: Callable[[], Awaitable[Any]], what: str, within: float = 10, every: float = 0.1) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)


# --- audit log pruning, per tenant --------------------------------------------------------


async def _add_entry(tenant_id: uuid.UUID, age: timedelta) -> uuid.UUID:
    from domain.audit.models import AuditEntry
    from domain.platform.db import tenant_session

    entry_id = uuid.uuid4()
    async with tenant_session(tenant_id) as s:
        s.add(AuditEntry(
            id=entry_id, tenant_id=tenant_id, occurred_at=datetime.now(UTC) - age,
            principal_type="system", principal_id="system", principal_label="test",
            action="test.entry", target_type="Test", summary={},
        ))
    return entry_id


async def _exists(tenant_id: uuid.UUID, entry_id: uuid.UUID) -> bool:
    from sqlalchemy import func, select

    from domain.audit.models import AuditEntry
    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        n = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.id == entry_id))
    return n == 1


async def test_prune_audit_log_removes_only_old_entries_of_its_tenant(
    tenant: TenantFixture, other_tenant: TenantFixture, worker: Process
) -> None:
    from domain.audit.actors import prune_audit_log

    old = await _add_entry(tenant.id, timedelta(days=400))
    recent = await _add_entry(tenant.id, timedelta(days=1))
    others_old = await _add_entry(other_tenant.id, timedelta(days=400))
    assert await _exists(tenant.id, old) and await _exists(other_tenant.id, others_old)

    await asyncio.to_thread(prune_audit_log.send, str(tenant.id))

    async def old_gone() -> bool:
        return not await _exists(tenant.id, old)

    await poll(old_gone, "the worker to prune the old entry")
    assert await _exists(tenant.id, recent), "an entry within the retention period was pruned"
    assert await _exists(other_tenant.id, others_old), "pruning one tenant removed another tenant's entry"
    assert worker.proc.proc.poll() is None, worker.output()


# --- scheduler lock -----------------------------------------------------------------------


async def test_claim_firing_is_won_once_per_slot() -> None:
    from domain.platform.scheduler import claim_firing

    name = f"test-job-{uuid.uuid4().hex[:8]}"
    start = (time.time() // 60) * 60

    results = await asyncio.gather(*(claim_firing(name, 60, now=start + 5) for _ in range(10)))
    assert results.count(True) == 1, results
    assert not await claim_firing(name, 60, now=start + 59), "the same slot was claimed twice"

    results = await asyncio.gather(*(claim_firing(name, 60, now=start + 65) for _ in range(10)))
    assert results.count(True) == 1, f"the next slot: {results}"

    other = f"{name}-other"
    assert await claim_firing(other, 60, now=start + 5), "another job's slot is independent"


async def test_racing_fires_run_the_job_once() -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    from domain.platform.scheduler import Periodic, fire

    runs: list[float] = []

    async def body() -> None:
        runs.append(time.time())
        await asyncio.sleep(0.05)

    job = Periodic(f"test-fire-{uuid.uuid4().hex[:8]}", IntervalTrigger(hours=1), body, slot_seconds=60)
    if time.time() % 60 > 58:  # keep both calls inside one slot
        await asyncio.sleep(2.5)
    results = await asyncio.gather(fire(job), fire(job))
    assert sorted(results) == [False, True], results
    assert len(runs) == 1, runs


# --- the scheduler process ----------------------------------------------------------------


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


async def test_scheduler_process_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(  # noqa: ASYNC220 (starting it takes no time)
            [sys.executable, "-m", "brandgraph", "scheduler"],
            env={**os.environ, "LOG_LEVEL": "INFO"}, cwd=ROOT, stdout=out, stderr=err, start_new_session=True,
        )
    try:
        async def started() -> bool:
            assert proc.poll() is None, f"scheduler exited early:\n{stderr.read_text(errors='replace')}"
            return any(e.get("msg") == "scheduler started" for e in _json_lines(stderr))

        await poll(started, "'scheduler started' in the JSON logs on stderr", within=15)
        entry = next(e for e in _json_lines(stderr) if e.get("msg") == "scheduler started")
        assert entry["level"] == "info" and "prune_audit_logs" in entry.get("jobs", []), entry

        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the scheduler did not stop within 10 s of SIGTERM") from None
        assert code == 0, f"exit code {code}:\n{stderr.read_text(errors='replace')}"
        assert time.monotonic() - began < 10
        assert any(e.get("msg") == "scheduler stopped" for e in _json_lines(stderr)), stderr.read_text()
        assert "Traceback" not in stderr.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
