"""Per-request batch loaders: one fetch per batch of keys, whatever the number of fields asking.

Three patterns (docs/architecture.md, "Nested lists"):

* ``batch_loader``: one fetch per batch of keys (objects and lists keyed by their owner's id).
* ``page_loader``: one fetch per distinct page request of a connection nested in a list, for
  every owner asking it (a LATERAL query in the domain).
* Prefetching: a resolver that returns a page (a root list, or a page loader's fetch) loads what
  the page's nodes will ask for (``wanted`` names the selected fields) through the same loaders,
  before the nodes are completed; each node's resolver then takes its value with ``now`` /
  ``now_many`` and returns it as a plain value, without an awaitable per node. The number of
  statements then depends on the query alone, not on when the event loop dispatches batches.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField


def batch_loader(fetch: Callable[[list[Any]], Awaitable[Mapping[Any, Any]]], default: Any = None) -> DataLoader:
    """A DataLoader over ``fetch(keys) -> {key: value}``; a key it does not return gets ``default``
    (called for each such key when it is a factory such as ``list``)."""

    async def load(keys: Sequence[Any]) -> list[Any]:
        found = await fetch(list(keys))
        return [found.get(k, default() if callable(default) else default) for k in keys]

    return DataLoader(load_fn=load)


def page_loader(fetch: Callable[..., Awaitable[Mapping[Any, Any]]]) -> DataLoader:
    """A DataLoader of pages keyed ``(owner id, *page arguments)``: one ``fetch(owner_ids, *page
    arguments) -> {owner id: page}`` per distinct page request, for every owner asking it."""

    async def load(keys: Sequence[tuple]) -> list[Any]:
        groups: dict[tuple, list[Any]] = {}
        for owner_id, *args in keys:
            groups.setdefault(tuple(args), []).append(owner_id)
        found: dict[tuple, Any] = {}
        for args, owner_ids in groups.items():
            pages = await fetch(list(dict.fromkeys(owner_ids)), *args)
            for owner_id, page in pages.items():
                found[(owner_id, *args)] = page
        return [found[k] for k in keys]

    return DataLoader(load_fn=load)


# --- values already loaded: plain values instead of one awaitable per node ----------------

_MISSING = object()


def _held(loader: DataLoader, key: Any) -> Any:
    future = loader.cache_map.get(key)
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return _MISSING
    return future.result()


def now(loader: DataLoader, key: Any, convert: Callable[[Any], Any]) -> Any:
    """``convert(value)`` at once when ``loader`` already holds ``key`` (a prefetched page), else
    an awaitable of it (loaded in the next batch). For resolvers declared with ``def``."""
    value = _held(loader, key)
    if value is not _MISSING:
        return convert(value)

    async def later() -> Any:
        return convert(await loader.load(key))

    return later()


def now_many(loader: DataLoader, keys: Sequence[Any], convert: Callable[[list[Any]], Any]) -> Any:
    """Like ``now`` for several keys: ``convert(values)`` at once when all are held."""
    values = [_held(loader, k) for k in keys]
    if _MISSING not in values:
        return convert(values)

    async def later() -> Any:
        return convert(await loader.load_many(keys))

    return later()


# --- what a page's nodes will ask for ---------------------------------------------------------


def _children(selections: Iterable[Any], name: str | None) -> list[SelectedField]:
    """The fields among ``selections`` (through fragments), those named ``name`` when given."""
    out: list[SelectedField] = []
    for s in selections:
        if isinstance(s, (InlineFragment, FragmentSpread)):
            out += _children(s.selections, name)
        elif isinstance(s, SelectedField) and (name is None or s.name == name):
            out.append(s)
    return out


def wanted(info: strawberry.Info, *path: str) -> dict[str, list[dict[str, Any]]]:
    """The fields selected under the resolved field at ``path`` (e.g. ``"edges", "node"``), by
    GraphQL name, each with the arguments of every place that selects it."""
    level: list[SelectedField] = _children(info.selected_fields, None)
    for step in path:
        level = _children([c for f in level for c in f.selections], step)
    out: dict[str, list[dict[str, Any]]] = {}
    for f in _children([c for f in level for c in f.selections], None):
        out.setdefault(f.name, []).append(f.arguments)
    return out
