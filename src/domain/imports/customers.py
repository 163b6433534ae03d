"""Customer imports: validate every row, then merge chunks of 5,000 rows set-based.

Per chunk, one transaction: the rows are COPYed into a temporary table, resolved to existing
customers (by external id, failing that by e-mail — the same rule as the API's upsert), then
matched customers are updated and the rest inserted, each with one statement; brand links,
``customer_created`` timeline events, consents (with ``consent_changed`` events for the ones that
change) and tags follow, one statement each. Every write is keyed on a natural key and changes
nothing when its data is already there, so running the same import again (a Dramatiq retry after
a crash) writes nothing twice.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.customers.consent import Channel
from domain.customers.service import FIELDS, CustomerSource, clean_fields
from domain.errors import DomainError, ErrorCode, Validator
from domain.imports.parsing import (
    CHUNK,
    CSV,
    Report,
    as_bool,
    as_json,
    as_text,
    check_upload,
    rows_from,
    snake,
)
from domain.jobs import service as jobs
from domain.jobs.models import Job
from domain.platform.db import tenant_session
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize

log = logging.getLogger(__name__)
T = TypeVar("T")

FIELD_SET = frozenset(FIELDS)
CONSENT_COLUMNS = {f"consent_{c.value}": c for c in Channel}
COLUMNS = ("external_id", "email", "phone", "first_name", "last_name", "company", "buyer_type", "city", "state",
           "country", "timezone", "locale", "birth_date")
MAX_LOCALE = 35  # customers.locale is varchar(35)
MAX_TAG = 64
_MISSING = object()
_PLAIN = frozenset(COLUMNS)  # fields given as text
_RETRYABLE = {"23505", "40P01", "40001"}  # a concurrent writer got there first: run the chunk again


# --- rows ------------------------------------------------------------------------------------


@dataclass
class CustomerRow:
    line: int
    fields: dict[str, Any]  # cleaned customer fields, only those the row gives
    consents: dict[Channel, bool] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    @property
    def external_id(self) -> str | None:
        return self.fields.get("external_id")

    @property
    def email(self) -> str | None:
        return self.fields.get("email")


def check_header(header: list[str]) -> None:
    """A CSV header must name known columns and a way to identify the customer."""
    names = [snake(h) for h in header if h]
    unknown = [h for h in header if h and snake(h) not in FIELD_SET and snake(h) not in CONSENT_COLUMNS
               and snake(h) != "tags" and not snake(h).startswith("attr.")]
    if unknown:
        raise DomainError(
            f"unknown columns: {', '.join(unknown)} (use the customer fields such as externalId, email, "
            "firstName, attr.<name>, consent_email/sms/push/ads and tags)", field="file")
    if not {"external_id", "email"} & set(names):
        raise DomainError("the header needs an externalId or an email column", field="file", code=ErrorCode.REQUIRED)


_tz_problems: dict[str, str | None] = {}


def _timezone_problem(value: str) -> str | None:
    # validation.timezone lists every zone on disk (~5 ms) on each call: remember the answers
    if value not in _tz_problems:
        v = Validator()
        validation.timezone(v, "timezone", value)
        if len(_tz_problems) > 10_000:
            _tz_problems.clear()
        _tz_problems[value] = v.errors[0].message if v.errors else None
    return _tz_problems[value]


def clean_customer_fields(raw: dict[str, Any], v: Validator, prefix: str = "") -> dict[str, Any]:
    """Customer fields (snake_case keys, ``attr.<name>``) validated by ``clean_fields``."""
    data: dict[str, Any] = {}
    extra_attrs: dict[str, Any] = {}
    for key, value in raw.items():
        if value.__class__ is str and key in _PLAIN:  # the common case, CSV cells
            data[key] = value
        elif key.startswith("attr."):
            extra_attrs[key[5:]] = value
        elif key == "attributes":
            data["attributes"] = as_json(v, prefix + "attributes", value, dict)
        elif key == "birth_date":
            data[key] = value
        else:
            value = as_text(value)
            if value is not None and not isinstance(value, str):
                v.add(prefix + key, f"{key} must be text")
                continue
            data[key] = value
    if extra_attrs:
        data["attributes"] = {**(data.get("attributes") or {}), **extra_attrs}
    if "birth_date" in data and not isinstance(data["birth_date"], (str, type(None))):
        v.add(prefix + "birth_date", "use YYYY-MM-DD")
        data.pop("birth_date")
    tz = data.pop("timezone", _MISSING)
    out = clean_fields(data, v, prefix)
    if tz is not _MISSING:
        tz = (tz or "").strip() or None
        if tz is not None:
            problem = _timezone_problem(tz)
            if problem:
                v.add(prefix + "timezone", problem)
        out["timezone"] = tz
    if out.get("locale") and len(out["locale"]) > MAX_LOCALE:
        v.add(prefix + "locale", f"locale is longer than {MAX_LOCALE} characters", ErrorCode.TOO_LONG)
    return out


def clean_tags(v: Validator, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        names = value.split(";")
    elif isinstance(value, list) and all(isinstance(n, str) for n in value):
        names = value
    else:
        v.add("tags", "tags: names separated by ';' (or a JSON array of names)")
        return []
    out: dict[str, str] = {}
    for name in names:
        name = name.strip()
        if not name:
            continue
        if len(name) > MAX_TAG:
            v.add("tags", f"tag {name[:20]!r}… is longer than {MAX_TAG} characters", ErrorCode.TOO_LONG)
            continue
        out.setdefault(name.lower(), name)
    return list(out.values())


def clean_customer_row(line: int, data: dict[str, Any], v: Validator) -> CustomerRow:
    raw: dict[str, Any] = {}
    row = CustomerRow(line, {})
    for key, value in data.items():
        k = snake(key)
        if k in FIELD_SET or k.startswith("attr."):
            raw[k] = value
        elif k in CONSENT_COLUMNS:
            granted = as_bool(v, k, value)
            if granted is not None:
                row.consents[CONSENT_COLUMNS[k]] = granted
        elif k == "tags":
            row.tags = clean_tags(v, value)
        else:
            v.add(key, f"unknown column {key!r}")
    row.fields = clean_customer_fields(raw, v)
    if not row.external_id and not row.email:
        v.add("externalId", "give an externalId or an email to identify the customer", ErrorCode.REQUIRED)
    return row


def dedupe(rows: Iterable[CustomerRow], report: Report) -> list[CustomerRow]:
    """Rows about the same customer (same external id, failing that same e-mail) become one row,
    as if applied one after the other: the last one wins for each field (and each attribute,
    consent), tags add up. A row that would give another row's customer's e-mail to a different
    customer is rejected. Returns one row per customer, in file order of their last rows."""
    slots, _ = assign_slots(rows, report)
    return sorted((r for r in slots if r is not None), key=lambda r: r.line)


def assign_slots(rows: Iterable[CustomerRow], report: Report,
                 count_duplicates: bool = True) -> tuple[list[CustomerRow], list[int | None]]:
    """One slot per distinct customer (see :func:`dedupe`), and each row's slot (None: rejected)."""
    slots: list[CustomerRow] = []
    assignment: list[int | None] = []
    by_ext: dict[str, int] = {}
    by_email: dict[str, int] = {}
    for row in rows:
        ext, email = row.external_id, row.email
        slot = by_ext.get(ext) if ext else None
        if slot is None and email:
            slot = by_email.get(email)
        if email and by_email.get(email, slot) != slot:
            report.reject(row.line, [("email", f"line {slots[by_email[email]].line} gives this email "
                                               "to another customer")])
            assignment.append(None)
            continue
        if slot is None:
            slots.append(row)
            slot = len(slots) - 1
        else:
            old = slots[slot]
            if count_duplicates:
                report.duplicates += 1
            row = _combine(old, row)
            # forget the keys the combined row no longer has
            if old.external_id and old.external_id != row.external_id and by_ext.get(old.external_id) == slot:
                del by_ext[old.external_id]
            if old.email and old.email != row.email and by_email.get(old.email) == slot:
                del by_email[old.email]
            slots[slot] = row
        if row.external_id:
            by_ext[row.external_id] = slot
        if row.email:
            by_email[row.email] = slot
        assignment.append(slot)
    return slots, assignment


