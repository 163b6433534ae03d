"""Marking segments stale: what every area announces when it changed data that segment rules
read (orders, events, tags, attributes, consents, profiles), so the scheduler refreshes them.
It imports only the segment tables, so any area may call it without an import cycle."""

from __future__ import annotations

import uuid

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.platform.db import tenant_session
from domain.segments.models import Segment, SegmentKind


async def mark_stale(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID | None) -> None:
    """Something segment rules read changed: the rule-based segments of ``brand_id`` (of every
    brand when None: tags, customer attributes and brand-less events count for all brands) need a
    refresh. One cheap UPDATE: only segments not already stale are touched."""
    conditions = [Segment.tenant_id == tenant_id, Segment.kind != SegmentKind.STATIC.value,
                  Segment.archived_at.is_(None), Segment.stale_since.is_(None)]
    if brand_id is not None:
        conditions.append(Segment.brand_id == brand_id)
    await s.execute(update(Segment).where(*conditions).values(stale_since=func.now()))


async def mark_stale_everywhere(tenant_id: uuid.UUID) -> None:
    async with tenant_session(tenant_id) as s:
        await mark_stale(s, tenant_id, None)
