"""The AI providers' real clients: the official ``openai`` and ``anthropic`` SDKs (Perplexity and
operator endpoints through ``openai`` with their base URL), httpx for Jasper and Canva.

Base URLs come from the process's environment (``OPENAI_API_URL``, ``ANTHROPIC_API_URL``,
``PERPLEXITY_API_URL``, ``JASPER_API_URL``, ``CANVA_API_URL``), never from tenant input. Every
message a provider returns passes through :func:`scrub` before it is kept or shown, so a provider
that echoes a key does not leak it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx
import openai

from domain.ai.models import Provider, TestStatus
from domain.config import get_settings

TEST_TIMEOUT = 10.0
CANVA_REFRESH_MARGIN = timedelta(minutes=5)


@dataclass
class TestResult:
    status: TestStatus
    message: str
    latency_ms: int
    live_models: list[str] | None = None
    retry_after: float | None = None
    credentials: dict[str, Any] | None = None  # refreshed credentials to store (Canva)


@dataclass
class Outcome:
    """What one provider call came to, before timing."""

    status: TestStatus
    message: str
    live_models: list[str] | None = None
    retry_after: float | None = None
    credentials: dict[str, Any] | None = field(default=None)


def mask(secret: str) -> str:
    """``sk-…a1b2``: a recognisable prefix and the last four characters, never more than a
    quarter of the secret."""
    secret = secret.strip()
    if len(secret) < 12:
        return "…" + secret[-2:] if len(secret) > 4 else "…"
    head = secret[:3] if secret[:3].isascii() else ""
    return f"{head}…{secret[-4:]}"


def scrub(message: str | None, credentials: dict[str, Any]) -> str:
    text = (message or "")[:400]
    for value in credentials.values():
        if isinstance(value, str) and len(value) >= 6:
            text = text.replace(value, mask(value))
    return text


def _retry_after(headers: Any) -> float | None:
    for name in ("retry-after", "x-ratelimit-reset-requests", "anthropic-ratelimit-requests-reset"):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return None


def _sdk_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", None) or exc)


def _sdk_outcome(exc: Exception) -> Outcome:
    """Map an ``openai`` or ``anthropic`` SDK error to a test status."""
    for sdk in (openai, anthropic):
        if isinstance(exc, (sdk.AuthenticationError, sdk.PermissionDeniedError)):
            return Outcome(TestStatus.AUTH_FAILED, _sdk_message(exc))
        if isinstance(exc, sdk.RateLimitError):
            return Outcome(TestStatus.RATE_LIMITED, _sdk_message(exc), retry_after=_retry_after(exc.response.headers))
        if isinstance(exc, sdk.APIConnectionError):  # includes timeouts
            return Outcome(TestStatus.UNREACHABLE, "the provider could not be reached"
                           + (" in time" if isinstance(exc, sdk.APITimeoutError) else ""))
        if isinstance(exc, sdk.APIStatusError):
            return Outcome(TestStatus.ERROR, f"HTTP {exc.status_code}: {_sdk_message(exc)}",
                           retry_after=_retry_after(exc.response.headers))
    raise exc


def _http_outcome(response: httpx.Response) -> Outcome:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = ""
    if isinstance(body, dict):
        err = body.get("error")
        message = (err.get("message") if isinstance(err, dict) else err) or body.get("message") or ""
    status = {401: TestStatus.AUTH_FAILED, 403: TestStatus.AUTH_FAILED,
              429: TestStatus.RATE_LIMITED}.get(response.status_code, TestStatus.ERROR)
    if status is TestStatus.ERROR:
        message = f"HTTP {response.status_code}: {message}"
    return Outcome(status, str(message), retry_after=_retry_after(response.headers))


def openai_client(api_key: str, base_url: str, *, timeout: float, organization: str | None = None,
                  project: str | None = None, max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, organization=organization or None,
                              project=project or None, timeout=timeout, max_retries=max_retries)


def anthropic_client(api_key: str, *, timeout: float, max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=get_settings().anthropic_api_url,
                                    timeout=timeout, max_retries=max_retries)


def openai_base() -> str:
    return get_settings().openai_api_url + "/v1"


async def _test_openai(creds: dict[str, Any], settings: dict[str, Any]) -> Outcome:
    async with openai_client(creds["api_key"], openai_base(), timeout=TEST_TIMEOUT,
                             organization=settings.get("organization"), project=settings.get("project")) as c:
        page = await c.models.list()
        return Outcome(TestStatus.OK, "connected", live_models=sorted(m.id for m in page.data))


async def _test_anthropic(creds: dict[str, Any], settings: dict[str, Any]) -> Outcome:
    async with anthropic_client(creds["api_key"], timeout=TEST_TIMEOUT) as c:
        page = await c.models.list(limit=100)
        return Outcome(TestStatus.OK, "connected", live_models=sorted(m.id for m in page.data))


async def _test_perplexity(creds: dict[str, Any], settings: dict[str, Any]) -> Outcome:
    # its model list does not check the key: a one-token completion does
    async with openai_client(creds["api_key"], get_settings().perplexity_api_url, timeout=TEST_TIMEOUT) as c:
        await c.chat.completions.create(model="sonar", max_tokens=1, messages=[{"role": "user", "content": "ping"}])
        return Outcome(TestStatus.OK, "connected")


async def _test_jasper(creds: dict[str, Any], settings: dict[str, Any]) -> Outcome:
    async with httpx.AsyncClient(timeout=TEST_TIMEOUT) as http:
        r = await http.get(f"{get_settings().jasper_api_url}/v1/templates", headers={"X-API-Key": creds["api_key"]})
    if r.status_code == 200:
        return Outcome(TestStatus.OK, "connected")
    return _http_outcome(r)


async def refresh_canva(http: httpx.AsyncClient, creds: dict[str, Any]) -> dict[str, Any] | None:
    """New Canva tokens when the access token expires within the margin (None: still good)."""
    expires = creds.get("expires_at")
    if not creds.get("refresh_token") or not expires:
        return None
    if datetime.fromisoformat(expires) - CANVA_REFRESH_MARGIN > datetime.now(UTC):
        return None
    s = get_settings()
    auth = (s.canva_client_id, s.canva_client_secret) if s.canva_client_id and s.canva_client_secret else None
    r = await http.post(f"{s.canva_api_url}/rest/v1/oauth/token", auth=auth,
                        data={"grant_type": "refresh_token", "refresh_token": creds["refresh_token"]})
    if r.status_code != 200:
        return None
    try:  # a 200 that is not Canva's token answer counts as no refresh
        body = r.json()
        return {"access_token": str(body["access_token"]),
                "refresh_token": body.get("refresh_token", creds["refresh_token"]),
                "expires_at": (datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 3600)))).isoformat()}
    except (ValueError, KeyError, TypeError):
        return None


async def _test_canva(creds: dict[str, Any], settings: dict[str, Any]) -> Outcome:
    async with httpx.AsyncClient(timeout=TEST_TIMEOUT) as http:
        refreshed = await refresh_canva(http, creds)
        token = (refreshed or creds)["access_token"]
        r = await http.get(f"{get_settings().canva_api_url}/rest/v1/users/me",
                           headers={"Authorization": f"Bearer {token}"})
    if r.status_code == 200:
        return Outcome(TestStatus.OK, "connected", credentials=refreshed)
    out = _http_outcome(r)
    out.credentials = refreshed
    return out


_TESTS = {Provider.OPENAI: _test_openai, Provider.ANTHROPIC: _test_anthropic, Provider.PERPLEXITY: _test_perplexity,
          Provider.JASPER: _test_jasper, Provider.CANVA: _test_canva}


async def test_connection(provider: Provider, creds: dict[str, Any], settings: dict[str, Any]) -> TestResult:
    """The provider's cheapest real call, timed; never raises for a provider's answer."""
    started = time.perf_counter()
    try:
        outcome = await _TESTS[provider](creds, settings)
    except httpx.TimeoutException:
        outcome = Outcome(TestStatus.UNREACHABLE, "the provider could not be reached in time")
    except httpx.TransportError:
        outcome = Outcome(TestStatus.UNREACHABLE, "the provider could not be reached")
    except (openai.OpenAIError, anthropic.AnthropicError) as exc:
        outcome = _sdk_outcome(exc)
    latency = round((time.perf_counter() - started) * 1000)
    all_creds = {**creds, **(outcome.credentials or {})}
    return TestResult(outcome.status, scrub(outcome.message, all_creds), latency, outcome.live_models,
                      outcome.retry_after, outcome.credentials)