def _combine(old: CustomerRow, new: CustomerRow) -> CustomerRow:
    fields = {**old.fields, **new.fields}
    if "attributes" in old.fields and "attributes" in new.fields:
        fields["attributes"] = {**old.fields["attributes"], **new.fields["attributes"]}
    tags = {t.lower(): t for t in old.tags}
    tags.update({t.lower(): t for t in new.tags if t.lower() not in tags})
    return CustomerRow(new.line, fields, {**old.consents, **new.consents}, list(tags.values()))


# --- the set-based merge ----------------------------------------------------------------------


STAGE_DDL = """
CREATE TEMP TABLE bg_import_customers (
  idx int NOT NULL, line int NOT NULL, given text[] NOT NULL,
  external_id text, email text, phone text, first_name text, last_name text, company text,
  buyer_type text, city text, state text, country text, timezone text, locale text, birth_date date,
  attributes jsonb, c_email bool, c_sms bool, c_push bool, c_ads bool, tags text[],
  customer_id uuid, new_id uuid NOT NULL DEFAULT gen_random_uuid(), created bool NOT NULL DEFAULT false,
  skip bool NOT NULL DEFAULT false, problem text, private bool NOT NULL DEFAULT false
) ON COMMIT DROP
"""
STAGE_COLUMNS = ["idx", "line", "given", *COLUMNS, "attributes", "c_email", "c_sms", "c_push", "c_ads", "tags"]


