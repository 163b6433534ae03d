"""SendGrid v3 mail send: ``POST /v3/mail/send``.

A request has one body (``content``) and many ``personalizations`` (recipient, subject, headers,
``custom_args``). So messages whose HTML and text are identical go out together, one
personalization each, and messages with their own content go out as their own requests, a few at
a time. Our key travels as the ``bg_key`` custom arg, which SendGrid puts on every event.

SendGrid answers 202 with one ``X-Message-Id`` for the request: that is every message's provider
id (events carry it as the prefix of ``sg_message_id``). It has no idempotency key, so a retried
call may send twice. A request refused for an invalid address names the personalization
(``personalizations.3.to.0.email``): those are rejected and the rest sent again.
"""

from __future__ import annotations

import re
import uuid

import httpx

from domain.config import get_settings
from domain.delivery.base import (
    Channel,
    OutboundMessage,
    Outcome,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    Sender,
    SendResult,
)
from domain.delivery.providers._common import (
    DEFAULT_TIMEOUT,
    HttpClientOwner,
    gather_limited,
    html_with_preheader,
    retry_after,
    safe_error,
)

PERSONALIZATION_LIMIT = 1000  # SendGrid: personalizations per request
CONCURRENT_REQUESTS = 10
KEY_ARG = "bg_key"
# Headers SendGrid refuses in ``headers`` (it sets them itself).
_RESERVED = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
    "message-id",
}
_BAD_ADDRESS_FIELD = re.compile(r"^personalizations\.(\d+)\.(?:to|cc|bcc)\.\d+\.email$")


class _InvalidAddresses(Exception):
    """The request was refused for these personalization indices (empty: SendGrid did not say)."""

    def __init__(self, indices: set[int], text: str) -> None:
        self.indices = indices
        self.text = text


class SendGridProvider(HttpClientOwner):
    name = "sendgrid"
    channel = Channel.EMAIL
    max_batch = 500
    idempotent = False

    def __init__(self, api_key: str, *, http: httpx.AsyncClient | None = None, api_url: str | None = None) -> None:
        super().__init__(http)
        self._api_key = api_key
        self.url = (api_url or get_settings().sendgrid_api_url).rstrip("/") + "/v3/mail/send"

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        if not sender.from_email:
            raise ProviderRejected("the brand has no sender e-mail address")
        groups = _by_content(messages)
        outcomes = await gather_limited(
            [self._guarded(sender, [messages[i] for i in group]) for group in groups], CONCURRENT_REQUESTS
        )
        return self._combine(messages, groups, outcomes)

    def _combine(
        self,
        messages: list[OutboundMessage],
        groups: list[list[int]],
        outcomes: list[list[SendResult] | ProviderError],
    ) -> list[SendResult]:
        """Groups that failed as a whole: when nothing of the call went out, the call fails the
        same way; otherwise their messages are RETRY (unavailable) or REJECTED (refused)."""
        accepted = any(isinstance(o, list) and any(r.outcome is Outcome.ACCEPTED for r in o) for o in outcomes)
        errors = [o for o in outcomes if isinstance(o, ProviderError)]
        if errors and not accepted and len(errors) == len(outcomes):
            rejected = [e for e in errors if isinstance(e, ProviderRejected)]
            raise rejected[0] if rejected else errors[0]
        results: list[SendResult | None] = [None] * len(messages)
        for group, outcome in zip(groups, outcomes, strict=True):
            for n, i in enumerate(group):
                if isinstance(outcome, list):
                    results[i] = outcome[n]
                else:
                    kind = Outcome.REJECTED if isinstance(outcome, ProviderRejected) else Outcome.RETRY
                    results[i] = SendResult(messages[i].key, kind, error=outcome.message)
        return [r for r in results if r is not None]

    async def _guarded(self, sender: Sender, messages: list[OutboundMessage]) -> list[SendResult] | ProviderError:
        try:
            return await self._send_group(sender, messages)
        except ProviderError as exc:
            return exc

    async def _send_group(self, sender: Sender, messages: list[OutboundMessage]) -> list[SendResult]:
        """One content, many recipients: send, drop the recipients SendGrid names as invalid,
        send the rest again."""
        results: dict[str, SendResult] = {}
        remaining = list(messages)
        while remaining:
            try:
                message_id = await self._post(self._payload(sender, remaining))
            except _InvalidAddresses as exc:
                named = {i for i in exc.indices if i < len(remaining)}
                if len(remaining) == 1:
                    results[remaining[0].key] = SendResult(remaining[0].key, Outcome.REJECTED, error=exc.text)
                elif not named:  # SendGrid did not say which: find out one by one
                    await self._one_by_one(sender, remaining, results)
                else:
                    for i in named:
                        results[remaining[i].key] = SendResult(remaining[i].key, Outcome.REJECTED, error=exc.text)
                    remaining = [m for i, m in enumerate(remaining) if i not in named]
                    continue
                break
            for m in remaining:
                results[m.key] = SendResult(m.key, Outcome.ACCEPTED, provider_message_id=message_id)
            break
        return [results[m.key] for m in messages]

    async def _one_by_one(self, sender: Sender, messages: list[OutboundMessage], into: dict[str, SendResult]) -> None:
        singles = await gather_limited([self._guarded(sender, [m]) for m in messages], CONCURRENT_REQUESTS)
        for m, single in zip(messages, singles, strict=True):
            if isinstance(single, list):
                into[m.key] = single[0]
            else:
                kind = Outcome.REJECTED if isinstance(single, ProviderRejected) else Outcome.RETRY
                into[m.key] = SendResult(m.key, kind, error=single.message)

    def _payload(self, sender: Sender, messages: list[OutboundMessage]) -> dict:
        first = messages[0]
        payload: dict = {
            "personalizations": [_personalization(m) for m in messages],
            "from": _contact(sender.from_email or "", sender.from_name),
            "content": _content(first),
        }
        if sender.reply_to:
            payload["reply_to"] = {"email": sender.reply_to}
        return payload

    async def _post(self, payload: dict) -> str | None:
        try:
            response = await self.http.post(
                self.url,
                json=payload,
                headers={"authorization": f"Bearer {self._api_key}"},
                timeout=DEFAULT_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"SendGrid unreachable ({type(exc).__name__})") from None
        if response.status_code in (200, 202):
            return response.headers.get("x-message-id")
        raise _error(response)


