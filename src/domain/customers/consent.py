"""Consent: may this brand reach this customer on this channel?

This module is the one place every send and export asks. No row means no consent: marketing
reaches only customers who said yes, and a revocation wins until a new grant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.customers.models import Consent
from domain.customers.service import CustomerSource, link_brand, load_visible
from domain.errors import Validator
from domain.platform.db import tenant_session
from domain.segments import changes
from domain.segments.compiler import consent_input
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline


class Channel(str, Enum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    ADS = "ads"


async def record(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID, brand_id: uuid.UUID,
                 channel: Channel, granted: bool, source: str, at: datetime | None = None) -> bool:
    """Write a consent state; returns whether it changed (and then a timeline event is written)."""
    at = at or datetime.now(UTC)
    current = await session.scalar(select(Consent).where(
        Consent.tenant_id == tenant_id, Consent.customer_id == customer_id, Consent.brand_id == brand_id,
        Consent.channel == channel.value).with_for_update())
    if current is not None and current.granted == granted:
        return False
    values = dict(granted=granted, source=source, updated_at=at)
    values.update(granted_at=at) if granted else values.update(revoked_at=at)
    await session.execute(
        insert(Consent).values(tenant_id=tenant_id, customer_id=customer_id, brand_id=brand_id,
                               channel=channel.value, **values)
        .on_conflict_do_update(index_elements=["tenant_id", "customer_id", "brand_id", "channel"], set_=values)
    )
    timeline.write(session, tenant_id, customer_id, timeline.Kind.CONSENT_CHANGED, at, brand_id=brand_id,
                   data={"channel": channel.value, "granted": granted, "source": source})
    await changes.customers_changed(session, tenant_id, [customer_id], [consent_input(channel.value)])
    return True


async def set_consent(principal: Principal, customer_id: uuid.UUID, brand_id: uuid.UUID, channel: Channel,
                      granted: bool, source: str = "api") -> Consent:
    authorize(principal, Action.CONSENT_WRITE)
    v = Validator()
    source = validation.text(v, "source", source, required=True, max_len=64)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        customer = await load_visible(s, principal, customer_id)
        if granted:  # subscribing to a brand makes the customer known to it
            await link_brand(s, principal.tenant_id, customer.id, brand_id, CustomerSource.SUBSCRIPTION)
        changed = await record(s, principal.tenant_id, customer.id, brand_id, channel, granted, source)
        if changed:
            audit.record(s, principal, "consent.set", "Customer", customer.id, brand_id=brand_id,
                         summary={"channel": channel.value, "granted": granted, "source": source})
        consent = await s.scalar(select(Consent).where(
            Consent.tenant_id == principal.tenant_id, Consent.customer_id == customer.id,
            Consent.brand_id == brand_id, Consent.channel == channel.value))
    return consent


async def consents_by_customer(principal: Principal, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Consent]]:
    authorize(principal, Action.CUSTOMER_READ)
    stmt = select(Consent).where(Consent.tenant_id == principal.tenant_id, Consent.customer_id.in_(set(customer_ids)))
    stmt = scoping.in_brands(stmt, principal, Consent.brand_id)
    out: dict[uuid.UUID, list[Consent]] = {}
    async with tenant_session(principal.tenant_id) as s:
        for c in await s.scalars(stmt.order_by(Consent.brand_id, Consent.channel)):
            out.setdefault(c.customer_id, []).append(c)
    return out


async def reachable(session: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, channel: Channel,
                    customer_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The customers among ``customer_ids`` whom ``brand_id`` may reach on ``channel``."""
    rows = await session.scalars(select(Consent.customer_id).where(
        Consent.tenant_id == tenant_id, Consent.brand_id == brand_id, Consent.channel == channel.value,
        Consent.granted.is_(True), Consent.customer_id.in_(list(customer_ids))))
    return set(rows)


def reachable_clause(tenant_id, brand_id, channel: Channel, customer_id_column):
    """SQL condition for set-based sends and exports: the brand may reach the customer."""
    return exists(select(Consent.customer_id).where(
        Consent.tenant_id == tenant_id, Consent.brand_id == brand_id, Consent.channel == channel.value,
        Consent.granted.is_(True), Consent.customer_id == customer_id_column))
