"""Batch loaders for the inbox: one query per kind of data, whatever the page size."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from strawberry.dataloader import DataLoader

from domain.conversations import service
from domain.tenancy.policies import Principal


def _loader(fetch: Callable[[list[Any]], Awaitable[dict[Any, Any]]], default: Any = None) -> DataLoader:
    async def load(keys: Sequence[Any]) -> list[Any]:
        found = await fetch(list(keys))
        return [found.get(k, default() if callable(default) else default) for k in keys]

    return DataLoader(load_fn=load)


def conversation_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return _loader(lambda ids: service.conversations_by_ids(p, ids))


def last_message_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return _loader(lambda ids: service.last_messages(p, ids))


def unread_loader(p: Principal) -> DataLoader[uuid.UUID, int]:
    return _loader(lambda ids: service.unread_counts(p, ids), default=0)


def labels_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return _loader(lambda ids: service.labels_of(p, ids), default=list)


def assignee_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return _loader(lambda ids: service.assignees_by_ids(p, ids))
