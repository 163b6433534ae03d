"""importCustomers / importOrders: an uploaded CSV or NDJSON file, imported by a Job.

``start_customer_import`` / ``start_order_import`` check who asks and what they send, then store
the file with the job in one transaction; the worker runs the import chunk by chunk (see
``domain.imports.customers`` and ``domain.imports.orders``) and the job's result reports what
was created, updated and rejected, with the line and reason of each rejected row.
"""

from __future__ import annotations

from sqlalchemy import select

from domain.imports.customers import import_customers, start_customer_import
from domain.imports.orders import import_orders, start_order_import
from domain.jobs import service as jobs
from domain.jobs.models import Job, JobFile
from domain.platform.db import tenant_session

TIME_LIMIT = 2 * 3_600_000

__all__ = [
    "import_customers", "import_customers_job", "import_orders", "import_orders_job", "run_customer_import",
    "run_order_import", "start_customer_import", "start_order_import",
]


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
