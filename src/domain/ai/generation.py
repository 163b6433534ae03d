"""One copilot generation against a provider, streamed: the text arrives through ``on_delta`` as
the provider sends it; the result carries the whole text, the token counts and, for Perplexity,
the citations.

Provider errors become typed :class:`ProviderError` codes: a refused key ``AI_PROVIDER_AUTH``, rate
limiting ``AI_PROVIDER_RATE_LIMITED`` (with the provider's retry hint), no answer in time
``AI_PROVIDER_TIMEOUT``, a refusal on content ``AI_CONTENT_REFUSED``, a prompt over the model's
context ``AI_CONTEXT_TOO_LONG``, anything else (5xx, overloaded, unreachable)
``AI_PROVIDER_UNAVAILABLE``. The SDKs retry a failed request once (bounded, honouring
``retry-after``) before the stream starts; the whole call is bounded by ``AI_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai

from domain.ai import catalog, providers
from domain.ai.models import Provider
from domain.ai.prompts import Prompt
from domain.config import get_settings
from domain.errors import DomainError, ErrorCode

RETRIES = 1  # one more attempt of a failed request (429, 5xx, overloaded, connection), before any text

OnDelta = Callable[[str], Awaitable[None]]


class ProviderError(DomainError):
    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


@dataclass
class Generated:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    citations: list[str] = field(default_factory=list)
    finish_reason: str | None = None


def _body_type(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner, dict):
            return str(inner.get("type") or inner.get("code") or "")
    return ""


def to_provider_error(exc: Exception, credentials: dict[str, Any]) -> ProviderError:
    message = providers.scrub(providers._sdk_message(exc), credentials)
    for sdk in (openai, anthropic):
        if isinstance(exc, sdk.APITimeoutError):
            return ProviderError(ErrorCode.AI_PROVIDER_TIMEOUT, "the provider did not answer in time")
        if isinstance(exc, sdk.APIConnectionError):
            return ProviderError(ErrorCode.AI_PROVIDER_UNAVAILABLE, "the provider could not be reached")
        if isinstance(exc, (sdk.AuthenticationError, sdk.PermissionDeniedError)):
            return ProviderError(ErrorCode.AI_PROVIDER_AUTH, f"the provider refused the key: {message}")
        if isinstance(exc, sdk.RateLimitError):
            return ProviderError(ErrorCode.AI_PROVIDER_RATE_LIMITED, f"rate limited by the provider: {message}",
                                 providers._retry_after(exc.response.headers))
        if isinstance(exc, sdk.APIStatusError):
            kind = _body_type(exc)
            low = message.lower()
            if "context" in low and ("length" in low or "too long" in low or "window" in low) or \
                    kind == "context_length_exceeded" or "prompt is too long" in low:
                return ProviderError(ErrorCode.AI_CONTEXT_TOO_LONG, f"the prompt is too long for the model: {message}")
            if kind in ("content_filter", "content_policy_violation"):
                return ProviderError(ErrorCode.AI_CONTENT_REFUSED, f"the provider refused the content: {message}")
            if kind == "rate_limit_error":
                return ProviderError(ErrorCode.AI_PROVIDER_RATE_LIMITED, f"rate limited by the provider: {message}")
            return ProviderError(ErrorCode.AI_PROVIDER_UNAVAILABLE,
                                 f"the provider failed ({exc.status_code}{', ' + kind if kind else ''}): {message}",
                                 providers._retry_after(exc.response.headers))
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(ErrorCode.AI_PROVIDER_TIMEOUT, "the provider did not answer in time")
    if isinstance(exc, httpx.TransportError):
        return ProviderError(ErrorCode.AI_PROVIDER_UNAVAILABLE, "the provider could not be reached")
    raise exc


def _messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]


async def _openai_compatible(client: openai.AsyncOpenAI, model: str, prompt: Prompt, on_delta: OnDelta,
                             extra: dict[str, Any] | None = None) -> Generated:
    out = Generated("")
    parts: list[str] = []
    stream = await client.chat.completions.create(
        model=model, messages=_messages(prompt), stream=True, stream_options={"include_usage": True},
        max_tokens=prompt.max_tokens, extra_body=extra or None)
    async for chunk in stream:
        extra_fields = chunk.model_extra or {}
        if extra_fields.get("citations"):
            out.citations = [str(c) for c in extra_fields["citations"]]
        if chunk.usage is not None:
            out.tokens_in, out.tokens_out = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta and choice.delta.content:
                parts.append(choice.delta.content)
                await on_delta(choice.delta.content)
            if choice.finish_reason:
                out.finish_reason = choice.finish_reason
    out.text = "".join(parts)
    if out.finish_reason == "content_filter":
        raise ProviderError(ErrorCode.AI_CONTENT_REFUSED, "the provider's content filter stopped the answer")
    return out


async def _anthropic(client: anthropic.AsyncAnthropic, model: str, prompt: Prompt, on_delta: OnDelta) -> Generated:
    out = Generated("")
    parts: list[str] = []
    stream = await client.messages.create(model=model, max_tokens=prompt.max_tokens, system=prompt.system,
                                          messages=[{"role": "user", "content": prompt.user}], stream=True)
    async for event in stream:
        if event.type == "message_start":
            out.tokens_in = event.message.usage.input_tokens
        elif event.type == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            parts.append(event.delta.text)
            await on_delta(event.delta.text)
        elif event.type == "message_delta":
            out.tokens_out = event.usage.output_tokens
            out.finish_reason = event.delta.stop_reason
    out.text = "".join(parts)
    if out.finish_reason == "refusal":
        raise ProviderError(ErrorCode.AI_CONTENT_REFUSED, "the model declined to answer")
    return out


async def _jasper(creds: dict[str, Any], settings: dict[str, Any], prompt: Prompt, on_delta: OnDelta) -> Generated:
    s = get_settings()
    options: dict[str, Any] = {"outputCount": 1}
    if settings.get("tone_id"):
        options["toneId"] = settings["tone_id"]
    if settings.get("knowledge_ids"):
        options["knowledgeIds"] = settings["knowledge_ids"]
    async with httpx.AsyncClient(timeout=s.ai_timeout_seconds) as http:
        r = await http.post(f"{s.jasper_api_url}/v1/command", headers={"X-API-Key": creds["api_key"]},
                            json={"inputs": {"command": prompt.user, "context": prompt.system}, "options": options})
    if r.status_code != 200:
        outcome = providers._http_outcome(r)
        code = {"auth_failed": ErrorCode.AI_PROVIDER_AUTH, "rate_limited": ErrorCode.AI_PROVIDER_RATE_LIMITED}.get(
            outcome.status.value, ErrorCode.AI_PROVIDER_UNAVAILABLE)
        raise ProviderError(code, providers.scrub(outcome.message, creds) or f"HTTP {r.status_code}", outcome.retry_after)
    text = "".join(d.get("text", "") for d in r.json().get("data", [])[:1])
    await on_delta(text)
    return Generated(text)


async def generate(provider: str, model: str, creds: dict[str, Any], settings: dict[str, Any], prompt: Prompt,
                   on_delta: OnDelta) -> Generated:
    """Stream one answer; raises :class:`ProviderError` (never hangs past ``AI_TIMEOUT_SECONDS``)."""
    s = get_settings()
    timeout = s.ai_timeout_seconds
    try:
        async with asyncio.timeout(timeout + 1):
            if provider.startswith(catalog.ENDPOINT_PREFIX):
                ep = catalog.endpoint(provider[len(catalog.ENDPOINT_PREFIX):])
                if ep is None:
                    raise ProviderError(ErrorCode.AI_PROVIDER_UNAVAILABLE, "the operator removed this endpoint")
                async with providers.openai_client(ep.api_key(), ep.base_url, timeout=timeout,
                                                   max_retries=RETRIES) as c:
                    return await _openai_compatible(c, model, prompt, on_delta)
            p = Provider(provider)
            if p is Provider.OPENAI:
                async with providers.openai_client(creds["api_key"], providers.openai_base(), timeout=timeout,
                                                   organization=settings.get("organization"),
                                                   project=settings.get("project"), max_retries=RETRIES) as c:
                    return await _openai_compatible(c, model, prompt, on_delta)
            if p is Provider.PERPLEXITY:
                extra = {"search_recency_filter": settings["search_recency"]} if settings.get("search_recency") else None
                async with providers.openai_client(creds["api_key"], s.perplexity_api_url, timeout=timeout,
                                                   max_retries=RETRIES) as c:
                    out = await _openai_compatible(c, model, prompt, on_delta, extra)
                if not settings.get("keep_citations", True):
                    out.citations = []
                return out
            if p is Provider.ANTHROPIC:
                async with providers.anthropic_client(creds["api_key"], timeout=timeout, max_retries=RETRIES) as c:
                    return await _anthropic(c, model, prompt, on_delta)
            if p is Provider.JASPER:
                return await _jasper(creds, settings, prompt, on_delta)
            raise ProviderError(ErrorCode.AI_PROVIDER_UNAVAILABLE, f"{p.value} does not generate text")
    except TimeoutError:
        raise ProviderError(ErrorCode.AI_PROVIDER_TIMEOUT, f"no answer within {timeout:g} s") from None
    except (openai.OpenAIError, anthropic.AnthropicError, httpx.HTTPError) as exc:
        raise to_provider_error(exc, creds) from None
