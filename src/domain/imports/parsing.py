"""Reading import files: CSV with a header row, or NDJSON (one JSON object per line).

Rows come out as ``Row(line, data)`` with the keys as written in the file; :func:`snake` turns
camelCase or snake_case column names into the product's field names. Line numbers are 1-based
and count the CSV header as line 1, so they match what a spreadsheet or an editor shows.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from domain.errors import DomainError, ErrorCode, LimitExceeded, Validator

MAX_BYTES = 50 * 1024 * 1024
MAX_ERRORS = 1_000
CHUNK = 5_000
CSV = "csv"
NDJSON = "ndjson"
NDJSON_TYPES = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines", "application/json-lines",
})
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})
TRUE = frozenset({"true", "yes", "1", "y", "t"})
FALSE = frozenset({"false", "no", "0", "n", "f"})
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")

csv.field_size_limit(MAX_BYTES)

T = TypeVar("T")


@dataclass
class Row:
    line: int
    data: dict[str, Any] | None  # None when the line could not be read
    error: str | None = None


@dataclass
class RowError:
    line: int
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class Report:
    """What an import did, returned as the job's result."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    _rejected_lines: set[int] = field(default_factory=set)

    def reject(self, line: int, problems: Iterable[tuple[str | None, str]]) -> None:
        if line not in self._rejected_lines:
            self._rejected_lines.add(line)
            self.rejected += 1
        for fld, reason in problems:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(RowError(line, fld, reason))

    def reject_validator(self, line: int, v: Validator) -> None:
        self.reject(line, [(camel(e.field) if e.field else None, e.message) for e in v.errors])

    def result(self, imported: int | None = None) -> dict[str, Any]:
        self.errors.sort(key=lambda e: e.line)
        out: dict[str, Any] = {
            "rows": self.rows,
            "imported": self.created + self.updated if imported is None else imported,
            "created": self.created, "updated": self.updated, "rejected": self.rejected,
            "duplicates": self.duplicates,
        }
        out.update(self.extra)
        out["errors"] = [e.as_dict() for e in self.errors]
        return out


@functools.lru_cache(maxsize=4096)
def snake(key: str) -> str:
    """``firstName`` / ``first_name`` / ``First Name`` → ``first_name``; ``attr.x`` is kept."""
    key = key.strip()
    if key.lower().startswith("attr."):
        return "attr." + key[5:]
    return _CAMEL.sub(r"_\1", key).replace("-", "_").replace(" ", "_").lower()


def camel(name: str) -> str:
    """A field path in the API's spelling: ``customer.first_name`` → ``customer.firstName``."""
    return ".".join(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) for part in name.split("."))


def detect_format(content_type: str | None, content: bytes, filename: str | None = None) -> str:
    """NDJSON when the type says so or the first non-blank character is ``{``; CSV otherwise."""
    ct = (content_type or "").split(";")[0].strip().lower()
    head = content[:4096].decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if ct in NDJSON_TYPES or head.startswith("{"):
        return NDJSON
    if ct in CSV_TYPES:
        return CSV
    if (filename or "").lower().endswith((".ndjson", ".jsonl")):
        return NDJSON
    return CSV


def decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError(f"the file is not UTF-8 text (byte {exc.start})", field="file") from None


