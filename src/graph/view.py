"""The GraphQL endpoint: credentials to context over HTTP and graphql-transport-ws."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from domain.errors import DomainError, Unauthenticated
from domain.platform import db
from domain.platform.observability import current_request_id, new_request_id
from domain.tenancy import auth, brands, key_usage
from domain.tenancy.policies import Principal
from graph import persisted, transport
from graph.core import fanout, ids
from graph.core.context import Context

log = logging.getLogger(__name__)


class RequestRefused(HTTPException):
    """An HTTP-level refusal with a GraphQL-shaped JSON body and a machine-readable code."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(status_code, message)
        self.code = code
        self.headers = headers or {}


# The response media type this request negotiated (its Accept header), and the HTTP status of a
# single operation's result that failed before execution; both for this request only.
_media: ContextVar[str] = ContextVar("graphql_response_media", default=transport.JSON)
_request_error: ContextVar[int | None] = ContextVar("graphql_request_error", default=None)

ALLOWED_METHODS = "GET, POST"
GRAPHIQL_PAGE = Path(__file__).parent / "static" / "graphiql.html"


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

    def __init__(self, schema: Any, *, graphiql: bool, allowed_origins: tuple[str, ...] = (),
                 allowed_origin_regex: str | None = None) -> None:
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
            allowed_origins=allowed_origins,  # websockets from a page of another origin: CORS's
        )
        self.allowed_origin_regex = re.compile(allowed_origin_regex) if allowed_origin_regex else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        state = db.RequestState()  # PostgreSQL unreachable in this request; a write committed
        token = db.request_state.set(state)
        media = transport.JSON
        _request_error.set(None)
        try:
            media = self._check_request(request)
            _media.set(media)
            with db.counting_statements():  # extensions.sqlStatements counts authentication too
                response = await self.run(request)
            response = persisted.cache_headers(request, response)  # GET of a persisted document: ETag, 304
        except db.DatabaseUnavailable:
            response = None
        except (RequestRefused, persisted.PersistedRefusal) as e:
            response = JSONResponse(error_body(e.code, e.reason), status_code=e.status_code,
                                    headers=getattr(e, "headers", None))
            if e.status_code == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="brandgraph"'
        except transport.Malformed as e:
            response = self._graphql_response(error_body("BAD_REQUEST", e.message), media,
                                              422 if media == transport.GRAPHQL_RESPONSE_JSON else 400)
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

    def _check_request(self, request: Request) -> str:
        """What HTTP decides before anything else (and before authentication, so a CORS
        preflight or a stray method is never a 401): the method (405 with ``Allow``), the
        response media type (406 when ``Accept`` admits none of ours), and a POST body's media
        type (415 unless ``application/json`` in UTF-8, or multipart for uploads). Returns the
        negotiated response media type."""
        if request.method not in ("GET", "POST"):
            raise RequestRefused(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed here; use GET or POST",
                                 headers={"Allow": ALLOWED_METHODS})
        if self._is_ide_page(request):
            return transport.JSON
        media = transport.negotiate(request.headers.get("accept"))
        if media is None:
            raise RequestRefused(406, "NOT_ACCEPTABLE", "the Accept header admits neither "
                                 f"{transport.GRAPHQL_RESPONSE_JSON} nor {transport.JSON}")
        if request.method == "POST":
            kind, params = transport.content_type(request.headers.get("content-type"))
            charset = params.get("charset", "utf-8")
            if not (kind == transport.JSON and charset in ("utf-8", "utf8")) and kind != transport.MULTIPART:
                raise RequestRefused(415, "UNSUPPORTED_MEDIA_TYPE",
                                     "send the request as Content-Type: application/json (UTF-8)")
        return media

    def _is_ide_page(self, request: Any) -> bool:
        """The GraphiQL page: a browser's GET with no query (``request`` a Starlette request or
        Strawberry's adapter of one: both have method, headers and query_params)."""
        return (
            self.graphql_ide is not None
            and request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
            # a GET naming a persisted document (documentId, extensions) is an operation
            and not {"query", "documentId", "extensions"} & set(request.query_params.keys())
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        return self._is_ide_page(request)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL, its scripts and styles served from this package (``/graphiql/``)."""
        return HTMLResponse(GRAPHIQL_PAGE.read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-cache"})

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        """A page on another origin opens a websocket when CORS would let it call over HTTP."""
        if super().is_websocket_origin_allowed(request, origin):
            return True
        return bool(self.allowed_origin_regex and self.allowed_origin_regex.fullmatch(origin))

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
            # brandId, or the header's name as GraphiQL's Headers pane sends it in the payload
            brand = params.get("brandId") or params.get("X-Brand-Id") or params.get("x-brand-id")
            context.brand_id = await _active_brand(context.principal_, brand)
            context.credential, context.checked_at = header, time.monotonic()
        except (Unauthenticated, RequestRefused) as e:
            log.info("websocket connection refused", extra={"reason": str(e)})
            raise ConnectionRejectionError() from None
        return None

    # --- reading the request ---------------------------------------------------------------

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData | transport.Malformed]:
        """One operation (GET parameters, or a JSON object), or a batch (a JSON array of up to
        ``MAX_BATCH`` operations); a batch's malformed entry is answered in its place."""
        kind, _ = transport.content_type(request.content_type)
        if request.method == "GET":
            data: Any = dict(request.query_params)
            return self._request_data(transport.operation(data, from_url=True, decode_json=self._decode_param), data)
        if kind == transport.MULTIPART:
            data = await self.parse_multipart(request)
        else:
            data = self.parse_json(await request.get_body())
        if not isinstance(data, list):
            return self._request_data(transport.operation(data, from_url=False, decode_json=None), data)
        if not data:
            raise RequestRefused(400, "BAD_REQUEST", "a batch needs at least one operation")
        if len(data) > transport.MAX_BATCH:
            raise RequestRefused(400, "BATCH_TOO_LARGE",
                                 f"a batch holds at most {transport.MAX_BATCH} operations; this one has {len(data)}")
        batch: list[GraphQLRequestData | transport.Malformed] = []
        for item in data:
            try:
                batch.append(self._request_data(transport.operation(item, from_url=False, decode_json=None), item))
            except transport.Malformed as e:
                batch.append(e)
        return batch

    @staticmethod
    def _request_data(op: transport.Operation, raw: dict[str, Any]) -> GraphQLRequestData:
        """Strawberry's request data, with the persisted-documents ``documentId`` when given
        (``graph/persisted.py``; null, and the empty string, mean absent)."""
        if raw.get("documentId") not in (None, ""):
            return persisted.PersistedRequestData(query=op.query, variables=op.variables,
                                                  operation_name=op.operation_name, extensions=op.extensions,
                                                  document_id=raw["documentId"])
        return GraphQLRequestData(query=op.query, variables=op.variables, operation_name=op.operation_name,
                                  extensions=op.extensions)

    def _decode_param(self, text: str) -> object:
        try:
            return self.decode_json(text)
        except json.JSONDecodeError:
            raise RequestRefused(400, "BAD_REQUEST", "a GET parameter meant as JSON is not valid JSON") from None

    def parse_json(self, data: str | bytes) -> Any:
        """A POST body: a JSON object (one operation) or array (a batch). Text that is not JSON
        is a 400; JSON of another shape is not a well-formed request (``Malformed``)."""
        try:
            value = self._load_json(data)
        except json.JSONDecodeError:
            raise RequestRefused(400, "BAD_REQUEST", "the request body is not valid JSON") from None
        if not isinstance(value, (dict, list)):
            raise transport.Malformed("the request body must be a JSON object (or an array of them, a batch)")
        return value

    def decode_json(self, data: str | bytes) -> object:
        """JSON elsewhere (a GET request's variables, websocket messages): an object or a list;
        anything else is the client's mistake, answered with 400."""
        value = self._load_json(data)
        if not isinstance(value, (dict, list)):
            raise HTTPException(400, "the request body must be a JSON object (variables too)") from None
        return value

    @staticmethod
    def _load_json(data: str | bytes) -> Any:
        try:
            return json.loads(data)
        except UnicodeDecodeError:
            raise HTTPException(400, "the request body is not valid UTF-8") from None
        except RecursionError:
            raise HTTPException(400, "the request body is nested too deeply") from None

    def encode_json(self, data: object) -> str:
        return json.dumps(data, separators=(",", ":"), default=str)

    # --- running it --------------------------------------------------------------------------

    async def execute_operation(self, request, request_adapter, request_data, context, root_value, sub_response):
        """A batch runs its operations one after the other, in order, each exactly as a request
        of its own would (its own extensions, read transaction and dataloaders), so a mutation
        has committed before the operations after it run; one operation's failure is its
        entry's errors and does not stop the others."""
        if not isinstance(request_data, list):
            return await super().execute_operation(request, request_adapter, request_data, context, root_value,
                                                   sub_response)
        results = []
        for data in request_data:
            if isinstance(data, transport.Malformed):
                results.append(_refused_operation(data.message))
                continue
            try:
                with db.counting_statements():  # a batch entry's sqlStatements: its own operation's
                    results.append(await self.execute_single(request, request_adapter, sub_response,
                                                             dataclasses.replace(context, _loaders=None), root_value,
                                                             data))
            except transport.Malformed as e:
                results.append(_refused_operation(e.message))
            except persisted.PersistedRefusal as e:  # e.g. PersistedQueryNotFound: that entry's answer
                results.append(_refused_operation(e.reason, e.code))
        return results

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
                raise RequestRefused(405, "METHOD_NOT_ALLOWED", "mutations are not allowed over GET; use POST",
                                     headers={"Allow": "POST"}) from None
            raise transport.Malformed(e.reason) from None
        await persisted.after(prepared, result, context.principal)
        return result

    async def process_result(self, request: Request, result: Any) -> dict[str, Any]:
        """The result as JSON. Under ``application/graphql-response+json`` a result that failed
        before execution has no ``data`` entry and its own 4xx/5xx status (``transport``);
        under ``application/json`` it is answered as always, ``"data": null`` with 200."""
        body = await super().process_result(request, result)
        if _media.get() == transport.GRAPHQL_RESPONSE_JSON:
            status = transport.request_error_status(result.data, result.errors)
            if status is not None:
                body.pop("data", None)
                _request_error.set(status)
        return body

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        media = _media.get()
        status = 200 if isinstance(response_data, list) else (_request_error.get() or 200)
        response = self._graphql_response(response_data, media, status)
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        # a status an operation set (429 THROTTLED, 400 MAX_COST_EXCEEDED: graph/cost.py) is the
        # answer's, except in a batch, whose other entries may have run: it stays 200, the refused
        # entry carrying its error (and the answer the Retry-After it set)
        if sub_response.status_code and not isinstance(response_data, list):
            response.status_code = sub_response.status_code
        return response

    def _graphql_response(self, body: Any, media: str, status: int) -> Response:
        # the media type (and so the status) depends on Accept: a cache must key on it too
        return Response(self.encode_json(body), status_code=status, media_type=f"{media}; charset=utf-8",
                        headers={"Vary": "Accept"})


def _refused_operation(message: str, code: str = "BAD_REQUEST") -> ExecutionResult:
    """A batch entry refused before it ran (not a well-formed operation, a persisted document
    not found...), answered in its place."""
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={
        "code": code, "requestId": current_request_id()})])
