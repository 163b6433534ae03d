"""Persisted operations over HTTP: the layer between the view's request parsing and Strawberry.

A request names its document in one of three ways, or sends it in full:

* ``documentId: "sha256:<hex>"`` (the GraphQL-over-HTTP persisted documents appendix), in the
  POST body or as a GET query parameter;
* Apollo's ``extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`` (automatic
  persisted queries), with or without the query text, by POST or by GET (``extensions``
  JSON-encoded in the query string);
* ``query``: the text itself.

An id is looked up first among the trusted documents of the caller's client app (an API key
that belongs to one, ``principal.client_app``), then among the automatic persisted queries the
tenant registered (``domain/platform/apq.py``, Redis). A key of a **persisted-only** app runs
trusted documents only: anything else is refused before parsing, so nothing of it runs.

Apollo's protocol exactly: a hash alone that is not known answers 200 with the error
``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``), so the link sends the query
with its hash; a hash that is not the SHA-256 of the query sent with it is a 400
(``PERSISTED_QUERY_HASH_MISMATCH``, "provided sha does not match query") and nothing is stored;
a matching pair is stored once the operation ran (parsed and validated: no request error) and
runs. The text found becomes the request's ``query``, so parsing and validation go through the
same cache (``PreparedDocuments``, keyed by the text) as a text sent in full.

A GET answered from a persisted document carries ``Cache-Control: private`` (answers are per
principal), ``Vary: Authorization, X-Brand-Id`` and an ``ETag`` of the body; a matching
``If-None-Match`` gets 304 without a body.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLRequestData

from domain.clients import service as clients
from domain.clients.manifest import HEX64, sha256_hex
from domain.platform import apq
from domain.tenancy.policies import Principal

APQ_VERSION = 1
PERSISTED_SCOPE_KEY = "brandgraph.persisted"  # set in the ASGI scope of a request that ran a persisted document
VARY = "Accept, Authorization, X-Brand-Id"  # Accept: the media type (graph/transport.py)


class PersistedRefusal(HTTPException):
    """A persisted-operation request refused before anything ran: the status, the code in
    ``extensions.code`` and the message (the view answers it as a GraphQL-shaped JSON body)."""

    def __init__(self, status_code: int, code: str, message: str):
        super().__init__(status_code, message)
        self.code = code


@dataclass
class PersistedRequestData(GraphQLRequestData):
    """Strawberry's request data with the GraphQL-over-HTTP ``documentId`` it does not read (the
    view's request parsing fills it in, ``graph/view.py``)."""

    document_id: Any = None


@dataclass(frozen=True)
class Prepared:
    """What the layer decided for one operation: the text to run, and the hash to register for
    it once it ran (automatic persisted queries)."""

    data: GraphQLRequestData
    persisted: bool = False
    register: str | None = None


# --- deciding what runs ------------------------------------------------------------------------


def _refuse(status: int, code: str, message: str) -> PersistedRefusal:
    return PersistedRefusal(status, code, message)


def _apollo_hash(extensions: Any) -> str | None:
    """The hash of Apollo's ``extensions.persistedQuery``, checked; None without one."""
    if not isinstance(extensions, dict) or "persistedQuery" not in extensions:
        return None
    pq = extensions["persistedQuery"]
    if not isinstance(pq, dict):
        raise _refuse(400, "BAD_REQUEST", "extensions.persistedQuery must be an object")
    if pq.get("version") != APQ_VERSION:
        raise _refuse(400, "PERSISTED_QUERY_NOT_SUPPORTED", "Unsupported persisted query version")
    sha = pq.get("sha256Hash")
    if not isinstance(sha, str) or not HEX64.match(sha.lower()):
        raise _refuse(400, "BAD_REQUEST", "extensions.persistedQuery.sha256Hash must be 64 hex digits")
    return sha.lower()


