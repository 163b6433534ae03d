from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain.audit import service
from graph.audit.types import AuditEntry
from graph.core.connection import Connection, page_request
from graph.core.context import Info


@strawberry.type
class AuditQuery:
    @strawberry.field(description="The audit trail, newest first (owners and admins).")
    async def audit_log(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[AuditEntry]:
        page = await service.list_entries(
            info.context.principal,
            service.AuditFilter(action=action, target_type=target_type, occurred_from=from_, occurred_to=to),
            page=page_request(info, first, after, last, before),
        )
        return Connection.of(page, AuditEntry.from_model)
