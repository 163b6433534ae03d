"""Provider webhooks: proving a request comes from the provider, and reading what it says.

Pure functions over the raw request (body bytes, headers, form fields): the HTTP layer looks up
the brand's secret, calls ``verify_*`` (which raises :class:`WebhookRejected`), then ``parse_*``
for normalised :class:`DeliveryEvent`s. Verification always runs over the exact bytes received;
parsing never trusts a payload that was not verified first.

* SendGrid signs each POST with ECDSA P-256 over ``timestamp + body`` (headers
  ``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``); the brand stores the public key
  SendGrid shows (base64 DER). Our key comes back as the ``bg_key`` custom arg.
* Brevo has no signature: a webhook is configured with a bearer token (or basic auth) that it
  sends as ``Authorization``. Our key comes back in the ``X-Mailin-custom`` field.
* Twilio signs status callbacks with ``X-Twilio-Signature``: base64 HMAC-SHA1 (key: the auth
  token) of the full URL followed by each POST field name and value, sorted by name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from domain.delivery.base import DeliveryEvent, EventKind, WebhookRejected

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_EVENTS = 10_000  # one request; SendGrid batches up to ~1000, Brevo batched webhooks fewer


# --- SendGrid ---------------------------------------------------------------------------------


def load_sendgrid_key(public_key: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER (as its console shows it), PEM accepted too.
    Raises ValueError when it is not an EC P-256 public key."""
    text = public_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("is not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("is not an ECDSA P-256 public key")
    return key


def verify_sendgrid(public_key: str, signature_b64: str | None, timestamp: str | None, body: bytes) -> None:
    """Raises WebhookRejected unless ``signature_b64`` is SendGrid's signature of
    ``timestamp + body`` under ``public_key``."""
    if not public_key or not signature_b64 or not timestamp:
        raise WebhookRejected("missing signature")
    try:
        key = load_sendgrid_key(public_key)
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (ValueError, binascii.Error, InvalidSignature):
        raise WebhookRejected("invalid signature") from None


def sign_sendgrid(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """What SendGrid sends as the signature header (for tests and the bench)."""
    return base64.b64encode(private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


_SENDGRID_KINDS = {
    "delivered": EventKind.DELIVERED,
    "bounce": EventKind.BOUNCED,
    "blocked": EventKind.FAILED,
    "dropped": EventKind.FAILED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
}


def parse_sendgrid(body: bytes) -> list[DeliveryEvent]:
    """SendGrid posts a JSON array of events. ``processed``, ``deferred`` and
    ``group_resubscribe`` say nothing final and are skipped. A ``bounce`` of ``type: blocked``
    (the receiving server refused the sender, not the address) is FAILED, not BOUNCED."""
    items = _json_list(body)
    events = []
    for item in items:
        kind = _SENDGRID_KINDS.get(str(item.get("event") or ""))
        if kind is None:
            continue
        if kind is EventKind.BOUNCED and item.get("type") == "blocked":
            kind = EventKind.FAILED
        sg_message_id = item.get("sg_message_id")
        events.append(
            DeliveryEvent(
                kind=kind,
                occurred_at=_epoch(item.get("timestamp")),
                message_key=_str(item.get("bg_key")),
                # sg_message_id is the X-Message-Id of the send, then ".filter..." routing parts
                provider_message_id=str(sg_message_id).split(".", 1)[0] if sg_message_id else None,
                url=_str(item.get("url")) if kind is EventKind.CLICKED else None,
                reason=_str(item.get("reason") or item.get("response") or item.get("status")),
                raw=item,
            )
        )
    return events


# --- Brevo ------------------------------------------------------------------------------------


def verify_brevo(expected_token: str, authorization_header: str | None) -> None:
    """Raises WebhookRejected unless the request carries the token the webhook was configured
    with: ``Authorization: Bearer <token>``, or basic auth whose password is the token."""
    if not expected_token or not authorization_header:
        raise WebhookRejected("missing credentials")
    scheme, _, value = authorization_header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (ValueError, binascii.Error):
            raise WebhookRejected("invalid credentials") from None
    elif scheme.lower() != "bearer":
        raise WebhookRejected("invalid credentials")
    if not hmac.compare_digest(value.encode(), expected_token.encode()):
        raise WebhookRejected("invalid credentials")


_BREVO_KINDS = {
    "delivered": EventKind.DELIVERED,
    "hard_bounce": EventKind.BOUNCED,
    "hardbounce": EventKind.BOUNCED,
    "invalid_email": EventKind.BOUNCED,
    "invalid": EventKind.BOUNCED,
    "soft_bounce": EventKind.FAILED,
    "softbounce": EventKind.FAILED,
    "blocked": EventKind.FAILED,
    "error": EventKind.FAILED,
    "opened": EventKind.OPENED,
    "unique_opened": EventKind.OPENED,
    "uniqueopened": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "clicked": EventKind.CLICKED,
    "spam": EventKind.COMPLAINED,
    "complaint": EventKind.COMPLAINED,
    "unsubscribed": EventKind.UNSUBSCRIBED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
}


def parse_brevo(body: bytes) -> list[DeliveryEvent]:
    """One event per request, or a JSON array (Brevo's batched webhooks). ``request`` (sent),
    ``deferred`` and proxy opens (privacy proxies fetch every image) are skipped. A soft bounce
    is FAILED: the address is fine, this delivery was not."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("body is not JSON") from None
    items = data if isinstance(data, list) else [data]
    if len(items) > MAX_EVENTS or not all(isinstance(i, dict) for i in items):
        raise WebhookRejected("unexpected payload")
    events = []
    for item in items:
        kind = _BREVO_KINDS.get(str(item.get("event") or "").lower())
        if kind is None:
            continue
        ts = item.get("ts_event") or item.get("ts")
        events.append(
            DeliveryEvent(
                kind=kind,
                occurred_at=_epoch(ts) if ts else _brevo_date(item.get("date")),
                message_key=brevo_key(item.get("X-Mailin-custom")),
                provider_message_id=_str(item.get("message-id") or item.get("messageId")),
                url=_str(item.get("link") or item.get("url")) if kind is EventKind.CLICKED else None,
                reason=_str(item.get("reason")),
                raw=item,
            )
        )
    return events


def brevo_key(custom: Any) -> str | None:
    """Our key from ``X-Mailin-custom``: the providers send JSON with ``bg_key``; a plain string
    is taken as the key itself."""
    if not isinstance(custom, str) or not custom:
        return None
    try:
        data = json.loads(custom)
    except ValueError:
        return custom
    if isinstance(data, dict):
        return _str(data.get("bg_key"))
    return custom


# --- Twilio -----------------------------------------------------------------------------------


def sign_twilio(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio computes for a POST to ``url`` with ``params``."""
    data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> None:
    """Raises WebhookRejected unless ``signature`` is Twilio's for this URL (exactly as Twilio
    requested it, scheme, port and query included) and these form fields."""
    if not auth_token or not signature:
        raise WebhookRejected("missing signature")
    expected = sign_twilio(auth_token, url, params)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRejected("invalid signature")


_TWILIO_KINDS = {
    "delivered": EventKind.DELIVERED,
    "undelivered": EventKind.FAILED,
    "failed": EventKind.FAILED,
}


def parse_twilio_status(params: Mapping[str, str], *, received_at: datetime | None = None) -> list[DeliveryEvent]:
    """A status callback as at most one event. queued / sending / sent / accepted are steps on
    the way and give none. Twilio's callbacks carry no time of their own: the event is dated
    when it was received."""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    kind = _TWILIO_KINDS.get(status)
    sid = params.get("MessageSid") or params.get("SmsSid")
    if kind is None or not sid:
        return []
    reason = None
    if kind is EventKind.FAILED:
        reason = params.get("ErrorCode") or status
    return [
        DeliveryEvent(
            kind=kind,
            occurred_at=received_at or datetime.now(UTC),
            provider_message_id=sid,
            reason=reason,
            raw=dict(params),
        )
    ]


# --- helpers ----------------------------------------------------------------------------------


def _json_list(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("body is not JSON") from None
    if not isinstance(data, list) or len(data) > MAX_EVENTS or not all(isinstance(i, dict) for i in data):
        raise WebhookRejected("unexpected payload")
    return data


def _epoch(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _brevo_date(value: Any) -> datetime:
    """``date`` is "YYYY-MM-DD HH:MM:SS" in Brevo's CET/CEST; only used without ``ts_event``."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)
        except (ValueError, KeyError):
            pass
    return datetime.now(UTC)


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
