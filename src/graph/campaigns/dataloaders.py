"""Batch loaders of campaigns and their stats: one query per batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from domain.campaigns import service
from domain.tenancy.policies import Principal


def campaign_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    async def load(keys: Sequence[uuid.UUID]) -> list[Any]:
        found = await service.campaigns_by_ids(p, list(keys))
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)


def stats_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    async def load(keys: Sequence[uuid.UUID]) -> list[Any]:
        found = await service.stats_by_ids(p, list(keys))
        return [found.get(k) for k in keys]

    return DataLoader(load_fn=load)
