"""The API's use per consumer and UTC hour: requests, cost spent, throttled requests.

A request only adds to counters in process memory (:func:`note`: no I/O, never fails). The
API's :func:`flusher` writes them every :data:`FLUSH_SECONDS`, one statement per tenant adding
to ``api_usage`` rows, and once more when the process stops; a tenant whose write fails keeps
its counts for the next flush. A consumer is a client app, else an API key, else a user
(``kind``, ``id``), so rows can be joined to whichever the id names.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from domain.errors import DomainError
from domain.plans.models import ApiUsage
from domain.platform import flushing
from domain.platform.db import tenant_session
from domain.tenancy.policies import Action, Principal, authorize

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0
MAX_PENDING = 100_000  # distinct (tenant, hour, consumer) rows held; beyond it new ones are dropped
MAX_RANGE = timedelta(days=31)
MAX_ROWS = 500  # graph/cost.py counts Tenant.apiUsage at this size

# (tenant id, hour, consumer kind, consumer id) -> [requests, cost, throttled]
_pending: dict[tuple[uuid.UUID, datetime, str, uuid.UUID], list[int]] = {}


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def note(tenant_id: uuid.UUID, kind: str, consumer_id: uuid.UUID, *, cost: int, throttled: bool,
         request: bool = True, at: datetime | None = None) -> None:
    """One operation (``request``; a subscription event is not one, only its cost counts)."""
    key = (tenant_id, hour_of(at or datetime.now(UTC)), kind, consumer_id)
    found = _pending.get(key)
    if found is None:
        if len(_pending) >= MAX_PENDING:
            return
        found = _pending[key] = [0, 0, 0]
    found[0] += int(request)
    found[1] += cost
    found[2] += int(throttled)


async def flush() -> int:
    """Write what was noted, one statement per tenant; returns the rows written."""
    global _pending
    taken, _pending = _pending, {}
    by_tenant: dict[uuid.UUID, list[dict]] = defaultdict(list)
    for (tenant_id, hour, kind, consumer_id), (requests, cost, throttled) in taken.items():
        by_tenant[tenant_id].append({"tenant_id": tenant_id, "hour": hour, "consumer_kind": kind,
                                     "consumer_id": consumer_id, "requests": requests, "cost": cost,
                                     "throttled": throttled})
    written = 0
    items = list(by_tenant.items())
    for i, (tenant_id, rows) in enumerate(items):
        try:
            stmt = insert(ApiUsage).values(rows)
            async with tenant_session(tenant_id) as s:
                await s.execute(stmt.on_conflict_do_update(
                    index_elements=[ApiUsage.tenant_id, ApiUsage.hour, ApiUsage.consumer_kind, ApiUsage.consumer_id],
                    set_={"requests": ApiUsage.requests + stmt.excluded.requests,
                          "cost": ApiUsage.cost + stmt.excluded.cost,
                          "throttled": ApiUsage.throttled + stmt.excluded.throttled}))
            written += len(rows)
        except Exception as exc:  # PostgreSQL away: keep the counts for the next flush
            log.warning("could not record API usage: %s", type(exc).__name__)
            _keep(rows)
        except BaseException:  # stopped: the last flush writes what this one took
            for _, later in items[i:]:
                _keep(later)
            raise
    return written


def _keep(rows: list[dict]) -> None:
    for r in rows:
        key = (r["tenant_id"], r["hour"], r["consumer_kind"], r["consumer_id"])
        found = _pending.setdefault(key, [0, 0, 0])
        found[0] += r["requests"]
        found[1] += r["cost"]
        found[2] += r["throttled"]


@dataclass(frozen=True)
class UsageRow:
    hour: datetime
    consumer_kind: str
    consumer_id: uuid.UUID
    requests: int
    cost: int
    throttled: int


async def usage(principal: Principal, start: datetime, end: datetime) -> list[UsageRow]:
    """The tenant's API use by consumer and hour in [start, end) (at most 31 days), oldest first
    (owners and admins who see every brand: the action that manages API keys, tenant-wide)."""
    authorize(principal, Action.API_KEY_MANAGE)
    if end <= start or end - start > MAX_RANGE:
        raise DomainError("the range must be positive and at most 31 days", field="to")
    u = ApiUsage
    async with tenant_session(principal.tenant_id) as s:
        rows = (await s.execute(select(u).where(
            u.tenant_id == principal.tenant_id, u.hour >= hour_of(start), u.hour < end,
        ).order_by(u.hour, u.consumer_kind, u.consumer_id).limit(MAX_ROWS))).scalars().all()
    return [UsageRow(r.hour, r.consumer_kind, r.consumer_id, r.requests, r.cost, r.throttled) for r in rows]


def flusher() -> flushing.Flusher:
    """Writes what was noted every :data:`FLUSH_SECONDS` while the API runs, and everything at its stop."""
    return flushing.Flusher("api-usage", flush, FLUSH_SECONDS, final=flush)
