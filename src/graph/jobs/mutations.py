"""Mutations that start jobs: imports (multipart uploads), profile rebuilds, timeline exports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.file_uploads import Upload
from strawberry.relay import GlobalID

from domain.exports import timeline as timeline_export
from domain.profiles.actors import start_rebuild
from domain.timeline.service import TimelineFilter
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.jobs.types import Job
from graph.timeline.types import TimelineEventKind


@strawberry.type
class JobPayload:
    job: Job | None = None
    errors: list[UserError]


@strawberry.input
class ExportTimelineInput:
    customer_id: GlobalID
    types: list[TimelineEventKind] | None = None
    from_: Annotated[datetime | None, strawberry.field(name="from")] = None
    to: datetime | None = None
    brand_id: GlobalID | None = None


async def _read(file: Upload) -> tuple[str, str, bytes]:
    content = await file.read()
    return (getattr(file, "filename", None) or "upload", getattr(file, "content_type", None) or "", content)


def _job(job) -> dict:
    return {"job": Job.from_model(job)}


@strawberry.type
class JobMutation:
    @strawberry.mutation(description="Import customers from a CSV or NDJSON file (multipart upload), as a job.")
    async def import_customers(self, info: Info, brand_id: GlobalID, file: Upload) -> JobPayload:
        from domain.imports.customers import start_customer_import

        async def run():
            name, content_type, content = await _read(file)
            return await start_customer_import(info.context.principal, ids.decode(brand_id, "Brand", "brandId"),
                                               name, content_type, content)

        return await payload(JobPayload, run, _job, prefix=None)

    @strawberry.mutation(description="Import orders from a CSV or NDJSON file (multipart upload), as a job.")
    async def import_orders(self, info: Info, brand_id: GlobalID, file: Upload) -> JobPayload:
        from domain.imports.orders import start_order_import

        async def run():
            name, content_type, content = await _read(file)
            return await start_order_import(info.context.principal, ids.decode(brand_id, "Brand", "brandId"),
                                            name, content_type, content)

        return await payload(JobPayload, run, _job, prefix=None)

    @strawberry.mutation(description="Recompute every customer profile of the tenant, as a job.")
    async def rebuild_profiles(self, info: Info) -> JobPayload:
        return await payload(JobPayload, lambda: start_rebuild(info.context.principal), _job, prefix=None)

    @strawberry.mutation(description="Write a customer's timeline to CSV, as a job; the job gives a signed link.")
    async def export_timeline(self, info: Info, input: ExportTimelineInput) -> JobPayload:
        async def run():
            flt = TimelineFilter(
                kinds=tuple(input.types or ()), occurred_from=input.from_, occurred_to=input.to,
                brand_id=ids.optional(input.brand_id, "Brand", "brandId"))
            return await timeline_export.start_export(
                info.context.principal, ids.decode(input.customer_id, "Customer", "customerId"), flt)

        return await payload(JobPayload, run, _job)
