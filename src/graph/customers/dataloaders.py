"""Batch loaders for what hangs off a customer: one query per batch, whatever the list size."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from typing import Any

from strawberry.dataloader import DataLoader

from domain.commerce import service as commerce
from domain.customers import consent, notes, service, tags
from domain.pagination import PageRequest
from domain.profiles import service as profiles
from domain.profiles.models import ALL_BRANDS
from domain.tenancy import scoping
from domain.tenancy.policies import Principal
from domain.timeline import service as timeline
from graph.core.batch import batch_loader, page_loader


def customer_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.customers_by_ids(p, ids))


def tags_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return batch_loader(lambda ids: tags.tags_by_customer(p, ids), list)


def consents_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return batch_loader(lambda ids: consent.consents_by_customer(p, ids), list)


def notes_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (customer id, page request): one query per distinct page request, and one count."""
    return page_loader(lambda ids, page: notes.notes_of(p, ids, page=page))


def brand_links_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return batch_loader(lambda ids: service.brand_links(p, ids), list)


def profile_loader(p: Principal) -> DataLoader[tuple[uuid.UUID, uuid.UUID | None], Any]:
    async def fetch(keys: list[tuple[uuid.UUID, uuid.UUID | None]]) -> dict:
        found = await profiles.profiles_for(p, keys)
        return {(c, b): found.get((c, b or ALL_BRANDS)) for c, b in keys}

    return batch_loader(fetch)


def last_order_loader(p: Principal) -> DataLoader[tuple[uuid.UUID, uuid.UUID | None], Any]:
    return batch_loader(lambda keys: commerce.last_orders(p, keys))


def order_items_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return batch_loader(lambda ids: commerce.items_by_order(p, ids), list)


def timeline_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (customer id, filter, page request): one query per distinct page request."""
    return page_loader(lambda ids, flt, page: timeline.pages(
        p.tenant_id, ids, flt, visible_brands=scoping.granted_brands(p), page=page))


def orders_loader(p: Principal, *, items: DataLoader) -> DataLoader[tuple, Any]:
    """Keys (customer id, brand id, page request, selected order fields): one query per distinct
    page request, then one batch for the items of every page's orders when selected."""

    async def fetch(ids: list[uuid.UUID], brand_id: uuid.UUID | None, page: PageRequest,
                    wanted: frozenset[str]) -> dict:
        pages = await commerce.orders_of_customers(p, ids, brand_id=brand_id, page=page)
        if "items" in wanted:
            await items.load_many([o.id for page in pages.values() for o in page.items])
        return pages

    return page_loader(fetch)


# the lists keyed by customer id alone that a page of customers loads when its nodes select them
BY_CUSTOMER = {"tags": "customer_tags", "consents": "customer_consents", "brands": "customer_brands"}


async def prefetch(loaders: Any, customer_ids: list[uuid.UUID], wanted: Collection[str],
                   keyed: dict[str, list[tuple]]) -> None:
    """Load what a page's customers select, one batch per loader: the lists of ``BY_CUSTOMER``
    named in ``wanted``, and ``keyed`` (loader name → keys: profiles, last orders)."""
    loads = [getattr(loaders, BY_CUSTOMER[name]).load_many(customer_ids) for name in wanted if name in BY_CUSTOMER]
    loads += [getattr(loaders, name).load_many(keys) for name, keys in keyed.items() if keys]
    await asyncio.gather(*loads)
