"""The GraphQL endpoint: credentials to context over HTTP and graphql-transport-ws."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from domain.errors import DomainError, Unauthenticated
from domain.platform import db
from domain.platform.observability import current_request_id, new_request_id
from domain.tenancy import auth, brands, key_usage
from domain.tenancy.policies import Principal
from graph import persisted
from graph.core import fanout, ids
from graph.core.context import Context

log = logging.getLogger(__name__)


class RequestRefused(HTTPException):
    """An HTTP-level refusal with a GraphQL-shaped JSON body and a machine-readable code."""

    def __init__(self, status_code: int, code: str, message: str):
        super().__init__(status_code, message)
        self.code = code


async def _active_brand(principal: Principal, raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        brand_id = ids.decode(raw.strip(), "Brand", "brandId")
        await brands.check_active_brand(principal, brand_id)
    except DomainError:
        raise RequestRefused(403, "BRAND_NOT_ACCESSIBLE", "brand not found or not accessible") from None
    return brand_id


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, "requestId": current_request_id()}}]}


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = fanout.Handler  # live events shared by their subscribers

    def __init__(self, schema: Any, *, graphiql: bool) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=True,
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=50,
            # every request carries a bearer credential, which a cross-site form cannot send
            multipart_uploads_enabled=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        state = db.RequestState()  # PostgreSQL unreachable in this request; a write committed
        token = db.request_state.set(state)
        request = Request(scope=scope, receive=receive)
        try:
            with db.counting_statements():  # extensions.sqlStatements counts authentication too
                response = await self.run(request)
            response = persisted.cache_headers(request, response)  # GET of a persisted document: ETag, 304
        except db.DatabaseUnavailable:
            response = None
        except (RequestRefused, persisted.PersistedRefusal) as e:
            response = JSONResponse(error_body(e.code, e.reason), status_code=e.status_code)
            if e.status_code == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="brandgraph"'
        except HTTPException as e:
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(e.status_code, "BAD_REQUEST")
            response = JSONResponse(error_body(code, e.reason), status_code=e.status_code)
        except Exception:  # a defect: logged with its traceback, answered like a masked error
            log.exception("internal error handling a GraphQL request")
            rid = current_request_id()
            response = JSONResponse(error_body("INTERNAL_SERVER_ERROR", f"Internal server error (request id {rid})"),
                                    status_code=500)
        finally:
            db.request_state.reset(token)
        # Retrying the whole request is safe only if it committed no write; otherwise the answer
        # stands, the fields PostgreSQL could not serve carrying DATABASE_UNAVAILABLE errors.
        if response is None or (state.unavailable and not state.committed_write):
            response = JSONResponse(error_body("DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly"),
                                    status_code=503, headers={"Retry-After": "1"})
        await response(scope, receive, send)

    def _is_ide_page(self, request: Request) -> bool:
        return (
            request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
            and not {"query", "documentId", "extensions"} & request.query_params.keys()
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        # a GET naming a persisted document (documentId, extensions) is an operation, not the IDE page
        if {"documentId", "extensions"} & set(request.query_params):
            return False
        return super().should_render_graphql_ide(request)

    async def parse_http_body(self, request_adapter: Any) -> Any:
        return await persisted.attach_document_ids(request_adapter, await super().parse_http_body(request_adapter))

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        ctx = Context(request=request, response=response, request_id=current_request_id() or new_request_id())
        if isinstance(request, WebSocket) or self._is_ide_page(request):
            return ctx  # websockets authenticate in on_ws_connect; the IDE page needs nothing
        try:
            ctx.principal_ = await auth.authenticate(request.headers.get("authorization"))
        except Unauthenticated as e:
            raise RequestRefused(401, "UNAUTHENTICATED", e.message) from None
        ctx.brand_id = await _active_brand(ctx.principal_, request.headers.get("x-brand-id"))
        key_usage.note_use(ctx.principal_)
        return ctx

    async def on_ws_connect(self, context: Context) -> None:
        params = context.connection_params or {}
        header = params.get("Authorization") or params.get("authorization")
        if not header and params.get("token"):
            header = f"Bearer {params['token']}"
        try:
            context.principal_ = await auth.authenticate(header)
            app = context.principal_.client_app
            if app is not None and app.persisted_only:  # subscriptions are sent in full: not for such keys
                raise Unauthenticated("a key of a persisted-only client app does not open websockets")
            context.brand_id = await _active_brand(context.principal_, params.get("brandId"))
            context.credential, context.checked_at = header, time.monotonic()
        except (Unauthenticated, RequestRefused) as e:
            log.info("websocket connection refused", extra={"reason": str(e)})
            raise ConnectionRejectionError() from None
        return None

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):
        # persisted documents (graph/persisted.py): the text a documentId or hash names, or a refusal
        prepared = await persisted.prepare(request_data, context.principal)
        if prepared.persisted:
            persisted.mark(request)
        try:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, prepared.data
            )
        except HTTPException as e:
            if request_adapter.method == "GET" and "mutation" in e.reason.lower():
                raise HTTPException(405, "mutations are not allowed over GET; use POST") from None
            raise
        await persisted.after(prepared, result, context.principal)
        return result

    def decode_json(self, data: str | bytes) -> object:
        """A request body (or a GET request's variables) as JSON: an object, or a list (a batch,
        which is then refused); anything else is the client's mistake, answered with 400."""
        try:
            value = json.loads(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "the request body is not valid UTF-8") from None
        except RecursionError:
            raise HTTPException(400, "the request body is nested too deeply") from None
        if not isinstance(value, (dict, list)):
            raise HTTPException(400, "the request body must be a JSON object (variables too)") from None
        return value

    def encode_json(self, data: object) -> str:
        return json.dumps(data, separators=(",", ":"), default=str)
