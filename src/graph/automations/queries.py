"""The query of segment automations."""

from __future__ import annotations

import strawberry
from strawberry import relay

from domain.automations import service
from graph.automations.types import SegmentAutomation
from graph.core import ids
from graph.core.context import Info


@strawberry.type
class AutomationQuery:
    @strawberry.field(description="The segment's automations, oldest first.")
    async def segment_automations(self, info: Info, segment_id: relay.GlobalID) -> list[SegmentAutomation]:
        found = await service.list_automations(info.context.principal,
                                               ids.decode(segment_id, "Segment", "segmentId"))
        return [SegmentAutomation.from_model(a) for a in found]
