"""Batch loaders of campaigns and their stats: one query per batch."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.dataloader import DataLoader

from domain.campaigns import service
from domain.tenancy.policies import Principal
from graph.core.batch import batch_loader


def campaign_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.campaigns_by_ids(p, ids))


def stats_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.stats_by_ids(p, ids))