def _new_value(col: str) -> str:
    if col == "attributes":
        return "CASE WHEN 'attributes' = ANY (s.given) THEN c.attributes || s.attributes ELSE c.attributes END"
    return f"CASE WHEN '{col}' = ANY (s.given) THEN s.{col} ELSE c.{col} END"


_ALL = [*COLUMNS, "attributes"]
UPDATE_SQL = f"""
UPDATE customers c SET {", ".join(f"{col} = {_new_value(col)}" for col in _ALL)}, updated_at = now()
  FROM bg_import_customers s
 WHERE c.tenant_id = :t AND c.id = s.customer_id AND NOT s.skip
   AND ROW({", ".join(f"c.{col}" for col in _ALL)}) IS DISTINCT FROM ROW({", ".join(_new_value(col) for col in _ALL)})
"""
INSERT_SQL = f"""
WITH ins AS (
  INSERT INTO customers (tenant_id, id, {", ".join(COLUMNS)}, attributes, private_to_brand_id)
  SELECT cast(:t AS uuid), s.new_id, {", ".join(f"s.{col}" for col in COLUMNS)}, coalesce(s.attributes, '{{}}'::jsonb),
         CASE WHEN s.private THEN cast(:b AS uuid) END
    FROM bg_import_customers s
   WHERE s.customer_id IS NULL AND NOT s.skip
   ORDER BY s.idx
  ON CONFLICT DO NOTHING
  RETURNING id
)
UPDATE bg_import_customers s SET customer_id = ins.id, created = true FROM ins WHERE s.new_id = ins.id
"""
# Resolve each row to an existing customer: by external id first, failing that by e-mail, the
# brand's private records before the shared ones (the rule of customers.service.find_existing).
# For a principal limited to some brands, only shared records its brands know are candidates
# ({visible}); a row whose external id or e-mail only other records hold becomes a record private
# to the import's brand (PRIVATE_SQL). lower() is not leakproof, so under row-level security
# no lower(email) index serves a join: the e-mail steps read the tenant's customers once (hash
# joins; nested loops are turned off for them, as stale statistics on a new tenant would make
# them per-row scans).
PRIVATE_SCOPE = "c.private_to_brand_id = :b"
SHARED_SCOPE = "c.private_to_brand_id IS NULL"
VISIBLE = """ AND EXISTS (SELECT 1 FROM customer_brands cb WHERE cb.tenant_id = :t AND cb.customer_id = c.id
                 AND cb.brand_id = ANY (cast(:limited AS uuid[])))"""
