"""Batch loaders for the inbox: one query per kind of data, whatever the page size."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.dataloader import DataLoader

from domain.conversations import service
from domain.tenancy.policies import Principal
from graph.core.batch import batch_loader


def conversation_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.conversations_by_ids(p, ids))


def last_message_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.last_messages(p, ids))


def unread_loader(p: Principal) -> DataLoader[uuid.UUID, int]:
    return batch_loader(lambda ids: service.unread_counts(p, ids), default=0)


def labels_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return batch_loader(lambda ids: service.labels_of(p, ids), default=list)


def assignee_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.assignees_by_ids(p, ids))
