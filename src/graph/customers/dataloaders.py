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


def timeline_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (customer id, filter, first, after): one query per distinct page request."""
    from domain.timeline import service as timeline

    async def load(keys: Sequence[tuple]) -> list[Any]:
        groups: dict[tuple, list[uuid.UUID]] = {}
        for customer_id, *args in keys:
            groups.setdefault(tuple(args), []).append(customer_id)
        found: dict[tuple, Any] = {}
        for (flt, first, after), ids in groups.items():
            pages = await timeline.pages(p.tenant_id, list(dict.fromkeys(ids)), flt, visible_brands=p.brand_ids,
                                         first=first, after=after)
            for customer_id, page in pages.items():
                found[(customer_id, flt, first, after)] = page
        return [found[k] for k in keys]

    return DataLoader(load_fn=load)


def orders_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (customer id, brand id, first, after): one query per distinct page request."""

    async def load(keys: Sequence[tuple]) -> list[Any]:
        groups: dict[tuple, list[uuid.UUID]] = {}
        for customer_id, *args in keys:
            groups.setdefault(tuple(args), []).append(customer_id)
        found: dict[tuple, Any] = {}
        for (brand_id, first, after), ids in groups.items():
            pages = await commerce.orders_of_customers(p, list(dict.fromkeys(ids)), brand_id=brand_id, first=first,
                                                       after=after)
            for customer_id, page in pages.items():
                found[(customer_id, brand_id, first, after)] = page
        return [found[k] for k in keys]

    return DataLoader(load_fn=load)
