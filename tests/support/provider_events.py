"""Campaigns the worker really sent, and what the providers post back about them: SendGrid's
signed event webhook, Brevo's with a bearer token, Twilio's signed status callbacks, and the
tracking links in the messages that went out."""

from __future__ import annotations

import base64
import html
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import Api, Fakes, TenantFixture, gid
from domain.delivery.webhooks import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    sign_sendgrid,
    sign_twilio,
)
from support.campaigns import audience, create, identity, launch, use_provider, wait_status

# everything an event may change, row by row: "nothing changed" compares all of it
TABLES = ("campaign_recipients", "campaign_stats", "campaign_conversions", "timeline_events", "customer_consents",
          "suppressions")


@dataclass
class SendGridKey:
    """A signed-event-webhook key pair: the brand stores ``public`` (base64 DER), we sign as SendGrid."""

    private: ec.EllipticCurvePrivateKey
    public: str

    @classmethod
    def new(cls) -> SendGridKey:
        private = ec.generate_private_key(ec.SECP256R1())
        der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(private, base64.b64encode(der).decode())

    def sign(self, timestamp: str, body: bytes) -> str:
        return sign_sendgrid(self.private, timestamp, body)


def sendgrid_credentials(key: SendGridKey, api_key: str = "SG.test-key") -> dict[str, str]:
    return {"apiKey": api_key, "webhookVerificationKey": key.public}


@dataclass
class Sent:
    """A campaign the worker sent: its id, its customers (in audience order), their addresses."""

    t: TenantFixture
    campaign: str  # global id
    cid: uuid.UUID
    customers: list[uuid.UUID]
    prefix: str
    brand: str = "a"

    def key(self, i: int) -> str:
        return f"c.{self.cid.hex}.{self.customers[i].hex}"

    def email(self, i: int) -> str:
        return f"{self.prefix}-{i}@example.test"

    def customer(self, i: int) -> str:
        return gid("Customer", self.customers[i])


async def send_campaign(api: Api, t: TenantFixture, n: int, *, provider: str, credentials: dict[str, Any],
                        channel: str = "EMAIL", brand: str = "a", **extra: Any) -> Sent:
    """Configure ``provider`` for the brand, send a campaign to ``n`` consenting customers and
    wait until it is SENT."""
    await identity(t, brand)
    await use_provider(t, brand, channel.lower(), provider, credentials=credentials)
    prefix = uuid.uuid4().hex[:8]
    seg, ids = await audience(t, n, brand=brand, prefix=prefix, channel=channel.lower())
    campaign = await create(api, t, seg, channel=channel, brand=brand, **extra)
    await launch(api, t, campaign)
    done = await wait_status(api, t, campaign)
    assert done["stats"]["sent"] == n, done
    cid = uuid.UUID(base64.b64decode(campaign).decode().split(":")[1])
    return Sent(t, campaign, cid, ids, prefix, brand)


async def table_rows(t: TenantFixture) -> dict[str, list[tuple[str, ...]]]:
    """Every row the tenant has in :data:`TABLES`."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    out: dict[str, list[tuple[str, ...]]] = {}
    async with tenant_session(t.id) as s:
        for table in TABLES:
            result = await s.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": t.id})
            out[table] = sorted(tuple(str(v) for v in row) for row in result)
    return out


def sendgrid_event(s: Sent, i: int, event: str, at: datetime, **more: Any) -> dict[str, Any]:
    return {"email": s.email(i), "timestamp": int(at.timestamp()), "event": event, "bg_key": s.key(i),
            "sg_event_id": uuid.uuid4().hex, "sg_message_id": f"msg{i}.filterdrecv-1.0", **more}


def webhook_path(provider: str, t: TenantFixture, brand: str) -> str:
    return f"/webhooks/{provider}/{t.id}/{t.brands[brand]}"


async def post_sendgrid(api: Api, t: TenantFixture, brand: str, key: SendGridKey | None, events: list[dict[str, Any]],
                        *, timestamp: str | None = None, body: bytes | None = None,
                        signature: str | None = None) -> httpx.Response:
    """A SendGrid event webhook request signed with ``key`` (no signature headers when None);
    ``body`` replaces the signed body (a tampered request), ``signature`` the computed one."""
    signed = json.dumps(events).encode()
    timestamp = timestamp or str(int(time.time()))
    headers = {"content-type": "application/json"}
    if key is not None:
        headers[SENDGRID_TIMESTAMP_HEADER] = timestamp
        headers[SENDGRID_SIGNATURE_HEADER] = signature or key.sign(timestamp, signed)
    return await api.http.post(webhook_path("sendgrid", t, brand), content=body or signed, headers=headers)


async def post_brevo(api: Api, t: TenantFixture, brand: str, events: list[dict[str, Any]] | dict[str, Any],
                     authorization: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return await api.http.post(webhook_path("brevo", t, brand), content=json.dumps(events).encode(), headers=headers)


async def post_twilio(api: Api, t: TenantFixture, brand: str, params: dict[str, str], auth_token: str | None,
                      signed_url: str | None = None) -> httpx.Response:
    """A status callback, signed as Twilio signs it: over the public webhook URL and the fields."""
    path = webhook_path("twilio", t, brand)
    headers = {}
    if auth_token is not None:
        headers[TWILIO_SIGNATURE_HEADER] = sign_twilio(auth_token, signed_url or api.base_url + path, params)
    return await api.http.post(path, data=params, headers=headers)


def accepted(r: httpx.Response, changed: int) -> None:
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": True, "changed": changed}, r.text


def refused(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json() == {"error": "refused"}


@dataclass
class Links:
    open: str
    click: str
    unsubscribe: str


def links_of(fakes: Fakes, s: Sent, i: int) -> Links:
    """The tracking links in the e-mail the provider got for customer ``i``."""
    m = next(m for m in fakes.sendgrid.messages if m.key == s.key(i))
    body = m.html or ""
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', body)
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', body)
    assert pixel and click, body
    unsubscribe = m.headers["List-Unsubscribe"]
    assert unsubscribe.startswith("<") and unsubscribe.endswith(">"), m.headers
    assert m.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return Links(html.unescape(pixel.group(1)), html.unescape(click.group(1)), unsubscribe[1:-1])

