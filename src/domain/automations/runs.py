"""A run's bookkeeping: failing the executions still pending, and bringing the run's counts
and status in line with its executions."""

from __future__ import annotations

import uuid

from sqlalchemy import case, func, literal, select, update
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


# --- MESSAGE runs: the log follows the messages ------------------------------------------------

MESSAGE_MAX_ATTEMPTS = 5  # provider calls that failed for a while: then the run's messages give up


async def settle_messages(s: AsyncSession, tenant_id: uuid.UUID, automation_id: uuid.UUID, run_id: uuid.UUID,
                          reason: str | None = None) -> int:
    """Bring a MESSAGE run's executions in line with its messages (the recipients of the run's
    campaign, whose id is the run's): sent or delivered → succeeded; failed, cancelled or excluded →
    failed with the provider's error, ``reason`` or the exclusion; still queued → pending. Each
    execution's attempts are its message's provider calls. Returns how many are still pending."""
    from domain.campaigns.models import Recipient  # noqa: PLC0415  (campaigns call this module)

    e, r = AutomationExecution, Recipient
    outcome = case((r.status.in_(("sent", "delivered", "bounced")), literal(ExecutionStatus.SUCCEEDED.value)),
                   (r.status.in_(("queued", "sending")), literal(ExecutionStatus.PENDING.value)),
                   else_=literal(ExecutionStatus.FAILED.value))
    error = case((r.status == "excluded", literal("not sent: ") + func.coalesce(r.exclusion_reason, "")),
                 (r.status.in_(("failed", "cancelled")),
                  literal("not sent: ") + func.coalesce(r.error, literal(reason or "the message was cancelled"))),
                 (r.status.in_(("queued", "sending")), e.error),
                 else_=None)
    await s.execute(update(e).where(
        e.tenant_id == tenant_id, e.automation_id == automation_id, e.run_id == run_id,
        e.status == ExecutionStatus.PENDING.value, r.tenant_id == tenant_id, r.campaign_id == run_id,
        r.customer_id == e.customer_id,
    ).values(status=outcome, error=func.left(error, ERROR_CHARS), attempts=e.attempts + case((r.status.in_(("sent", "delivered", "bounced", "failed")), 1), else_=0),
             updated_at=func.now()).execution_options(synchronize_session=False))
    return await finish(s, tenant_id, automation_id, run_id)


async def message_attempt_failed(s: AsyncSession, tenant_id: uuid.UUID, automation_id: uuid.UUID,
                                 run_id: uuid.UUID, customer_ids: list[uuid.UUID], error: str) -> int:
    """A provider call for these customers of a MESSAGE run failed and will be retried: the log
    shows the attempt and its error. Returns the most attempts any of them has made."""
    e = AutomationExecution
    rows = (await s.execute(update(e).where(
        e.tenant_id == tenant_id, e.automation_id == automation_id, e.run_id == run_id,
        e.customer_id.in_(customer_ids), e.status == ExecutionStatus.PENDING.value,
    ).values(attempts=e.attempts + 1, error=f"attempt failed, retrying: {error}"[:ERROR_CHARS], updated_at=func.now())
        .returning(e.attempts))).scalars().all()
    return max(rows, default=0)