def _by_content(messages: list[OutboundMessage]) -> list[list[int]]:
    """Indices of messages sharing HTML (with preheader) and text, in first-seen order, each
    group at most the personalization limit."""
    groups: dict[tuple[str | None, str | None, str | None], list[list[int]]] = {}
    order: list[list[int]] = []
    for i, m in enumerate(messages):
        chunks = groups.setdefault((m.html, m.preheader, m.text), [])
        if not chunks or len(chunks[-1]) >= PERSONALIZATION_LIMIT:
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(i)
    return order


def _personalization(message: OutboundMessage) -> dict:
    custom = {str(k): str(v) for k, v in message.metadata.items()}
    custom[KEY_ARG] = message.key
    item: dict = {
        "to": [_contact(message.to, message.to_name)],
        "subject": message.subject or "",
        "custom_args": custom,
    }
    headers = {k: v for k, v in message.headers.items() if k.lower() not in _RESERVED}
    if headers:
        item["headers"] = headers
    return item


def _content(message: OutboundMessage) -> list[dict[str, str]]:
    """text/plain first, as SendGrid requires."""
    content = []
    if message.text:
        content.append({"type": "text/plain", "value": message.text})
    html = html_with_preheader(message.html, message.preheader)
    if html:
        content.append({"type": "text/html", "value": html})
    return content or [{"type": "text/plain", "value": " "}]


def _contact(email: str, name: str | None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _error(response: httpx.Response) -> Exception:
    status = response.status_code
    errors = _errors(response)
    text = safe_error("; ".join(str(e.get("message") or "") for e in errors), f"HTTP {status}")
    if status == 429:
        return ProviderUnavailable(f"SendGrid rate limit: {text}", status=status, retry_after=retry_after(response.headers))
    if status >= 500:
        return ProviderUnavailable(f"SendGrid error: {text}", status=status, retry_after=retry_after(response.headers))
    if status == 400:
        indices: set[int] = set()
        address_errors = 0
        for e in errors:
            match = _BAD_ADDRESS_FIELD.match(str(e.get("field") or ""))
            message = str(e.get("message") or "").lower()
            if match or "valid address" in message or "valid email" in message:
                address_errors += 1
                if match:
                    indices.add(int(match.group(1)))
        # only when addresses are all that is wrong; anything else is the request's problem
        if errors and address_errors == len(errors):
            return _InvalidAddresses(indices, text)
    return ProviderRejected(f"SendGrid refused the request: {text}", status=status)


def _errors(response: httpx.Response) -> list[dict]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