RESOLVE_EXTERNAL_SQL = """
UPDATE bg_import_customers s SET customer_id = c.id FROM customers c
 WHERE s.customer_id IS NULL AND s.external_id IS NOT NULL
   AND c.tenant_id = :t AND c.external_id IS NOT NULL AND c.external_id = s.external_id AND {scope}
"""
RESOLVE_EMAIL_SQL = """UPDATE bg_import_customers s SET customer_id = c.id FROM customers c
        WHERE s.customer_id IS NULL AND s.email IS NOT NULL
          AND c.tenant_id = :t AND c.email IS NOT NULL AND c.email = s.email AND {scope}"""
# A matched customer must not take an e-mail (or external id) a record in the same brand's view
# holds (customers.service.check_identifiers): for a record private to a brand, that brand's other
# private records and the shared ones linked to it; for a shared record, the other shared ones and
# the private records of the import's brand and of the brands it is linked to.
_SAME_VIEW = """(c.private_to_brand_id IS NOT DISTINCT FROM m.private_to_brand_id
            OR (m.private_to_brand_id IS NOT NULL AND c.private_to_brand_id IS NULL
                AND EXISTS (SELECT 1 FROM customer_brands cb WHERE cb.tenant_id = :t AND cb.customer_id = c.id
                              AND cb.brand_id = m.private_to_brand_id))
            OR (m.private_to_brand_id IS NULL AND c.private_to_brand_id IS NOT NULL
                AND (c.private_to_brand_id = :b
                     OR EXISTS (SELECT 1 FROM customer_brands cb WHERE cb.tenant_id = :t AND cb.customer_id = m.id
                                  AND cb.brand_id = c.private_to_brand_id))))"""
TAKEN_SQL = [f"""UPDATE bg_import_customers s SET skip = true, problem = 'email' FROM customers m, customers c
        WHERE NOT s.skip AND s.customer_id IS NOT NULL AND s.email IS NOT NULL AND 'email' = ANY (s.given)
          AND m.tenant_id = :t AND m.id = s.customer_id
          AND c.tenant_id = :t AND c.email IS NOT NULL AND c.email = s.email AND c.id <> s.customer_id
          AND m.email IS DISTINCT FROM s.email AND {_SAME_VIEW}""",
             f"""UPDATE bg_import_customers s SET skip = true, problem = 'taken' FROM customers m, customers c
        WHERE NOT s.skip AND s.customer_id IS NOT NULL AND s.external_id IS NOT NULL
          AND m.tenant_id = :t AND m.id = s.customer_id
          AND c.tenant_id = :t AND c.external_id IS NOT NULL AND c.external_id = s.external_id
          AND c.id <> s.customer_id AND m.external_id IS DISTINCT FROM s.external_id AND {_SAME_VIEW}"""]
# A shared record not yet linked to the import's brand is not linked to it when the brand has its
# own private record for the record's e-mail or external id (customers.service.link_brand).
TAKEN_SQL.append("""UPDATE bg_import_customers s SET skip = true, problem = 'own' FROM customers m, customers c
        WHERE NOT s.skip AND s.customer_id IS NOT NULL AND m.tenant_id = :t AND m.id = s.customer_id
          AND m.private_to_brand_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM customer_brands cb WHERE cb.tenant_id = :t AND cb.customer_id = m.id
                            AND cb.brand_id = :b)
          AND c.tenant_id = :t AND c.private_to_brand_id = :b AND c.id <> m.id
          AND ((m.email IS NOT NULL AND c.email = m.email)
               OR (m.external_id IS NOT NULL AND c.external_id = m.external_id))""")
