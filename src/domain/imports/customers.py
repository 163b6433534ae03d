"""Customer imports: a file's rows validated, then merged in chunks of up to 5,000 rows.

Every row is cleaned first (:mod:`domain.imports.customer_rows`); rows about one customer become
one; then each chunk is merged set-based in its own transaction
(:mod:`domain.imports.customer_merge`), up to :data:`CONCURRENCY` chunks at once after a ramp of
small ones (:mod:`domain.imports.chunking`). Running the same import again (a Dramatiq retry
after a crash) writes nothing twice. The job that runs it is in :mod:`domain.imports.actors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

from domain.customers.service import CustomerSource
from domain.imports.chunking import ChunkProgress, chunks, run_chunks
from domain.imports.customer_merge import CREATE_TAGS_SQL, Merged, merge
from domain.imports.customer_rows import CustomerRow, check_header, clean_customer_row, dedupe
from domain.imports.parsing import Report, check_upload, cleaned_rows
from domain.platform.db import tenant_session
from domain.segments.changes import segments_changed_everywhere

CONCURRENCY = 2


async def import_customers(tenant_id: uuid.UUID, brand_id: uuid.UUID,
                           rows_or_bytes: bytes | str | Iterable[dict[str, Any]], progress: Any = None, *,
                           content_type: str | None = None, filename: str | None = None,
                           label: str = "import", concurrency: int = CONCURRENCY,
                           limited_to: list[str] | None = None) -> dict[str, Any]:
    """Import customers into ``brand_id`` (no authorization: callers check). ``rows_or_bytes``
    is a file's content (CSV or NDJSON) or parsed rows (dicts); ``progress`` anything with async
    ``set_total(n)`` and ``advance(n)`` (a job's Progress). Returns the job result dict.

    Chunks touch distinct customers (rows about one customer were merged), so up to
    ``concurrency`` of them are written at once, on as many connections."""
    tenant_id, brand_id = uuid.UUID(str(tenant_id)), uuid.UUID(str(brand_id))
    report = Report()
    lines: list[int] = []
    valid: list[CustomerRow] = list(
        cleaned_rows(rows_or_bytes, content_type, filename, report, lines, clean_customer_row)
    )
    rows = dedupe(valid, report)
    names = {t.lower(): t for r in rows for t in r.tags}
    if names and limited_to is not None:
        rows = await _without_new_tags(tenant_id, rows, names, report)
        names = {}
    chunk_list = list(chunks(rows))
    tracker = ChunkProgress(progress, lines, chunk_list)
    await tracker.start()
    if names:  # made once, up front, so that concurrent chunks do not race for them
        async with tenant_session(tenant_id) as s:
            await s.execute(text(CREATE_TAGS_SQL), {"t": tenant_id, "by": label, "names": list(names.values())})

    async def work(chunk: list[CustomerRow]) -> Merged:
        async with tenant_session(tenant_id) as s:
            return await merge(s, tenant_id, brand_id, chunk, source=CustomerSource.IMPORT, label=label,
                               want_ids=False, create_tags=False, limited_to=limited_to)

    async def done(i: int, chunk: list[CustomerRow], merged: Merged) -> None:
        report.created += merged.created
        report.updated += merged.updated
        report.duplicates += merged.duplicates
        for idx, problem in merged.problems.items():
            report.reject(chunk[idx].line, [problem])
        await tracker.chunk_done(i)

    await run_chunks(chunk_list, work, done, concurrency=concurrency)
    await tracker.finish()
    if report.created or report.updated:
        await segments_changed_everywhere(tenant_id)  # attributes, tags and consents rules may answer otherwise
    return report.result()


async def _without_new_tags(tenant_id: uuid.UUID, rows: list[CustomerRow], names: dict[str, str],
                            report: Report) -> list[CustomerRow]:
    """Tags belong to the whole tenant: an import by a principal limited to some brands assigns
    existing tags but creates none. A row naming a tag the tenant does not have is rejected."""
    async with tenant_session(tenant_id) as s:
        known = set((await s.execute(text("SELECT lower(name) FROM tags WHERE tenant_id = :t AND lower(name) = ANY (:n)"),
                                     {"t": tenant_id, "n": list(names)})).scalars())
    kept = []
    for row in rows:
        unknown = [t for t in row.tags if t.lower() not in known]
        if unknown:
            report.reject(row.line, [("tags", f"no tag named {unknown[0]!r}; tags are created by a principal "
                                              "who sees every brand")])
        else:
            kept.append(row)
    return kept


def check_customer_upload(filename: str | None, content_type: str | None, content: bytes) -> str:
    return check_upload(filename, content_type, content, check_header)
