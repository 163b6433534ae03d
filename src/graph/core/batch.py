"""Per-request batch loaders: one fetch per batch of keys, whatever the number of fields asking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from strawberry.dataloader import DataLoader


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
