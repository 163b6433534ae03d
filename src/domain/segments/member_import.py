"""Static segment members from a CSV or NDJSON file, through a Job.

Each row names a customer by ``customerId``, ``externalId`` or ``email`` and may say
``action``: ``add`` (the default) or ``remove``. Identifiers are resolved set-based against the
segment brand's customers; rows that name nobody are reported with their line. The membership
changes go through the same code as ``addSegmentMembers`` / ``removeSegmentMembers``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, or_, select

from domain.audit import service as audit
from domain.customers.models import Customer, CustomerBrand
from domain.errors import DomainError, InvalidState
from domain.imports.parsing import Report, RowError, check_upload, rows_from, snake
from domain.jobs import service as jobs
from domain.jobs.models import Job, JobFile
from domain.platform.db import tenant_session
from domain.segments import membership, service
from domain.segments.models import SegmentKind
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, PrincipalKind, Role, authorize

KEYS = ("customer_id", "external_id", "email")
BATCH = 5_000


def _check_header(header: list[str]) -> None:
    names = {snake(h) for h in header}
    if not names & set(KEYS):
        raise DomainError("the file needs a customerId, externalId or email column", field="file")
    unknown = sorted(names - set(KEYS) - {"action"})
    if unknown:
        raise DomainError(f"unknown columns: {', '.join(unknown)}", field="file")


async def start_member_import(principal: Principal, segment_id: uuid.UUID, filename: str | None,
                              content_type: str | None, content: bytes) -> Job:
    authorize(principal, Action.SEGMENT_WRITE)
    async with tenant_session(principal.tenant_id) as s:
        seg = await service.load(s, principal, segment_id, field_name="segmentId")
        if seg.kind != SegmentKind.STATIC.value:
            raise InvalidState("members are imported only into static segments", field="segmentId")
        fmt = check_upload(filename, content_type, content, _check_header)
        name = (filename or "").strip()[:255] or "members"
        job = await jobs.create(s, principal, "import_segment_members", import_segment_members, brand_id=seg.brand_id,
                                params={"segment_id": str(seg.id), "format": fmt, "acting_as": _acting(principal)},
                                input_file=(name, "text/csv" if fmt == "csv" else "application/x-ndjson", content))
        audit.record(s, principal, "segment.import_members", "Segment", seg.id, brand_id=seg.brand_id,
                     summary={"filename": name, "bytes": len(content)})
    return job


def _acting(p: Principal) -> dict[str, Any]:
    return {"kind": p.kind.value, "id": str(p.id), "role": p.role.value, "label": p.label,
            "brand_ids": scoping.grants_as_params(p)}


def _principal(tenant_id: uuid.UUID, d: dict[str, Any]) -> Principal:
    return Principal(tenant_id=tenant_id, kind=PrincipalKind(d["kind"]), id=uuid.UUID(d["id"]), role=Role(d["role"]),
                     label=d["label"], brand_ids=scoping.grants_from_params(d["brand_ids"]))


@jobs.job_actor("import_segment_members", time_limit=1_800_000)
async def import_segment_members(job: Job, progress: jobs.Progress) -> dict:
    principal = _principal(job.tenant_id, job.params["acting_as"])
    segment_id = uuid.UUID(job.params["segment_id"])
    async with tenant_session(job.tenant_id) as s:
        f = await s.scalar(select(JobFile).where(JobFile.tenant_id == job.tenant_id, JobFile.job_id == job.id,
                                                 JobFile.role == "input"))
        seg = await service.load(s, principal, segment_id)
    rows = list(rows_from(f.content, f.content_type, f.filename))
    report = Report(rows=len(rows))
    await progress.set_total(len(rows))
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        wanted: list[tuple[int, str, str, str]] = []  # (line, key, value, action)
        for row in batch:
            data = {snake(k): v for k, v in (row.data or {}).items()}
            action = str(data.get("action") or "add").strip().lower()
            key = next((k for k in KEYS if str(data.get(k) or "").strip()), None)
            if row.data is None or key is None or action not in ("add", "remove"):
                report.errors.append(RowError(row.line, "action" if key else None,
                                              row.error or ("action is add or remove" if key else
                                                            "no customerId, externalId or email")))
                continue
            value = str(data[key]).strip()
            wanted.append((row.line, key, value.lower() if key == "email" else value, action))
        found = await _resolve(job.tenant_id, seg.brand_id, wanted)
        add = [found[(k, v)] for _, k, v, a in wanted if a == "add" and (k, v) in found]
        remove = [found[(k, v)] for _, k, v, a in wanted if a == "remove" and (k, v) in found]
        for line, k, v, _ in wanted:
            if (k, v) not in found:
                report.errors.append(RowError(line, k, f"no customer of this brand with {k} {v!r}"))
        if add or remove:
            result = await membership.change_static_members(principal, segment_id, list(dict.fromkeys(add)),
                                                         list(dict.fromkeys(remove)))
            report.created += result.entered
            report.updated += result.exited
        await progress.advance(len(batch))
    return {"rows": report.rows, "added": report.created, "removed": report.updated,
            "rejected": len(report.errors), "errors": [e.as_dict() for e in report.errors[:1000]]}


async def _resolve(tenant_id: uuid.UUID, brand_id: uuid.UUID, wanted: list[tuple[int, str, str, str]]
                   ) -> dict[tuple[str, str], uuid.UUID]:
    """(key, value) → customer id, for customers of the brand; one query per batch."""
    ids, externals, emails = set(), set(), set()
    for _, k, v, _ in wanted:
        if k == "customer_id":
            try:
                ids.add(uuid.UUID(v))
            except ValueError:
                continue
        elif k == "external_id":
            externals.add(v)
        else:
            emails.add(v)
    if not (ids or externals or emails):
        return {}
    async with tenant_session(tenant_id) as s:
        rows = (await s.execute(
            select(Customer.id, Customer.external_id, Customer.email)
            .join(CustomerBrand, and_(CustomerBrand.tenant_id == Customer.tenant_id,
                                      CustomerBrand.customer_id == Customer.id, CustomerBrand.brand_id == brand_id))
            .where(Customer.tenant_id == tenant_id,
                   or_(Customer.id.in_(ids), Customer.external_id.in_(externals), Customer.email.in_(emails)))
            # the brand's private record wins over a shared one with the same identifier (as
            # customers.service.find_existing): it comes last and overwrites
            .order_by(Customer.private_to_brand_id.is_not(None), Customer.id))).all()
    out: dict[tuple[str, str], uuid.UUID] = {}
    for cid, ext, email in rows:
        out[("customer_id", str(cid))] = cid
        if ext:
            out[("external_id", ext)] = cid
        if email:
            out[("email", email)] = cid
    return out
