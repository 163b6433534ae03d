"""Batch loaders for what hangs off a customer: one query per batch, whatever the list size."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from domain.commerce import service as commerce
from domain.customers import consent, notes, service, tags
from domain.profiles import service as profiles
from domain.profiles.models import ALL_BRANDS
from domain.tenancy.policies import Principal

K = TypeVar("K")
V = TypeVar("V")


def _loader(fetch: Callable[[list[Any]], Awaitable[dict[Any, V]]], default: Any = None) -> DataLoader:
    async def load(keys: Sequence[Any]) -> list[V]:
        found = await fetch(list(keys))
        return [found.get(k, default() if callable(default) else default) for k in keys]

    return DataLoader(load_fn=load)


def customer_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return _loader(lambda ids: service.customers_by_ids(p, ids))


def tags_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return _loader(lambda ids: tags.tags_by_customer(p, ids), list)


def consents_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return _loader(lambda ids: consent.consents_by_customer(p, ids), list)


def notes_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return _loader(lambda ids: notes.notes_by_customer(p, ids), list)


def brand_links_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return _loader(lambda ids: service.brand_links(p, ids), list)


def profile_loader(p: Principal) -> DataLoader[tuple[uuid.UUID, uuid.UUID | None], Any]:
    async def fetch(keys: list[tuple[uuid.UUID, uuid.UUID | None]]) -> dict:
        found = await profiles.profiles_for(p, keys)
        return {(c, b): found.get((c, b or ALL_BRANDS)) for c, b in keys}

    return _loader(fetch)


def last_order_loader(p: Principal) -> DataLoader[tuple[uuid.UUID, uuid.UUID | None], Any]:
    return _loader(lambda keys: commerce.last_orders(p, keys))


def order_items_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return _loader(lambda ids: commerce.items_by_order(p, ids), list)
