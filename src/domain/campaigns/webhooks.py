"""Provider events arriving over HTTP: find the brand's secret, verify, parse, apply.

The URL names the tenant and the brand (``/webhooks/<provider>/<tenant>/<brand>``), so the secret
to check against is the brand's own, read inside the tenant's row-level security. A request that
is not signed with it is refused before its body is parsed; once verified, its events can only
touch that tenant's and that brand's messages (see :func:`engagement.apply_events`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from urllib.parse import parse_qsl

from domain.campaigns import engagement
from domain.delivery import webhooks
from domain.delivery.base import DeliveryEvent, WebhookRejected
from domain.delivery.service import credentials_of, webhook_url
from domain.platform.db import tenant_session

PROVIDERS = ("sendgrid", "brevo", "twilio")


async def receive(provider: str, tenant_id: uuid.UUID, brand_id: uuid.UUID, *, headers: Mapping[str, str],
                  body: bytes, query: str = "") -> int:
    """Verify and apply one webhook request; returns how many events changed something.
    Raises WebhookRejected for anything not from the provider."""
    if provider not in PROVIDERS:
        raise WebhookRejected("unknown provider")
    async with tenant_session(tenant_id) as s:
        creds = await credentials_of(s, tenant_id, brand_id, provider)
    if creds is None:
        raise WebhookRejected("no such webhook")
    events: list[DeliveryEvent]
    if provider == "sendgrid":
        webhooks.verify_sendgrid(creds.get("webhookVerificationKey") or "",
                                 headers.get(webhooks.SENDGRID_SIGNATURE_HEADER.lower()),
                                 headers.get(webhooks.SENDGRID_TIMESTAMP_HEADER.lower()), body)
        events = webhooks.parse_sendgrid(body)
    elif provider == "brevo":
        webhooks.verify_brevo(creds.get("webhookToken") or "", headers.get("authorization"))
        events = webhooks.parse_brevo(body)
    else:
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        url = webhook_url(tenant_id, brand_id, "twilio") + (f"?{query}" if query else "")
        webhooks.verify_twilio(creds.get("authToken") or "", url, params,
                               headers.get(webhooks.TWILIO_SIGNATURE_HEADER.lower()))
        events = webhooks.parse_twilio_status(params)
    if not events:
        return 0
    return await engagement.apply_events(tenant_id, events, brand_id=brand_id, source=provider)
