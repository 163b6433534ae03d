"""A run's bookkeeping: failing the executions still pending, and bringing the run's counts
and status in line with its executions."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.automations.models import AutomationExecution, AutomationRun, ExecutionStatus, RunStatus

ERROR_CHARS = 500


async def fail_pending(s: AsyncSession, tenant_id: uuid.UUID, automation_id: uuid.UUID, run_id: uuid.UUID,
                        error: str) -> None:
    e = AutomationExecution
    stmt = update(e).where(e.tenant_id == tenant_id, e.automation_id == automation_id, e.run_id == run_id,
                           e.status == ExecutionStatus.PENDING.value)
    await s.execute(stmt.values(status=ExecutionStatus.FAILED.value, error=error[:ERROR_CHARS], updated_at=func.now()))


async def finish(s: AsyncSession, tenant_id: uuid.UUID, automation_id: uuid.UUID, run_id: uuid.UUID) -> int:
    """Bring the run's counts and status in line with its executions; returns how many are
    still pending."""
    e = AutomationExecution
    row = (await s.execute(select(
        func.count(), func.count().filter(e.status == ExecutionStatus.SUCCEEDED.value),
        func.count().filter(e.status == ExecutionStatus.FAILED.value),
        func.count().filter(e.status == ExecutionStatus.PENDING.value),
    ).where(e.tenant_id == tenant_id, e.automation_id == automation_id, e.run_id == run_id))).one()
    total, ok, failed, pending = row
    if pending:
        status = RunStatus.RUNNING
    elif failed == 0:
        status = RunStatus.SUCCEEDED
    elif ok == 0:
        status = RunStatus.FAILED
    else:
        status = RunStatus.PARTIAL
    await s.execute(update(AutomationRun).where(AutomationRun.tenant_id == tenant_id, AutomationRun.id == run_id).values(
        customers=total, succeeded=ok, failed=failed, status=status.value,
        finished_at=None if pending else func.now()))
    return pending
