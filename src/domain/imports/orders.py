"""Order imports: validate every row with ``validate_order``, then record chunks of 5,000 orders
set-based, idempotent on (brand, external order id).

Per chunk, one transaction: orders already recorded are left alone (the first row of a file wins
too); the buyers are upserted like a customer import (created when new); the orders go in with
``INSERT ... ON CONFLICT DO NOTHING RETURNING``, and only the orders that statement created get
their line items, products for unknown SKUs, an ``order_placed`` timeline event and a brand link;
the buyers' profiles are then recomputed. Running the same import again records nothing twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.commerce.service import (
    OrderInput,
    OrderLine,
    OrderStatus,
    ProductAttributes,
    clean_attributes,
    validate_order,
)
from domain.customers.service import FIELDS, CustomerSource
from domain.errors import DomainError, ErrorCode, Validator
from domain.imports.chunking import ChunkProgress, chunks, nested_loops, raw_connection, run_chunks
from domain.imports.customer_merge import TIMELINE_COLUMNS, merge
from domain.imports.customer_rows import CustomerRow, assign_slots, clean_customer_fields
from domain.imports.parsing import (
    Report,
    as_cents,
    as_int,
    as_json,
    as_text,
    check_upload,
    cleaned_rows,
    snake,
)
from domain.offers import stored as stored_recommendations
from domain.platform.db import tenant_session
from domain.profiles import service as profiles
from domain.segments import changes
from domain.segments.compiler import PROFILE, PURCHASE

ORDER_KEYS = frozenset({"external_order_id", "total_cents", "total", "currency", "status", "placed_at", "items"})
ITEM_KEYS = frozenset({"sku", "quantity", "unit_price_cents", "unit_price", "name", "category"})
# what describes a new SKU's product (docs/offers.md): kind, genres, type, creators, place, dates
PRODUCT_KEYS = frozenset({"kind", "genres", "type", "creators", "city", "country", "starts_at", "ends_at"})
FIELD_SET = frozenset(FIELDS)


@dataclass
class OrderRow:
    line: int
    order: OrderInput
    customer: CustomerRow
    slot: int = -1  # the buyer: an index into the import's distinct customers


def _customer_key(k: str) -> str | None:
    """``customer_email`` → ``email``; None when the key is not a customer column."""
    if k.startswith("customer_"):
        rest = k[len("customer_"):]
        if rest in FIELD_SET or rest.startswith("attr."):
            return rest
    return None


def check_header(header: list[str]) -> None:
    names = {snake(h) for h in header if h}
    unknown = [h for h in header if h and snake(h) not in ORDER_KEYS and snake(h) != "customer"
               and _customer_key(snake(h)) is None]
    if unknown:
        raise DomainError(
            f"unknown columns: {', '.join(unknown)} (use externalOrderId, customerExternalId or customerEmail, "
            "customer<Field> such as customerFirstName, totalCents or total, currency, status, placedAt, items)",
            field="file")
    missing = [label for label, options in (
        ("externalOrderId", {"external_order_id"}),
        ("customerExternalId or customerEmail", {"customer_external_id", "customer_email", "customer"}),
        ("totalCents or total", {"total_cents", "total"}),
        ("currency", {"currency"}),
        ("placedAt", {"placed_at"}),
    ) if not options & names]
    if missing:
        raise DomainError(f"the header needs these columns: {', '.join(missing)}", field="file",
                          code=ErrorCode.REQUIRED)


def _placed_at(v: Validator, value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        v.add("placedAt", "placedAt is required", ErrorCode.REQUIRED)
        return None
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        v.add("placedAt", f"{value!r}: use ISO 8601 with an offset (2024-05-01T10:00:00+02:00)")
        return None


def _list_of_text(v: Validator, fld: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a CSV cell: "rock|jazz"
        return [part for part in value.split("|") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        v.add(fld, f"{fld} must be a list of texts")
        return None
    return value


def _when(v: Validator, fld: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        v.add(fld, f"{value!r}: use ISO 8601 with an offset")
        return None


def _product(v: Validator, prefix: str, item: dict[str, Any]) -> ProductAttributes:
    texts = {k: as_text(item.get(k)) for k in ("kind", "type", "city", "country")}
    for k, val in texts.items():
        if val is not None and not isinstance(val, str):
            v.add(prefix + k, f"{k} must be text")
            texts[k] = None
    return clean_attributes(v, ProductAttributes(
        kind=texts["kind"] or "product", genres=_list_of_text(v, prefix + "genres", item.get("genres")) or [],
        product_type=texts["type"], creators=_list_of_text(v, prefix + "creators", item.get("creators")) or [],
        city=texts["city"], country=texts["country"], starts_at=_when(v, prefix + "startsAt", item.get("starts_at")),
        ends_at=_when(v, prefix + "endsAt", item.get("ends_at"))), prefix)


def _items(v: Validator, value: Any) -> list[OrderLine]:
    raw = as_json(v, "items", value, list) if value is not None else []
    lines: list[OrderLine] = []
    for i, item in enumerate(raw or []):
        prefix = f"items[{i}]."
        if not isinstance(item, dict):
            v.add(f"items[{i}]", "each item must be a JSON object")
            continue
        item = {snake(k): val for k, val in item.items()}
        unknown = set(item) - ITEM_KEYS - PRODUCT_KEYS
        if unknown:
            v.add(f"items[{i}]", f"unknown item keys: {', '.join(sorted(unknown))}")
        if "unit_price_cents" in item:
            price = as_int(v, prefix + "unitPriceCents", item["unit_price_cents"])
        else:
            price = as_cents(v, prefix + "unitPrice", item.get("unit_price"))
        sku, name, category = (as_text(item.get(k)) for k in ("sku", "name", "category"))
        for label, val, limit in (("sku", sku, 100), ("name", name, 300), ("category", category, 100)):
            if val is not None and not isinstance(val, str):
                v.add(prefix + label, f"{label} must be text")
            elif label != "sku" and val is not None and len(val.strip()) > limit:
                v.add(prefix + label, f"{label} is longer than {limit} characters", ErrorCode.TOO_LONG)
        clean = [val.strip() or None if isinstance(val, str) else None for val in (sku, name, category)]
        lines.append(OrderLine(sku=clean[0] or "", quantity=as_int(v, prefix + "quantity", item.get("quantity")),
                               unit_price_cents=price, name=clean[1], category=clean[2],
                               product=_product(v, prefix, item) if PRODUCT_KEYS & set(item) else None))
    return lines


def _product_json(attrs: ProductAttributes | None) -> str | None:
    if attrs is None:
        return None
    values = attrs.values()
    for k in ("starts_at", "ends_at"):
        values[k] = values[k].isoformat() if values[k] else None
    return json.dumps(values)


def clean_order_row(line: int, data: dict[str, Any], brand_id: uuid.UUID, v: Validator) -> OrderRow:
    fields: dict[str, Any] = {}
    customer_raw: dict[str, Any] = {}
    for key, value in data.items():
        k = snake(key)
        if k == "customer":
            for ck, cv in (as_json(v, "customer", value, dict) or {}).items():
                name = snake(ck)
                if name in FIELD_SET or name.startswith("attr."):
                    customer_raw[name] = cv
                else:
                    v.add(f"customer.{ck}", f"unknown customer field {ck!r}")
        elif _customer_key(k):
            customer_raw[_customer_key(k)] = value
        elif k in ORDER_KEYS:
            fields[k] = value
        else:
            v.add(key, f"unknown column {key!r}")
    ext = as_text(fields.get("external_order_id"))
    ext = ext.strip() if isinstance(ext, str) else ""
    if fields.get("total_cents") is None and fields.get("total") is None:
        v.add("totalCents", "totalCents (or total) is required", ErrorCode.REQUIRED)
        total = 0
    elif fields.get("total_cents") is not None:
        total = as_int(v, "totalCents", fields["total_cents"])
    else:
        total = as_cents(v, "total", fields["total"])
    if total is None:
        total = 0  # already reported: keeps validate_order from reporting it again
    status = as_text(fields.get("status"))
    status = (status.strip().lower() if isinstance(status, str) else "") or OrderStatus.PLACED.value
    currency = as_text(fields.get("currency"))
    currency = currency.strip().upper() if isinstance(currency, str) else ""
    placed_at = _placed_at(v, fields.get("placed_at"))
    customer = clean_customer_fields(customer_raw, v, prefix="customer.")
    order = OrderInput(
        brand_id=brand_id, external_order_id=ext, total_cents=total, currency=currency,
        # a stand-in when placedAt is unreadable (already reported), so the other checks still run
        placed_at=placed_at or datetime.now(UTC) - timedelta(days=1),
        status=status, customer=customer or None, items=_items(v, fields.get("items")),
    )
    validate_order(order, v)
    if customer and not customer.get("external_id") and not customer.get("email"):
        v.add("customerExternalId", "give customerExternalId or customerEmail to identify the customer",
              ErrorCode.REQUIRED)
    return OrderRow(line, order, CustomerRow(line, customer))


# --- the set-based write ----------------------------------------------------------------------

STAGE_DDL = [
    """CREATE TEMP TABLE bg_import_orders (
         idx int NOT NULL, id uuid NOT NULL, customer_id uuid NOT NULL, external_order_id text NOT NULL,
         status text NOT NULL, total_cents bigint NOT NULL, currency text NOT NULL, placed_at timestamptz NOT NULL,
         items int NOT NULL, created bool NOT NULL DEFAULT false
       ) ON COMMIT DROP""",
    """CREATE TEMP TABLE bg_import_items (
         order_id uuid NOT NULL, line_no int NOT NULL, sku text NOT NULL, quantity int NOT NULL,
         unit_price_cents bigint NOT NULL, name text, category text, product jsonb
       ) ON COMMIT DROP""",
]
ORDER_COLUMNS = ["idx", "id", "customer_id", "external_order_id", "status", "total_cents", "currency", "placed_at",
                 "items"]
ITEM_COLUMNS = ["order_id", "line_no", "sku", "quantity", "unit_price_cents", "name", "category", "product"]
WRITE_SQL = [
    """WITH ins AS (
         INSERT INTO orders (tenant_id, id, brand_id, customer_id, external_order_id, status, total_cents, currency,
                             placed_at)
         SELECT cast(:t AS uuid), o.id, cast(:b AS uuid), o.customer_id, o.external_order_id, o.status, o.total_cents,
                o.currency, o.placed_at
           FROM bg_import_orders o ORDER BY o.idx
         ON CONFLICT (tenant_id, brand_id, external_order_id) DO NOTHING
         RETURNING id
       )
       UPDATE bg_import_orders o SET created = true FROM ins WHERE o.id = ins.id""",
    # unknown SKUs become products of the brand (as commerce.service._write_items does)
    """INSERT INTO products (tenant_id, id, sku, name, category, brand_id, price_cents, currency, kind, genres,
                             product_type, creators, city, country, starts_at, ends_at)
       SELECT DISTINCT ON (i.sku) cast(:t AS uuid), gen_random_uuid(), i.sku, coalesce(i.name, i.sku), i.category,
              cast(:b AS uuid), i.unit_price_cents, o.currency, coalesce(i.product ->> 'kind', 'product'),
              coalesce(ARRAY(SELECT jsonb_array_elements_text(i.product -> 'genres')), '{}'),
              i.product ->> 'product_type',
              coalesce(ARRAY(SELECT jsonb_array_elements_text(i.product -> 'creators')), '{}'),
              i.product ->> 'city', i.product ->> 'country', (i.product ->> 'starts_at')::timestamptz,
              (i.product ->> 'ends_at')::timestamptz
         FROM bg_import_items i JOIN bg_import_orders o ON o.id = i.order_id
        WHERE o.created
        ORDER BY i.sku, o.idx, i.line_no
       ON CONFLICT (tenant_id, sku) DO NOTHING""",
    """INSERT INTO order_items (tenant_id, order_id, line_no, product_id, sku, name, category, quantity,
                                unit_price_cents)
       SELECT cast(:t AS uuid), i.order_id, i.line_no, p.id, i.sku, coalesce(i.name, p.name),
              coalesce(i.category, p.category), i.quantity, i.unit_price_cents
         FROM bg_import_items i
         JOIN bg_import_orders o ON o.id = i.order_id AND o.created
         JOIN products p ON p.tenant_id = :t AND p.sku = i.sku
       ON CONFLICT DO NOTHING""",
    f"""INSERT INTO timeline_events ({TIMELINE_COLUMNS})
       SELECT cast(:t AS uuid), o.customer_id, o.placed_at, gen_random_uuid(), cast(:b AS uuid), 'order_placed',
              jsonb_build_object('external_order_id', o.external_order_id, 'total_cents', o.total_cents,
                                 'currency', o.currency, 'status', o.status, 'items', o.items),
              'Order', o.id::text
         FROM bg_import_orders o WHERE o.created""",
    """INSERT INTO customer_brands (tenant_id, brand_id, customer_id, first_seen_at, source)
       SELECT cast(:t AS uuid), cast(:b AS uuid), o.customer_id, min(o.placed_at), 'order'
         FROM bg_import_orders o WHERE o.created GROUP BY o.customer_id
       ON CONFLICT DO NOTHING""",
]


@dataclass
class Written:
    created: int = 0
    existing: int = 0
    customers_created: int = 0
    rejected: dict[int, tuple[str, str]] | None = None  # position in chunk → (field, reason)


async def write_chunk(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, rows: list[OrderRow],
                      slots: list[CustomerRow], label: str = "import", limited_to: list[str] | None = None) -> Written:
    """Record ``rows`` (their buyers are ``slots[row.slot]``) in the session's transaction."""
    p = {"t": tenant_id, "b": brand_id}
    out = Written(rejected={})
    known = set((await s.execute(text(
        "SELECT external_order_id FROM orders WHERE tenant_id = :t AND brand_id = :b "
        "AND external_order_id = ANY (:ids)"), {**p, "ids": [r.order.external_order_id for r in rows]})).scalars())
    todo = [i for i, r in enumerate(rows) if r.order.external_order_id not in known]
    out.existing = len(rows) - len(todo)
    if not todo:
        return out
    wanted = list(dict.fromkeys(rows[i].slot for i in todo))
    merged = await merge(s, tenant_id, brand_id, [slots[k] for k in wanted],
                         source=CustomerSource.ORDER, link=False, label=label, limited_to=limited_to)
    out.customers_created = merged.created
    customer_of = {k: merged.customer_ids[j] for j, k in enumerate(wanted)}
    problems = {wanted[j]: problem for j, problem in merged.problems.items()}
    order_records, item_records = [], []
    for i in todo:
        row, slot = rows[i], rows[i].slot
        if customer_of.get(slot) is None:
            field, reason = problems.get(slot, ("customer", "the customer could not be written"))
            out.rejected[i] = (f"customer.{field}", reason)
            continue
        o, order_id = row.order, uuid.uuid4()
        order_records.append((i, order_id, customer_of[slot], o.external_order_id, o.status, o.total_cents,
                              o.currency, o.placed_at, len(o.items)))
        item_records.extend((order_id, n, ln.sku, ln.quantity, ln.unit_price_cents, ln.name, ln.category,
                             _product_json(ln.product))
                            for n, ln in enumerate(o.items, start=1))
    if not order_records:
        return out
    for ddl in STAGE_DDL:
        await s.execute(text(ddl))
    raw = await raw_connection(s)
    await raw.copy_records_to_table("bg_import_orders", records=order_records, columns=ORDER_COLUMNS)
    if item_records:
        await raw.copy_records_to_table("bg_import_items", records=item_records, columns=ITEM_COLUMNS)
    # the stages have no statistics: hash joins read each side once, whatever the planner guesses
    await nested_loops(s, False)
    for sql in WRITE_SQL:
        await s.execute(text(sql), p)
    await nested_loops(s, True)
    created = (await s.execute(text(
        "SELECT customer_id, count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) "
        "FROM bg_import_orders GROUP BY customer_id"))).all()
    out.created = sum(c for _, c, _ in created)
    out.existing += sum(e for _, _, e in created)  # recorded meanwhile by someone else
    buyers = [customer_id for customer_id, c, _ in created if c]
    if buyers:
        created_orders = list(await s.scalars(text("SELECT id FROM bg_import_orders WHERE created")))
        await stored_recommendations.mark_converted(s, tenant_id, created_orders)
        await profiles.refresh(s, tenant_id, buyers)
        await changes.customers_changed(s, tenant_id, buyers, [PURCHASE, PROFILE])  # live evaluation of the buyers
    return out


