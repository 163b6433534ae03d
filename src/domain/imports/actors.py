"""importCustomers / importOrders: an uploaded CSV or NDJSON file, imported by a Job.

``start_customer_import`` / ``start_order_import`` check who asks and what they send, then store
the file with the job in one transaction; the worker runs the import chunk by chunk (see
``domain.imports.customers`` and ``domain.imports.orders``) and the job's result reports what
was created, updated and rejected, with the line and reason of each rejected row. This module
owns starting an import and the job actors that run it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from domain.audit import service as audit
from domain.imports.customers import check_customer_upload, import_customers
from domain.imports.orders import check_order_upload, import_orders
from domain.imports.parsing import CSV
from domain.jobs import service as jobs
from domain.jobs.models import Job, JobFile
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

TIME_LIMIT = 2 * 3_600_000


async def _input(job: Job) -> JobFile:
    async with tenant_session(job.tenant_id) as s:
        found = await s.scalar(select(JobFile).where(
            JobFile.tenant_id == job.tenant_id, JobFile.job_id == job.id, JobFile.role == "input"))
    if found is None:
        raise RuntimeError(f"job {job.id} has no input file")
    return found


async def run_customer_import(job: Job, progress: jobs.Progress) -> dict:
    """The job body (callable directly: running it twice changes nothing the second time)."""
    f = await _input(job)
    return await import_customers(job.tenant_id, job.brand_id, f.content, progress, content_type=f.content_type,
                                  filename=f.filename, label=job.created_by or "import",
                                  limited_to=job.params.get("limited_to"))


async def run_order_import(job: Job, progress: jobs.Progress) -> dict:
    f = await _input(job)
    return await import_orders(job.tenant_id, job.brand_id, f.content, progress, content_type=f.content_type,
                               filename=f.filename, label=job.created_by or "import",
                               limited_to=job.params.get("limited_to"))


import_customers_job = jobs.job_actor("import_customers", time_limit=TIME_LIMIT)(run_customer_import)
import_orders_job = jobs.job_actor("import_orders", time_limit=TIME_LIMIT)(run_order_import)


# --- starting an import ----------------------------------------------------------------------


async def start_import(principal: Principal, brand_id: uuid.UUID, filename: str | None, content_type: str | None,
                       content: bytes, kind: str, actor: Any,
                       check: Callable[[str | None, str | None, bytes], str]) -> Job:
    """Authorize, check the brand and the file, then store the job with its input file."""
    authorize(principal, Action.CUSTOMER_IMPORT)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        fmt = check(filename, content_type, content)
        stored_type = "text/csv" if fmt == CSV else "application/x-ndjson"
        name = (filename or "").strip()[:255] or f"{kind}.{'csv' if fmt == CSV else 'ndjson'}"
        limited = scoping.grants_as_params(principal)
        job = await jobs.create(s, principal, kind, actor, brand_id=brand_id,
                                params={"format": fmt, "filename": name, "bytes": len(content), "limited_to": limited},
                                input_file=(name, stored_type, content))
        audit.record(s, principal, kind.replace("_", "."), "Job", job.id, brand_id=brand_id,
                     summary={"filename": name, "bytes": len(content), "format": fmt})
    return job


async def start_customer_import(principal: Principal, brand_id: uuid.UUID, filename: str | None,
                                content_type: str | None, content: bytes) -> Job:
    """Queue a customer import into ``brand_id``. Refused up front: a principal without
    customer:import (PermissionDenied), a brand it may not use (NotFound), an empty or too large
    file, a CSV header with unknown columns or without externalId/email (field "file")."""
    return await start_import(principal, brand_id, filename, content_type, content, "import_customers",
                              import_customers_job, check_customer_upload)


async def start_order_import(principal: Principal, brand_id: uuid.UUID, filename: str | None,
                             content_type: str | None, content: bytes) -> Job:
    """Queue an order import into ``brand_id``; refused up front like a customer import."""
    return await start_import(principal, brand_id, filename, content_type, content, "import_orders",
                              import_orders_job, check_order_upload)
