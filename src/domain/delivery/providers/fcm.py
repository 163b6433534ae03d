"""Push through Firebase Cloud Messaging HTTP v1: ``POST /v1/projects/{id}/messages:send``.

FCM authenticates with a short-lived OAuth2 access token, which we get by signing a JWT with the
brand's service-account key (the JWT bearer grant) and cache until shortly before it expires:
one token serves every message of every call for about an hour.

The token is always requested from the process setting ``FCM_TOKEN_URL``, never from the
``token_uri`` inside the uploaded JSON: that file is tenant input, and following it would let a
tenant make us post signed requests wherever it likes.

One request per message, concurrently. A device token FCM no longer knows (404 UNREGISTERED) or
refuses (400 INVALID_ARGUMENT) is REJECTED: the device is gone and should be forgotten.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

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
    Answer,
    CallRejected,
    HttpClientOwner,
    gather_limited,
    json_object,
    per_message_results,
    retry_after,
    safe_error,
)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # Google's maximum
REFRESH_MARGIN = 300.0  # a new token this long before the old one expires
REJECTED_ERRORS = {"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"}


@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key: RSAPrivateKey
    private_key_id: str | None = None


def parse_service_account(raw: str | dict[str, Any]) -> ServiceAccount:
    """The fields we use from a Google service-account JSON key. Raises ValueError naming the
    problem (never quoting the key)."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise ValueError("is not a JSON object")
    for name in ("project_id", "client_email", "private_key"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ValueError(f"has no {name}")
    try:
        key = load_pem_private_key(data["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("private_key is not a PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("private_key is not an RSA key")
    key_id = data.get("private_key_id")
    return ServiceAccount(data["project_id"], data["client_email"], key, key_id if isinstance(key_id, str) else None)


class FcmProvider(HttpClientOwner):
    name = "fcm"
    channel = Channel.PUSH
    max_batch = 50
    idempotent = False

    def __init__(
        self,
        service_account: str | dict[str, Any] | ServiceAccount,
        *,
        http: httpx.AsyncClient | None = None,
        api_url: str | None = None,
        token_url: str | None = None,
    ) -> None:
        super().__init__(http)
        self.account = (
            service_account if isinstance(service_account, ServiceAccount) else parse_service_account(service_account)
        )
        settings = get_settings()
        self.token_url = token_url or settings.fcm_token_url
        base = (api_url or settings.fcm_api_url).rstrip("/")
        self.url = f"{base}/v1/projects/{quote(self.account.project_id, safe='')}/messages:send"
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.token_fetches = 0

    async def send(self, sender: Sender, messages: list[OutboundMessage], batch_key: uuid.UUID) -> list[SendResult]:
        token = await self.access_token()
        answers = await gather_limited([self._send_one(m, token) for m in messages], self.max_batch)
        return per_message_results(messages, answers)

    async def access_token(self, *, stale: str | None = None) -> str:
        """The cached token, or a new one when it is about to expire or when ``stale`` (the
        token FCM just refused) is still the cached one. Concurrent callers share one fetch."""
        async with self._lock:
            fresh = time.monotonic() < self._expires_at - REFRESH_MARGIN
            if self._token is not None and self._token != stale and (fresh or stale is not None):
                return self._token  # still good, or another send already replaced the refused one
            self._token, lifetime = await self._fetch_token()
            self._expires_at = time.monotonic() + lifetime
            return self._token

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"kid": self.account.private_key_id} if self.account.private_key_id else None
        return jwt.encode(claims, self.account.private_key, algorithm="RS256", headers=headers)

    async def _fetch_token(self) -> tuple[str, float]:
        self.token_fetches += 1
        try:
            response = await self.http.post(
                self.token_url,
                data={"grant_type": GRANT_TYPE, "assertion": self._assertion()},
                timeout=DEFAULT_TIMEOUT,
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Google token endpoint unreachable ({type(exc).__name__})") from None
        body = json_object(response)
        if response.status_code == 200 and isinstance(body.get("access_token"), str):
            return body["access_token"], float(body.get("expires_in") or 3600)
        text = safe_error(f"{body.get('error') or ''}: {body.get('error_description') or ''}".strip(": "), f"HTTP {response.status_code}")
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(f"Google token endpoint: {text}", status=response.status_code,
                                      retry_after=retry_after(response.headers))
        raise ProviderRejected(f"Google refused the service account: {text}", status=response.status_code)

    def _body(self, message: OutboundMessage) -> dict:
        payload: dict[str, Any] = {"token": message.to}
        notification = {k: v for k, v in (("title", message.title), ("body", message.body)) if v}
        if notification:
            payload["notification"] = notification
        if message.data:
            payload["data"] = {str(k): str(v) for k, v in message.data.items()}
        return {"message": payload}

    async def _send_one(
        self, message: OutboundMessage, token: str
    ) -> Answer:
        """Sends one message; on 401 gets a new token (once for all concurrent sends) and tries
        once more."""
        for attempt in range(2):
            try:
                response = await self.http.post(
                    self.url,
                    json=self._body(message),
                    headers={"authorization": f"Bearer {token}"},
                    timeout=DEFAULT_TIMEOUT,
                )
            except httpx.HTTPError as exc:
                return SendResult(message.key, Outcome.RETRY, error=f"FCM unreachable ({type(exc).__name__})"), None, None
            if response.status_code == 401 and attempt == 0:
                try:
                    token = await self.access_token(stale=token)
                except ProviderRejected as exc:
                    return CallRejected(exc.message, exc.status)
                except ProviderUnavailable as exc:
                    return SendResult(message.key, Outcome.RETRY, error=exc.message), exc.status, exc.retry_after
                continue
            return self._answer(message, response)
        raise AssertionError("unreachable")

    def _answer(self, message: OutboundMessage, response: httpx.Response) -> Answer:
        status = response.status_code
        body = json_object(response)
        if status == 200:
            return SendResult(message.key, Outcome.ACCEPTED, provider_message_id=str(body.get("name") or "")), status, None
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        fcm_code = _fcm_error_code(error) or str(error.get("status") or "")
        text = safe_error(f"{fcm_code}: {error.get('message') or ''}".strip(": "), f"HTTP {status}")
        if status in (429, 500, 502, 503, 504) or fcm_code in ("QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"):
            return SendResult(message.key, Outcome.RETRY, error=text), status, retry_after(response.headers)
        if fcm_code in REJECTED_ERRORS:
            return SendResult(message.key, Outcome.REJECTED, error=text), status, None
        if status in (401, 403, 404):  # our project, key or permissions, not this device
            return CallRejected(f"FCM refused the project: {text}", status)
        return SendResult(message.key, Outcome.REJECTED, error=text), status, None


def _fcm_error_code(error: dict) -> str | None:
    """FCM's own code (UNREGISTERED, ...) from ``error.details[].errorCode``."""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return None
