"""Small pieces the providers share: the HTTP client they borrow or own, Retry-After parsing,
bounded concurrency, the hidden preheader, and error text that is safe to store.

Nothing here knows a provider's wire format; each provider module keeps its own.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Iterable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from domain.delivery.base import (
    OutboundMessage,
    Outcome,
    ProviderRejected,
    ProviderUnavailable,
    SendResult,
)

T = TypeVar("T")

# Providers answer in well under a second; a hung connection must not hold a worker for long.
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# What an owned client may open: enough for a batch's concurrent requests to one host.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=50)
# Error text is stored with results and logged; a provider's message is enough, its page is not.
MAX_ERROR_CHARS = 300


class HttpClientOwner:
    """Holds the httpx client a provider sends with: the caller's (shared across providers, so
    connections are pooled per process) or one of its own, which only then it closes."""

    def __init__(self, http: httpx.AsyncClient | None) -> None:
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()


def retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait before trying again, from the headers providers use for it:
    ``Retry-After`` (seconds or an HTTP date), Brevo's ``x-sib-ratelimit-reset`` (seconds
    left) and SendGrid's ``X-RateLimit-Reset`` (an epoch time)."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        seconds = _number(value)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = None
        if seconds is not None:
            return max(0.0, seconds)
    value = headers.get("x-sib-ratelimit-reset")
    if value and (seconds := _number(value)) is not None:
        return max(0.0, seconds)
    value = headers.get("x-ratelimit-reset")
    if value and (epoch := _number(value)) is not None:
        # an epoch time; a small number is already a delay
        return max(0.0, epoch - now) if epoch > 1_000_000_000 else max(0.0, epoch)
    return None


def _number(value: str) -> float | None:
    try:
        return float(value.strip())
    except ValueError:
        return None


async def gather_limited(aws: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """``asyncio.gather`` with at most ``limit`` awaitables running at once, results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def run(aw: Awaitable[T]) -> T:
        async with semaphore:
            return await aw

    return await asyncio.gather(*(run(aw) for aw in aws))


_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def html_with_preheader(body: str | None, preheader: str | None) -> str | None:
    """The HTML with the preheader as its first, hidden element: inbox previews show the first
    text of a message, so this is how the preview line is chosen without showing it in the body."""
    if not preheader or body is None:
        return body
    hidden = (
        '<div style="display:none;font-size:1px;color:transparent;line-height:1px;max-height:0;'
        'max-width:0;opacity:0;overflow:hidden;mso-hide:all">' + html.escape(preheader) + "</div>"
    )
    match = _BODY_OPEN.search(body)
    if match:
        return body[: match.end()] + hidden + body[match.end() :]
    return hidden + body


def safe_error(text: str | None, fallback: str) -> str:
    """A provider's error message cut to a storable size (never our request, which holds keys)."""
    text = " ".join((text or "").split())
    return (text or fallback)[:MAX_ERROR_CHARS]


def unavailable_if_all_retry(results: list[SendResult], errors: list[tuple[int | None, float | None]]) -> None:
    """Providers that send one request per message report RETRY per message; when every message
    of the call is RETRY nothing was sent, which is what :class:`ProviderUnavailable` says, so
    the caller backs off the whole call (after the longest Retry-After seen)."""
    if not results or any(r.outcome is not Outcome.RETRY for r in results):
        return
    statuses = [s for s, _ in errors if s is not None]
    waits = [w for _, w in errors if w is not None]
    raise ProviderUnavailable(
        results[0].error or "provider unavailable",
        status=statuses[0] if statuses else None,
        retry_after=max(waits) if waits else None,
    )


def json_object(response: httpx.Response) -> dict:
    """The response body when it is a JSON object, else an empty dict."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class CallRejected(Exception):
    """The provider refuses the account or project as configured: the whole call, not one
    message."""

    def __init__(self, text: str, status: int | None) -> None:
        self.text = text
        self.status = status


# One message's answer from a provider that sends one request per message: its result with the
# HTTP status and Retry-After behind it, or the refusal of the whole call.
Answer = tuple[SendResult, int | None, float | None] | CallRejected


def per_message_results(messages: list[OutboundMessage], answers: list[Answer]) -> list[SendResult]:
    """The call's results from one answer per message. A refusal of the call counts as RETRY for
    its message; when no message was accepted it raises :class:`ProviderRejected`, and when every
    message is RETRY, :class:`ProviderUnavailable` (see :func:`unavailable_if_all_retry`)."""
    rejected = [a for a in answers if isinstance(a, CallRejected)]
    results: list[SendResult] = []
    waits: list[tuple[int | None, float | None]] = []
    for message, answer in zip(messages, answers, strict=True):
        if isinstance(answer, CallRejected):
            answer = (SendResult(message.key, Outcome.RETRY, error=answer.text), answer.status, None)
        result, status, wait = answer
        results.append(result)
        if result.outcome is Outcome.RETRY:
            waits.append((status, wait))
    if rejected and not any(r.outcome is Outcome.ACCEPTED for r in results):
        raise ProviderRejected(rejected[0].text, status=rejected[0].status)
    unavailable_if_all_retry(results, waits)
    return results
