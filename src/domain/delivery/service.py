"""Per-brand delivery configuration: providers (with encrypted credentials), sending rules and
suppressions; and loading a ready provider client for the senders.

Credentials are stored encrypted (``domain.platform.crypto``), never returned by the API, never
written to the audit log (only the names of the fields that changed) and never logged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.config import get_settings
from domain.delivery import registry, webhooks
from domain.delivery.base import Channel, Provider, WebhookRejected
from domain.delivery.models import DeliveryProvider, MessagingSettings, Suppression
from domain.errors import (
    DomainError,
    ErrorCode,
    InvalidState,
    NotFound,
    ValidationFailed,
    Validator,
)
from domain.pagination import Page, PageRequest, encode_cursor
from domain.platform import crypto
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize


def webhook_url(tenant_id: uuid.UUID, brand_id: uuid.UUID, provider: str) -> str | None:
    """Where the provider posts its events for this brand (none for providers without events)."""
    if provider in ("log", "smtp", "fcm"):
        return None
    return f"{get_settings().public_url}/webhooks/{provider}/{tenant_id}/{brand_id}"


async def providers_of(principal: Principal, brand_id: uuid.UUID) -> list[DeliveryProvider]:
    authorize(principal, Action.BRAND_READ)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        return list((await s.scalars(select(DeliveryProvider).where(
            DeliveryProvider.tenant_id == principal.tenant_id, DeliveryProvider.brand_id == brand_id)
            .order_by(DeliveryProvider.channel))).all())


async def set_provider(principal: Principal, brand_id: uuid.UUID, channel: Channel, provider: str,
                       settings: dict[str, Any] | None, credentials: dict[str, Any] | None) -> DeliveryProvider:
    """Choose the provider for a channel. ``credentials`` None keeps the stored ones (when the
    provider stays the same); a dict replaces them."""
    authorize(principal, Action.DELIVERY_MANAGE, brand_id=brand_id)
    for field, value in (("settings", settings), ("credentials", credentials)):
        if value is not None and not isinstance(value, dict):
            raise DomainError(f"{field} must be a JSON object", field=field)
    spec = registry.PROVIDERS.get(provider)
    if spec is None:
        raise DomainError(f"unknown provider {provider!r}; one of {', '.join(sorted(registry.PROVIDERS))}",
                          field="provider")
    if channel not in spec.channels:
        raise DomainError(f"{provider} does not carry {channel.value} messages", field="provider")
    settings = settings or {}
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        current = await s.scalar(select(DeliveryProvider).where(
            DeliveryProvider.tenant_id == principal.tenant_id, DeliveryProvider.brand_id == brand_id,
            DeliveryProvider.channel == channel.value).with_for_update())
        if credentials is None and current is not None and current.provider == provider and current.credentials_encrypted:
            creds = json.loads(crypto.decrypt(current.credentials_encrypted))
        else:
            creds = credentials or {}
        problems = registry.validate(provider, channel, settings, creds)
        if problems:
            raise ValidationFailed([DomainError(message, field=field) for field, message in problems])
        values = dict(provider=provider, settings=settings,
                      credentials_encrypted=crypto.encrypt(json.dumps(creds)) if creds else None,
                      updated_by=principal.label)
        await s.execute(insert(DeliveryProvider).values(
            tenant_id=principal.tenant_id, brand_id=brand_id, channel=channel.value, **values)
            .on_conflict_do_update(index_elements=["tenant_id", "brand_id", "channel"], set_=values))
        audit.record(s, principal, "delivery.set_provider", "Brand", brand_id, brand_id=brand_id,
                     summary={"channel": channel.value, "provider": provider, "settings": sorted(settings),
                              "credentials_changed": sorted(credentials) if credentials is not None else []})
        row = await s.scalar(select(DeliveryProvider).where(
            DeliveryProvider.tenant_id == principal.tenant_id, DeliveryProvider.brand_id == brand_id,
            DeliveryProvider.channel == channel.value).execution_options(populate_existing=True))
    return row


async def remove_provider(principal: Principal, brand_id: uuid.UUID, channel: Channel) -> None:
    authorize(principal, Action.DELIVERY_MANAGE, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        gone = (await s.execute(delete(DeliveryProvider).where(
            DeliveryProvider.tenant_id == principal.tenant_id, DeliveryProvider.brand_id == brand_id,
            DeliveryProvider.channel == channel.value))).rowcount
        if not gone:
            raise NotFound(f"no provider is set for {channel.value}", field="channel")
        audit.record(s, principal, "delivery.remove_provider", "Brand", brand_id, brand_id=brand_id,
                     summary={"channel": channel.value})


async def require_provider(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, channel: str) -> None:
    found = await s.scalar(select(DeliveryProvider.provider).where(
        DeliveryProvider.tenant_id == tenant_id, DeliveryProvider.brand_id == brand_id,
        DeliveryProvider.channel == channel))
    if found is None:
        raise InvalidState(f"this brand has no {channel} provider; set one with setDeliveryProvider", field="id")


# provider clients are reused within a process (connection pools, access tokens), keyed by the
# configuration they were built from
_clients: dict[tuple, Provider] = {}


async def load_provider(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID,
                        channel: str) -> tuple[DeliveryProvider, Provider] | None:
    row = await s.scalar(select(DeliveryProvider).where(
        DeliveryProvider.tenant_id == tenant_id, DeliveryProvider.brand_id == brand_id,
        DeliveryProvider.channel == channel))
    if row is None:
        return None
    key = (tenant_id, brand_id, channel, row.provider, row.updated_at)
    client = _clients.get(key)
    if client is None:
        for old in [k for k in _clients if k[:3] == key[:3]]:
            await _clients.pop(old).aclose()
        creds = json.loads(crypto.decrypt(row.credentials_encrypted)) if row.credentials_encrypted else {}
        settings = dict(row.settings or {})
        if row.provider == "twilio" and "status_callback_url" not in settings:
            settings["status_callback_url"] = webhook_url(tenant_id, brand_id, "twilio")
        client = registry.build(row.provider, Channel(channel), settings, creds)
        _clients[key] = client
    return row, client


async def verify_webhook(provider: str, tenant_id: uuid.UUID, brand_id: uuid.UUID, *, url: str,
                         headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """Check that a webhook request comes from the brand's own account at ``provider`` (its
    secret read inside the tenant's row-level security), before anything parses the body.
    Returns the form fields of a form-encoded request (Twilio), else an empty dict. Raises
    WebhookRejected otherwise; ``url`` is the public address the provider called."""
    async with tenant_session(tenant_id) as s:
        creds = await credentials_of(s, tenant_id, brand_id, provider)
    if creds is None:
        raise WebhookRejected("no such webhook")
    if provider == "sendgrid":
        webhooks.verify_sendgrid(creds.get("webhookVerificationKey") or "",
                                 headers.get(webhooks.SENDGRID_SIGNATURE_HEADER.lower()),
                                 headers.get(webhooks.SENDGRID_TIMESTAMP_HEADER.lower()), body)
    elif provider == "brevo":
        webhooks.verify_brevo(creds.get("webhookToken") or "", headers.get("authorization"))
    elif provider == "twilio":
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        webhooks.verify_twilio(creds.get("authToken") or "", url, params,
                               headers.get(webhooks.TWILIO_SIGNATURE_HEADER.lower()))
        return params
    else:
        raise WebhookRejected("unknown provider")
    return {}


async def credentials_of(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, provider: str) -> dict[str, Any] | None:
    """The decrypted credentials of the brand's configuration of ``provider`` (webhook checks)."""
    rows = await s.scalars(select(DeliveryProvider).where(
        DeliveryProvider.tenant_id == tenant_id, DeliveryProvider.brand_id == brand_id,
        DeliveryProvider.provider == provider))
    for row in rows:
        if row.credentials_encrypted:
            return json.loads(crypto.decrypt(row.credentials_encrypted))
    return None


