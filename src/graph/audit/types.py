from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.audit.models import AuditEntry as AuditEntryModel
from domain.audit.service import entries_by_ids
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.tenancy.types import Brand, PrincipalKind, brand_of


class _AuditPrincipalType(str, Enum):
    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"


AuditPrincipalType = strawberry.enum(_AuditPrincipalType, name="AuditPrincipalType",
                                     description="Who acted: a user, an API key, or the system (jobs, schedules).")

_SNAKE = re.compile(r"_([a-z0-9])")


def camel_keys(value: Any) -> Any:
    """A stored summary with its keys in camelCase (``is_active`` -> ``isActive``), at every depth.
    Summaries are stored as written (snake_case); the API converts them when it reads them, so old
    and new rows read the same and nothing is migrated."""
    if isinstance(value, dict):
        return {(_SNAKE.sub(lambda m: m.group(1).upper(), k) if isinstance(k, str) else k): camel_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


async def _entries_by_id(info: Info, entry_ids: list[uuid.UUID]) -> dict:
    return await entries_by_ids(info.context.principal, entry_ids)


@strawberry.type(description="Who did what to which thing, and what changed.")
class AuditEntry(relay.Node):
    id: relay.NodeID[str]
    occurred_at: datetime
    principal_type: AuditPrincipalType
    principal_id: str
    principal_label: str | None
    action: str
    target_type: str
    target_id: str | None
    summary: JSON = strawberry.field(description="Before/after of the fields that changed; keys in camelCase.")
    request_id: str | None
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    def from_model(cls, e: AuditEntryModel) -> AuditEntry:
        return cls(
            id=str(e.id), occurred_at=e.occurred_at, principal_type=AuditPrincipalType(e.principal_type),
            principal_id=e.principal_id, principal_label=e.principal_label, action=e.action,
            target_type=e.target_type, target_id=e.target_id, summary=camel_keys(e.summary),
            request_id=e.request_id, brand_id=e.brand_id,
        )

    resolve_nodes = node_resolver(_entries_by_id)


__all__ = ["AuditEntry", "PrincipalKind"]
