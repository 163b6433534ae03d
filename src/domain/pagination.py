"""Keyset pagination: opaque cursors over (sort key, id), never OFFSET."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ARRAY, Subquery, cast, func, select
from sqlalchemy.dialects.postgresql import UUID as PGUUID

from domain.errors import DomainError

T = TypeVar("T")

MAX_PAGE = 100


def clamp_first(first: int | None, default: int = 20) -> int:
    if first is None:
        return default
    if first < 0:
        raise DomainError("first must not be negative", field="first")
    return min(first, MAX_PAGE)


def encode_cursor(*parts: Any) -> str:
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(parts, list) or len(parts) != len(types):
            raise ValueError
        out = []
        for value, kind in zip(parts, types, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif kind is uuid.UUID:
                out.append(uuid.UUID(value))
            else:
                out.append(kind(value))
        return tuple(out)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise DomainError("after is not a cursor this list issued", field="after") from exc


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool

    @classmethod
    def of(cls, rows: Sequence[T], first: int, cursor: Callable[[T], str]) -> Page[T]:
        items = list(rows[:first])
        return cls(items=items, cursors=[cursor(i) for i in items], has_next=len(rows) > first)


def owners(ids: Sequence[uuid.UUID], name: str = "o") -> Subquery:
    """The ids as a one-column (``id``) subquery: the left side of a LATERAL join that reads the
    same page of several owners' lists in one query (nested lists, through page loaders)."""
    return select(func.unnest(cast(list(dict.fromkeys(ids)), ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery(name)


def pages_by(owner_ids: Sequence[uuid.UUID], rows: Sequence[T], owner: Callable[[T], uuid.UUID], first: int,
             cursor: Callable[[T], str]) -> dict[uuid.UUID, Page[T]]:
    """``rows`` (each owner's first + 1 rows, in page order) as a page per owner; an owner with
    no row gets an empty page."""
    grouped: dict[uuid.UUID, list[T]] = {o: [] for o in owner_ids}
    for row in rows:
        grouped[owner(row)].append(row)
    return {o: Page.of(r, first, cursor) for o, r in grouped.items()}
