"""Webhook delivery of automation runs: signed POSTs of 500 customers each to the automation's
url, with the tenant's signing secret. 429, 5xx, timeouts and connection errors are retried
with exponential backoff by :func:`retry_webhooks`, which re-sends the run's pending executions;
a sweep queues the retry again for runs whose worker died before queueing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import dramatiq
import httpx
from dramatiq.middleware import CurrentMessage
from sqlalchemy import and_, exists, func, select, update

from domain.automations.models import (
    EVENTS,
    ActionKind,
    AutomationExecution,
    AutomationRun,
    ExecutionStatus,
    RunStatus,
    SegmentAutomation,
    Trigger,
)
from domain.automations.runs import ERROR_CHARS, fail_pending, finish
from domain.automations.validation import url_problem
from domain.config import get_settings
from domain.customers.models import Customer
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.segments.models import Segment
from domain.tenancy.settings import webhook_secret

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # customers per webhook POST
SIGNATURE_HEADER = "X-Brandgraph-Signature"
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0
MAX_RETRIES = 8
MIN_BACKOFF_MS = 5_000
MAX_BACKOFF_MS = 600_000


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _event_of(occurrence: str) -> str:
    if occurrence.startswith("exit:"):
        return EVENTS[Trigger.EXIT]
    if occurrence.startswith("periodic:"):
        return EVENTS[Trigger.PERIODIC]
    return EVENTS[Trigger.ENTER]


@dataclass
class Outcome:
    status: ExecutionStatus  # SUCCEEDED, FAILED, or PENDING (retry later)
    error: str | None = None


async def resolves_privately(url: str) -> bool:
    """True when the url's host resolves to a loopback, private or link-local address (checked
    at delivery in production, so a public name pointed at an internal address is refused)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return False  # unresolvable: the delivery itself fails and is retried
    return any(not ipaddress.ip_address(info[4][0].split("%")[0]).is_global for info in infos)


async def _post(client: httpx.AsyncClient, url: str, secret: str, body: bytes, event: str, delivery: str) -> Outcome:
    if get_settings().production and await resolves_privately(url):
        return Outcome(ExecutionStatus.FAILED, "the url resolves to a loopback, private or link-local address")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Brandgraph-Webhooks/1",
        "X-Brandgraph-Event": event,
        "X-Brandgraph-Delivery": delivery,
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
    }
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT):
            async with client.stream("POST", url, content=body, headers=headers) as resp:
                code = resp.status_code
                snippet = b""
                if not 200 <= code < 300:
                    async for chunk in resp.aiter_bytes():
                        snippet += chunk
                        if len(snippet) >= ERROR_CHARS:
                            break
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(ExecutionStatus.PENDING, f"timed out (connect {CONNECT_TIMEOUT:g} s, total {TOTAL_TIMEOUT:g} s)")
    except httpx.HTTPError as exc:
        return Outcome(ExecutionStatus.PENDING, f"could not deliver: {type(exc).__name__}: {exc}"[:ERROR_CHARS])
    if 200 <= code < 300:
        return Outcome(ExecutionStatus.SUCCEEDED)
    error = f"HTTP {code}"
    text = snippet.decode(errors="replace").strip()
    if text:
        error += f": {text}"
    error = error[:ERROR_CHARS]
    if code == 429 or code >= 500:
        return Outcome(ExecutionStatus.PENDING, error)
    if 300 <= code < 400:
        error += " (redirects are not followed)"
    return Outcome(ExecutionStatus.FAILED, error)