# --- sending rules -----------------------------------------------------------------------

RULE_FIELDS = ("quiet_hours_start", "quiet_hours_end", "frequency_cap_count", "frequency_cap_hours",
               "send_rate_per_second", "attribution_days")


async def messaging_settings(principal: Principal, brand_id: uuid.UUID) -> MessagingSettings:
    authorize(principal, Action.BRAND_READ)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        return await rules_of(s, principal.tenant_id, brand_id)


async def rules_of(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID) -> MessagingSettings:
    found = await s.scalar(select(MessagingSettings).where(MessagingSettings.tenant_id == tenant_id,
                                                           MessagingSettings.brand_id == brand_id))
    return found or MessagingSettings(tenant_id=tenant_id, brand_id=brand_id, send_rate_per_second=500,
                                      attribution_days=5)


def _clean_rules(data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - set(RULE_FIELDS)
    if unknown:
        raise ValueError(f"not messaging settings: {sorted(unknown)}")
    v = Validator()
    out: dict[str, Any] = {}
    for key in ("quiet_hours_start", "quiet_hours_end"):
        if key in data:
            value = data[key]
            if isinstance(value, str):
                try:
                    value = time.fromisoformat(value)
                except ValueError:
                    v.add(_camel(key), "use HH:MM (24-hour clock)")
                    value = None
            out[key] = value
    limits = {"frequency_cap_count": (1, 1000), "frequency_cap_hours": (1, 24 * 90),
              "send_rate_per_second": (1, 100_000), "attribution_days": (1, 90)}
    for key, (lo, hi) in limits.items():
        if key in data:
            value = data[key]
            if value is None and key in ("frequency_cap_count", "frequency_cap_hours"):
                out[key] = None
            elif not isinstance(value, int) or not lo <= value <= hi:
                v.add(_camel(key), f"{_camel(key)} runs from {lo} to {hi}")
            else:
                out[key] = value
    v.check()
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


async def update_messaging_settings(principal: Principal, brand_id: uuid.UUID, data: dict[str, Any]) -> MessagingSettings:
    authorize(principal, Action.DELIVERY_MANAGE, brand_id=brand_id)
    values = _clean_rules(data)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        current = await rules_of(s, principal.tenant_id, brand_id)
        merged = {k: values.get(k, getattr(current, k)) for k in RULE_FIELDS}
        if (merged["quiet_hours_start"] is None) != (merged["quiet_hours_end"] is None):
            raise DomainError("quiet hours need both a start and an end", field="quietHoursEnd",
                              code=ErrorCode.REQUIRED)
        if (merged["frequency_cap_count"] is None) != (merged["frequency_cap_hours"] is None):
            raise DomainError("a frequency cap needs both a count and a window", field="frequencyCapHours",
                              code=ErrorCode.REQUIRED)
        await s.execute(insert(MessagingSettings).values(tenant_id=principal.tenant_id, brand_id=brand_id, **merged)
                        .on_conflict_do_update(index_elements=["tenant_id", "brand_id"], set_=merged))
        audit.record(s, principal, "delivery.update_settings", "Brand", brand_id, brand_id=brand_id,
                     summary={k: str(v) for k, v in values.items()})
        return await s.scalar(select(MessagingSettings).where(
            MessagingSettings.tenant_id == principal.tenant_id, MessagingSettings.brand_id == brand_id)
            .execution_options(populate_existing=True))


# --- suppressions ------------------------------------------------------------------------


async def suppress(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID, channel: str, address: str,
                   reason: str, source: str) -> None:
    await s.execute(insert(Suppression).values(tenant_id=tenant_id, brand_id=brand_id, channel=channel,
                                               address=address, reason=reason, source=source)
                    .on_conflict_do_nothing())


_SUPPRESSION_ORDER = [(Suppression.created_at, True), (Suppression.channel, True), (Suppression.address, True)]


async def list_suppressions(principal: Principal, brand_id: uuid.UUID, channel: Channel | None,
                            page: PageRequest) -> Page[Suppression]:
    """Newest first, keyset-paginated on (created_at, channel, address)."""
    authorize(principal, Action.CUSTOMER_READ)
    after, order = page.keyset(_SUPPRESSION_ORDER, datetime, str, str)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        rows = list((await s.scalars(select(Suppression).where(*_suppressed(principal, brand_id, channel), *after)
                                     .order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, lambda x: encode_cursor(x.created_at, x.channel, x.address))


async def count_suppressions(principal: Principal, brand_id: uuid.UUID, channel: Channel | None) -> int:
    """How many addresses ``list_suppressions`` lists (its primary key's range for the brand)."""
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        return await s.scalar(select(func.count()).select_from(Suppression)
                              .where(*_suppressed(principal, brand_id, channel)))


def _suppressed(principal: Principal, brand_id: uuid.UUID, channel: Channel | None) -> list:
    conditions = [Suppression.tenant_id == principal.tenant_id, Suppression.brand_id == brand_id]
    if channel is not None:
        conditions.append(Suppression.channel == channel.value)
    return conditions


async def remove_suppression(principal: Principal, brand_id: uuid.UUID, channel: Channel, address: str) -> None:
    """Lift a suppression (the address was fixed, the complaint was a mistake). Consent is not
    granted again by this: that stays the customer's to give."""
    authorize(principal, Action.DELIVERY_MANAGE, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        gone = (await s.execute(delete(Suppression).where(
            Suppression.tenant_id == principal.tenant_id, Suppression.brand_id == brand_id,
            Suppression.channel == channel.value, Suppression.address == address.strip().lower()
            if channel is Channel.EMAIL else Suppression.address == address.strip()))).rowcount
        if not gone:
            raise NotFound("this address is not suppressed", field="address")
        audit.record(s, principal, "delivery.remove_suppression", "Brand", brand_id, brand_id=brand_id,
                     summary={"channel": channel.value})
