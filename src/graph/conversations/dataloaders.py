"""Batch loaders for the inbox: one query per kind of data, whatever the page size."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.dataloader import DataLoader

from domain.conversations import inbox, labels
from domain.tenancy.policies import Principal
from graph.core.batch import batch_loader, page_loader


def conversation_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: inbox.conversations_by_ids(p, ids))


def last_message_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: inbox.last_messages(p, ids))


def unread_loader(p: Principal) -> DataLoader[uuid.UUID, int]:
    return batch_loader(lambda ids: inbox.unread_counts(p, ids), default=0)


def labels_loader(p: Principal) -> DataLoader[uuid.UUID, list]:
    return batch_loader(lambda ids: labels.labels_of(p, ids), default=list)


def assignee_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: inbox.assignees_by_ids(p, ids))


def messages_loader(p: Principal) -> DataLoader[tuple, Any]:
    """Keys (conversation id, page request, newest first): one query per distinct page request."""
    return page_loader(lambda ids, page, newest_first: inbox.messages_of(p, ids, page=page, newest_first=newest_first))