def check_upload(filename: str | None, content_type: str | None, content: bytes,
                 header_check: Callable[[list[str]], None]) -> str:
    """Refuse what cannot be imported before a job is made; returns the format."""
    if len(content) > MAX_BYTES:
        raise LimitExceeded(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", field="file")
    if not content or not content.strip():
        raise DomainError("the file is empty", field="file", code=ErrorCode.REQUIRED)
    fmt = detect_format(content_type, content, filename)
    text = decode(content)
    if fmt == CSV:
        header = csv_header(text)
        header_check(header)
        if not any(line.strip() for line in text.splitlines()[1:]):
            raise DomainError("the file has a header but no rows", field="file", code=ErrorCode.REQUIRED)
    return fmt


def csv_header(text: str) -> list[str]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise DomainError(f"the CSV header row cannot be read: {exc}", field="file") from None
    names = [snake(h) for h in header]
    if not any(header):
        raise DomainError("the CSV header row is empty", field="file")
    dupes = sorted({h for h in names if h and names.count(h) > 1})
    if dupes:
        raise DomainError(f"columns appear twice in the header: {', '.join(dupes)}", field="file")
    return header


def iter_rows(text: str, fmt: str) -> Iterator[Row]:
    return _csv_rows(text) if fmt == CSV else _ndjson_rows(text)


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader)]
    width = len(header)
    prev = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(prev + 1, None, f"unreadable CSV: {exc}")
            prev = reader.line_num
            continue
        start, prev = prev + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > width and any(cell.strip() for cell in record[width:]):
            yield Row(start, None, f"{len(record)} cells but the header has {width} columns")
            continue
        # an empty cell gives no value: imports never blank a field out by omission
        yield Row(start, {h: c for h, c in zip(header, record, strict=False) if h and c and not c.isspace()})


def _ndjson_rows(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            yield Row(number, None, f"invalid JSON: {exc}")
            continue
        if not isinstance(data, dict):
            yield Row(number, None, "each line must be a JSON object")
            continue
        yield Row(number, data)


def rows_from(source: bytes | str | Iterable[dict[str, Any]], content_type: str | None = None,
              filename: str | None = None) -> Iterator[Row]:
    """Rows of a file's content, or of already-parsed dicts (line = position, 1-based)."""
    if isinstance(source, (bytes, bytearray)):
        source = bytes(source)
        return iter_rows(decode(source), detect_format(content_type, source, filename))
    if isinstance(source, str):
        return iter_rows(source, detect_format(content_type, source.encode()[:4096], filename))
    return (Row(i, dict(d)) for i, d in enumerate(source, start=1))


def cleaned_rows(source: bytes | str | Iterable[dict[str, Any]], content_type: str | None,
                 filename: str | None, report: Report, lines: list[int],
                 clean: Callable[[int, dict[str, Any], Validator], T]) -> Iterator[T]:
    """The rows of ``source`` that ``clean(line, data, validator)`` accepts, cleaned. Every row
    is counted in ``report`` and its line appended to ``lines``; an unreadable row or one the
    validator faults is rejected in ``report``."""
    for raw in rows_from(source, content_type, filename):
        report.rows += 1
        lines.append(raw.line)
        if raw.data is None:
            report.reject(raw.line, [(None, raw.error or "unreadable row")])
            continue
        v = Validator()
        row = clean(raw.line, raw.data, v)
        if v.errors:
            report.reject_validator(raw.line, v)
        else:
            yield row


# --- value coercion (shared by the row cleaners) -------------------------------------------


def as_text(value: Any) -> Any:
    """Numbers written without quotes in NDJSON become text; other values pass through."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    return value


def as_bool(v: Validator, fld: str, value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    v.add(fld, f"{value!r} is not true/false/yes/no/1/0")
    return None


def as_int(v: Validator, fld: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        v.add(fld, f"{fld} must be a whole number")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        v.add(fld, f"{value!r} is not a whole number")
        return None


def as_cents(v: Validator, fld: str, value: Any) -> int | None:
    """A decimal amount (``"12.50"``) in cents; at most two decimals."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        v.add(fld, f"{value!r} is not a decimal amount")
        return None
    if not amount.is_finite():
        v.add(fld, f"{value!r} is not a decimal amount")
        return None
    cents = amount * 100
    if cents != cents.to_integral_value():
        v.add(fld, f"{value!r} has more than two decimals")
        return None
    return int(cents)


def as_json(v: Validator, fld: str, value: Any, kind: type) -> Any:
    """A JSON value given inline (NDJSON) or as JSON text (a CSV cell)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            v.add(fld, f"{fld} is not valid JSON: {exc}")
            return None
    if value is not None and not isinstance(value, kind):
        v.add(fld, f"{fld} must be a JSON {'object' if kind is dict else 'array'}")
        return None
    return value
