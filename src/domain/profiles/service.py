"""Customer profiles: kept current when an order or event arrives, rebuilt in bulk by a job.

The formulas live in SQL functions (``bg_refresh_profiles``, migrations/0002, for metrics and
scores; ``bg_refresh_preferences``, migrations/0018, for preferences; both run by
``bg_refresh_customer_profiles``) so the incremental path and the rebuild cannot disagree;
docs/profiles.md explains them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.insights import alerts
from domain.platform.db import tenant_session
from domain.profiles.models import ALL_BRANDS, CustomerProfile
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize


async def refresh(session: AsyncSession, tenant_id: uuid.UUID, customer_ids: Iterable[uuid.UUID] | None) -> int:
    """Recompute the profiles of ``customer_ids`` (every customer when None) in this transaction."""
    ids = None if customer_ids is None else [str(c) for c in customer_ids]
    count = await session.scalar(
        text("select bg_refresh_customer_profiles(:tenant, cast(:ids as uuid[]))"), {"tenant": tenant_id, "ids": ids}
    ) or 0
    await alerts.check_profiles(session, tenant_id, ids)  # threshold crossings, with the new values
    return count


async def profiles_for(principal: Principal, keys: list[tuple[uuid.UUID, uuid.UUID | None]]
                       ) -> dict[tuple[uuid.UUID, uuid.UUID], CustomerProfile]:
    """Profiles by (customer id, brand id or None for tenant-wide), one query (dataloaders)."""
    authorize(principal, Action.CUSTOMER_READ)
    wanted = {(c, b or ALL_BRANDS) for c, b in keys}
    brand_ids = {b for _, b in wanted}
    customers = {c for c, _ in wanted}
    async with tenant_session(principal.tenant_id) as s:
        rows = await s.scalars(select(CustomerProfile).where(
            CustomerProfile.tenant_id == principal.tenant_id,
            CustomerProfile.customer_id.in_(customers), CustomerProfile.brand_id.in_(brand_ids)))
        return {(p.customer_id, p.brand_id): p for p in rows if (p.customer_id, p.brand_id) in wanted}


def readable_brand(principal: Principal, requested: uuid.UUID | None, active: uuid.UUID | None
                   ) -> tuple[bool, uuid.UUID | None]:
    """Which profile a principal reads: (may read, brand id or None for tenant-wide).

    Tenant-wide totals would include brands a brand-limited principal may not see, so without
    ``requested`` it reads the active brand's profile, or its only brand's; with several brands
    and none chosen it reads none (the caller shows an empty profile)."""
    brand = requested
    if brand is None and not scoping.sees_every_brand(principal):
        brand = active or scoping.only_brand(principal)
        if brand is None:
            return False, None
    if brand is not None and not scoping.may_use_brand(principal, brand):
        return False, None
    return True, brand
