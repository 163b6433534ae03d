"""Brands: a tenant's storefronts, each with a sending identity and a voice."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.errors import DomainError, ErrorCode, InvalidState, NotFound, Validator
from domain.platform.db import tenant_session
from domain.tenancy import principal_cache, scoping, validation
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal, authorize

PROFILE_FIELDS = ("name", "slug", "timezone", "from_name", "from_email", "reply_to", "sms_sender",
                  "segment_refresh_hours")
MAX_SEGMENT_REFRESH_HOURS = 168
VOICE_FIELDS = (
    "voice_tone",
    "voice_style_guide",
    "voice_words_to_use",
    "voice_words_to_avoid",
    "voice_sample_copy",
)


def _snapshot(brand: Brand, fields: Iterable[str]) -> dict[str, Any]:
    return {f: getattr(brand, f) for f in fields}


def _validate_profile(changes: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"not brand profile fields: {sorted(unknown)}")
    v = Validator()
    out: dict[str, Any] = {}
    if creating or "name" in changes:
        out["name"] = validation.text(v, "name", changes.get("name"), required=True, max_len=200)
    if creating or "slug" in changes:
        out["slug"] = validation.slug(v, "slug", changes.get("slug"))
    if "timezone" in changes:
        out["timezone"] = validation.timezone(v, "timezone", changes["timezone"]) or "UTC"
    if "from_name" in changes:
        out["from_name"] = validation.text(v, "fromName", changes["from_name"], required=False, max_len=200)
    for key, field in (("from_email", "fromEmail"), ("reply_to", "replyTo")):
        if key in changes:
            out[key] = validation.email(v, field, changes[key])
    if "sms_sender" in changes:
        out["sms_sender"] = validation.sms_sender(v, "smsSender", changes["sms_sender"])
    if "segment_refresh_hours" in changes:
        hours = changes["segment_refresh_hours"]
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_SEGMENT_REFRESH_HOURS:
            v.add("segmentRefreshHours", f"a whole number of hours from 1 to {MAX_SEGMENT_REFRESH_HOURS}")
        else:
            out["segment_refresh_hours"] = hours
    v.check()
    return out


def _validate_voice(changes: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    unknown = set(changes) - set(VOICE_FIELDS)
    if unknown:
        raise ValueError(f"not brand voice fields: {sorted(unknown)}")
    v = Validator()
    out: dict[str, Any] = {}
    if "voice_tone" in changes:
        out["voice_tone"] = validation.text(v, prefix + "tone", changes["voice_tone"], required=False, max_len=200)
    if "voice_style_guide" in changes:
        out["voice_style_guide"] = validation.text(
            v, prefix + "styleGuide", changes["voice_style_guide"], required=False, max_len=20_000
        )
    if "voice_sample_copy" in changes:
        out["voice_sample_copy"] = validation.text(
            v, prefix + "sampleCopy", changes["voice_sample_copy"], required=False, max_len=20_000
        )
    for key, field in (("voice_words_to_use", "wordsToUse"), ("voice_words_to_avoid", "wordsToAvoid")):
        if key in changes:
            out[key] = validation.words(v, prefix + field, changes[key]) or []
    v.check()
    return out


async def _load(s: AsyncSession, principal: Principal, brand_id: uuid.UUID) -> Brand:
    scoping.require_brand(principal, brand_id, field="id")
    brand = await s.scalar(
        select(Brand)
        .where(Brand.tenant_id == principal.tenant_id, Brand.id == brand_id)
        .with_for_update()
    )
    if brand is None:
        raise NotFound("brand not found", field="id")
    return brand


def _duplicate_slug(slug: str) -> DomainError:
    return DomainError(f"another brand already uses slug {slug!r}", field="slug", code=ErrorCode.DUPLICATE)


async def create_brand(principal: Principal, fields: dict[str, Any]) -> Brand:
    authorize(principal, Action.BRAND_CREATE)
    profile = {k: v for k, v in fields.items() if k in PROFILE_FIELDS}
    voice = {k: v for k, v in fields.items() if k in VOICE_FIELDS}
    values = _validate_profile(profile, creating=True) | _validate_voice(voice, prefix="voice.")
    brand = Brand(id=uuid.uuid4(), tenant_id=principal.tenant_id, **values)
    try:
        async with tenant_session(principal.tenant_id) as s:
            s.add(brand)
            await s.flush()
            await s.refresh(brand)
            principal_cache.invalidate(s, principal.tenant_id)  # usable as X-Brand-Id at once
            audit.record(
                s, principal, "brand.create", "Brand", brand.id, brand_id=brand.id,
                summary={"after": _snapshot(brand, PROFILE_FIELDS)},
            )
    except IntegrityError as exc:
        raise _duplicate_slug(values["slug"]) from exc
    return brand


async def _update(principal: Principal, brand_id: uuid.UUID, values: dict[str, Any], action: str) -> Brand:
    try:
        async with tenant_session(principal.tenant_id) as s:
            brand = await _load(s, principal, brand_id)
            before = _snapshot(brand, values)
            for key, value in values.items():
                setattr(brand, key, value)
            await s.flush()
            await s.refresh(brand)
            changes = audit.diff(before, _snapshot(brand, values))
            if changes:
                audit.record(s, principal, action, "Brand", brand.id, brand_id=brand.id, summary=changes)
    except IntegrityError as exc:
        raise _duplicate_slug(values.get("slug", "")) from exc
    return brand


async def update_brand(principal: Principal, brand_id: uuid.UUID, changes: dict[str, Any]) -> Brand:
    authorize(principal, Action.BRAND_UPDATE, brand_id=brand_id)
    return await _update(principal, brand_id, _validate_profile(changes, creating=False), "brand.update")


async def update_brand_voice(principal: Principal, brand_id: uuid.UUID, changes: dict[str, Any]) -> Brand:
    authorize(principal, Action.BRAND_UPDATE_VOICE, brand_id=brand_id)
    return await _update(principal, brand_id, _validate_voice(changes), "brand.update_voice")


async def archive_brand(principal: Principal, brand_id: uuid.UUID) -> Brand:
    authorize(principal, Action.BRAND_ARCHIVE, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        brand = await _load(s, principal, brand_id)
        if brand.archived_at is not None:
            raise InvalidState("brand is already archived", field="id")
        brand.archived_at = datetime.now(UTC)
        principal_cache.invalidate(s, principal.tenant_id)
        audit.record(
            s, principal, "brand.archive", "Brand", brand.id, brand_id=brand.id,
            summary={"archived_at": {"before": None, "after": brand.archived_at}},
        )
    return brand


async def list_brands(principal: Principal, *, include_archived: bool = False) -> list[Brand]:
    authorize(principal, Action.BRAND_READ)
    stmt = select(Brand).where(Brand.tenant_id == principal.tenant_id).order_by(Brand.name, Brand.id)
    if not include_archived:
        stmt = stmt.where(Brand.archived_at.is_(None))
    stmt = scoping.in_brands(stmt, principal, Brand.id)
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(stmt)).all())


async def brands_by_ids(principal: Principal, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Brand]:
    """The brands among ``ids`` this principal may see (one query, for dataloaders)."""
    authorize(principal, Action.BRAND_READ)
    wanted = scoping.usable_brands(principal, ids)
    if not wanted:
        return {}
    async with tenant_session(principal.tenant_id) as s:
        rows = await s.scalars(
            select(Brand).where(Brand.tenant_id == principal.tenant_id, Brand.id.in_(wanted))
        )
        return {b.id: b for b in rows}


async def check_active_brand(principal: Principal, brand_id: uuid.UUID) -> None:
    """The brand a request acts in (``X-Brand-Id``, a websocket's ``brandId``): NOT_FOUND on
    ``brandId`` unless the brand exists in the principal's tenant and the principal may read it.
    The tenant's brand ids come from :mod:`principal_cache` when it holds them (no query)."""
    authorize(principal, Action.BRAND_READ)
    scoping.require_brand(principal, brand_id)
    if brand_id not in await _tenant_brand_ids(principal.tenant_id):
        raise NotFound("brand not found", field="brandId")


async def _tenant_brand_ids(tenant_id: uuid.UUID) -> frozenset[uuid.UUID]:
    cache = principal_cache.cache
    found = cache.brand_ids(tenant_id)
    if found is not None:
        return found
    generation = cache.generation
    async with tenant_session(tenant_id) as s:
        found = frozenset(await s.scalars(select(Brand.id).where(Brand.tenant_id == tenant_id)))
    cache.put_brand_ids(tenant_id, found, generation)
    return found


async def get_brand(principal: Principal, brand_id: uuid.UUID) -> Brand:
    found = (await brands_by_ids(principal, [brand_id])).get(brand_id)
    if found is None:
        raise NotFound("brand not found", field="brandId")
    return found