# A principal limited to some brands changes no identifier of a shared record (whether the new
# value is held would tell it about customers only other brands know): checked before TAKEN_SQL.
SHARED_KEEPS_SQL = """UPDATE bg_import_customers s SET skip = true, problem = 'shared' FROM customers m
        WHERE NOT s.skip AND s.customer_id IS NOT NULL AND m.tenant_id = :t AND m.id = s.customer_id
          AND m.private_to_brand_id IS NULL
          AND (('email' = ANY (s.given) AND s.email IS DISTINCT FROM m.email)
               OR ('external_id' = ANY (s.given) AND s.external_id IS DISTINCT FROM m.external_id))"""
# rows left without a customer, whose external id or e-mail a shared record only other brands
# know holds: they become records private to the brand (a principal limited to some brands)
PRIVATE_SQL = [f"""UPDATE bg_import_customers s SET private = true FROM customers c
        WHERE s.customer_id IS NULL AND NOT s.private AND s.{col} IS NOT NULL
          AND c.tenant_id = :t AND c.{col} IS NOT NULL AND c.{col} = s.{col} AND {SHARED_SCOPE}"""
               for col in ("external_id", "email")]
# two rows resolved to one customer (one by external id, one by e-mail): the last one wins
SAME_CUSTOMER_SQL = """
UPDATE bg_import_customers s SET skip = true FROM bg_import_customers s2
 WHERE s.customer_id IS NOT NULL AND s2.customer_id = s.customer_id AND s2.idx > s.idx
   AND NOT s.skip AND NOT s2.skip AND s.problem IS NULL AND s2.problem IS NULL
"""
TIMELINE_COLUMNS = "tenant_id, customer_id, occurred_at, id, brand_id, kind, data, ref_type, ref_id"
# occurred_at = now() = the new customers' created_at (same transaction)
CREATED_SQL = f"""
INSERT INTO timeline_events ({TIMELINE_COLUMNS})
SELECT cast(:t AS uuid), s.customer_id, now(), gen_random_uuid(), cast(:b AS uuid), 'customer_created',
       jsonb_build_object('source', cast(:source AS text)), NULL, NULL
  FROM bg_import_customers s
 WHERE s.created
"""
LINK_SQL = """
INSERT INTO customer_brands (tenant_id, brand_id, customer_id, source)
SELECT DISTINCT cast(:t AS uuid), cast(:b AS uuid), s.customer_id, cast(:source AS text) FROM bg_import_customers s
 WHERE s.customer_id IS NOT NULL AND s.problem IS NULL
ON CONFLICT DO NOTHING
"""
CONSENT_SQL = f"""
WITH wanted AS (
  SELECT s.customer_id, x.channel, x.granted
    FROM bg_import_customers s
    CROSS JOIN LATERAL (VALUES ('email', s.c_email), ('sms', s.c_sms), ('push', s.c_push), ('ads', s.c_ads))
         AS x (channel, granted)
   WHERE NOT s.skip AND s.customer_id IS NOT NULL AND x.granted IS NOT NULL
), changed AS (
  INSERT INTO customer_consents AS cc
         (tenant_id, customer_id, brand_id, channel, granted, granted_at, revoked_at, source, updated_at)
  SELECT cast(:t AS uuid), w.customer_id, cast(:b AS uuid), w.channel, w.granted, CASE WHEN w.granted THEN now() END,
         CASE WHEN NOT w.granted THEN now() END, cast(:source AS text), now()
    FROM wanted w
  ON CONFLICT (tenant_id, customer_id, brand_id, channel) DO UPDATE
     SET granted = excluded.granted, source = excluded.source, updated_at = excluded.updated_at,
         granted_at = CASE WHEN excluded.granted THEN excluded.updated_at ELSE cc.granted_at END,
         revoked_at = CASE WHEN excluded.granted THEN cc.revoked_at ELSE excluded.updated_at END
   WHERE cc.granted IS DISTINCT FROM excluded.granted
  RETURNING cc.customer_id, cc.channel, cc.granted
)
INSERT INTO timeline_events ({TIMELINE_COLUMNS})
SELECT cast(:t AS uuid), ch.customer_id, now(), gen_random_uuid(), cast(:b AS uuid), 'consent_changed',
       jsonb_build_object('channel', ch.channel, 'granted', ch.granted, 'source', cast(:source AS text)), NULL, NULL
  FROM changed ch
"""
TAGS_SQL = """
INSERT INTO tags (tenant_id, id, name, created_by)
SELECT DISTINCT ON (lower(n.name)) cast(:t AS uuid), gen_random_uuid(), n.name, cast(:by AS text)
  FROM bg_import_customers s CROSS JOIN LATERAL unnest(s.tags) AS n (name)
 WHERE NOT s.skip AND s.customer_id IS NOT NULL
 ORDER BY lower(n.name), s.idx
ON CONFLICT DO NOTHING
"""
CREATE_TAGS_SQL = """
INSERT INTO tags (tenant_id, id, name, created_by)
SELECT DISTINCT ON (lower(n.name)) cast(:t AS uuid), gen_random_uuid(), n.name, cast(:by AS text)
  FROM unnest(cast(:names AS text[])) AS n (name)
 ORDER BY lower(n.name)
ON CONFLICT DO NOTHING
"""
TAGGING_SQL = f"""
WITH added AS (
  INSERT INTO customer_tags (tenant_id, customer_id, tag_id, assigned_by, assigned_at)
  SELECT DISTINCT cast(:t AS uuid), s.customer_id, t.id, cast(:by AS text), now()
    FROM bg_import_customers s CROSS JOIN LATERAL unnest(s.tags) AS n (name)
    JOIN tags t ON t.tenant_id = :t AND lower(t.name) = lower(n.name)
   WHERE NOT s.skip AND s.customer_id IS NOT NULL
  ON CONFLICT DO NOTHING
  RETURNING customer_id, tag_id
)
INSERT INTO timeline_events ({TIMELINE_COLUMNS})
SELECT cast(:t AS uuid), a.customer_id, now(), gen_random_uuid(), NULL, 'tag_added',
       jsonb_build_object('tag_id', a.tag_id::text, 'tag', t.name, 'by', cast(:by AS text)), 'Tag', a.tag_id::text
  FROM added a JOIN tags t ON t.tenant_id = :t AND t.id = a.tag_id
"""


