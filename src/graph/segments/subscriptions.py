from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry import relay

from domain.segments import refresh, service
from graph.core import fanout, ids
from graph.core.context import Info
from graph.segments.types import SegmentMembershipChanged


@strawberry.type
class SegmentSubscription:
    @strawberry.subscription(description="After each refresh of the segment: how many entered, exited, and the total.")
    async def segment_membership_changed(self, info: Info, segment_id: relay.GlobalID
                                         ) -> AsyncGenerator[SegmentMembershipChanged, None]:
        principal = info.context.principal
        sid = ids.decode(segment_id, "Segment", "segmentId")
        await service.get_segment(principal, sid)  # visible, or NOT_FOUND
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, refresh.topic(sid)) as queue:
            while True:
                event = await queue.get()
                await info.context.recheck()
                # one refresh's figures, the same for everyone who shares this document, variables
                # and scope: the event itself names it
                refreshed = (event["at"], event["entered"], event["exited"], event["total"])
                if not await fanout.deliver(info, refreshed, lambda e=event: _changed(segment_id, e)):
                    yield _changed(segment_id, event)


def _changed(segment_id: relay.GlobalID, event: dict) -> SegmentMembershipChanged:
    return SegmentMembershipChanged(segment_id=strawberry.ID(str(segment_id)), entered=event["entered"],
                                    exited=event["exited"], total=event["total"], at=datetime.fromisoformat(event["at"]))
