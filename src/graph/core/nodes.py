"""Resolving Relay nodes by their ids, in the order asked, with null for any not found."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader
from strawberry.relay import GlobalID

from domain.errors import DomainError
from graph.core import ids
from graph.core.context import Info
from graph.core.ids import node_uuid

T = TypeVar("T")

Fetch = Callable[[Info, list[Any]], Awaitable[Mapping[Any, Any] | Sequence[Any]]]


def node_resolver(fetch: Fetch, *, parse: Callable[[str], Any] = node_uuid) -> classmethod:
    """A Node type's ``resolve_nodes``: the node ids are parsed (UUIDs by default; an id that does
    not parse is not found), ``fetch(info, keys)`` loads the models, as a mapping by key or as a
    sequence in the keys' order (a dataloader's ``load_many``), and the type's ``from_model``
    builds each one found."""

    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list:
        keys = [parse(node_id) for node_id in node_ids]
        wanted = [k for k in keys if k is not None]
        found = await fetch(info, wanted)
        if not isinstance(found, Mapping):
            found = {k: m for k, m in zip(wanted, found, strict=True) if m is not None}
        return [cls.from_model(found[k]) if k is not None and k in found else None for k in keys]

    return classmethod(resolve_nodes)


async def load_node(id: GlobalID, type_name: str, loader: DataLoader[Any, Any],
                    build: Callable[[Any], T]) -> T | None:
    """One object by its Relay id through the request's ``loader``, built by ``build``; null when
    the id is not a ``type_name`` id or nothing is found."""
    try:
        key = ids.decode(id, type_name)
    except DomainError:
        return None
    found = await loader.load(key)
    return build(found) if found else None