class ConcurrentChange(Exception):
    """A customer appeared between resolving a chunk and inserting it: the chunk runs again."""


@dataclass
class Merged:
    customer_ids: list[uuid.UUID | None]  # per row; None when the row was rejected
    problems: dict[int, tuple[str, str]]  # row position → (field, reason)
    created: int = 0
    updated: int = 0
    duplicates: int = 0


async def raw_connection(session: AsyncSession):
    """The asyncpg connection under the session's transaction (for COPY)."""
    conn = await session.connection()
    return (await conn.get_raw_connection()).driver_connection


async def merge(session: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, rows: list[CustomerRow], *,
                source: CustomerSource, link: bool = True, label: str = "import", want_ids: bool = True,
                create_tags: bool = True, limited_to: list[str] | None = None) -> Merged:
    """Upsert ``rows`` (distinct customers, see :func:`dedupe`) in the session's transaction.
    With ``want_ids`` the result has each row's customer id; without, only the counts."""
    p = {"t": tenant_id, "b": brand_id, "source": source.value, "by": label}
    # plans cached by this connection (foreign-key checks included) may date from when the tables
    # looked empty: plan again with the sizes they have now (see ``chunks``)
    await session.execute(text("DISCARD PLANS"))
    await session.execute(text(STAGE_DDL))
    raw = await raw_connection(session)
    records = []
    for i, row in enumerate(rows):
        f = row.fields
        attrs = f.get("attributes")
        records.append((
            i, row.line, list(f), *(f.get(col) for col in COLUMNS),
            json.dumps(attrs, default=str) if attrs is not None else None,
            row.consents.get(Channel.EMAIL), row.consents.get(Channel.SMS), row.consents.get(Channel.PUSH),
            row.consents.get(Channel.ADS), row.tags or None,
        ))
    await raw.copy_records_to_table("bg_import_customers", records=records, columns=STAGE_COLUMNS)
    await session.execute(text("ANALYZE bg_import_customers"))
    if limited_to is not None:
        p["limited"] = list(limited_to)
    shared = SHARED_SCOPE + (VISIBLE if limited_to is not None else "")
    matched = 0
    for scope in (PRIVATE_SCOPE, shared):
        matched += (await session.execute(text(RESOLVE_EXTERNAL_SQL.format(scope=scope)), p)).rowcount
    # The steps below join on columns the stage's statistics (taken at load) know nothing about
    # yet, and a new tenant's customers have stale statistics: a nested loop chosen on such
    # estimates rescans one side per row. Hash joins read each side once, whatever the sizes.
    await nested_loops(session, False)
    if any(r.email for r in rows):
        for scope in (PRIVATE_SCOPE, shared):
            matched += (await session.execute(text(RESOLVE_EMAIL_SQL.format(scope=scope)), p)).rowcount
    if matched and limited_to is not None:
        await session.execute(text(SHARED_KEEPS_SQL), p)
    if matched:
        for sql in TAKEN_SQL:
            await session.execute(text(sql), p)
    if limited_to is not None and matched < len(rows):
        for sql in PRIVATE_SQL:
            await session.execute(text(sql), p)
    if matched:
        await session.execute(text(SAME_CUSTOMER_SQL), p)
        await nested_loops(session, True)
        await session.execute(text(UPDATE_SQL), p)  # by primary key: a nested loop is right
    else:
        await nested_loops(session, True)
    if matched < len(rows):
        await session.execute(text(INSERT_SQL), p)
    await nested_loops(session, False)
    merged = Merged(customer_ids=[None] * len(rows), problems={})
    result = (await session.execute(text(
        "SELECT idx, customer_id, created, skip, problem FROM bg_import_customers"
        + ("" if want_ids else " WHERE problem IS NOT NULL OR customer_id IS NULL")))).all()
    for idx, customer_id, created, skip, problem in result:
        if problem == "email":
            merged.problems[idx] = ("email", "another customer already has this email")
        elif problem == "taken":
            merged.problems[idx] = ("email", "another customer already has this email or externalId")
        elif problem == "own":
            merged.problems[idx] = ("email", "the brand already has its own record for this email or externalId")
        elif problem == "shared":
            merged.problems[idx] = ("email", "a customer other brands may share keeps its email and externalId: "
                                             "ask a principal that sees every brand to change them")
        elif customer_id is None:
            raise ConcurrentChange()  # inserted meanwhile by someone else: run the chunk again
        else:
            merged.customer_ids[idx] = customer_id
            merged.created += created
            merged.duplicates += skip and not created
            merged.updated += not created and not skip
    if not want_ids:
        merged.created, merged.duplicates, merged.updated = (await session.execute(text(
            "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE skip AND problem IS NULL), "
            "count(*) FILTER (WHERE NOT created AND NOT skip AND customer_id IS NOT NULL) "
            "FROM bg_import_customers"))).one()
    if merged.created:
        await session.execute(text(CREATED_SQL), p)
    if link:
        await session.execute(text(LINK_SQL), p)
    if any(r.consents for r in rows):
        await session.execute(text(CONSENT_SQL), p)
    if any(r.tags for r in rows):
        if create_tags:
            await session.execute(text(TAGS_SQL), p)
        await session.execute(text(TAGGING_SQL), p)
    await nested_loops(session, True)
    return merged


