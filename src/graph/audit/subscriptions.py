from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

import strawberry

from domain.audit import service
from domain.tenancy.policies import Action, authorize
from graph.audit.types import AuditEntry
from graph.core.context import Info


@strawberry.type
class AuditSubscription:
    @strawberry.subscription(description="Each new audit entry of the tenant, from any process (owners and admins).")
    async def audit_events(self, info: Info) -> AsyncGenerator[AuditEntry, None]:
        principal = info.context.principal
        authorize(principal, Action.AUDIT_READ)
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, service.TOPIC) as queue:
            while True:
                event = await queue.get()
                await info.context.recheck()
                principal = info.context.principal
                entry = await service.get_entry(principal, uuid.UUID(event["id"]))
                if entry is not None:
                    info.context.fresh_loaders()  # no cached rows carried from one event to the next
                    yield AuditEntry.from_model(entry)
