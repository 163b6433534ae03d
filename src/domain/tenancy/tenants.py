"""Tenants: created by operators (CLI), read by their own principals."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from domain.audit import service as audit
from domain.errors import DomainError, ErrorCode, FeatureDisabled, NotFound, Validator
from domain.plans.limits import PLANS
from domain.platform.db import anonymous_session, tenant_session
from domain.tenancy import validation
from domain.tenancy.models import Tenant
from domain.tenancy.policies import Action, Principal, authorize

# premium modules an operator switches per tenant (``brandgraph set-feature``): name -> column
FEATURES = {"copilot": "copilot_enabled"}


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


async def set_feature(slug: str, feature: str, enabled: bool) -> bool:
    """Switch a premium module on or off for a tenant (an operator's command, audited as the
    system). Returns whether the value changed."""
    if feature not in FEATURES:
        raise DomainError(f"unknown feature {feature!r}; one of {', '.join(sorted(FEATURES))}", field="feature")
    tenant_id = await tenant_id_for_slug(slug)
    column = FEATURES[feature]
    async with tenant_session(tenant_id) as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
        if tenant is None:
            raise NotFound(f"no tenant with slug {slug!r}", field="tenant")
        before = getattr(tenant, column)
        if before == enabled:
            return False
        setattr(tenant, column, enabled)
        audit.record(s, None, "tenant.set_feature", "Tenant", tenant_id, tenant_id=tenant_id,
                     summary={"feature": feature, "enabled": {"before": before, "after": enabled}})
    return True


async def require_feature(session, tenant_id: uuid.UUID, feature: str) -> None:  # noqa: ANN001
    """Raise FEATURE_DISABLED unless the tenant has ``feature`` switched on (read in the caller's
    tenant transaction)."""
    column = getattr(Tenant, FEATURES[feature])
    on = await session.scalar(select(column).where(Tenant.id == tenant_id))
    if not on:
        raise FeatureDisabled(f"the {feature} module is not enabled for this tenant; an operator switches it on "
                              f"with `brandgraph set-feature --tenant SLUG {feature} on`", field=None)