async def deliver(tenant_id: uuid.UUID, run_id: uuid.UUID, *, give_up: bool = False) -> int:
    """Send the run's pending executions, 500 customers per POST. A 2xx marks a batch
    succeeded, a 4xx (not 429) failed; on 429, 5xx, a timeout or a connection error the pass stops
    and the rest stays pending for a retry. ``give_up``: what is still pending afterwards fails.
    Returns how many executions are still pending."""
    e = AutomationExecution
    async with tenant_session(tenant_id) as s:
        run = await s.scalar(select(AutomationRun).where(AutomationRun.tenant_id == tenant_id, AutomationRun.id == run_id))
        auto = None if run is None else await s.scalar(select(SegmentAutomation).where(
            SegmentAutomation.tenant_id == tenant_id, SegmentAutomation.id == run.automation_id))
        if auto is None:  # deleted meanwhile (its executions went with it)
            return 0
        seg = await s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == auto.segment_id))
        await s.execute(update(e).where(
            e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id,
            e.status == ExecutionStatus.PENDING.value,
            ~exists(select(Customer.id).where(Customer.tenant_id == e.tenant_id, Customer.id == e.customer_id)),
        ).values(status=ExecutionStatus.FAILED.value, error="the customer no longer exists", updated_at=func.now()))
        url = (auto.config or {}).get("url")
        problem = url_problem(url)
        if auto.action != ActionKind.WEBHOOK.value or problem:
            await fail_pending(s, tenant_id, auto.id, run_id,
                                problem[0] if problem else "the automation is no longer a webhook")
            return await finish(s, tenant_id, auto.id, run_id)
    secret = await webhook_secret(tenant_id)
    last_error: str | None = None
    after: uuid.UUID | None = None
    timeout = httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        while True:
            conditions = [e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id,
                          e.status == ExecutionStatus.PENDING.value]
            if after is not None:
                conditions.append(e.customer_id > after)
            async with tenant_session(tenant_id) as s:
                rows = (await s.execute(
                    select(e.customer_id, e.occurrence, Customer.email, Customer.external_id)
                    .join(Customer, and_(Customer.tenant_id == e.tenant_id, Customer.id == e.customer_id))
                    .where(*conditions).order_by(e.customer_id).limit(BATCH_SIZE))).all()
            if not rows:
                break
            after = rows[-1].customer_id
            event = _event_of(rows[0].occurrence)
            body = json.dumps({
                "event": event,
                "segment": {"id": str(seg.id), "name": seg.name},
                "automation": {"id": str(auto.id), "name": auto.name},
                "customers": [{"id": str(r.customer_id), "email": r.email, "external_id": r.external_id} for r in rows],
                "sent_at": datetime.now(UTC).isoformat(),
            }, separators=(",", ":")).encode()
            ids = [r.customer_id for r in rows]
            delivery = str(uuid.uuid5(run_id, ",".join(str(i) for i in ids)))
            outcome = await _post(client, url, secret, body, event, delivery)
            async with tenant_session(tenant_id) as s:
                await s.execute(update(e).where(
                    e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id,
                    e.status == ExecutionStatus.PENDING.value, e.customer_id.in_(ids)).values(status=outcome.status.value, attempts=e.attempts + 1,
                                                   error=outcome.error, updated_at=func.now()))
            if outcome.status is ExecutionStatus.PENDING:  # the endpoint is unwell: retry later
                last_error = outcome.error
                break
    async with tenant_session(tenant_id) as s:
        if give_up:
            await fail_pending(s, tenant_id, auto.id, run_id, f"gave up after {MAX_RETRIES + 2} attempts"
                                + (f"; last: {last_error}" if last_error else ""))
        return await finish(s, tenant_id, auto.id, run_id)


async def requeue_stalled_runs(tenant_id: uuid.UUID, older_than: timedelta = timedelta(minutes=15)) -> int:
    """Runs still running long after they started, with deliveries pending: their worker died
    between claiming the executions and queueing the retry. Queue it again (deliveries are
    idempotent per execution), so no claimed delivery is ever lost. Returns how many."""
    async with tenant_session(tenant_id) as s:
        stalled = list((await s.scalars(select(AutomationRun.id).where(
            AutomationRun.tenant_id == tenant_id, AutomationRun.status == RunStatus.RUNNING.value,
            AutomationRun.started_at < func.now() - older_than,
            exists(select(AutomationExecution.customer_id).where(
                AutomationExecution.tenant_id == tenant_id, AutomationExecution.run_id == AutomationRun.id,
                AutomationExecution.status == ExecutionStatus.PENDING.value))))).all())
    for run_id in stalled:
        await schedule_retry(tenant_id, run_id)
    return len(stalled)


async def schedule_retry(tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """Queue the first retry of a run's pending deliveries, MIN_BACKOFF_MS from now."""
    try:
        await asyncio.to_thread(retry_webhooks.send_with_options, args=(str(tenant_id), str(run_id)),
                                delay=MIN_BACKOFF_MS)
    except Exception:  # the executions stay pending; the failure is logged with the run
        log.exception("could not queue a webhook retry", extra={"run_id": str(run_id)})


# its name from before automations were an area of their own: queued messages carry it
@tenant_actor(queue_name="jobs", max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS,
              time_limit=1_800_000, actor_name="segments.automations.retry_webhooks")
async def retry_webhooks(tenant_id: uuid.UUID, run_id: str) -> None:
    """Re-send a run's pending executions; while some stay pending, Dramatiq retries this
    message with exponential backoff (5 s doubling, at most 10 min, 8 retries). The last retry
    marks what is still pending as failed."""
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    pending = await deliver(tenant_id, uuid.UUID(run_id), give_up=retries >= MAX_RETRIES)
    if pending and message is not None:
        raise dramatiq.Retry(f"{pending} webhook deliveries of run {run_id} still pending")
