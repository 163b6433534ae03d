"""The audit trail: every change records who did what to which thing, in the same
transaction as the change, and is published live to the tenant's ``audit`` topic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit.models import AuditEntry
from domain.pagination import Page, PageRequest, encode_cursor
from domain.platform import outbox
from domain.platform.db import tenant_session
from domain.platform.observability import current_request_id
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

TOPIC = "audit"


def _plain(value: Any) -> Any:
    if isinstance(value, (uuid.UUID, date)):  # date and datetime: ISO 8601
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields that changed, each as {before, after}."""
    return {
        key: {"before": _plain(before.get(key)), "after": _plain(after.get(key))}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def record(
    session: AsyncSession,
    principal: Principal | None,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str | None,
    *,
    tenant_id: uuid.UUID | None = None,
    brand_id: uuid.UUID | None = None,
    summary: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit row to the session's transaction; publish it once that commits."""
    entry = AuditEntry(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id if principal else tenant_id,
        principal_type=principal.kind.value if principal else "system",
        principal_id=str(principal.tenant_facing_id) if principal else "system",
        principal_label=principal.label if principal else "brandgraph",
        brand_id=brand_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        summary=_plain(summary or {}),
        request_id=current_request_id(),
    )
    session.add(entry)
    outbox.publish(session, entry.tenant_id, TOPIC, {"id": str(entry.id)})
    return entry


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    target_type: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


async def list_entries(
    principal: Principal, flt: AuditFilter, *, page: PageRequest
) -> Page[AuditEntry]:
    """Newest first, keyset-paginated on (occurred_at, id). A brand-limited principal sees only
    entries about its brands: tenant-wide entries (members, keys) may name other brands, so they
    stay hidden too."""
    authorize(principal, Action.AUDIT_READ)
    conditions = [AuditEntry.tenant_id == principal.tenant_id,
                  *scoping.brand_filter(principal, AuditEntry.brand_id)]
    if flt.action:
        conditions.append(AuditEntry.action == flt.action)
    if flt.target_type:
        conditions.append(AuditEntry.target_type == flt.target_type)
    if flt.occurred_from:
        conditions.append(AuditEntry.occurred_at >= flt.occurred_from)
    if flt.occurred_to:
        conditions.append(AuditEntry.occurred_at < flt.occurred_to)
    after, order = page.keyset([(AuditEntry.occurred_at, True), (AuditEntry.id, True)], datetime, uuid.UUID)
    stmt = select(AuditEntry).where(*conditions, *after).order_by(*order).limit(page.size + 1)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(stmt)).all())
    return page.page(rows, lambda e: encode_cursor(e.occurred_at, e.id))


async def get_entry(principal: Principal, entry_id: uuid.UUID) -> AuditEntry | None:
    authorize(principal, Action.AUDIT_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await s.scalar(
            select(AuditEntry).where(
                AuditEntry.tenant_id == principal.tenant_id, AuditEntry.id == entry_id,
                *scoping.brand_filter(principal, AuditEntry.brand_id),
            )
        )


async def entries_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, AuditEntry]:
    """For node lookups: the entries of the principal's brands, one query."""
    authorize(principal, Action.AUDIT_READ)
    async with tenant_session(principal.tenant_id) as s:
        found = await s.scalars(select(AuditEntry).where(
            AuditEntry.tenant_id == principal.tenant_id, AuditEntry.id.in_(set(ids)),
            *scoping.brand_filter(principal, AuditEntry.brand_id)))
        return {e.id: e for e in found}


async def prune(tenant_id: uuid.UUID, retention_days: int) -> int:
    """Delete entries older than the retention period; returns how many."""
    async with tenant_session(tenant_id) as s:
        result = await s.execute(
            delete(AuditEntry).where(
                AuditEntry.tenant_id == tenant_id,
                AuditEntry.occurred_at < text("now() - make_interval(days => :days)").bindparams(
                    days=retention_days
                ),
            )
        )
        return result.rowcount or 0
