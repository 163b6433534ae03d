"""Exporting a customer's timeline, as a job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.relay import GlobalID

from domain.exports import timeline as timeline_export
from domain.timeline.service import TimelineFilter
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import payload
from graph.jobs.types import JobPayload, job_result
from graph.timeline.types import TimelineEventKind


@strawberry.input
class ExportTimelineInput:
    customer_id: GlobalID
    types: list[TimelineEventKind] | None = None
    from_: Annotated[datetime | None, strawberry.field(name="from")] = None
    to: datetime | None = None
    brand_id: GlobalID | None = None


@strawberry.type
class TimelineMutation:
    @strawberry.mutation(description="Write a customer's timeline to CSV, as a job; the job gives a signed link.")
    async def export_timeline(self, info: Info, input: ExportTimelineInput) -> JobPayload:
        async def run():
            flt = TimelineFilter(
                kinds=tuple(input.types or ()), occurred_from=input.from_, occurred_to=input.to,
                brand_id=ids.optional(input.brand_id, "Brand", "brandId"))
            return await timeline_export.start_export(
                info.context.principal, ids.decode(input.customer_id, "Customer", "customerId"), flt)

        return await payload(JobPayload, run, job_result)
