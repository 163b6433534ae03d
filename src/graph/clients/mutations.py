"""Client app mutations: each translates its input, calls one domain service, and returns a
payload with the result or typed errors."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import DocumentNode, validate
from strawberry import UNSET
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.clients import service
from domain.config import get_settings
from graph.clients.types import ClientApp, RatePlan, TrustedDocumentManifest
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.core.inputs import given


@strawberry.input
class CreateClientAppInput:
    name: str
    persisted_only: bool = False
    rate_plan: RatePlan | None = strawberry.field(default=None, description="Omit or null: the tenant's plan.")
    api_key_ids: list[GlobalID] | None = strawberry.field(
        default=UNSET, description="Keys that belong to the app from now on (leaving any other app).")


@strawberry.input
class UpdateClientAppInput:
    id: GlobalID
    name: str | None = UNSET
    persisted_only: bool | None = UNSET
    rate_plan: RatePlan | None = strawberry.field(default=UNSET, description="Null: the tenant's plan.")
    api_key_ids: list[GlobalID] | None = strawberry.field(
        default=UNSET, description="The app's keys from now on: those left out stop belonging to it.")


@strawberry.input
class DeleteClientAppInput:
    id: GlobalID


@strawberry.input
class AssignApiKeysInput:
    client_app_id: GlobalID | None = strawberry.field(description="Null: the keys belong to no app.")
    api_key_ids: list[GlobalID]


@strawberry.input
class UploadTrustedDocumentsInput:
    client_app_id: GlobalID
    manifest: JSON = strawberry.field(
        description='`{"<sha256 hex>": "<document>", …}` or Apollo\'s persisted query manifest '
                    '(`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": '
                    '[{"id", "body", "name", "type"}]}`). Each id must be the SHA-256 of its document\'s '
                    "exact UTF-8 text; one that is not refuses the whole upload.")


@strawberry.input
class RemoveTrustedDocumentsInput:
    client_app_id: GlobalID
    document_ids: list[str] = strawberry.field(description="`sha256:<hex>` each.")


@strawberry.type
class ClientAppPayload:
    client_app: ClientApp | None = None
    errors: list[UserError]


@strawberry.type
class DeleteClientAppPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.type
class UploadTrustedDocumentsPayload:
    manifest: TrustedDocumentManifest | None = None
    added: int | None = strawberry.field(default=None, description="Documents the app did not hold before.")
    errors: list[UserError]


@strawberry.type
class RemoveTrustedDocumentsPayload:
    removed_ids: list[str] | None = None
    errors: list[UserError]


def _keys(given_ids: Any) -> list | None:
    return None if given_ids is UNSET or given_ids is None else ids.decode_many(given_ids, "ApiKey", "apiKeyIds")


def _validation(info: Info):
    """Why the schema refuses a document (its first validation error), or None."""
    schema = info.schema._schema
    hide = not get_settings().introspection  # no "Did you mean …?" when introspection is off

    def check(document: DocumentNode) -> str | None:
        errors = validate(schema, document, hide_suggestions=hide)
        return errors[0].message if errors else None

    return check


def _app(view: Any) -> dict[str, Any]:
    return {"client_app": ClientApp.from_model(view) if view is not None else None}


@strawberry.type
class ClientAppMutation:
    @strawberry.mutation(description="Register a client app (owners and admins).")
    async def create_client_app(self, info: Info, input: CreateClientAppInput) -> ClientAppPayload:
        async def run():
            return await service.create_client_app(
                info.context.principal, input.name, persisted_only=input.persisted_only,
                rate_plan=input.rate_plan.value if input.rate_plan else None, api_key_ids=_keys(input.api_key_ids))

        return await payload(ClientAppPayload, run, _app)

    @strawberry.mutation(description="Change a client app; the change reaches its keys' next requests.")
    async def update_client_app(self, info: Info, input: UpdateClientAppInput) -> ClientAppPayload:
        async def run():
            changes = given(name=input.name, persisted_only=input.persisted_only)
            if input.rate_plan is not UNSET:
                changes["rate_plan"] = input.rate_plan.value if input.rate_plan else None
            if input.api_key_ids is not UNSET:
                changes["api_key_ids"] = _keys(input.api_key_ids) or []
            return await service.update_client_app(info.context.principal, ids.decode(input.id, "ClientApp"), changes)

        return await payload(ClientAppPayload, run, _app)

    @strawberry.mutation(description="Remove a client app with its trusted documents; its keys stay, in no app.")
    async def delete_client_app(self, info: Info, input: DeleteClientAppInput) -> DeleteClientAppPayload:
        async def run():
            return await service.delete_client_app(info.context.principal, ids.decode(input.id, "ClientApp"))

        return await payload(DeleteClientAppPayload, run,
                             lambda app_id: {"deleted_id": strawberry.ID(str(ids.encode("ClientApp", app_id)))})

    @strawberry.mutation(description="The keys belong to the client app from now on (or, with a null "
                                     "clientAppId, to none).")
    async def assign_api_keys_to_client_app(self, info: Info, input: AssignApiKeysInput) -> ClientAppPayload:
        async def run():
            app_id = ids.optional(input.client_app_id, "ClientApp", "clientAppId")
            return await service.assign_api_keys(info.context.principal, app_id,
                                                 ids.decode_many(input.api_key_ids, "ApiKey", "apiKeyIds") or [])

        return await payload(ClientAppPayload, run, _app)

    @strawberry.mutation(description="Upload a new version of a client app's trusted documents (a manifest).")
    async def upload_trusted_documents(self, info: Info, input: UploadTrustedDocumentsInput
                                       ) -> UploadTrustedDocumentsPayload:
        async def run():
            return await service.upload_manifest(info.context.principal,
                                                 ids.decode(input.client_app_id, "ClientApp", "clientAppId"),
                                                 input.manifest, _validation(info))

        return await payload(UploadTrustedDocumentsPayload, run,
                             lambda up: {"manifest": TrustedDocumentManifest.from_model(up.manifest),
                                         "added": up.added})

    @strawberry.mutation(description="Remove trusted documents of a client app; one its current manifest "
                                     "lists is refused (INVALID_STATE), and then nothing is removed.")
    async def remove_trusted_documents(self, info: Info, input: RemoveTrustedDocumentsInput
                                       ) -> RemoveTrustedDocumentsPayload:
        async def run():
            return await service.remove_documents(info.context.principal,
                                                  ids.decode(input.client_app_id, "ClientApp", "clientAppId"),
                                                  list(input.document_ids))

        return await payload(RemoveTrustedDocumentsPayload, run, lambda removed: {"removed_ids": removed})
