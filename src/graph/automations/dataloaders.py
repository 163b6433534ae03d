"""Page loaders of automations' runs and executions: one query per distinct page request."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.dataloader import DataLoader

from domain.automations import service
from domain.pagination import PageRequest
from domain.tenancy.policies import Principal
from graph.core.batch import page_loader


def executions_loader(p: Principal, *, customers: DataLoader) -> DataLoader[tuple, Any]:
    """Keys (automation id, page request, selected execution fields): one query per distinct page
    request, then one batch for the customers of every page when selected."""

    async def fetch(ids: list[uuid.UUID], page: PageRequest, wanted: frozenset[str]) -> dict:
        pages = await service.executions_of(p, ids, page=page)
        if "customer" in wanted:
            await customers.load_many(list({e.customer_id for page in pages.values() for e, _ in page.items}))
        return pages

    return page_loader(fetch)


def runs_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (automation id, page request): one query per distinct page request."""
    return page_loader(lambda ids, page: service.runs_of(p, ids, page=page))
