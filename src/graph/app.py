"""The ASGI application: /graphql (HTTP and graphql-transport-ws), /healthz, /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.config import ConfigError, Settings, get_settings
from domain.errors import NotFound
from domain.exports.downloads import open_download
from domain.plans import api_usage, bucket
from domain.platform import db, outbox_relay
from domain.platform import redis as redis_mod
from domain.platform.events import EventHub
from domain.platform.observability import configure_logging, new_request_id, request_id_var
from domain.tenancy import key_usage, principal_cache
from graph.schema import build_schema
from graph.view import GraphQLView, error_body
from graph.webhooks import ROUTES as WEBHOOK_ROUTES

log = logging.getLogger("graph.app")
GRAPHIQL_ASSETS = Path(__file__).parent / "static" / "graphiql"  # vendored, pinned; see its licenses/
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """A request id per request (the caller's X-Request-Id when sane), echoed in the response,
    set for logs and audit rows; one JSON access line per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else new_request_id()
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = {"code": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http" and scope["path"] not in ("/healthz", "/readyz"):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": _loggable(scope["path"]),
                        "status": status["code"],
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _loggable(path: str) -> str:
    """Paths as logged: signed tokens (downloads, tracking, unsubscribe) are credentials, so they
    never reach the log."""
    for prefix in ("/downloads/", "/t/o/", "/t/c/", "/u/"):
        if path.startswith(prefix):
            return prefix + "<token>"
    return path


class BodySizeLimitMiddleware:
    """Refuse request bodies over the limit with 413, before the GraphQL layer reads them.
    File uploads (multipart) have their own, larger limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json = max_bytes
        self.max_upload = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_upload if multipart else self.max_json
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        body = bytearray()
        more = True
        while more:  # buffer (bounded) so a lying or missing Content-Length is caught too
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = JSONResponse(
            error_body("PAYLOAD_TOO_LARGE", f"request body is larger than {limit} bytes"),
            status_code=413,
        )
        await response(scope, receive, send)


class ConcurrencyLimitMiddleware:
    """At most ``limit`` HTTP requests in progress in this process; one more is answered at once
    with 503 ``OVERLOADED`` and ``Retry-After: 1`` instead of queueing. Past its capacity a
    server that queues everything answers nothing in time (every request waits behind all the
    others); one that refuses the excess keeps answering the rest within ``limit`` ÷ its rate.
    Probes (``/healthz``, ``/readyz``) and websockets are not counted."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/healthz", "/readyz"):
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            response = JSONResponse(error_body("OVERLOADED", "the server is at capacity; retry shortly"),
                                    status_code=503, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


async def download(request: Request) -> Response:
    """A job's file behind a signed, expiring link (exports)."""
    try:
        found = await open_download(request.path_params["token"])
    except NotFound as exc:
        return JSONResponse(error_body("NOT_FOUND", exc.message), status_code=404)
    return Response(found.content, media_type=found.content_type, headers={
        "content-disposition": f'attachment; filename="{found.filename}"', "cache-control": "private, no-store"})


async def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """Any route that meets PostgreSQL away (downloads, webhooks, tracking links): 503, retry
    shortly, in the error shape of the rest of the API. (GraphQL answers this in its view.)"""
    return JSONResponse(error_body("DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly"),
                        status_code=503, headers={"Retry-After": "1"})


async def healthz(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def readyz(_: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with db.anonymous_session() as s:
                await s.execute(text("select 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        async with asyncio.timeout(2):
            await redis_mod.client().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


async def check_database_role() -> None:
    """Refuse to serve as a role that row-level security does not bind."""
    async with db.anonymous_session() as s:
        row = (
            await s.execute(
                text(
                    "select current_user, rolsuper, rolbypassrls, exists(select 1 from pg_tables "
                    "where schemaname = 'public' and tableowner = current_user) as owns_tables "
                    "from pg_roles where rolname = current_user"
                )
            )
        ).one()
    if row.rolsuper or row.rolbypassrls or row.owns_tables:
        raise ConfigError(
            f"the app connects to PostgreSQL as {row.current_user!r}, which bypasses row-level "
            "security or owns the tables (and could switch it off); connect as brandgraph_app "
            "(see DATABASE_APP_URL in the README)"
        )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    settings.check_production()
    configure_logging(settings.log_level)
    view = GraphQLView(build_schema(settings), graphiql=settings.graphiql, allowed_origins=settings.cors_origins,
                       allowed_origin_regex=settings.cors_origin_regex)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await check_database_role()
        app.state.event_hub = EventHub()
        relay = outbox_relay.Relay("api")  # every API process relays too: one at a time claims
        relay.start()
        auth_listener = principal_cache.Listener()  # without it, the auth cache never answers
        auth_listener.start()
        key_use = key_usage.flusher()
        key_use.start()
        api_use = api_usage.flusher()  # requests, cost and throttling per consumer and hour
        api_use.start()
        # everything loaded so far (modules, the schema) lives as long as the process: keep it out
        # of the collector's generations, and collect the young generation less often, so that
        # full collections do not pause live subscriptions for hundreds of milliseconds
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 20)
        log.info("api ready", extra={"env": settings.env})
        try:
            yield
        finally:
            await key_use.stop()  # writes what it holds
            await api_use.stop()
            await bucket.close()
            await auth_listener.stop()
            await relay.stop()
            await app.state.event_hub.close()
            await redis_mod.close_client()
            await db.dispose_engine()

    middleware = [
        Middleware(RequestContextMiddleware),
        Middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent_requests),
        Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes,
                   max_upload_bytes=settings.max_upload_bytes),
    ]
    if settings.cors_origins or settings.cors_origin_regex:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_origin_regex=settings.cors_origin_regex,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-brand-id", "x-request-id", "if-none-match"],
                # what a page's code may read: the request id, when to retry (429, 503), the ETag to revalidate
                expose_headers=["x-request-id", "retry-after", "etag"],
                max_age=600,
            )
        )
    return Starlette(
        routes=[
            Route("/graphql", view),
            WebSocketRoute("/graphql", view),
            *([Mount("/graphiql", StaticFiles(directory=GRAPHIQL_ASSETS), name="graphiql")]
              if settings.graphiql else []),
            Route("/downloads/{token}", download),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *WEBHOOK_ROUTES,
        ],
        middleware=middleware,
        exception_handlers={db.DatabaseUnavailable: database_unavailable},
        lifespan=lifespan,
    )
