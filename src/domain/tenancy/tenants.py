"""Tenants: created by operators (CLI), read by their own principals."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from domain.audit import service as audit
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.plans.limits import PLANS
from domain.platform.db import anonymous_session, tenant_session
from domain.tenancy import validation
from domain.tenancy.models import Tenant
from domain.tenancy.policies import Action, Principal, authorize


async def create_tenant(slug: str, name: str, *, plan: str = "free") -> Tenant:
    v = Validator()
    slug = validation.slug(v, "slug", slug)
    name = validation.text(v, "name", name, required=True, max_len=200)
    if plan not in PLANS:
        v.add("plan", f"plan must be one of {', '.join(PLANS)}")
    v.check()
    tenant = Tenant(id=uuid.uuid4(), slug=slug, name=name, plan=plan)
    try:
        async with tenant_session(tenant.id) as s:
            s.add(tenant)
            await s.flush()
            audit.record(
                s, None, "tenant.create", "Tenant", tenant.id, tenant_id=tenant.id,
                summary={"slug": slug, "name": name},
            )
    except IntegrityError as exc:
        raise DomainError(
            f"a tenant with slug {slug!r} already exists", field="slug", code=ErrorCode.DUPLICATE
        ) from exc
    return tenant


async def tenant_id_for_slug(slug: str) -> uuid.UUID:
    async with anonymous_session() as s:
        found = await s.scalar(text("select bg_tenant_id_for_slug(:slug)"), {"slug": slug})
    if found is None:
        raise NotFound(f"no tenant with slug {slug!r}", field="tenant")
    return found


async def all_tenant_ids() -> list[uuid.UUID]:
    async with anonymous_session() as s:
        return list((await s.scalars(text("select bg_tenant_ids()"))).all())


async def get_tenant(principal: Principal) -> Tenant:
    authorize(principal, Action.TENANT_READ)
    async with tenant_session(principal.tenant_id) as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.id == principal.tenant_id))
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant
