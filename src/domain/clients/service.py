"""Client apps: a partner's integration or the tenant's own SPA, with the API keys that belong to
it, whether it is persisted-only and its rate plan; and its trusted documents, uploaded as
manifests (owners and admins, ``client_app:manage``; tenant-wide).

A key belongs to at most one app (``api_keys.client_app_id``). What authentication reads of an
app (``ClientAppRef``: persisted-only, rate plan) is cached with the key's principal, so every
change to an app or to which keys belong to it calls ``principal_cache.invalidate``.

Trusted documents: each upload of a manifest is a new version (``trusted_manifests``) listing
its document ids; the documents (``trusted_documents``, keyed by their SHA-256) stay until
removed, and an app's key may run any of them by id. A document the current manifest (the
newest) lists cannot be removed.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.clients.manifest import document_id, read_manifest
from domain.clients.models import ClientApp, TrustedDocument, TrustedManifest
from domain.config import get_settings
from domain.errors import ErrorCode, NotFound, Validator
from domain.pagination import Page, PageRequest, encode_cursor
from domain.platform.db import tenant_session
from domain.tenancy import principal_cache, validation
from domain.tenancy.models import ApiKey
from domain.tenancy.policies import Action, Principal, authorize
from domain.tenancy.tenants import PLANS


@dataclass
class ClientAppView:
    """An app with what its GraphQL type shows, read for a whole page at once."""

    app: ClientApp
    api_keys: list[ApiKey] = field(default_factory=list)
    manifest: TrustedManifest | None = None
    document_count: int = 0


def _rate_plan(v: Validator, value: str | None) -> str | None:
    if value is not None and value not in PLANS:
        v.add("ratePlan", f"ratePlan must be one of {', '.join(PLANS)} (or null: the tenant's plan)")
    return value


async def _load(s: AsyncSession, principal: Principal, app_id: uuid.UUID, *, field_name: str = "id",
                lock: bool = False) -> ClientApp:
    stmt = select(ClientApp).where(ClientApp.tenant_id == principal.tenant_id, ClientApp.id == app_id)
    found = await s.scalar(stmt.with_for_update() if lock else stmt)
    if found is None:
        raise NotFound("client app not found", field=field_name)
    return found


async def _views(s: AsyncSession, tenant_id: uuid.UUID, apps: list[ClientApp]) -> list[ClientAppView]:
    """The apps with their keys, current manifests and document counts: three statements for any
    number of apps."""
    views = {a.id: ClientAppView(a) for a in apps}
    if not views:
        return []
    ids = list(views)
    for key in await s.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.client_app_id.in_(ids))
                               .order_by(ApiKey.created_at, ApiKey.id)):
        views[key.client_app_id].api_keys.append(key)
    newest = (select(TrustedManifest.client_app_id, func.max(TrustedManifest.version))
              .where(TrustedManifest.tenant_id == tenant_id, TrustedManifest.client_app_id.in_(ids))
              .group_by(TrustedManifest.client_app_id))
    for m in await s.scalars(select(TrustedManifest).where(
            TrustedManifest.tenant_id == tenant_id,
            tuple_(TrustedManifest.client_app_id, TrustedManifest.version).in_(newest))):
        views[m.client_app_id].manifest = m
    counts = await s.execute(select(TrustedDocument.client_app_id, func.count())
                             .where(TrustedDocument.tenant_id == tenant_id, TrustedDocument.client_app_id.in_(ids))
                             .group_by(TrustedDocument.client_app_id))
    for app_id, n in counts:
        views[app_id].document_count = n
    return [views[a.id] for a in apps]


async def _assign(s: AsyncSession, principal: Principal, app_id: uuid.UUID | None, key_ids: list[uuid.UUID],
                  *, replace: bool) -> list[uuid.UUID]:
    """Make ``key_ids`` (the tenant's live keys) belong to the app (None: to no app); with
    ``replace``, the app's other keys stop belonging to it. Returns the keys detached."""
    v = Validator()
    found = set(await s.scalars(select(ApiKey.id).where(
        ApiKey.tenant_id == principal.tenant_id, ApiKey.id.in_(set(key_ids)), ApiKey.revoked_at.is_(None))))
    for i, key_id in enumerate(key_ids):
        if key_id not in found:
            v.add(f"apiKeyIds[{i}]", "API key not found (or revoked)", ErrorCode.NOT_FOUND)
    v.check()
    detached: list[uuid.UUID] = []
    if replace and app_id is not None:
        detached = list(await s.scalars(
            update(ApiKey).where(ApiKey.tenant_id == principal.tenant_id, ApiKey.client_app_id == app_id,
                                 ApiKey.id.not_in(set(key_ids) or {uuid.UUID(int=0)}))
            .values(client_app_id=None).returning(ApiKey.id)))
    if key_ids:
        await s.execute(update(ApiKey).where(ApiKey.tenant_id == principal.tenant_id, ApiKey.id.in_(set(key_ids)))
                        .values(client_app_id=app_id))
    principal_cache.invalidate(s, principal.tenant_id)
    return detached


async def create_client_app(principal: Principal, name: str, *, persisted_only: bool = False,
                            rate_plan: str | None = None, api_key_ids: list[uuid.UUID] | None = None,
                            ) -> ClientAppView:
    authorize(principal, Action.CLIENT_APP_MANAGE)
    v = Validator()
    name = validation.text(v, "name", name, required=True, max_len=200)
    rate_plan = _rate_plan(v, rate_plan)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        app = ClientApp(id=uuid.uuid4(), tenant_id=principal.tenant_id, name=name, persisted_only=persisted_only,
                        rate_plan=rate_plan)
        s.add(app)
        await s.flush()
        if api_key_ids:
            await _assign(s, principal, app.id, api_key_ids, replace=False)
        audit.record(s, principal, "client_app.create", "ClientApp", app.id, summary={"after": {
            "name": name, "persistedOnly": persisted_only, "ratePlan": rate_plan,
            "apiKeyIds": [str(k) for k in api_key_ids or []]}})
        (view,) = await _views(s, principal.tenant_id, [app])
    return view


async def update_client_app(principal: Principal, app_id: uuid.UUID, changes: dict[str, Any]) -> ClientAppView:
    """``changes``: any of name, persisted_only, rate_plan (None: the tenant's plan) and
    api_key_ids (the app's keys from now on)."""
    authorize(principal, Action.CLIENT_APP_MANAGE)
    v = Validator()
    if "name" in changes:
        changes["name"] = validation.text(v, "name", changes["name"], required=True, max_len=200)
    if "rate_plan" in changes:
        _rate_plan(v, changes["rate_plan"])
    if "persisted_only" in changes and changes["persisted_only"] is None:
        v.add("persistedOnly", "persistedOnly is true or false", ErrorCode.REQUIRED)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        app = await _load(s, principal, app_id, lock=True)
        before = {"name": app.name, "persistedOnly": app.persisted_only, "ratePlan": app.rate_plan}
        for key, column in (("name", "name"), ("persisted_only", "persisted_only"), ("rate_plan", "rate_plan")):
            if key in changes:
                setattr(app, column, changes[key])
        after = {"name": app.name, "persistedOnly": app.persisted_only, "ratePlan": app.rate_plan}
        if "api_key_ids" in changes:
            key_ids = list(changes["api_key_ids"] or [])
            detached = await _assign(s, principal, app.id, key_ids, replace=True)
            after["apiKeyIds"] = [str(k) for k in key_ids]
            before["detachedApiKeyIds"] = [str(k) for k in detached]
        await s.flush()
        principal_cache.invalidate(s, principal.tenant_id)
        audit.record(s, principal, "client_app.update", "ClientApp", app.id,
                     summary={"before": before, "after": after})
        (view,) = await _views(s, principal.tenant_id, [app])
    return view


async def delete_client_app(principal: Principal, app_id: uuid.UUID) -> uuid.UUID:
    """Removes the app, its manifests and documents; its keys stay, belonging to no app."""
    authorize(principal, Action.CLIENT_APP_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        app = await _load(s, principal, app_id, lock=True)
        detached = list(await s.scalars(update(ApiKey).where(
            ApiKey.tenant_id == principal.tenant_id, ApiKey.client_app_id == app.id)
            .values(client_app_id=None).returning(ApiKey.id)))
        await s.delete(app)
        principal_cache.invalidate(s, principal.tenant_id)
        audit.record(s, principal, "client_app.delete", "ClientApp", app.id,
                     summary={"name": app.name, "detachedApiKeyIds": [str(k) for k in detached]})
    return app_id


async def assign_api_keys(principal: Principal, app_id: uuid.UUID | None, key_ids: list[uuid.UUID]
                          ) -> ClientAppView | None:
    """The keys belong to the app from now on (leaving any app they belonged to); with ``app_id``
    None they belong to no app."""
    authorize(principal, Action.CLIENT_APP_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        app = await _load(s, principal, app_id, field_name="clientAppId", lock=True) if app_id else None
        await _assign(s, principal, app_id, key_ids, replace=False)
        audit.record(s, principal, "client_app.assign_api_keys", "ClientApp", app_id,
                     summary={"apiKeyIds": [str(k) for k in key_ids], "clientAppId": str(app_id) if app_id else None})
        if app is None:
            return None
        (view,) = await _views(s, principal.tenant_id, [app])
    return view


async def list_client_apps(principal: Principal, page: PageRequest) -> Page[ClientAppView]:
    """Newest first."""
    authorize(principal, Action.CLIENT_APP_MANAGE)
    after, order = page.keyset([(ClientApp.created_at, True), (ClientApp.id, True)], datetime, uuid.UUID)
    stmt = select(ClientApp).where(ClientApp.tenant_id == principal.tenant_id, *after).order_by(*order)
    async with tenant_session(principal.tenant_id) as s:
        apps = page.page(list((await s.scalars(stmt.limit(page.size + 1))).all()),
                         lambda a: encode_cursor(a.created_at, a.id))
        views = await _views(s, principal.tenant_id, apps.items)
    return Page(items=views, cursors=apps.cursors, has_next=apps.has_next, has_previous=apps.has_previous)


async def count_client_apps(principal: Principal) -> int:
    authorize(principal, Action.CLIENT_APP_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        return await s.scalar(select(func.count()).select_from(ClientApp).where(
            ClientApp.tenant_id == principal.tenant_id)) or 0


async def get_client_app(principal: Principal, app_id: uuid.UUID) -> ClientAppView | None:
    authorize(principal, Action.CLIENT_APP_MANAGE)
    return (await client_apps_by_ids(principal, [app_id])).get(app_id)


async def client_apps_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, ClientAppView]:
    """For node lookups: the tenant's apps among ``ids``; nothing for a principal without the action."""
    if principal.invited or Action.CLIENT_APP_MANAGE not in principal.actions or not ids:
        return {}
    async with tenant_session(principal.tenant_id) as s:
        apps = list(await s.scalars(select(ClientApp).where(ClientApp.tenant_id == principal.tenant_id,
                                                            ClientApp.id.in_(set(ids)))))
        return {v.app.id: v for v in await _views(s, principal.tenant_id, apps)}


# --- trusted documents --------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    manifest: TrustedManifest
    added: int  # documents the app did not hold before


async def upload_manifest(principal: Principal, app_id: uuid.UUID, manifest: Any,
                          check: Callable[[Any], str | None] | None = None) -> Upload:
    """A new version of the app's manifest: every entry's hash checked first (any mismatch refuses
    the whole upload, naming the entry), and each document with ``check`` (the API's validation
    against its schema), then its documents stored and the version written."""
    authorize(principal, Action.CLIENT_APP_MANAGE)
    entries = read_manifest(manifest, check)
    async with tenant_session(principal.tenant_id) as s:
        app = await _load(s, principal, app_id, field_name="clientAppId", lock=True)  # versions one at a time
        rows = [{"tenant_id": app.tenant_id, "client_app_id": app.id, "id": e.id, "body": e.body, "name": e.name,
                 "operation_type": e.operation_type} for e in entries]
        added = 0
        for start in range(0, len(rows), 500):
            result = await s.execute(insert(TrustedDocument).values(rows[start:start + 500])
                                     .on_conflict_do_nothing().returning(TrustedDocument.id))
            added += len(result.all())
        version = (await s.scalar(select(func.max(TrustedManifest.version)).where(
            TrustedManifest.tenant_id == app.tenant_id, TrustedManifest.client_app_id == app.id)) or 0) + 1
        row = TrustedManifest(id=uuid.uuid4(), tenant_id=app.tenant_id, client_app_id=app.id, version=version,
                              document_ids=[e.id for e in entries], uploaded_by=principal.label)
        s.add(row)
        await s.flush()
        audit.record(s, principal, "client_app.upload_manifest", "ClientApp", app.id,
                     summary={"version": version, "documents": len(entries), "added": added})
    return Upload(row, added)


async def remove_documents(principal: Principal, app_id: uuid.UUID, raw_ids: list[str]) -> list[str]:
    """Removes documents of the app; one the current manifest lists is refused (upload a manifest
    without it first), and then nothing is removed."""
    authorize(principal, Action.CLIENT_APP_MANAGE)
    v = Validator()
    doc_ids = []
    for i, raw in enumerate(raw_ids):
        doc_id = document_id(raw.strip())
        if doc_id is None:
            v.add(f"documentIds[{i}]", "a document id reads sha256:<64 lower-case hex digits>")
        doc_ids.append(doc_id)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        app = await _load(s, principal, app_id, field_name="clientAppId", lock=True)
        current = await s.scalar(select(TrustedManifest.document_ids).where(
            TrustedManifest.tenant_id == app.tenant_id, TrustedManifest.client_app_id == app.id)
            .order_by(TrustedManifest.version.desc()).limit(1)) or []
        held = set(await s.scalars(select(TrustedDocument.id).where(
            TrustedDocument.tenant_id == app.tenant_id, TrustedDocument.client_app_id == app.id,
            TrustedDocument.id.in_(set(doc_ids)))))
        listed = set(current)
        for i, doc_id in enumerate(doc_ids):
            if doc_id not in held:
                v.add(f"documentIds[{i}]", f"the app holds no document sha256:{doc_id}", ErrorCode.NOT_FOUND)
            elif doc_id in listed:
                v.add(f"documentIds[{i}]", f"sha256:{doc_id} is listed by the current manifest; upload a "
                      "manifest without it first", ErrorCode.INVALID_STATE)
        v.check()
        await s.execute(delete(TrustedDocument).where(
            TrustedDocument.tenant_id == app.tenant_id, TrustedDocument.client_app_id == app.id,
            TrustedDocument.id.in_(set(doc_ids))))
        principal_cache.invalidate(s, principal.tenant_id)  # processes keep documents they found
        audit.record(s, principal, "client_app.remove_documents", "ClientApp", app.id,
                     summary={"documentIds": [f"sha256:{d}" for d in doc_ids]})
    return [f"sha256:{d}" for d in dict.fromkeys(doc_ids)]


# Documents found, kept per process like the authentication cache and dropped with it: an entry
# answers only while the cache is usable (its listener in step with Redis), within
# AUTH_CACHE_SECONDS, and while no invalidation (of any tenant) has come since it was read.
# Removing a document or an app invalidates, so it stops running at once everywhere.
_TRUSTED_MAX = 1024
_trusted: OrderedDict[tuple[uuid.UUID, uuid.UUID, str], tuple[int, float, str]] = OrderedDict()


async def trusted_document(principal: Principal, doc_id: str) -> str | None:
    """The text of a document the principal's client app trusts (the request path: an API key of
    the app names it by id); None when it trusts no such document."""
    if principal.client_app is None:
        return None
    cache = principal_cache.cache
    key = (principal.tenant_id, principal.client_app.id, doc_id)
    found = _trusted.get(key)
    if found is not None and found[0] == cache.generation and found[1] > time.monotonic() and cache.usable():
        _trusted.move_to_end(key)
        return found[2]
    generation = cache.generation
    async with tenant_session(principal.tenant_id) as s:
        text = await s.scalar(select(TrustedDocument.body).where(
            TrustedDocument.tenant_id == principal.tenant_id,
            TrustedDocument.client_app_id == principal.client_app.id, TrustedDocument.id == doc_id))
    if text is not None and generation == cache.generation and cache.usable():
        _trusted[key] = (generation, time.monotonic() + get_settings().auth_cache_seconds, text)
        _trusted.move_to_end(key)
        while len(_trusted) > _TRUSTED_MAX:
            _trusted.popitem(last=False)
    return text

