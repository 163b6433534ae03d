"""Keyset pagination: opaque cursors over (sort key, id), never OFFSET.

A ``PageRequest`` is Relay's four arguments: ``first``/``after`` walk forward from a cursor,
``last``/``before`` walk backward (the query reads the reverse order, and the page is flipped
back into list order). ``PageRequest.keyset`` gives a query's conditions and ORDER BY for it,
``PageRequest.page`` the page from the rows read (one more than the page, to know if there are
more on that side). A page knows its other side from its cursor: a page read after a cursor has
a previous page, one read before a cursor has a next one."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ARRAY, Subquery, and_, cast, func, or_, select
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


def decode_cursor(cursor: str, *types: type, field: str = "after") -> tuple[Any, ...]:
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
        raise DomainError(f"{field} is not a cursor this list issued", field=field) from exc


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next: bool
    has_previous: bool = False
    total: int | None = None  # every item of the list, where it is counted (docs/api.md)

    @classmethod
    def of(cls, rows: Sequence[T], first: int, cursor: Callable[[T], str]) -> Page[T]:
        items = list(rows[:first])
        return cls(items=items, cursors=[cursor(i) for i in items], has_next=len(rows) > first)


@dataclass(frozen=True)
class PageRequest:
    """Which page of a list: ``size`` items after ``after`` and before ``before`` (either may be
    None), read from the end (``backward``, Relay's ``last``) or from the start."""

    size: int
    after: str | None = None
    before: str | None = None
    backward: bool = False

    @classmethod
    def of(cls, first: int | None = None, after: str | None = None, last: int | None = None,
           before: str | None = None, *, default: int = 20) -> PageRequest:
        """From Relay's arguments: ``first`` or ``last`` (not both; neither is ``first: default``),
        at most ``MAX_PAGE``."""
        if first is not None and last is not None:
            raise DomainError("pass first or last, not both", field="last")
        if last is not None:
            if last < 0:
                raise DomainError("last must not be negative", field="last")
            return cls(min(last, MAX_PAGE), after, before, backward=True)
        return cls(clamp_first(first, default), after, before)

    def keyset(self, order: Sequence[tuple[Any, bool]], *types: type) -> tuple[list[Any], list[Any]]:
        """(conditions, ORDER BY) of this page over ``order``, the list's sort columns as
        (column, descending) pairs, the last one unique; the cursors hold their values, of
        ``types``. Backward, the ORDER BY is the list's reversed."""
        conditions = []
        if self.after:
            conditions.append(_beyond(order, decode_cursor(self.after, *types, field="after"), forward=True))
        if self.before:
            conditions.append(_beyond(order, decode_cursor(self.before, *types, field="before"), forward=False))
        return conditions, self.ordering(order)

    def ordering(self, order: Sequence[tuple[Any, bool]]) -> list[Any]:
        """The ORDER BY this page reads ``order`` in (reversed when backward)."""
        return [col.desc() if descending != self.backward else col.asc() for col, descending in order]

    def page(self, rows: Sequence[T], cursor: Callable[[T], str], total: int | None = None) -> Page[T]:
        """The page from ``rows`` read in ``ordering``'s order (``size`` + 1 at most)."""
        items = list(rows[: self.size])
        more = len(rows) > self.size
        if self.backward:
            items.reverse()
            return Page(items, [cursor(i) for i in items], has_next=self.before is not None, has_previous=more,
                        total=total)
        return Page(items, [cursor(i) for i in items], has_next=more, has_previous=self.after is not None,
                    total=total)


def _beyond(order: Sequence[tuple[Any, bool]], values: tuple[Any, ...], *, forward: bool) -> Any:
    """SQL condition: the row comes after ``values`` in ``order`` (``forward``), or before it."""
    alternatives = []
    for i, (col, descending) in enumerate(order):
        later = col < values[i] if descending == forward else col > values[i]
        alternatives.append(and_(*[c == v for (c, _), v in zip(order[:i], values[:i], strict=True)], later))
    return or_(*alternatives)


def owners(ids: Sequence[uuid.UUID], name: str = "o") -> Subquery:
    """The ids as a one-column (``id``) subquery: the left side of a LATERAL join that reads the
    same page of several owners' lists in one query (nested lists, through page loaders)."""
    return select(func.unnest(cast(list(dict.fromkeys(ids)), ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery(name)


def pages_by(owner_ids: Sequence[uuid.UUID], rows: Sequence[T], owner: Callable[[T], uuid.UUID],
             request: PageRequest, cursor: Callable[[T], str],
             totals: dict[uuid.UUID, int] | None = None) -> dict[uuid.UUID, Page[T]]:
    """``rows`` (each owner's size + 1 rows, in the order ``request`` reads them) as a page per
    owner; an owner with no row gets an empty page. ``totals``: each owner's count, if counted."""
    grouped: dict[uuid.UUID, list[T]] = {o: [] for o in owner_ids}
    for row in rows:
        grouped[owner(row)].append(row)
    return {o: request.page(r, cursor, None if totals is None else totals.get(o, 0)) for o, r in grouped.items()}
