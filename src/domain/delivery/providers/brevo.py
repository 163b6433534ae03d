"""Brevo transactional e-mail: ``POST /v3/smtp/email`` with ``messageVersions``.

One request carries a whole call (up to 500 versions; Brevo takes 1000). Each version has its
own recipient, subject, bodies and headers; ``X-Mailin-custom`` in a version's headers carries
our message key, and Brevo returns that header's value as the ``X-Mailin-custom`` field of every
webhook event about the message. (Per-version ``headers`` are not in Brevo's published schema
but are accepted and applied; django-anymail relies on them for per-recipient metadata.)

``headers.idempotencyKey`` is the call's ``batch_key``: Brevo processes a key once within 30
minutes and answers a repeat with a ``duplicate_parameter`` error, which here means "already
sent": the messages are reported accepted, without message ids (events still find them by key).

A request Brevo refuses for an invalid address names no version, so the batch is split in two
and each half sent (with a key derived from the parent's), down to the one bad recipient.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from domain.config import get_settings
from domain.delivery.base import (
    Channel,
    OutboundMessage,
    Outcome,
    ProviderRejected,
    ProviderUnavailable,
    Sender,
    SendResult,
)
from domain.delivery.providers._common import (
    DEFAULT_TIMEOUT,
    HttpClientOwner,
    html_with_preheader,
    json_object,
    retry_after,
    safe_error,
)

VERSION_LIMIT = 1000  # Brevo: up to 1000 message versions per request
# Requests are also kept under this size (big HTML times 500 versions), split deterministically
# so a retried call sends the same parts under the same derived keys.
MAX_REQUEST_BYTES = 10_000_000
CUSTOM_HEADER = "X-Mailin-custom"
# Headers Brevo sets itself or takes as fields; a caller's copy would conflict.
_RESERVED = {"from", "to", "subject", "reply-to", "content-type", "message-id", "idempotencykey", CUSTOM_HEADER.lower()}


def custom_value(message: OutboundMessage) -> str:
    """The ``X-Mailin-custom`` value: JSON with our key (``bg_key``, the same name SendGrid's
    custom arg uses) and the message's metadata; ASCII only, as Brevo sends headers unencoded."""
    return json.dumps({**message.metadata, "bg_key": message.key}, separators=(",", ":"), ensure_ascii=True)


class _InvalidAddress(Exception):
    def __init__(self, text: str) -> None:
        self.text = text


