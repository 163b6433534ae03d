"""Relay connections over the domain's keyset pages: the same edge and ``pageInfo`` shape
everywhere, ``first``/``after`` and ``last``/``before`` (``page_request``), and ``totalCount`` on
the connections of ``TotalCount`` (where the count comes from an index or a counter:
docs/api.md, "Connections")."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry
from graphql import NullValueNode, VariableNode
from strawberry.relay import PageInfo

from domain.pagination import Page, PageRequest

T = TypeVar("T")
M = TypeVar("M")

Count = int | Callable[[], Awaitable[int]] | None


def page_request(info: Any, first: int | None, after: str | None, last: int | None, before: str | None, *,
                 default: int = 20) -> PageRequest:
    """Relay's four arguments as the domain's page request (first or last, at most 100). ``first``
    has a default in the schema (what the cost of a query counts when it is left out): with
    ``last`` and no ``first`` sent, the default gives way."""
    if last is not None and not _sent(info, "first"):
        first = None
    return PageRequest.of(first, after, last, before, default=default)


def _sent(info: Any, name: str) -> bool:
    """Whether the request gave the field's argument ``name`` a value (literal or variable)."""
    for node in info._raw_info.field_nodes[0].arguments or ():
        if node.name.value == name:
            if isinstance(node.value, VariableNode):
                return info.variable_values.get(node.value.name.value) is not None
            return not isinstance(node.value, NullValueNode)
    return False


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Count] = None

    @classmethod
    def of(cls, page: Page[M], convert: Callable[[M], T], count: Count = None) -> Any:
        """The page as a connection; ``count`` (a number, or a coroutine function asked only when
        ``totalCount`` is selected) when the page does not carry its total."""
        edges = [Edge(cursor=c, node=convert(i)) for i, c in zip(page.items, page.cursors, strict=True)]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            count=page.total if page.total is not None else count,
        )


@strawberry.type
class TotalCount:
    """``totalCount`` for a connection whose list is counted from an index or a counter."""

    count: strawberry.Private[Count] = None

    @strawberry.field(description="How many items the whole list holds (every page), with the same filters.")
    async def total_count(self) -> int:
        value = self.count() if callable(self.count) else self.count
        if inspect.isawaitable(value):
            value = await value
        return int(value or 0)
