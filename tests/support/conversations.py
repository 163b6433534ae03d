"""Requests of the conversation tests: inbound e-mail (Brevo's inbound parsing webhook) and SMS
(Twilio's signed form) posted to the API server, provider delivery events, and polling."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from conftest import Api, TenantFixture

TOKEN = "inbound-token-123"


async def until(condition: Callable[[], Any], what: str, within: float = 15) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def phone() -> str:
    return "+1444" + "".join(secrets.choice("0123456789") for _ in range(7))


def sid() -> str:
    return "SM" + secrets.token_hex(16)


def email_item(sender: str, *, subject: str = "Hello", text: str = "Hello there", message_id: str | None = None,
               in_reply_to: str | None = None, references: list[str] | None = None, name: str | None = None,
               delivery: str | None = None, to: str = "support@a.example.test") -> dict[str, Any]:
    """One e-mail of Brevo's inbound parsing webhook."""
    headers: dict[str, Any] = {"Message-ID": message_id or f"<{uuid.uuid4().hex}@mail.example>"}
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = " ".join(references)
    return {"Uuid": [delivery or str(uuid.uuid4())], "MessageId": headers["Message-ID"],
            "InReplyTo": in_reply_to, "From": {"Name": name, "Address": sender},
            "To": [{"Name": None, "Address": to}], "Subject": subject, "RawTextBody": text,
            "RawHtmlBody": f"<p>{text}</p>", "SentAtDate": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "Headers": headers, "Attachments": []}


def inbound_path(provider: str, t: TenantFixture, brand: str = "a", tenant_id: uuid.UUID | None = None,
                 brand_id: uuid.UUID | None = None) -> str:
    return f"/webhooks/{provider}/inbound/{tenant_id or t.id}/{brand_id or t.brands[brand]}"


async def post_email(base_url: str, t: TenantFixture, *items: dict[str, Any], brand: str = "a",
                     token: str = TOKEN, path: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        return await http.post(path or inbound_path("brevo", t, brand), content=json.dumps({"items": list(items)}),
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def sms_params(sender: str, body: str, *, message_sid: str | None = None, to: str = "+15550000000",
               account_sid: str = "AC" + "0" * 31 + "1") -> dict[str, str]:
    """Twilio's incoming-message webhook form."""
    s = message_sid or sid()
    return {"ToCountry": "US", "ToState": "CA", "SmsMessageSid": s, "NumMedia": "0", "ToCity": "", "FromZip": "",
            "SmsSid": s, "FromState": "", "SmsStatus": "received", "FromCity": "", "Body": body, "FromCountry": "US",
            "To": to, "ToZip": "", "NumSegments": "1", "MessageSid": s, "AccountSid": account_sid, "From": sender,
            "ApiVersion": "2010-04-01"}


async def post_sms(base_url: str, t: TenantFixture, params: dict[str, str], auth_token: str | None, *,
                   brand: str = "a", path: str | None = None, signed_url: str | None = None) -> httpx.Response:
    """Post an incoming SMS, signed with ``auth_token`` over the URL Twilio posts to (the
    server's public URL and the path) unless told otherwise."""
    from domain.delivery.webhooks import TWILIO_SIGNATURE_HEADER, sign_twilio

    path = path or inbound_path("twilio", t, brand)
    headers = {}
    if auth_token is not None:
        headers[TWILIO_SIGNATURE_HEADER] = sign_twilio(auth_token, signed_url or base_url + path, params)
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        return await http.post(path, data=params, headers=headers)


async def post_event(api: Api, provider: str, t: TenantFixture, brand: str, *, json_body: Any = None,
                     form: dict[str, str] | None = None, token: str | None = None,
                     tenant_id: uuid.UUID | None = None, brand_id: uuid.UUID | None = None) -> httpx.Response:
    """A provider delivery event to ``/webhooks/<provider>/<tenant>/<brand>`` (Brevo: bearer
    ``token``; Twilio: signed with ``token`` over the URL)."""
    from domain.delivery.webhooks import TWILIO_SIGNATURE_HEADER, sign_twilio

    path = f"/webhooks/{provider}/{tenant_id or t.id}/{brand_id or t.brands[brand]}"
    if provider == "brevo":
        return await api.http.post(path, content=json.dumps(json_body), headers={"Authorization": f"Bearer {token}"})
    assert form is not None and token is not None
    return await api.http.post(path, data=form,
                               headers={TWILIO_SIGNATURE_HEADER: sign_twilio(token, api.base_url + path, form)})