def _document_id(raw: Any) -> str:
    if isinstance(raw, str) and raw.startswith("sha256:") and HEX64.match(raw[7:].lower()):
        return raw[7:].lower()
    raise _refuse(400, "BAD_REQUEST", "documentId must read sha256:<64 hex digits>")


async def _lookup(principal: Principal, sha: str) -> str | None:
    """The text under ``sha``: the client app's trusted document, else (apps that are not
    persisted-only, and everyone else) the tenant's automatic persisted query."""
    app = principal.client_app
    if app is not None:
        text = await clients.trusted_document(principal, sha)
        if text is not None or app.persisted_only:
            return text
    return await apq.get(principal.tenant_id, sha)


async def prepare(data: GraphQLRequestData, principal: Principal) -> Prepared:
    """The operation to run for ``data``, or a ``PersistedRefusal`` before anything runs."""
    persisted_only = principal.client_app is not None and principal.client_app.persisted_only
    document_id = getattr(data, "document_id", None)
    sha = _apollo_hash(data.extensions)
    query = data.query
    if document_id is not None:
        if query is not None:
            raise _refuse(400, "BAD_REQUEST", "send either query or documentId, not both")
        doc = _document_id(document_id)
        text = await _lookup(principal, doc)
        if text is None:
            raise _refuse(400, "PERSISTED_QUERY_NOT_FOUND",
                          f"no persisted document sha256:{doc} is known to this credential")
        return Prepared(dataclasses.replace(data, query=text), persisted=True)
    if sha is None:
        if persisted_only:
            raise _refuse(400, "PERSISTED_QUERY_ID_REQUIRED",
                          "this API key belongs to a persisted-only client app: name a trusted document "
                          "with documentId or extensions.persistedQuery; a document sent in full does not run")
        return Prepared(data)
    if query is None:  # the hash alone
        text = await _lookup(principal, sha)
        if text is None:
            if persisted_only:
                raise _refuse(400, "PERSISTED_QUERY_NOT_IN_LIST",
                              f"sha256:{sha} is not a trusted document of this client app")
            raise _refuse(200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return Prepared(dataclasses.replace(data, query=text), persisted=True)
    if not isinstance(query, str) or sha256_hex(query) != sha:
        raise _refuse(400, "PERSISTED_QUERY_HASH_MISMATCH", "provided sha does not match query")
    if persisted_only:  # the text came with its hash: it runs only if the app trusts it
        if await clients.trusted_document(principal, sha) is None:
            raise _refuse(400, "PERSISTED_QUERY_NOT_IN_LIST",
                          f"sha256:{sha} is not a trusted document of this client app")
        return Prepared(data, persisted=True)
    return Prepared(data, persisted=True, register=sha)


async def after(prepared: Prepared, result: Any, principal: Principal) -> None:
    """Register an automatic persisted query once its operation ran (a request error, such as a
    document that does not validate, stores nothing)."""
    if prepared.register is None or prepared.data.query is None:
        return
    if getattr(result, "data", None) is None and getattr(result, "errors", None):
        return
    await apq.put(principal.tenant_id, prepared.register, prepared.data.query)


# --- caching GET answers -----------------------------------------------------------------------


def mark(request: Any) -> None:
    """The request ran a persisted document: its GET answer may be revalidated."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        scope[PERSISTED_SCOPE_KEY] = True


def cache_headers(request: Request, response: Response) -> Response:
    """A GET answered from a persisted document: private, varying by credential and brand, with an
    ETag of its body; 304 when ``If-None-Match`` names that ETag."""
    if request.method != "GET" or not request.scope.get(PERSISTED_SCOPE_KEY) or response.status_code != 200:
        return response
    body = getattr(response, "body", None)
    if not isinstance(body, bytes):
        return response
    etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'
    headers = {"ETag": etag, "Cache-Control": "private", "Vary": VARY}
    wanted = [t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",")]
    if etag in wanted or "*" in wanted:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response
