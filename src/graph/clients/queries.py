"""Queries of client apps (owners and admins)."""

from __future__ import annotations

import strawberry
from strawberry import relay

from domain.clients import service
from domain.errors import DomainError
from graph.clients.types import ClientApp, ClientAppConnection
from graph.core import ids
from graph.core.connection import page_request
from graph.core.context import Info


@strawberry.type
class ClientAppQuery:
    @strawberry.field(description="The tenant's client apps, newest first (owners and admins).")
    async def client_apps(self, info: Info, first: int | None = 20, after: str | None = None,
                          last: int | None = None, before: str | None = None) -> ClientAppConnection:
        page = await service.list_client_apps(info.context.principal, page_request(info, first, after, last, before))
        return ClientAppConnection.of(page, ClientApp.from_model)

    @strawberry.field(description="One client app; null when it does not exist (owners and admins).")
    async def client_app(self, info: Info, id: relay.GlobalID) -> ClientApp | None:
        try:
            app_id = ids.decode(id, "ClientApp")
        except DomainError:
            return None
        found = await service.get_client_app(info.context.principal, app_id)
        return ClientApp.from_model(found) if found else None
