"""Where a segment is used (docs/segments.md, "Usage"): the campaigns that target or exclude it,
its automations, and the segments whose rules refer to it. Three statements per batch of
segments, whatever their number."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import cast, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from domain.automations.models import SegmentAutomation
from domain.campaigns.models import Campaign
from domain.platform.db import tenant_session
from domain.segments.compiler import segment_input
from domain.segments.models import Segment
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize


@dataclass
class SegmentUsage:
    campaigns: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (id, name)
    automations: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    segments: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # segments whose rules refer to it


async def usage_of(principal: Principal, segment_ids: list[uuid.UUID]) -> dict[uuid.UUID, SegmentUsage]:
    """Usage of the given segments (those the principal sees; the others get nothing), by name."""
    authorize(principal, Action.SEGMENT_READ)
    wanted = list(dict.fromkeys(segment_ids))
    out = {i: SegmentUsage() for i in wanted}
    async with tenant_session(principal.tenant_id) as s:
        visible = set(await s.scalars(scoping.in_brands(select(Segment.id).where(
            Segment.tenant_id == principal.tenant_id, Segment.id.in_(wanted)), principal, Segment.brand_id)))
        if not visible:
            return out
        ids = sorted(visible)
        wanted_ids = cast(ids, ARRAY(UUID(as_uuid=True)))
        campaigns = await s.execute(scoping.in_brands(select(Campaign.id, Campaign.name, Campaign.segment_ids,
                                                             Campaign.exclusion_segment_ids).where(
            Campaign.tenant_id == principal.tenant_id,
            or_(Campaign.segment_ids.op("&&")(wanted_ids), Campaign.exclusion_segment_ids.op("&&")(wanted_ids)))
            .order_by(Campaign.name, Campaign.id), principal, Campaign.brand_id))
        for c_id, name, targets, exclusions in campaigns:
            for seg in set(targets or []) | set(exclusions or []):
                if seg in visible:
                    out[seg].campaigns.append((c_id, name))
        automations = await s.execute(select(SegmentAutomation.segment_id, SegmentAutomation.id,
                                             SegmentAutomation.name).where(
            SegmentAutomation.tenant_id == principal.tenant_id, SegmentAutomation.segment_id.in_(ids))
            .order_by(SegmentAutomation.name, SegmentAutomation.id))
        for seg, a_id, name in automations:
            out[seg].automations.append((a_id, name))
        tokens = {segment_input(i): i for i in ids}
        referring = await s.execute(scoping.in_brands(select(Segment.id, Segment.name, Segment.inputs).where(
            Segment.tenant_id == principal.tenant_id, Segment.archived_at.is_(None),
            Segment.inputs.overlap(sorted(tokens))).order_by(Segment.name, Segment.id), principal, Segment.brand_id))
        for r_id, name, inputs in referring:
            for token in inputs or []:
                if token in tokens:
                    out[tokens[token]].segments.append((r_id, name))
    return out