async def nested_loops(session: AsyncSession, enabled: bool) -> None:
    """Allow or forbid nested-loop joins for the rest of the transaction (or until changed)."""
    await session.execute(text(f"SET LOCAL enable_nestloop = {'on' if enabled else 'off'}"))


async def with_retries(work: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """Run one chunk's transaction; run it again when a concurrent writer won a race."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except ConcurrentChange:
            if attempt == attempts:
                raise
        except DBAPIError as exc:
            if attempt == attempts or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
                raise
        log.info("import chunk raced a concurrent change; running it again", extra={"attempt": attempt})
        await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


# --- the import ------------------------------------------------------------------------------


class ChunkProgress:
    """Reports progress in source rows: a chunk covers the lines after the previous chunk's last
    row up to its own last row (rejected and merged rows included), so done reaches total."""

    def __init__(self, progress: Any, lines: list[int], chunk_list: list[list[Any]]) -> None:
        self.progress = progress
        self.total = len(lines)
        self.covers: list[int] = []
        before = 0
        for i, chunk in enumerate(chunk_list):
            upto = self.total if i == len(chunk_list) - 1 else bisect.bisect_right(lines, chunk[-1].line)
            self.covers.append(upto - before)
            before = upto
        self.rest = self.total - before

    async def start(self) -> None:
        if self.progress is not None:
            if hasattr(self.progress, "done"):
                self.progress.done = 0  # a retried job starts over
            await self.progress.set_total(self.total)

    async def chunk_done(self, i: int) -> None:
        if self.progress is not None and self.covers[i]:
            await self.progress.advance(self.covers[i])

    async def finish(self) -> None:
        if self.progress is not None and self.rest:
            await self.progress.advance(self.rest)


async def run_chunks(chunk_list: list[list[T]], work: Callable[[list[T]], Awaitable[Any]],
                     done: Callable[[int, list[T], Any], Awaitable[None]], concurrency: int = 1) -> None:
    """Run ``work`` (one transaction) per chunk: the first few in order, then up to
    ``concurrency`` at once; ``done`` gets each result as it comes."""
    async def one(i: int) -> None:
        chunk = chunk_list[i]
        result = await with_retries(lambda: work(chunk))
        await done(i, chunk, result)

    head = min(len(RAMP), len(chunk_list)) if concurrency > 1 else len(chunk_list)
    for i in range(head):
        await one(i)
    if head < len(chunk_list):
        gate = asyncio.Semaphore(concurrency)

        async def gated(i: int) -> None:
            async with gate:
                await one(i)

        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other chunks
                for i in range(head, len(chunk_list)):
                    group.create_task(gated(i))
        except BaseExceptionGroup as group_error:
            first = group_error.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None


RAMP = (500, 1_000, 2_000)
CONCURRENCY = 2


def chunks(items: list[T], size: int = CHUNK) -> Iterable[list[T]]:
    """Chunks of ``size``, after a few smaller ones. In a new database the planner believes the
    tables empty until autovacuum analyzes them, and plans the foreign-key checks of a big first
    chunk as scans of the rows just written (quadratic); small first chunks keep that cheap until
    the tables' real size shows (see ``merge``, which also drops plans made meanwhile)."""
    start, steps = 0, list(RAMP)
    while start < len(items):
        step = min(size, steps.pop(0)) if steps else size
        yield items[start:start + step]
        start += step


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
    valid: list[CustomerRow] = []
    for raw in rows_from(rows_or_bytes, content_type, filename):
        report.rows += 1
        lines.append(raw.line)
        if raw.data is None:
            report.reject(raw.line, [(None, raw.error or "unreadable row")])
            continue
        v = Validator()
        row = clean_customer_row(raw.line, raw.data, v)
        if v.errors:
            report.reject_validator(raw.line, v)
        else:
            valid.append(row)
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
        from domain.segments.service import mark_stale_everywhere

        await mark_stale_everywhere(tenant_id)  # attributes, tags and consents rules may answer otherwise
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
    from domain.imports.actors import import_customers_job

    return await start_import(principal, brand_id, filename, content_type, content, "import_customers",
                              import_customers_job, check_customer_upload)
