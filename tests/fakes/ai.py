"""Loopback fakes of the AI providers, speaking each one's wire format (../shared/WIRE.md, checked
against the ``openai`` and ``anthropic`` SDKs' sources):

* :class:`FakeOpenAI`: ``GET /v1/models``, ``POST /v1/chat/completions`` (JSON, or SSE
  ``chat.completion.chunk`` lines with usage in the last chunk when ``stream_options.include_usage``,
  then ``data: [DONE]``); errors ``{"error": {message, type, param, code}}``. With
  ``prefix=""`` and ``citations`` it is Perplexity (``POST /chat/completions``, answers carry
  ``citations`` and ``search_results``).
* :class:`FakeAnthropic`: ``GET /v1/models`` (``data``, ``has_more``, ``first_id``, ``last_id``),
  ``POST /v1/messages`` (JSON, or SSE events ``message_start`` … ``message_stop``, optionally an
  ``error`` event after HTTP 200); errors ``{"type": "error", "error": {type, message}}``, 529
  ``overloaded_error``; ``anthropic-version`` and the key required (``x-api-key``, or a bearer token
  as the 2.x SDK sends it).
* :class:`FakeJasper`: ``GET /v1/templates``, ``POST /v1/command`` with ``X-API-Key``.
* :class:`FakeCanva`: ``GET /rest/v1/users/me`` with an OAuth bearer token, ``POST
  /rest/v1/oauth/token`` (refresh), ``POST /rest/v1/autofills`` and ``GET /rest/v1/autofills/{id}``
  (in progress once, then a design with its edit and view links and thumbnail).

Each records the requests it served (``fake.calls``: path and JSON body), fails the next N
requests on demand (``fail_next(n, status=429, retry_after=2)``: 401, 429, 500, 529 in the
provider's format), and notes when it wrote its first streamed token (``first_token_at``,
``time.time()``) for the streaming benchmark.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .providers import FakeHttpServer

DEFAULT_REPLY = "Hello from the trail. Layer up and head out."


class _AiFake(FakeHttpServer):
    def __init__(self, *, api_key: str, reply: str = DEFAULT_REPLY, token_delay: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key
        self.reply = reply
        self.token_delay = token_delay
        self.calls: list[tuple[str, Any]] = []
        self.first_token_at: float | None = None
        self.first_token_mono: float | None = None  # time.monotonic(), for a client in the same process
        self.error_after_200 = False  # Anthropic: an `error` event after some deltas
        self.replies: list[str] = []  # answers for the next requests, in order (then ``reply``)
        self.finish_reason = "stop"  # OpenAI: "content_filter" to stop an answer on content

    def reset(self) -> None:
        super().reset()
        self.calls.clear()
        self.first_token_at = self.first_token_mono = None
        self.replies = []
        self.finish_reason = "stop"
        self.error_after_200 = False
        self.token_delay = 0.0
        self.reply = DEFAULT_REPLY

    def tokens(self) -> list[str]:
        words = (self.replies.pop(0) if self.replies else self.reply).split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.calls.append((request.url.path, body))
        return body


# --- OpenAI and Perplexity --------------------------------------------------------------------


class FakeOpenAI(_AiFake):
    name = "openai"
    MODELS = ("gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini", "o4-mini")

    def __init__(self, *, api_key: str = "sk-test-openai-0123456789abcd", prefix: str = "/v1",
                 citations: list[str] | None = None, **kw: Any) -> None:
        super().__init__(api_key=api_key, **kw)
        self.prefix = prefix
        self.citations = citations

    def routes(self) -> list[Route]:
        return [Route(f"{self.prefix}/models", self._models, methods=["GET"]),
                Route(f"{self.prefix}/chat/completions", self._chat, methods=["POST"])]

    def _error(self, status: int, message: str, type_: str, code: str | None,
               headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}},
                            status_code=status, headers=headers)

    def _check(self, request: Request) -> Response | None:
        failure = self._count_request()
        if failure is not None:
            status, retry_after = failure
            if status == 429:
                return self._error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                                   {"retry-after": str(retry_after or 1), "x-ratelimit-remaining-requests": "0"})
            if status == 401:
                return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            if status == 400:  # the prompt over the model's context window
                return self._error(400, "This model's maximum context length is 128000 tokens. However, your "
                                        "messages resulted in 130512 tokens.", "invalid_request_error",
                                   "context_length_exceeded")
            return self._error(status, "The server had an error while processing your request.", "server_error", None)
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ")
            # like OpenAI, the message names the key it was given, partly masked
            shown = f"{given[:3]}*****{given[-4:]}" if len(given) > 8 else "***"
            return self._error(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                    "https://platform.openai.com/account/api-keys.",
                               "invalid_request_error", "invalid_api_key")
        return None

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "openai"} for m in self.MODELS]})

    async def _chat(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        model = body.get("model", "gpt-4.1-mini")
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        tokens = self.tokens()
        if body.get("max_tokens") == 1 or body.get("max_completion_tokens") == 1:
            tokens = tokens[:1]
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                 "total_tokens": prompt_tokens + len(tokens)}
        extra = {}
        if self.citations is not None:
            extra = {"citations": self.citations,
                     "search_results": [{"title": c, "url": c} for c in self.citations]}
        if not body.get("stream"):
            await self._pause()
            return JSONResponse({"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(tokens)},
                                              "finish_reason": "stop"}], "usage": usage, **extra})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events():
            base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}, 'finish_reason': None}], **extra})}\n\n"
            for i, t in enumerate(tokens):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                if i == 0:
                    self.first_token_at, self.first_token_mono = time.time(), time.monotonic()
                yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'content': t}, 'finish_reason': None}]})}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {}, 'finish_reason': self.finish_reason}]})}\n\n"
            if include_usage:
                yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class FakePerplexity(FakeOpenAI):
    name = "perplexity"

    def __init__(self, *, api_key: str = "pplx-test-0123456789abcdef", **kw: Any) -> None:
        super().__init__(api_key=api_key, prefix="", citations=["https://example.com/trail-report"], **kw)


# --- Anthropic --------------------------------------------------------------------------------


class FakeAnthropic(_AiFake):
    name = "anthropic"
    MODELS = (("claude-sonnet-4-5", "Claude Sonnet 4.5"), ("claude-haiku-4-5", "Claude Haiku 4.5"),
              ("claude-3-5-haiku-latest", "Claude Haiku 3.5"))

    def __init__(self, *, api_key: str = "sk-ant-test-0123456789abcdef", **kw: Any) -> None:
        super().__init__(api_key=api_key, **kw)

    def routes(self) -> list[Route]:
        return [Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/messages", self._messages, methods=["POST"])]

    @staticmethod
    def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"type": "error", "error": {"type": type_, "message": message}},
                            status_code=status, headers={"request-id": f"req_{uuid.uuid4().hex[:12]}", **(headers or {})})

    def _check(self, request: Request) -> Response | None:
        failure = self._count_request()
        if failure is not None:
            status, retry_after = failure
            if status == 429:
                return self._error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute "
                                   "rate limit", {"retry-after": str(retry_after or 1)})
            if status == 529:
                return self._error(529, "overloaded_error", "Overloaded")
            if status == 401:
                return self._error(401, "authentication_error", "invalid x-api-key")
            return self._error(status, "api_error", "Internal server error")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version header is required")
        # the SDK (2.x) sends the key as a bearer token; earlier ones and curl as x-api-key
        if self.api_key not in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:]):
            return self._error(401, "authentication_error", "invalid x-api-key")
        return None

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        data = [{"type": "model", "id": i, "display_name": n, "created_at": "2025-09-29T00:00:00Z"}
                for i, n in self.MODELS]
        return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})

    async def _messages(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        if not isinstance(body.get("max_tokens"), int):
            return self._error(400, "invalid_request_error", "max_tokens: Field required")
        model = body.get("model")
        input_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])) + \
            len(str(body.get("system", "")).split())
        tokens = self.tokens()
        mid = f"msg_{uuid.uuid4().hex[:24]}"
        if not body.get("stream"):
            await self._pause()
            return JSONResponse({"id": mid, "type": "message", "role": "assistant", "model": model,
                                 "content": [{"type": "text", "text": "".join(tokens)}], "stop_reason": "end_turn",
                                 "stop_sequence": None,
                                 "usage": {"input_tokens": input_tokens, "output_tokens": len(tokens)}})
        error_after = self.error_after_200

        def ev(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n"

        async def events():
            yield ev("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
            yield ev("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
            yield ev("ping", {"type": "ping"})
            for i, t in enumerate(tokens):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                if i == 0:
                    self.first_token_at, self.first_token_mono = time.time(), time.monotonic()
                yield ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": t}})
                if error_after and i == 1:
                    yield ev("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                    return
            yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": len(tokens)}})
            yield ev("message_stop", {"type": "message_stop"})

        return StreamingResponse(events(), media_type="text/event-stream")


# --- Jasper -----------------------------------------------------------------------------------


class FakeJasper(_AiFake):
    name = "jasper"

    def __init__(self, *, api_key: str = "jasper-test-0123456789abcdef", **kw: Any) -> None:
        super().__init__(api_key=api_key, **kw)

    def routes(self) -> list[Route]:
        return [Route("/v1/templates", self._templates, methods=["GET"]),
                Route("/v1/command", self._command, methods=["POST"])]

    def _check(self, request: Request) -> Response | None:
        failure = self._count_request()
        if failure is not None:
            status, retry_after = failure
            headers = {"retry-after": str(retry_after or 1)} if status == 429 else None
            message = {401: "Unauthorized", 429: "Too Many Requests"}.get(status, "Internal Server Error")
            return JSONResponse({"error": message, "statusCode": status}, status_code=status, headers=headers)
        if request.headers.get("x-api-key") != self.api_key:
            return JSONResponse({"error": "Unauthorized", "statusCode": 401}, status_code=401)
        return None

    async def _templates(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        return JSONResponse({"data": [{"id": "tpl_1", "title": "Email subject lines"}]})

    async def _command(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        return JSONResponse({"requestId": uuid.uuid4().hex, "data": [{"id": uuid.uuid4().hex, "text": self.reply}]})


# --- Canva ------------------------------------------------------------------------------------


class FakeCanva(_AiFake):
    name = "canva"

    def __init__(self, *, access_token: str = "canva-access-0123456789abcdef",
                 refresh_token: str = "canva-refresh-0123456789abcdef", **kw: Any) -> None:
        super().__init__(api_key=access_token, **kw)
        self.refresh_token = refresh_token
        self.refreshes = 0
        self.autofills: dict[str, dict[str, Any]] = {}  # Canva job id -> the request and polls so far

    def reset(self) -> None:
        super().reset()
        self.autofills.clear()

    def routes(self) -> list[Route]:
        return [Route("/rest/v1/users/me", self._me, methods=["GET"]),
                Route("/rest/v1/oauth/token", self._token, methods=["POST"]),
                Route("/rest/v1/autofills", self._autofill, methods=["POST"]),
                Route("/rest/v1/autofills/{job_id}", self._autofill_job, methods=["GET"])]

    async def _autofill(self, request: Request) -> Response:
        body = await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        if not body.get("brand_template_id") or not isinstance(body.get("data"), dict):
            return JSONResponse({"code": "invalid_field", "message": "brand_template_id and data are required"},
                                status_code=400)
        job_id = uuid.uuid4().hex
        self.autofills[job_id] = {"request": body, "polls": 0}
        return JSONResponse({"job": {"id": job_id, "status": "in_progress"}})

    async def _autofill_job(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        job_id = request.path_params["job_id"]
        found = self.autofills.get(job_id)
        if found is None:
            return JSONResponse({"code": "not_found", "message": "job not found"}, status_code=404)
        found["polls"] += 1
        if found["polls"] < 2:  # in progress once, then done
            return JSONResponse({"job": {"id": job_id, "status": "in_progress"}})
        design = f"DAF{job_id[:8]}"
        return JSONResponse({"job": {"id": job_id, "status": "success", "result": {"type": "create_design", "design": {
            "id": design, "title": found["request"].get("title"), "url": f"https://www.canva.com/design/{design}",
            "urls": {"edit_url": f"https://www.canva.com/design/{design}/edit",
                     "view_url": f"https://www.canva.com/design/{design}/view"},
            "thumbnail": {"width": 595, "height": 335, "url": f"https://document-export.canva.com/{design}/thumb.png"},
        }}}})

    def _check(self, request: Request) -> Response | None:
        failure = self._count_request()
        if failure is not None:
            status, retry_after = failure
            headers = {"retry-after": str(retry_after or 1)} if status == 429 else None
            code = {401: "invalid_access_token", 429: "too_many_requests"}.get(status, "internal_error")
            return JSONResponse({"code": code, "message": code.replace("_", " ")}, status_code=status, headers=headers)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"code": "invalid_access_token", "message": "Access token is invalid"},
                                status_code=401)
        return None

    async def _me(self, request: Request) -> Response:
        await self._record(request)
        if (refused := self._check(request)) is not None:
            return refused
        return JSONResponse({"team_user": {"user_id": "oUnPjZ2k2yuhftbWF7873o", "team_id": "oBpVhLW22VrqtwKgaayRbP"}})

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        self.calls.append((request.url.path, {"grant_type": form.get("grant_type")}))
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return JSONResponse({"error": "invalid_grant", "error_description": "refresh token is invalid"},
                                status_code=400)
        self.refreshes += 1
        self.api_key = f"canva-access-refreshed-{self.refreshes}-0123456789"
        self.refresh_token = f"canva-refresh-refreshed-{self.refreshes}-0123456789"
        return JSONResponse({"access_token": self.api_key, "refresh_token": self.refresh_token,
                             "token_type": "Bearer", "expires_in": 14400, "scope": "design:content:write"})
