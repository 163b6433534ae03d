"""The set-based merge of customer import rows, one chunk in one transaction.

The rows are COPYed into a temporary table, resolved to existing customers (by external id,
failing that by e-mail — the same rule as the API's upsert), then matched customers are updated
and the rest inserted, each with one statement; brand links, ``customer_created`` timeline
events, consents (with ``consent_changed`` events for the ones that change) and tags follow, one
statement each. Every write is keyed on a natural key and changes nothing when its data is
already there, so running the same chunk again (a Dramatiq retry after a crash) writes nothing
twice. Order imports merge the customers their rows name with it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.customers.consent import Channel
from domain.customers.service import CustomerSource
from domain.imports.chunking import ConcurrentChange, nested_loops, raw_connection
from domain.imports.customer_rows import COLUMNS, CustomerRow

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


@dataclass
class Merged:
    customer_ids: list[uuid.UUID | None]  # per row; None when the row was rejected
    problems: dict[int, tuple[str, str]]  # row position → (field, reason)
    created: int = 0
    updated: int = 0
    duplicates: int = 0


async def merge(session: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, rows: list[CustomerRow], *,
                source: CustomerSource, link: bool = True, label: str = "import", want_ids: bool = True,
                create_tags: bool = True, limited_to: list[str] | None = None) -> Merged:
    """Upsert ``rows`` (distinct customers, see :func:`dedupe`) in the session's transaction.
    With ``want_ids`` the result has each row's customer id; without, only the counts."""
    p = {"t": tenant_id, "b": brand_id, "source": source.value, "by": label}
    # plans cached by this connection (foreign-key checks included) may date from when the tables
    # looked empty: plan again with the sizes they have now (see :func:`domain.imports.chunking.chunks`)
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
