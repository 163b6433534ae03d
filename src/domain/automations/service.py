"""Segment automations: creating, changing, deleting and listing them, with their runs and
executions. An automation belongs to its segment's brand: only those who may see the segment
see or change it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.automations.models import AutomationExecution, AutomationRun, SegmentAutomation
from domain.automations.validation import check_attribute, check_content, check_tag, clean, refuse_loop
from domain.errors import InvalidState, LimitExceeded, NotFound
from domain.pagination import Page, PageRequest, encode_cursor, owners, pages_by
from domain.platform.db import tenant_session
from domain.segments import service
from domain.segments.models import Segment
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

MAX_PER_SEGMENT = 20


async def _load(s: AsyncSession, principal: Principal, automation_id: uuid.UUID, *, lock: bool = False,
                field_name: str = "id") -> tuple[SegmentAutomation, Segment]:
    stmt = select(SegmentAutomation).where(SegmentAutomation.tenant_id == principal.tenant_id,
                                           SegmentAutomation.id == automation_id)
    if lock:
        stmt = stmt.with_for_update()
    found = await s.scalar(stmt)
    if found is None:
        raise NotFound("automation not found", field=field_name)
    seg = await service.load(s, principal, found.segment_id, field_name=field_name)  # its brand, or NOT_FOUND
    return found, seg


async def create_automation(principal: Principal, segment_id: uuid.UUID, name: str, trigger: Any, action: Any,
                            config: dict[str, Any] | None, *, is_active: bool = True) -> SegmentAutomation:
    authorize(principal, Action.AUTOMATION_MANAGE)
    values = clean({"name": name, "trigger": trigger, "action": action, "config": config if config is not None else {},
                     "is_active": is_active}, None)
    async with tenant_session(principal.tenant_id) as s:
        seg = await service.load(s, principal, segment_id, lock=True, field_name="segmentId")
        if seg.archived_at is not None:
            raise InvalidState("segment is archived", field="segmentId")
        count = await s.scalar(select(func.count()).select_from(SegmentAutomation).where(
            SegmentAutomation.tenant_id == seg.tenant_id, SegmentAutomation.segment_id == seg.id))
        if count >= MAX_PER_SEGMENT:
            raise LimitExceeded(f"a segment has at most {MAX_PER_SEGMENT} automations", field="segmentId")
        await check_tag(s, seg.tenant_id, values["config"])
        await check_attribute(s, seg.tenant_id, values["config"])
        await check_content(s, seg.tenant_id, values["config"])
        if values.get("is_active", True):
            await refuse_loop(s, seg.tenant_id, seg.id, values["action"], values["config"], None)
        found = SegmentAutomation(id=uuid.uuid4(), tenant_id=seg.tenant_id, segment_id=seg.id, **values)
        s.add(found)
        await s.flush()
        await s.refresh(found)
        audit.record(s, principal, "segment_automation.create", "SegmentAutomation", found.id, brand_id=seg.brand_id,
                     summary={"segment_id": seg.id, "name": found.name, "trigger": found.trigger,
                              "action": found.action, "config": found.config})
    return found


async def update_automation(principal: Principal, automation_id: uuid.UUID, data: dict[str, Any]) -> SegmentAutomation:
    """Change name, trigger, action, config or isActive. A new trigger or action keeps the
    settings of the old config that still apply, and asks for the missing ones."""
    authorize(principal, Action.AUTOMATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        found, seg = await _load(s, principal, automation_id, lock=True)
        values = clean(data, found)
        if "config" in values:
            await check_tag(s, found.tenant_id, values["config"])
            await check_attribute(s, found.tenant_id, values["config"])
            await check_content(s, found.tenant_id, values["config"])
        if values.get("is_active", found.is_active):
            await refuse_loop(s, found.tenant_id, found.segment_id, values.get("action", found.action),
                              values.get("config", found.config or {}), found.id)
        before = {k: getattr(found, k) for k in values}
        for k, value in values.items():
            setattr(found, k, value)
        await s.flush()
        await s.refresh(found)
        audit.record(s, principal, "segment_automation.update", "SegmentAutomation", found.id, brand_id=seg.brand_id,
                     summary=audit.diff(before, values))
    return found


async def delete_automation(principal: Principal, automation_id: uuid.UUID) -> SegmentAutomation:
    """Delete the automation with its executions (cascade) and runs."""
    authorize(principal, Action.AUTOMATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        found, seg = await _load(s, principal, automation_id, lock=True)
        await s.execute(delete(AutomationRun).where(AutomationRun.tenant_id == found.tenant_id,
                                                    AutomationRun.automation_id == found.id))
        await s.delete(found)
        audit.record(s, principal, "segment_automation.delete", "SegmentAutomation", found.id, brand_id=seg.brand_id,
                     summary={"segment_id": seg.id, "name": found.name, "trigger": found.trigger, "action": found.action})
    return found


async def list_automations(principal: Principal, segment_id: uuid.UUID) -> list[SegmentAutomation]:
    authorize(principal, Action.SEGMENT_READ)
    async with tenant_session(principal.tenant_id) as s:
        seg = await service.load(s, principal, segment_id, field_name="segmentId")
        return list((await s.scalars(select(SegmentAutomation).where(
            SegmentAutomation.tenant_id == seg.tenant_id, SegmentAutomation.segment_id == seg.id)
            .order_by(SegmentAutomation.created_at, SegmentAutomation.id))).all())


async def automations_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, SegmentAutomation]:
    """For node lookups: only automations of segments of the principal's brands."""
    authorize(principal, Action.SEGMENT_READ)
    stmt = select(SegmentAutomation).join(Segment, and_(
        Segment.tenant_id == SegmentAutomation.tenant_id, Segment.id == SegmentAutomation.segment_id)).where(
        SegmentAutomation.tenant_id == principal.tenant_id, SegmentAutomation.id.in_(set(ids)))
    stmt = scoping.in_brands(stmt, principal, Segment.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return {x.id: x for x in await s.scalars(stmt)}


async def _visible(s: AsyncSession, principal: Principal, automation_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of ``automation_ids`` whose segment the principal may see."""
    stmt = (select(SegmentAutomation.id)
            .join(Segment, and_(Segment.tenant_id == SegmentAutomation.tenant_id,
                                Segment.id == SegmentAutomation.segment_id))
            .where(SegmentAutomation.tenant_id == principal.tenant_id, SegmentAutomation.id.in_(set(automation_ids))))
    return list(await s.scalars(scoping.in_brands(stmt, principal, Segment.brand_id)))


async def executions_of(principal: Principal, automation_ids: list[uuid.UUID], *, page: PageRequest
                        ) -> dict[uuid.UUID, Page[tuple[AutomationExecution, datetime]]]:
    """The same page of several automations' executions in one query (LATERAL), as ``executions``
    orders them. An automation the principal may not see has none here."""
    authorize(principal, Action.SEGMENT_READ)
    e, r = AutomationExecution, AutomationRun
    rows: list[tuple[AutomationExecution, datetime]] = []
    async with tenant_session(principal.tenant_id) as s:
        visible = await _visible(s, principal, automation_ids)
        if visible:
            ids = owners(visible)
            conditions = [e.tenant_id == principal.tenant_id, e.automation_id == ids.c.id]
            after, order = page.keyset([(r.started_at, True), (e.run_id, True), (e.customer_id, True)],
                                       datetime, uuid.UUID, uuid.UUID)
            each = (select(e, r.started_at.label("run_started_at"))
                    .join(r, and_(r.tenant_id == e.tenant_id, r.id == e.run_id)).where(*conditions, *after)
                    .order_by(*order).limit(page.size + 1).lateral("e"))
            execution = aliased(AutomationExecution, each)
            found = await s.execute(select(execution, each.c.run_started_at).select_from(ids).join(each, true())
                                    .order_by(execution.automation_id, *page.ordering(
                                        [(each.c.run_started_at, True), (execution.run_id, True),
                                         (execution.customer_id, True)])))
            rows = [(x[0], x[1]) for x in found.all()]
    return pages_by(automation_ids, rows, lambda x: x[0].automation_id, page,
                    lambda x: encode_cursor(x[1], x[0].run_id, x[0].customer_id))


async def runs_of(principal: Principal, automation_ids: list[uuid.UUID], *, page: PageRequest
                  ) -> dict[uuid.UUID, Page[AutomationRun]]:
    """The newest runs of several automations in one query (LATERAL). An automation the principal
    may not see has none here."""
    authorize(principal, Action.SEGMENT_READ)
    r = AutomationRun
    rows: list[AutomationRun] = []
    async with tenant_session(principal.tenant_id) as s:
        visible = await _visible(s, principal, automation_ids)
        if visible:
            ids = owners(visible)
            after, order = page.keyset([(r.started_at, True), (r.id, True)], datetime, uuid.UUID)
            each = (select(r).where(r.tenant_id == principal.tenant_id, r.automation_id == ids.c.id, *after)
                    .order_by(*order).limit(page.size + 1).lateral("r"))
            run = aliased(AutomationRun, each)
            rows = list((await s.scalars(select(run).select_from(ids).join(each, true()).order_by(
                run.automation_id, *page.ordering([(run.started_at, True), (run.id, True)])))).all())
    return pages_by(automation_ids, rows, lambda x: x.automation_id, page, lambda x: encode_cursor(x.started_at, x.id))


async def runs_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, AutomationRun]:
    """For node lookups: runs of automations of segments of the principal's brands."""
    authorize(principal, Action.SEGMENT_READ)
    r, a = AutomationRun, SegmentAutomation
    stmt = (select(r).join(a, and_(a.tenant_id == r.tenant_id, a.id == r.automation_id))
            .join(Segment, and_(Segment.tenant_id == a.tenant_id, Segment.id == a.segment_id))
            .where(r.tenant_id == principal.tenant_id, r.id.in_(set(ids))))
    stmt = scoping.in_brands(stmt, principal, Segment.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return {x.id: x for x in await s.scalars(stmt)}
