"""API keys for integrations.

A key reads ``bg_<key id><tenant id><secret>`` (base64url): the tenant and key ids inside it
let the server open the right tenant transaction before looking the key up, so no lookup ever
crosses tenants. Only the SHA-256 of the whole key is stored; the key is shown once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text

from domain.audit import service as audit
from domain.clients.models import ClientApp
from domain.errors import InvalidState, NotFound, Unauthenticated, Validator
from domain.platform.db import tenant_session
from domain.tenancy import principal_cache, scoping, validation
from domain.tenancy.members import parse_role
from domain.tenancy.models import ApiKey, Brand
from domain.tenancy.policies import (
    Action,
    ClientAppRef,
    Principal,
    PrincipalKind,
    Role,
    authorize,
    authorize_role_change,
)

KEY_PREFIX = "bg_"
_SECRET_BYTES = 24


@dataclass(frozen=True)
class ParsedKey:
    key_id: uuid.UUID
    tenant_id: uuid.UUID


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def mint_secret(key_id: uuid.UUID, tenant_id: uuid.UUID) -> str:
    return KEY_PREFIX + _b64(key_id.bytes + tenant_id.bytes + secrets.token_bytes(_SECRET_BYTES))


def parse_secret(secret: str) -> ParsedKey:
    if not looks_like_api_key(secret):
        raise Unauthenticated("malformed API key")
    body = secret[len(KEY_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError):
        raise Unauthenticated("malformed API key") from None
    if len(raw) != 32 + _SECRET_BYTES:
        raise Unauthenticated("malformed API key")
    return ParsedKey(key_id=uuid.UUID(bytes=raw[:16]), tenant_id=uuid.UUID(bytes=raw[16:32]))


def visible_prefix(secret: str) -> str:
    return secret[: len(KEY_PREFIX) + 8]


async def create_api_key(
    principal: Principal | None,
    name: str,
    role: str,
    *,
    brand_ids: list[uuid.UUID] | None = None,
    tenant_id: uuid.UUID | None = None,
    client_app_id: uuid.UUID | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (returned once, never stored). ``principal`` None is the
    operator path (CLI) for ``tenant_id``. ``client_app_id``: the client app it belongs to
    (managing apps is ``client_app:manage``)."""
    v = Validator()
    name = validation.text(v, "name", name, required=True, max_len=200)
    v.check()
    key_role = parse_role(role)
    if key_role is Role.OWNER:
        raise InvalidState("API keys cannot hold the owner role", field="role")
    if principal is not None:
        authorize(principal, Action.API_KEY_MANAGE)
        authorize_role_change(principal, None, key_role)
        tenant_id = principal.tenant_id
    assert tenant_id is not None
    key_id = uuid.uuid4()
    secret = mint_secret(key_id, tenant_id)
    async with tenant_session(tenant_id) as s:
        if brand_ids is not None:
            known = set(await s.scalars(select(Brand.id).where(Brand.tenant_id == tenant_id, Brand.id.in_(brand_ids))))
            for i, brand_id in enumerate(brand_ids):
                if brand_id not in known or (principal and not scoping.may_use_brand(principal, brand_id)):
                    raise NotFound("brand not found", field=f"brandIds[{i}]")
        elif principal is not None and (grants := scoping.granted_brands(principal)) is not None:
            brand_ids = sorted(grants)  # a key never sees more than its maker
        if client_app_id is not None:
            if principal is not None:
                authorize(principal, Action.CLIENT_APP_MANAGE)
            if await s.scalar(select(ClientApp.id).where(ClientApp.tenant_id == tenant_id,
                                                         ClientApp.id == client_app_id)) is None:
                raise NotFound("client app not found", field="clientAppId")
        key = ApiKey(
            id=key_id,
            tenant_id=tenant_id,
            name=name,
            prefix=visible_prefix(secret),
            secret_hash=hash_secret(secret),
            role=key_role.value,
            brand_ids=sorted(set(brand_ids)) if brand_ids is not None else None,
            created_by=principal.label if principal else "operator",
            client_app_id=client_app_id,
        )
        s.add(key)
        await s.flush()
        await s.refresh(key)
        audit.record(
            s, principal, "api_key.create", "ApiKey", key.id, tenant_id=tenant_id,
            summary={"after": {"name": name, "role": key.role, "prefix": key.prefix,
                               "brand_ids": key.brand_ids,
                               **({"client_app_id": str(client_app_id)} if client_app_id else {})}},
        )
    return key, secret


async def revoke_api_key(principal: Principal, key_id: uuid.UUID) -> ApiKey:
    authorize(principal, Action.API_KEY_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        key = await s.scalar(
            select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id, ApiKey.id == key_id).with_for_update()
        )
        if key is None:
            raise NotFound("API key not found", field="id")
        if key.revoked_at is not None:
            raise InvalidState("API key is already revoked", field="id")
        key.revoked_at = datetime.now(UTC)
        principal_cache.invalidate(s, principal.tenant_id)
        audit.record(s, principal, "api_key.revoke", "ApiKey", key.id,
                     summary={"prefix": key.prefix, "name": key.name})
    return key


async def list_api_keys(principal: Principal, *, include_revoked: bool = False) -> list[ApiKey]:
    authorize(principal, Action.API_KEY_MANAGE)
    stmt = select(ApiKey).where(ApiKey.tenant_id == principal.tenant_id).order_by(ApiKey.created_at.desc())
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(stmt)).all())


async def authenticate(secret: str) -> Principal:
    parsed = parse_secret(secret)
    async with tenant_session(parsed.tenant_id) as s:
        row = (await s.execute(
            select(ApiKey, ClientApp.persisted_only, ClientApp.rate_plan)
            .outerjoin(ClientApp, (ClientApp.tenant_id == ApiKey.tenant_id) & (ClientApp.id == ApiKey.client_app_id))
            .where(ApiKey.tenant_id == parsed.tenant_id, ApiKey.id == parsed.key_id)
        )).first()
    key, persisted_only, rate_plan = row if row is not None else (None, None, None)
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated("this API key was revoked")
    return Principal(
        tenant_id=key.tenant_id,
        kind=PrincipalKind.API_KEY,
        id=key.id,
        role=Role(key.role),
        label=f"{key.name} ({key.prefix})",
        brand_ids=frozenset(key.brand_ids) if key.brand_ids is not None else None,
        client_app=(ClientAppRef(id=key.client_app_id, persisted_only=bool(persisted_only), rate_plan=rate_plan)
                    if key.client_app_id is not None else None),
    )


_TOUCH = text(
    "UPDATE api_keys k SET last_used_at = u.used_at "
    "FROM unnest(cast(:ids AS uuid[]), cast(:used AS timestamptz[])) AS u(id, used_at) "
    "WHERE k.tenant_id = :tenant_id AND k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at)"
)


async def touch_many(tenant_id: uuid.UUID, uses: dict[uuid.UUID, datetime]) -> None:
    """Record the last use of some of a tenant's keys, one statement (``key_usage`` batches them);
    a time never moves back."""
    if not uses:
        return
    async with tenant_session(tenant_id) as s:
        await s.execute(_TOUCH, {"tenant_id": tenant_id, "ids": list(uses), "used": list(uses.values())})


async def touch(tenant_id: uuid.UUID, key_id: uuid.UUID, used_at: datetime) -> None:
    """Record one key's last use (the job that recorded it before ``key_usage`` did)."""
    await touch_many(tenant_id, {key_id: used_at})
