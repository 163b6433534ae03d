"""Batch loaders of segments and their members' and history's pages: one query per batch."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.dataloader import DataLoader

from domain.pagination import PageRequest
from domain.segments import membership, service, usage
from domain.tenancy.policies import Principal
from graph.core.batch import batch_loader, page_loader


def segment_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.segments_by_ids(p, ids))


def usage_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    """Where each segment is used: three queries per batch (campaigns, automations, segments)."""
    return batch_loader(lambda ids: usage.usage_of(p, ids))


def members_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (segment id, page request): one query per distinct page request."""
    return page_loader(lambda ids, page: membership.members_of(p, ids, page=page))


def history_loader(p: Principal, *, customers: DataLoader) -> DataLoader[tuple, Any]:
    """Keys (segment id, page request, selected event fields): one query per distinct page request
    (two: entries, exits), then one batch for the customers of every page when selected."""

    async def fetch(ids: list[uuid.UUID], page: PageRequest, wanted: frozenset[str]) -> dict:
        pages = await membership.history_of(p, ids, page=page)
        if "customer" in wanted:
            await customers.load_many(list({e.customer_id for page in pages.values() for e in page.items}))
        return pages

    return page_loader(fetch)
