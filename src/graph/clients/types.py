"""GraphQL types of client apps and their trusted documents."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.clients.models import TrustedManifest
from domain.clients.service import ClientAppView, client_apps_by_ids, count_client_apps
from domain.tenancy.tenants import PLANS
from graph.core.connection import Connection
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.tenancy.types import ApiKey

RatePlan = strawberry.enum(Enum("RatePlan", {p.upper(): p for p in PLANS}), name="RatePlan",
                           description="A plan whose API rate limits a client app uses instead of the tenant's.")


@strawberry.type(description="One upload of a client app's trusted documents. The newest is the app's "
                             "current manifest; its documents cannot be removed.")
class TrustedDocumentManifest:
    version: int = strawberry.field(description="1 for the app's first upload, then 2, 3, …")
    document_ids: list[str] = strawberry.field(description="The documents it listed, as `sha256:<hex>`.")
    uploaded_by: str | None
    created_at: datetime

    @strawberry.field
    def document_count(self) -> int:
        return len(self.document_ids)

    @classmethod
    def from_model(cls, m: TrustedManifest) -> TrustedDocumentManifest:
        return cls(version=m.version, document_ids=[f"sha256:{d}" for d in m.document_ids],
                   uploaded_by=m.uploaded_by, created_at=m.created_at)


@strawberry.type(description="A partner integration or one of the tenant's own apps: the API keys that belong "
                             "to it, whether they run trusted documents only, its rate plan and its "
                             "trusted documents (owners and admins).")
class ClientApp(relay.Node):
    id: relay.NodeID[str]
    name: str
    persisted_only: bool = strawberry.field(
        description="Its keys run trusted documents only (by documentId or extensions.persistedQuery); a "
                    "document sent in full is refused with PERSISTED_QUERY_ID_REQUIRED.")
    rate_plan: RatePlan | None = strawberry.field(description="Null: the tenant's plan.")
    api_keys: list[ApiKey] = strawberry.field(description="The API keys that belong to the app, oldest first.")
    current_manifest: TrustedDocumentManifest | None
    document_count: int = strawberry.field(
        description="Trusted documents the app holds: every one uploaded and not removed; its keys may run any.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, v: ClientAppView) -> ClientApp:
        a = v.app
        return cls(id=str(a.id), name=a.name, persisted_only=a.persisted_only,
                   rate_plan=RatePlan(a.rate_plan) if a.rate_plan else None,
                   api_keys=[ApiKey.from_model(k) for k in v.api_keys],
                   current_manifest=TrustedDocumentManifest.from_model(v.manifest) if v.manifest else None,
                   document_count=v.document_count, created_at=a.created_at, updated_at=a.updated_at)

    resolve_nodes = node_resolver(lambda info, keys: client_apps_by_ids(info.context.principal, keys))


@strawberry.type(description="A page of client apps, newest first.")
class ClientAppConnection(Connection[ClientApp]):
    @strawberry.field(description="Every client app of the tenant.")
    async def total_count(self, info: Info) -> int:
        return await count_client_apps(info.context.principal)