# --- the import ------------------------------------------------------------------------------


async def import_orders(tenant_id: uuid.UUID, brand_id: uuid.UUID,
                        rows_or_bytes: bytes | str | Iterable[dict[str, Any]], progress: Any = None, *,
                        content_type: str | None = None, filename: str | None = None,
                        label: str = "import", limited_to: list[str] | None = None) -> dict[str, Any]:
    """Import orders into ``brand_id`` (no authorization: callers check); see
    :func:`domain.imports.customers.import_customers` for the arguments."""
    tenant_id, brand_id = uuid.UUID(str(tenant_id)), uuid.UUID(str(brand_id))
    report = Report()
    lines: list[int] = []
    valid: list[OrderRow] = []
    seen: set[str] = set()
    cleaned = cleaned_rows(rows_or_bytes, content_type, filename, report, lines,
                           lambda line, data, v: clean_order_row(line, data, brand_id, v))
    for row in cleaned:
        if row.order.external_order_id in seen:
            report.duplicates += 1  # the first row of an order wins
        else:
            seen.add(row.order.external_order_id)
            valid.append(row)
    slots, assignment = assign_slots([r.customer for r in valid], report, count_duplicates=False)
    rows = []
    for row, slot in zip(valid, assignment, strict=True):
        if slot is not None:
            row.slot = slot
            rows.append(row)
    chunk_list = list(chunks(rows))
    tracker = ChunkProgress(progress, lines, chunk_list)
    await tracker.start()
    totals = Written()

    async def work(chunk: list[OrderRow]) -> Written:
        async with tenant_session(tenant_id) as s:
            return await write_chunk(s, tenant_id, brand_id, chunk, slots, label, limited_to=limited_to)

    async def done(i: int, chunk: list[OrderRow], written: Written) -> None:
        totals.created += written.created
        totals.existing += written.existing
        totals.customers_created += written.customers_created
        for j, problem in (written.rejected or {}).items():
            report.reject(chunk[j].line, [problem])
        await tracker.chunk_done(i)

    # one chunk at a time: chunks share buyers, which concurrent chunks would race to create
    await run_chunks(chunk_list, work, done, concurrency=1)
    await tracker.finish()
    report.created = totals.created
    report.extra = {"existing": totals.existing, "customers_created": totals.customers_created}
    return report.result(imported=totals.created + totals.existing)


def check_order_upload(filename: str | None, content_type: str | None, content: bytes) -> str:
    return check_upload(filename, content_type, content, check_header)
