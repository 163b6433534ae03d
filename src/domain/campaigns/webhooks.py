"""Provider events arriving over HTTP: find the brand's secret, verify, parse, apply.

The URL names the tenant and the brand (``/webhooks/<provider>/<tenant>/<brand>``), so the secret
to check against is the brand's own, read inside the tenant's row-level security. A request that
is not signed with it is refused before its body is parsed; once verified, its events can only
touch that tenant's and that brand's messages (see :func:`engagement.apply_events`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from domain.campaigns import engagement
from domain.delivery import webhooks
from domain.delivery.base import DeliveryEvent, WebhookRejected
from domain.delivery.service import verify_webhook, webhook_url

PROVIDERS = ("sendgrid", "brevo", "twilio")


async def receive(provider: str, tenant_id: uuid.UUID, brand_id: uuid.UUID, *, headers: Mapping[str, str],
                  body: bytes, query: str = "") -> int:
    """Verify and apply one webhook request; returns how many events changed something.
    Raises WebhookRejected for anything not from the provider."""
    if provider not in PROVIDERS:
        raise WebhookRejected("unknown provider")
    url = webhook_url(tenant_id, brand_id, provider) + (f"?{query}" if query else "")
    params = await verify_webhook(provider, tenant_id, brand_id, url=url, headers=headers, body=body)
    events: list[DeliveryEvent] = {"sendgrid": lambda: webhooks.parse_sendgrid(body),
                                   "brevo": lambda: webhooks.parse_brevo(body),
                                   "twilio": lambda: webhooks.parse_twilio_status(params)}[provider]()
    if not events:
        return 0
    return await engagement.apply_events(tenant_id, events, brand_id=brand_id, source=provider)
