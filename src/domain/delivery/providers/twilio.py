"""SMS through Twilio's Messages API: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

Twilio takes one message per request, so a call's messages go out concurrently. Each answer is
that message's outcome: created (its ``sid`` is the provider id; status callbacks carry it as
``MessageSid``), refused for good (a number that is not a valid mobile number), or not now (rate
limited, server error). Twilio has no idempotency key.

``status_callback_url`` may contain ``{key}``, replaced per message by its URL-encoded key, for a
webhook that wants the key without a lookup; Twilio signs the URL as given, query included.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import httpx

from domain.config import get_settings
from domain.delivery.base import (
    Channel,
    OutboundMessage,
    Outcome,
    ProviderRejected,
    Sender,
    SendResult,
)
from domain.delivery.providers._common import (
    DEFAULT_TIMEOUT,
    Answer,
    CallRejected,
    HttpClientOwner,
    gather_limited,
    json_object,
    per_message_results,
    retry_after,
    safe_error,
)

# Any other 4xx is this message's problem and final: 21211 invalid 'To', 21614 not a mobile
# number, 21610 recipient replied STOP, 21408 region not enabled... (twilio.com/docs/api/errors).
# These instead mean the account or sender is misconfigured: the whole call is refused.
CONFIG_CODES = {20003, 20404, 21212, 21606, 21659, 21703, 21704, 21705}
RATE_LIMITED = 20429


class TwilioProvider(HttpClientOwner):
    name = "twilio"
    channel = Channel.SMS
    max_batch = 20
    idempotent = False

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        messaging_service_sid: str | None = None,
        status_callback_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        api_url: str | None = None,
    ) -> None:
        super().__init__(http)
        self.account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self.messaging_service_sid = messaging_service_sid or None
        self.status_callback_url = status_callback_url or None
        base = (api_url or get_settings().twilio_api_url).rstrip("/")
        self.url = f"{base}/2010-04-01/Accounts/{quote(account_sid, safe='')}/Messages.json"

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        if not self.messaging_service_sid and not sender.sms_sender:
            raise ProviderRejected("the brand has no SMS sender and no messaging service is configured")
        answers = await gather_limited([self._send_one(sender, m) for m in messages], self.max_batch)
        return per_message_results(messages, answers)

    def _form(self, sender: Sender, message: OutboundMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.text or message.body or ""}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = sender.sms_sender or ""
        if self.status_callback_url:
            form["StatusCallback"] = self.status_callback_url.replace("{key}", quote(message.key, safe=""))
        return form

    async def _send_one(
        self, sender: Sender, message: OutboundMessage
    ) -> Answer:
        """The message's result with the HTTP status and Retry-After behind it."""
        try:
            response = await self.http.post(
                self.url, data=self._form(sender, message), auth=self._auth, timeout=DEFAULT_TIMEOUT
            )
        except httpx.HTTPError as exc:
            return SendResult(message.key, Outcome.RETRY, error=f"Twilio unreachable ({type(exc).__name__})"), None, None
        status = response.status_code
        body = json_object(response)
        if status in (200, 201):
            return SendResult(message.key, Outcome.ACCEPTED, provider_message_id=str(body.get("sid") or "")), status, None
        code = body.get("code")
        text = safe_error(f"{code}: {body.get('message') or ''}" if code else str(body.get("message") or ""), f"HTTP {status}")
        if status == 429 or code == RATE_LIMITED or status >= 500:
            return SendResult(message.key, Outcome.RETRY, error=text), status, retry_after(response.headers)
        if status in (401, 403) or code in CONFIG_CODES:
            return CallRejected(f"Twilio refused the account: {text}", status)
        return SendResult(message.key, Outcome.REJECTED, error=text), status, None
