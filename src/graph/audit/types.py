from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.audit.models import AuditEntry as AuditEntryModel
from domain.audit.service import get_entry
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.tenancy.types import Brand, PrincipalKind, brand_of


async def _entries_by_id(info: Info, entry_ids: list[uuid.UUID]) -> dict:
    found = {}
    for entry_id in entry_ids:
        entry = await get_entry(info.context.principal, entry_id)
        if entry:
            found[entry_id] = entry
    return found


@strawberry.type(description="Who did what to which thing, and what changed.")
class AuditEntry(relay.Node):
    id: relay.NodeID[str]
    occurred_at: datetime
    principal_type: str = strawberry.field(description="user, api_key or system.")
    principal_id: str
    principal_label: str | None
    action: str
    target_type: str
    target_id: str | None
    summary: JSON = strawberry.field(description="Before/after of the fields that changed.")
    request_id: str | None
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    def from_model(cls, e: AuditEntryModel) -> AuditEntry:
        return cls(
            id=str(e.id), occurred_at=e.occurred_at, principal_type=e.principal_type,
            principal_id=e.principal_id, principal_label=e.principal_label, action=e.action,
            target_type=e.target_type, target_id=e.target_id, summary=e.summary,
            request_id=e.request_id, brand_id=e.brand_id,
        )

    resolve_nodes = node_resolver(_entries_by_id)


__all__ = ["AuditEntry", "PrincipalKind"]
