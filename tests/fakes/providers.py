"""Loopback fakes of the delivery providers, speaking each one's real wire format.

Each HTTP fake is a small Starlette app on 127.0.0.1, on a free port unless one is given:

* in the test process, on a background thread::

      with FakeBrevo(api_key="k") as fake:
          ...  # fake.url, fake.messages, fake.fail_next(2, status=429, retry_after=3)

* or as its own process (the benchmark's way: no GIL shared with the system under test)::

      python -m tests.fakes.providers brevo --port 8901 --api-key k [--latency 0.01]

  which prints ``READY <url>`` once listening, and serves ``GET /_fake/messages`` (JSON list;
  ``offset``/``limit`` query), ``GET /_fake/count``, ``POST /_fake/fail``
  (``{"n": 2, "status": 429, "retry_after": 3}``) and ``POST /_fake/reset`` next to the API.

Every fake records what it accepted (:class:`RecordedMessage`), refuses any recipient containing
``invalid`` the way the real API refuses an invalid one, checks credentials (401 in the
provider's error format), and fails the next N requests on demand. They do no per-message
logging and little work per request, so they are not the bottleneck of a benchmark.

:class:`FakeSMTP` is an aiosmtpd server (``fake.host``, ``fake.port``); as a process it also
serves the ``/_fake`` routes on ``--control-port``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email
import email.policy
import itertools
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOST = "127.0.0.1"
# FakeSMTP takes AUTH without TLS on purpose: it only ever listens on loopback
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")


@dataclass
class RecordedMessage:
    """One message a fake accepted, in the terms of :class:`OutboundMessage`."""

    provider: str
    to: str
    key: str | None = None
    sender: str | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None  # also the SMS body
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    provider_message_id: str | None = None
    title: str | None = None  # push
    body: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    mime: EmailMessage | None = None  # SMTP: the parsed message, for header checks

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "mime"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class _Failures:
    """Failures to inject into the next requests; shared between the test and server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[int, float | None]] = []

    def add(self, n: int, status: int, retry_after: float | None) -> None:
        with self._lock:
            self._queue.extend([(status, retry_after)] * n)

    def take(self) -> tuple[int, float | None] | None:
        if not self._queue:  # the common case, without the lock
            return None
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


class _Recorder:
    """What every fake has: accepted messages, request count, failure injection."""

    name = "fake"

    def __init__(self) -> None:
        self.messages: list[RecordedMessage] = []
        self.requests = 0
        self._failures = _Failures()

    def fail_next(self, n: int = 1, *, status: int = 503, retry_after: float | None = None) -> None:
        """The next ``n`` API requests fail with ``status`` (429 carries ``retry_after``)."""
        self._failures.add(n, status, retry_after)

    def reset(self) -> None:
        self.messages.clear()
        self.requests = 0
        self._failures.clear()

    @property
    def count(self) -> int:
        return len(self.messages)

    def _count_request(self) -> tuple[int, float | None] | None:
        """Counts an API request; the failure to answer it with, if one was asked for."""
        self.requests += 1
        return self._failures.take()

    def by_key(self) -> dict[str | None, RecordedMessage]:
        return {m.key: m for m in self.messages}

    def control_routes(self) -> list[Route]:
        return [
            Route("/_fake/messages", self._list, methods=["GET"]),
            Route("/_fake/count", self._count, methods=["GET"]),
            Route("/_fake/fail", self._fail, methods=["POST"]),
            Route("/_fake/reset", self._reset, methods=["POST"]),
        ]

    async def _list(self, request: Request) -> Response:
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", 1_000_000))
        return JSONResponse([m.to_json() for m in self.messages[offset : offset + limit]])

    async def _count(self, request: Request) -> Response:
        return JSONResponse({"count": len(self.messages), "requests": self.requests})

    async def _fail(self, request: Request) -> Response:
        body = await request.json()
        self.fail_next(int(body.get("n", 1)), status=int(body.get("status", 503)), retry_after=body.get("retry_after"))
        return JSONResponse({"ok": True})

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


