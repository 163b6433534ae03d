"""Customer import rows: the columns a file may have, and each row cleaned into a
:class:`CustomerRow` (customer fields, consents, tags), then rows about the same customer
combined into one (:func:`dedupe`, :func:`assign_slots`). Order imports clean their customer
columns with :func:`clean_customer_fields`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from domain.customers.consent import Channel
from domain.customers.service import FIELDS, clean_fields
from domain.errors import DomainError, ErrorCode, Validator
from domain.imports.parsing import Report, as_bool, as_json, as_text, snake
from domain.tenancy import validation

FIELD_SET = frozenset(FIELDS)
CONSENT_COLUMNS = {f"consent_{c.value}": c for c in Channel}
COLUMNS = ("external_id", "email", "phone", "first_name", "last_name", "company", "buyer_type", "city", "state",
           "country", "timezone", "locale", "birth_date")
MAX_LOCALE = 35  # customers.locale is varchar(35)
MAX_TAG = 64
_MISSING = object()
_PLAIN = frozenset(COLUMNS)  # fields given as text


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
