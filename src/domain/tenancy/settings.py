"""The tenant's own settings: the webhook signing secret, which signs every brand's automation
deliveries (created on first use, stored encrypted, rotated by owners and admins)."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select

from domain.audit import service as audit
from domain.errors import NotFound
from domain.platform import crypto
from domain.platform.db import tenant_session
from domain.tenancy.models import Tenant
from domain.tenancy.policies import Action, Principal, authorize


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def webhook_secret(tenant_id: uuid.UUID) -> str:
    """The tenant's signing secret, created (and stored encrypted) on first use."""
    async with tenant_session(tenant_id) as s:
        stored = await s.scalar(select(Tenant.webhook_secret_encrypted).where(Tenant.id == tenant_id))
        if stored:
            return crypto.decrypt(stored)
        tenant = await s.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
        if tenant is None:
            raise NotFound("tenant not found")
        if tenant.webhook_secret_encrypted:  # created meanwhile
            return crypto.decrypt(tenant.webhook_secret_encrypted)
        secret = _new_secret()
        tenant.webhook_secret_encrypted = crypto.encrypt(secret)
    return secret


async def rotate_webhook_secret(principal: Principal) -> str:
    """A new signing secret, returned this once. Owners and admins of every brand only: the
    secret signs every brand's deliveries."""
    authorize(principal, Action.WEBHOOK_SECRET_ROTATE)
    secret = _new_secret()
    async with tenant_session(principal.tenant_id) as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.id == principal.tenant_id).with_for_update())
        if tenant is None:
            raise NotFound("tenant not found")
        rotated = tenant.webhook_secret_encrypted is not None
        tenant.webhook_secret_encrypted = crypto.encrypt(secret)
        audit.record(s, principal, "tenant.rotate_webhook_secret", "Tenant", tenant.id,
                     summary={"replaced_previous": rotated})
    return secret