class BrevoProvider(HttpClientOwner):
    name = "brevo"
    channel = Channel.EMAIL
    max_batch = min(VERSION_LIMIT, 500)
    idempotent = True

    def __init__(self, api_key: str, *, http: httpx.AsyncClient | None = None, api_url: str | None = None) -> None:
        super().__init__(http)
        self._api_key = api_key
        self.url = (api_url or get_settings().brevo_api_url).rstrip("/") + "/v3/smtp/email"

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        if not sender.from_email:
            raise ProviderRejected("the brand has no sender e-mail address")
        if not messages:
            return []
        parts = _by_size(messages)
        if len(parts) == 1:
            return await self._send_chunk(sender, messages, batch_key)
        return await self._send_parts(sender, parts, [uuid.uuid5(batch_key, f"part-{i}") for i in range(len(parts))])

    async def _send_chunk(self, sender: Sender, messages: list[OutboundMessage], key: uuid.UUID) -> list[SendResult]:
        try:
            ids = await self._post(self._payload(sender, messages, key))
        except _InvalidAddress as exc:
            if len(messages) == 1:
                return [SendResult(messages[0].key, Outcome.REJECTED, error=exc.text)]
            return await self._split(sender, messages, key)
        if ids is None:  # duplicate idempotency key: Brevo already took this exact request
            return [SendResult(m.key, Outcome.ACCEPTED) for m in messages]
        return [
            SendResult(m.key, Outcome.ACCEPTED, provider_message_id=ids[i] if i < len(ids) else None)
            for i, m in enumerate(messages)
        ]

    async def _split(self, sender: Sender, messages: list[OutboundMessage], key: uuid.UUID) -> list[SendResult]:
        """Halves, each under a key derived from this one, so a retried call re-derives the
        same keys and Brevo still sends each half once."""
        middle = len(messages) // 2
        return await self._send_parts(
            sender, [messages[:middle], messages[middle:]], [uuid.uuid5(key, "0"), uuid.uuid5(key, "1")]
        )

    async def _send_parts(
        self, sender: Sender, parts: list[list[OutboundMessage]], keys: list[uuid.UUID]
    ) -> list[SendResult]:
        """Sends parts concurrently. A part Brevo could not take now is RETRY when another part
        went out (the call as a whole did send something); when none did, the call fails."""
        outcomes = await asyncio.gather(
            *(self._send_chunk(sender, part, key) for part, key in zip(parts, keys, strict=True)),
            return_exceptions=True,
        )
        if all(isinstance(o, BaseException) for o in outcomes):
            raise next((o for o in outcomes if isinstance(o, ProviderRejected)), outcomes[0])
        results: list[SendResult] = []
        for outcome, part in zip(outcomes, parts, strict=True):
            if isinstance(outcome, ProviderUnavailable):
                results += [SendResult(m.key, Outcome.RETRY, error=outcome.message) for m in part]
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results += outcome
        return results

    def _payload(self, sender: Sender, messages: list[OutboundMessage], key: uuid.UUID) -> dict:
        versions = [self._version(m) for m in messages]
        payload: dict = {
            "sender": _contact(sender.from_email or "", sender.from_name),
            # Brevo wants subject and htmlContent at the top even when every version has its own
            "subject": versions[0]["subject"],
            "htmlContent": versions[0]["htmlContent"],
            "headers": {"idempotencyKey": str(key)},
            "messageVersions": versions,
        }
        if sender.reply_to:
            payload["replyTo"] = {"email": sender.reply_to}
        return payload

    def _version(self, message: OutboundMessage) -> dict:
        html = html_with_preheader(message.html, message.preheader)
        if html is None:  # Brevo needs HTML; a text-only message is sent as preformatted text
            html = "<pre>" + _escape(message.text or "") + "</pre>"
        version: dict = {
            "to": [_contact(message.to, message.to_name)],
            "subject": message.subject or "",
            "htmlContent": html,
            "headers": {
                **{k: v for k, v in message.headers.items() if k.lower() not in _RESERVED},
                CUSTOM_HEADER: custom_value(message),
            },
        }
        if message.text is not None:
            version["textContent"] = message.text
        return version

    async def _post(self, payload: dict) -> list[str] | None:
        """Message ids in version order, or None when Brevo says the idempotency key was used."""
        try:
            response = await self.http.post(
                self.url,
                json=payload,
                headers={"api-key": self._api_key, "accept": "application/json"},
                timeout=DEFAULT_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Brevo unreachable ({type(exc).__name__})") from None
        if response.status_code in (200, 201, 202):
            body = json_object(response)
            ids = body.get("messageIds")
            if isinstance(ids, list):
                return [str(i) for i in ids]
            return [str(body["messageId"])] if body.get("messageId") else []
        error = self._error(response)
        if isinstance(error, _Duplicate):
            return None
        raise error

    def _error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        body = json_object(response)
        code = str(body.get("code") or "")
        text = safe_error(f"{code}: {body.get('message') or ''}".strip(": "), f"HTTP {status}")
        if status == 429:
            return ProviderUnavailable(f"Brevo rate limit: {text}", status=status, retry_after=retry_after(response.headers))
        if status >= 500:
            return ProviderUnavailable(f"Brevo error: {text}", status=status, retry_after=retry_after(response.headers))
        if status == 400 and code == "duplicate_parameter":
            return _Duplicate()
        if status == 400 and _is_invalid_address(code, str(body.get("message") or "")):
            return _InvalidAddress(text)
        return ProviderRejected(f"Brevo refused the request: {text}", status=status)


class _Duplicate(Exception):
    pass


def _by_size(messages: list[OutboundMessage]) -> list[list[OutboundMessage]]:
    parts: list[list[OutboundMessage]] = [[]]
    size = 0
    for m in messages:
        weight = 512 + len(m.html or "") + len(m.text or "") + len(m.subject or "") + len(m.preheader or "") + sum(
            len(k) + len(v) for k, v in m.headers.items()
        )
        if parts[-1] and size + weight > MAX_REQUEST_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(m)
        size += weight
    return parts


def _is_invalid_address(code: str, message: str) -> bool:
    message = message.lower()
    return code == "invalid_parameter" and "email" in message and ("valid" in message or "invalid" in message)


def _contact(email: str, name: str | None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
