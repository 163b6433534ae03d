"""Inbound messages from providers, parsed (pure functions, like :mod:`domain.delivery.webhooks`).

* E-mail: Brevo's inbound parsing webhook — a JSON body with an ``items`` array, one parsed
  e-mail each (``Uuid``, ``MessageId``, ``InReplyTo``, ``From`` {Name, Address}, ``To``,
  ``Subject``, ``RawTextBody``, ``RawHtmlBody``, ``ExtractedMarkdownMessage``, ``Headers``,
  ``Attachments``), authenticated like Brevo's event webhooks with the webhook's bearer token.
* SMS: Twilio's incoming-message webhook — a form POST (``MessageSid``, ``From``, ``To``,
  ``Body``, ``NumMedia``, ``MediaUrl<n>``, ``MediaContentType<n>``), signed with
  ``X-Twilio-Signature`` (see :func:`domain.delivery.webhooks.verify_twilio`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from domain.delivery.base import WebhookRejected

MAX_ITEMS = 100
_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class InboundMessage:
    channel: str  # email | sms
    provider: str
    provider_message_id: str  # the provider's id of this delivery (dedupe key)
    from_address: str
    to_address: str | None
    received_at: datetime
    from_name: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    message_id: str | None = None  # e-mail Message-ID header, with angle brackets
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attachments: list[dict[str, Any]] = field(default_factory=list)


def message_ids(value: Any) -> tuple[str, ...]:
    """Message-IDs in a header value, in order, angle brackets kept."""
    if not isinstance(value, str):
        return ()
    return tuple(_MSGID.findall(value))


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value if isinstance(value, str) else (value[0] if isinstance(value, list) and value else None)
    return None


def _when(value: Any) -> datetime:
    if isinstance(value, str) and value:
        for parse in (datetime.fromisoformat, parsedate_to_datetime):
            try:
                at = parse(value.replace("Z", "+00:00")) if parse is datetime.fromisoformat else parse(value)
                return at if at.tzinfo else at.replace(tzinfo=UTC)
            except (ValueError, TypeError):
                continue
    return datetime.now(UTC)


def parse_brevo_inbound(body: bytes) -> list[InboundMessage]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("body is not JSON") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise WebhookRejected("unexpected payload")
    out = []
    for item in items:
        sender = item.get("From") or {}
        address = (sender.get("Address") or "").strip().lower() if isinstance(sender, dict) else ""
        if not address:
            continue
        to = item.get("To") or []
        to_address = to[0].get("Address") if isinstance(to, list) and to and isinstance(to[0], dict) else None
        headers = item.get("Headers") or {}
        message_id = item.get("MessageId") or _header(headers, "Message-ID")
        in_reply_to = item.get("InReplyTo") or _header(headers, "In-Reply-To")
        uuid_ = item.get("Uuid")
        delivery_id = (uuid_[0] if isinstance(uuid_, list) and uuid_ else uuid_) or message_id
        if not delivery_id:
            continue
        attachments = [{"name": a.get("Name"), "content_type": a.get("ContentType"), "size": a.get("ContentLength"),
                        "content_id": a.get("ContentID")}
                       for a in item.get("Attachments") or [] if isinstance(a, dict)]
        text = item.get("ExtractedMarkdownMessage") or item.get("RawTextBody")
        out.append(InboundMessage(
            channel="email", provider="brevo", provider_message_id=str(delivery_id)[:200], from_address=address,
            to_address=(to_address or "").lower() or None, received_at=_when(item.get("SentAtDate")),
            from_name=sender.get("Name") if isinstance(sender, dict) else None, subject=item.get("Subject"),
            text=text, html=item.get("RawHtmlBody"),
            message_id=(message_ids(message_id) or (message_id,))[0] if message_id else None,
            in_reply_to=(message_ids(in_reply_to) or (None,))[0] if in_reply_to else None,
            references=message_ids(_header(headers, "References")), attachments=attachments))
    return out


def parse_twilio_inbound(params: Mapping[str, str]) -> list[InboundMessage]:
    sid = params.get("MessageSid") or params.get("SmsSid")
    sender = params.get("From")
    if not sid or not sender:
        raise WebhookRejected("not an incoming message")
    media = []
    try:
        count = int(params.get("NumMedia") or 0)
    except ValueError:
        count = 0
    for i in range(min(count, 10)):
        media.append({"url": params.get(f"MediaUrl{i}"), "content_type": params.get(f"MediaContentType{i}")})
    return [InboundMessage(channel="sms", provider="twilio", provider_message_id=sid, from_address=sender,
                           to_address=params.get("To"), received_at=datetime.now(UTC), text=params.get("Body") or "",
                           attachments=media)]
