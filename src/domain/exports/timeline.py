"""exportTimeline: a customer's timeline as CSV, through a Job, downloaded by a signed link."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime

from domain.audit import service as audit
from domain.customers.service import get_customer
from domain.errors import NotFound
from domain.exports.downloads import download_path
from domain.jobs import service as jobs
from domain.jobs.models import Job, JobFile
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline

COLUMNS = ["occurred_at", "kind", "brand_id", "ref_type", "ref_id", "data"]


@jobs.job_actor("export_timeline", time_limit=1_800_000)
async def export_timeline(job: Job, progress: jobs.Progress) -> dict:
    p = job.params
    flt = timeline.TimelineFilter(
        kinds=tuple(timeline.Kind(k) for k in p.get("kinds", [])),
        occurred_from=_dt(p.get("from")), occurred_to=_dt(p.get("to")),
        brand_id=uuid.UUID(p["brand_id"]) if p.get("brand_id") else None,
    )
    visible = scoping.grants_from_params(p.get("visible_brands"))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = 0
    async for batch in timeline.stream(job.tenant_id, uuid.UUID(p["customer_id"]), flt, visible_brands=visible):
        for e in batch:
            writer.writerow([e.occurred_at.isoformat(), e.kind, e.brand_id or "", e.ref_type or "", e.ref_id or "",
                             json.dumps(e.data, sort_keys=True, default=str)])
        rows += len(batch)
        await progress.advance(len(batch))
    async with tenant_session(job.tenant_id) as s:
        await s.merge(JobFile(tenant_id=job.tenant_id, job_id=job.id, role="result",
                              filename=f"timeline-{p['customer_id']}.csv", content_type="text/csv",
                              content=out.getvalue().encode()))
    return {"rows": rows}


def _dt(value):
    return datetime.fromisoformat(value) if value else None


async def start_export(principal: Principal, customer_id: uuid.UUID, flt: timeline.TimelineFilter) -> Job:
    authorize(principal, Action.TIMELINE_EXPORT)
    try:
        await get_customer(principal, customer_id)  # visible to this principal, or NotFound
    except NotFound:
        raise NotFound("customer not found", field="customerId") from None
    if flt.brand_id is not None:
        scoping.require_brand(principal, flt.brand_id)
    params = {
        "customer_id": str(customer_id),
        "kinds": [k.value for k in flt.kinds],
        "from": flt.occurred_from.isoformat() if flt.occurred_from else None,
        "to": flt.occurred_to.isoformat() if flt.occurred_to else None,
        "brand_id": str(flt.brand_id) if flt.brand_id else None,
        "visible_brands": scoping.grants_as_params(principal),
    }
    async with tenant_session(principal.tenant_id) as s:
        job = await jobs.create(s, principal, "export_timeline", export_timeline, params=params)
        audit.record(s, principal, "timeline.export", "Customer", customer_id, brand_id=flt.brand_id,
                     summary={"job_id": str(job.id)})
    return job


def result_url(job: Job) -> str | None:
    """The signed download path of a finished export (None before it finishes)."""
    if job.kind != "export_timeline" or job.status != jobs.JobStatus.SUCCEEDED.value:
        return None
    return download_path(job.tenant_id, job.id)