class FakeHttpServer(_Recorder):
    """A fake provider API on uvicorn: on a thread (context manager) or in the foreground."""

    def __init__(self, *, port: int = 0, latency: float = 0.0) -> None:
        super().__init__()
        self.port = port or free_port()
        self.latency = latency
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def app(self) -> Starlette:
        return Starlette(routes=self.routes() + self.control_routes())

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app(), host=HOST, port=self.port, log_level="warning", access_log=False, lifespan="off",
            timeout_keep_alive=30, backlog=4096,
        )

    def start(self) -> Self:
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(target=self._server.run, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Runs in the foreground (process mode); prints ``READY <url>`` once listening."""
        _AnnouncingServer(self._config(), f"READY {self.url}").run()

    async def _pause(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)



class _AnnouncingServer(uvicorn.Server):
    """Says on stdout when it listens, so whoever started the process knows when to go on."""

    def __init__(self, config: uvicorn.Config, line: str) -> None:
        super().__init__(config)
        self.line = line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        print(self.line, flush=True)


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


# --- Brevo ------------------------------------------------------------------------------------


class FakeBrevo(FakeHttpServer):
    """``POST /v3/smtp/email`` with ``api-key``; single sends and ``messageVersions``.

    ``headers.idempotencyKey`` (a UUID) is honoured for ``idempotency_ttl`` seconds (Brevo: 30
    minutes): a repeat records nothing and, as Brevo documents, is answered 400
    ``duplicate_parameter`` (``duplicate_response="error"``); ``"replay"`` answers the first
    response again instead. Only accepted requests claim their key.
    """

    name = "brevo"
    VERSION_LIMIT = 1000

    def __init__(
        self,
        api_key: str = "brevo-test-key",
        *,
        port: int = 0,
        latency: float = 0.0,
        idempotency_ttl: float = 1800.0,
        duplicate_response: str = "error",
    ) -> None:
        super().__init__(port=port, latency=latency)
        self.api_key = api_key
        self.idempotency_ttl = idempotency_ttl
        self.duplicate_response = duplicate_response
        self._idempotency: dict[str, tuple[float, dict]] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        self._idempotency.clear()

    def routes(self) -> list[Route]:
        return [Route("/v3/smtp/email", self.send, methods=["POST"])]

    @staticmethod
    def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)

    async def send(self, request: Request) -> Response:
        await self._pause()
        failure = self._count_request()
        if request.headers.get("api-key") != self.api_key:
            return self._error(401, "unauthorized", "Key not found")
        if failure:
            status, wait = failure
            if status == 429:
                reset = str(int(wait if wait is not None else 1))
                return self._error(429, "too_many_requests", "Too many requests",
                                   {"x-sib-ratelimit-limit": "100", "x-sib-ratelimit-remaining": "0",
                                    "x-sib-ratelimit-reset": reset})
            return self._error(status, "internal_error", "Internal server error")
        data = _json_body(await request.body())
        if not isinstance(data, dict):
            return self._error(400, "bad_request", "Input must be a valid JSON object")
        problem = self._check(data)
        if problem:
            return self._error(400, *problem)
        key = (data.get("headers") or {}).get("idempotencyKey")
        now = time.monotonic()
        if key is not None:
            seen = self._idempotency.get(key)
            if seen and now - seen[0] < self.idempotency_ttl:
                if self.duplicate_response == "replay":
                    return JSONResponse(seen[1], status_code=201)
                return self._error(400, "duplicate_parameter", "Request with same idempotencyKey already processed")
        response = self._record(data, key)
        if key is not None:
            self._idempotency[key] = (now, response)
        return JSONResponse(response, status_code=201)

    def _check(self, data: dict) -> tuple[str, str] | None:
        sender = data.get("sender")
        if not isinstance(sender, dict) or not sender.get("email"):
            return "missing_parameter", "sender is missing"
        versions = data.get("messageVersions")
        if versions is not None and (not isinstance(versions, list) or not versions):
            return "invalid_parameter", "messageVersions is not valid"
        if versions and len(versions) > self.VERSION_LIMIT:
            return "invalid_parameter", f"messageVersions: max {self.VERSION_LIMIT} versions"
        if not versions and not data.get("to"):
            return "missing_parameter", "to is missing"
        if not data.get("templateId") and (not data.get("subject") or not data.get("htmlContent") and not data.get("textContent")):
            return "missing_parameter", "subject and htmlContent are required"
        key = (data.get("headers") or {}).get("idempotencyKey")
        if key is not None:
            try:
                uuid.UUID(str(key))
            except ValueError:
                return "invalid_parameter", "idempotencyKey must be a UUID"
        for version in versions or [data]:
            for contact in version.get("to") or []:
                address = str(contact.get("email") or "") if isinstance(contact, dict) else ""
                if "invalid" in address or "@" not in address:
                    return "invalid_parameter", "email is not valid in to"
        return None

    def _record(self, data: dict, idempotency_key: str | None) -> dict:
        top_headers = {k: str(v) for k, v in (data.get("headers") or {}).items() if k != "idempotencyKey"}
        sender = data["sender"]["email"]
        ids = []
        for version in data.get("messageVersions") or [data]:
            message_id = f"<{int(time.time() * 1000)}.{next(self._ids)}@smtp-relay.mailin.fr>"
            ids.append(message_id)
            headers = {**top_headers, **{k: str(v) for k, v in (version.get("headers") or {}).items()}}
            custom = headers.get("X-Mailin-custom")
            for contact in version["to"]:
                self.messages.append(
                    RecordedMessage(
                        provider=self.name,
                        to=contact["email"],
                        key=_brevo_key(custom),
                        sender=sender,
                        subject=version.get("subject") or data.get("subject"),
                        html=version.get("htmlContent") or data.get("htmlContent"),
                        text=version.get("textContent") or data.get("textContent"),
                        headers=headers,
                        idempotency_key=idempotency_key,
                        provider_message_id=message_id,
                    )
                )
        return {"messageIds": ids} if data.get("messageVersions") else {"messageId": ids[0]}


def _brevo_key(custom: str | None) -> str | None:
    if not custom:
        return None
    try:
        value = json.loads(custom)
    except ValueError:
        return custom
    return value.get("bg_key") if isinstance(value, dict) else custom


# --- SendGrid ---------------------------------------------------------------------------------


class FakeSendGrid(FakeHttpServer):
    """``POST /v3/mail/send`` with a Bearer API key; answers 202 with ``X-Message-Id``."""

    name = "sendgrid"
    PERSONALIZATION_LIMIT = 1000

    def __init__(self, api_key: str = "SG.test-key", *, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(port=port, latency=latency)
        self.api_key = api_key

    def routes(self) -> list[Route]:
        return [Route("/v3/mail/send", self.send, methods=["POST"])]

    @staticmethod
    def _errors(status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"errors": errors}, status_code=status, headers=headers)

    async def send(self, request: Request) -> Response:
        await self._pause()
        failure = self._count_request()
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._errors(401, [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked"}])
        if failure:
            status, wait = failure
            if status == 429:
                reset = str(int(time.time() + (wait if wait is not None else 1)))
                return self._errors(429, [{"field": None, "message": "too many requests"}],
                                    {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
            return self._errors(status, [{"field": None, "message": "internal server error"}])
        data = _json_body(await request.body())
        if not isinstance(data, dict):
            return self._errors(400, [{"field": None, "message": "Bad Request"}])
        errors = self._check(data)
        if errors:
            return self._errors(400, errors)
        message_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        self._record(data, message_id)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    def _check(self, data: dict) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        personalizations = data.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            return [{"field": "personalizations", "message": "The personalizations field is required and must have at least one personalization."}]
        if len(personalizations) > self.PERSONALIZATION_LIMIT:
            return [{"field": "personalizations", "message": "The personalizations field can have a maximum of 1000 items."}]
        if not isinstance(data.get("from"), dict) or not data["from"].get("email"):
            errors.append({"field": "from.email", "message": "The from email does not contain a valid address."})
        content = data.get("content")
        if not data.get("template_id") and (not isinstance(content, list) or not content):
            errors.append({"field": "content", "message": "Unless a valid template_id is provided, the content parameter is required."})
        elif isinstance(content, list) and len(content) > 1 and content[0].get("type") != "text/plain":
            errors.append({"field": "content.0.type", "message": "If present, text/plain must be first, followed by text/html."})
        for i, p in enumerate(personalizations):
            for j, contact in enumerate(p.get("to") or []):
                address = str(contact.get("email") or "")
                if "invalid" in address or "@" not in address:
                    errors.append({"field": f"personalizations.{i}.to.{j}.email", "message": "Does not contain a valid address.",
                                   "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"})
            if not p.get("subject") and not data.get("subject") and not data.get("template_id"):
                errors.append({"field": "subject", "message": "The subject is required."})
        return errors

    def _record(self, data: dict, message_id: str) -> None:
        parts = {c.get("type"): c.get("value") for c in data.get("content") or []}
        top_headers = data.get("headers") or {}
        top_args = data.get("custom_args") or {}
        sender = data["from"]["email"]
        for p in data["personalizations"]:
            args = {**top_args, **(p.get("custom_args") or {})}
            for contact in p["to"]:
                self.messages.append(
                    RecordedMessage(
                        provider=self.name,
                        to=contact["email"],
                        key=args.get("bg_key"),
                        sender=sender,
                        subject=p.get("subject") or data.get("subject"),
                        html=parts.get("text/html"),
                        text=parts.get("text/plain"),
                        headers={**top_headers, **(p.get("headers") or {})},
                        provider_message_id=message_id,
                    )
                )


# --- Twilio -----------------------------------------------------------------------------------


class FakeTwilio(FakeHttpServer):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form) with basic auth.

    ``To`` containing ``invalid`` is refused with 21211, containing ``landline`` with 21614.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 31 + "1",
        auth_token: str = "twilio-test-auth-token",
        *,
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        super().__init__(port=port, latency=latency)
        self.account_sid = account_sid
        self.auth_token = auth_token

    def routes(self) -> list[Route]:
        return [Route("/2010-04-01/Accounts/{sid}/Messages.json", self.send, methods=["POST"])]

    @staticmethod
    def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse(
            {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
            status_code=status,
            headers=headers,
        )

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}" and request.path_params["sid"] == self.account_sid

    async def send(self, request: Request) -> Response:
        await self._pause()
        failure = self._count_request()
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        if failure:
            status, wait = failure
            if status == 429:
                return self._error(429, 20429, "Too Many Requests", {"Retry-After": str(int(wait or 1))})
            return self._error(status, 20500, "Internal Server Error")
        form = await request.form()
        to = str(form.get("To") or "")
        sender = form.get("From")
        service = form.get("MessagingServiceSid")
        body = str(form.get("Body") or "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return self._error(400, 21602, "Message body is required.")
        if "invalid" in to:
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if "landline" in to:
            return self._error(400, 21614, f"'To' number {to} is not a valid mobile number")
        sid = "SM" + secrets.token_hex(16)
        self.messages.append(
            RecordedMessage(
                provider=self.name,
                to=to,
                sender=str(sender or service),
                text=body,
                headers={"StatusCallback": str(form.get("StatusCallback") or "")},
                provider_message_id=sid,
            )
        )
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return JSONResponse(
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": sender,
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "accepted" if service else "queued",
                "to": to,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status_code=201,
        )


# --- FCM --------------------------------------------------------------------------------------


def make_service_account(project_id: str, token_uri: str = "https://oauth2.googleapis.com/token") -> tuple[dict[str, str], rsa.RSAPublicKey]:
    """A Google service-account JSON key (with a fresh RSA key) and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    account = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode(),
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    return account, key.public_key()


class FakeFCM(FakeHttpServer):
    """Google's token endpoint (``POST /token``, JWT bearer grant, RS256 assertion verified
    against the service account's public key) and FCM v1 ``messages:send``.

    ``fake.service_account`` is a matching JSON key (``fake.service_account_json`` as text).
    Device tokens containing ``invalid`` get 400 INVALID_ARGUMENT, ``unregistered`` 404
    UNREGISTERED. ``expire_tokens()`` makes issued access tokens fail with 401.
    """

    name = "fcm"

    def __init__(
        self,
        project_id: str = "brandgraph-fake",
        *,
        service_account: dict[str, str] | None = None,
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        super().__init__(port=port, latency=latency)
        self.project_id = project_id
        if service_account is None:
            self.service_account, public_key = make_service_account(project_id)
        else:
            self.service_account = service_account
            private = serialization.load_pem_private_key(service_account["private_key"].encode(), password=None)
            public_key = private.public_key()  # type: ignore[assignment]
        self._public_key = public_key
        self._tokens: set[str] = set()
        self.token_requests = 0
        self._names = itertools.count(1)

    @property
    def service_account_json(self) -> str:
        return json.dumps(self.service_account)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def reset(self) -> None:
        super().reset()
        self._tokens.clear()
        self.token_requests = 0

    def routes(self) -> list[Route]:
        return [
            Route("/token", self.token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self.send, methods=["POST"]),
            Route("/_fake/service-account", self._account, methods=["GET"]),
        ]

    async def _account(self, request: Request) -> Response:
        return JSONResponse(self.service_account)

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, status_code=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion") or ""), self._public_key, algorithms=["RS256"],
                audience=self.token_url, options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.PyJWTError:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status_code=400)
        if claims["iss"] != self.service_account["client_email"] or "firebase.messaging" not in claims["scope"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT: bad issuer or scope"}, status_code=400)
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    @staticmethod
    def _error(status: int, state: str, message: str, fcm_code: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
        error: dict[str, Any] = {"code": status, "message": message, "status": state}
        if fcm_code:
            error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
        return JSONResponse({"error": error}, status_code=status, headers=headers)

    async def send(self, request: Request) -> Response:
        await self._pause()
        failure = self._count_request()
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            return self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
        if request.path_params["project"] != self.project_id:
            return self._error(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied")
        if failure:
            status, wait = failure
            headers = {"Retry-After": str(int(wait))} if wait is not None else None
            if status == 429:
                return self._error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED", headers)
            return self._error(status, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE", headers)
        data = _json_body(await request.body())
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict) or not message.get("token"):
            return self._error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "INVALID_ARGUMENT")
        token = str(message["token"])
        if "unregistered" in token:
            return self._error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if "invalid" in token:
            return self._error(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")
        name = f"projects/{self.project_id}/messages/0:{int(time.time() * 1000)}%{next(self._names):08x}"
        notification = message.get("notification") or {}
        self.messages.append(
            RecordedMessage(
                provider=self.name,
                to=token,
                title=notification.get("title"),
                body=notification.get("body"),
                data=message.get("data") or {},
                key=(message.get("data") or {}).get("bg_key"),
                provider_message_id=name,
            )
        )
        return JSONResponse({"name": name})


# --- SMTP -------------------------------------------------------------------------------------


class FakeSMTP(_Recorder):
    """An SMTP server (aiosmtpd) recording parsed messages. RCPT of an address containing
    ``invalid`` is refused with 550; ``username``/``password`` make AUTH required (over plain
    text, as this is loopback only); ``fail_next`` answers MAIL FROM with the given 4xx/5xx."""

    name = "smtp"

    def __init__(self, *, username: str | None = None, password: str | None = None, port: int = 0) -> None:
        super().__init__()
        self.host = HOST
        self.port = port or free_port()
        self.username = username
        self.password = password
        self.auth_attempts = 0
        self._controller: Any = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.auth_attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends 235/535

    def start(self) -> Self:
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd logs every session
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs = {"auth_required": True, "auth_require_tls": False, "authenticator": self._authenticate}
        self._controller = Controller(_SmtpHandler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SmtpHandler:
    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]) -> str:
        failure = self.fake._count_request()
        if failure:
            status, _ = failure
            return f"{status} 4.7.0 Try again later" if status < 500 else f"{status} 5.7.1 Sender rejected"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if "invalid" in address.lower():
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        mime = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(mime, EmailMessage)
        html = mime.get_body(("html",))
        text = mime.get_body(("plain",))
        for rcpt in envelope.rcpt_tos:
            self.fake.messages.append(
                RecordedMessage(
                    provider="smtp",
                    to=rcpt,
                    sender=envelope.mail_from,
                    subject=str(mime["Subject"] or ""),
                    html=html.get_content() if html is not None else None,
                    text=text.get_content() if text is not None else None,
                    headers={k: str(v) for k, v in mime.items()},
                    provider_message_id=str(mime["Message-ID"] or ""),
                    key=_key_from_message_id(str(mime["Message-ID"] or "")),
                    mime=mime,
                )
            )
        return "250 2.0.0 Ok: queued"


def _key_from_message_id(message_id: str) -> str | None:
    """SmtpProvider's Message-ID is ``<key@domain>``."""
    return message_id.strip("<>").rsplit("@", 1)[0] or None if message_id else None


# --- running as a process ---------------------------------------------------------------------

FAKES: dict[str, Callable[[argparse.Namespace], FakeHttpServer]] = {
    "brevo": lambda a: FakeBrevo(a.api_key or "brevo-test-key", port=a.port, latency=a.latency,
                                 duplicate_response=a.duplicate_response),
    "sendgrid": lambda a: FakeSendGrid(a.api_key or "SG.test-key", port=a.port, latency=a.latency),
    "twilio": lambda a: FakeTwilio(a.account_sid or "AC" + "0" * 31 + "1", a.auth_token or "twilio-test-auth-token",
                                   port=a.port, latency=a.latency),
    "fcm": lambda a: FakeFCM(a.project_id, port=a.port, latency=a.latency,
                             service_account=json.loads(Path(a.service_account).read_text()) if a.service_account else None),
}


class _SmtpControl(FakeHttpServer):
    """The ``/_fake`` routes of a FakeSMTP process."""

    name = "smtp-control"

    def __init__(self, smtp: FakeSMTP, port: int) -> None:
        super().__init__(port=port)
        self.smtp = smtp

    def routes(self) -> list[Route]:
        return []

    def control_routes(self) -> list[Route]:
        return self.smtp.control_routes()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.providers", description=__doc__.split("\n")[0])
    parser.add_argument("provider", choices=[*FAKES, "smtp"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each API request")
    parser.add_argument("--api-key")
    parser.add_argument("--account-sid")
    parser.add_argument("--auth-token")
    parser.add_argument("--project-id", default="brandgraph-fake")
    parser.add_argument("--service-account", help="FCM: JSON key file whose public key is trusted")
    parser.add_argument("--duplicate-response", choices=["error", "replay"], default="error")
    parser.add_argument("--username", help="SMTP: require AUTH with this login")
    parser.add_argument("--password")
    parser.add_argument("--control-port", type=int, default=0, help="SMTP: port of the /_fake routes")
    args = parser.parse_args(argv)
    if args.provider == "smtp":
        smtp = FakeSMTP(username=args.username, password=args.password, port=args.port).start()
        control = _SmtpControl(smtp, args.control_port)
        print(f"SMTP {smtp.host}:{smtp.port}", flush=True)
        try:
            control.serve_forever()
        finally:
            smtp.stop()
        return
    FAKES[args.provider](args).serve_forever()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
