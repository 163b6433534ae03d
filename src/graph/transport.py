"""GraphQL over HTTP: the response media type a request accepts, the request's parameters by GET
and POST (one operation or a batch), and the HTTP status of a GraphQL response.

Follows the GraphQL-over-HTTP draft (graphql/graphql-over-http, spec/GraphQLOverHTTP.md); where
it leaves a choice, the choice and its reason are in docs/api.md ("GraphQL over HTTP").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
MULTIPART = "multipart/form-data"

MAX_BATCH = 10  # operations in one batched request


class Malformed(Exception):
    """A request that is not a well-formed GraphQL-over-HTTP request (a parameter missing or of
    the wrong type, an operation that cannot be determined): 422 under
    ``application/graphql-response+json``, 400 under ``application/json`` (as it always was)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """An Accept header as (media range, q) pairs; a range with an unreadable q counts as q=0."""
    ranges = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    q = 0.0
        ranges.append((media, q))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """The q the most specific matching range gives ``media``, and how specific it was
    (2 exact, 1 ``type/*``, 0 ``*/*``, -1 no match)."""
    kind = media.split("/")[0]
    best: tuple[float, int] = (0.0, -1)
    for rng, q in ranges:
        specificity = 2 if rng == media else 1 if rng == f"{kind}/*" else 0 if rng == "*/*" else -1
        if specificity > best[1]:
            best = (q, specificity)
    return best


def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None when it accepts neither.

    No header (or an empty one), and one that accepts both only through wildcards (``*/*``,
    ``application/*``: curl's default, Apollo Client 3's), get ``application/json``: clients
    that send them are the legacy clients the spec asks servers to keep serving. Otherwise the
    higher q wins, and on a tie the type the client named, ``application/graphql-response+json``
    first (a client that names it follows the spec)."""
    if not accept or not accept.strip():
        return JSON
    ranges = _media_ranges(accept)
    q_gr, exact_gr = _quality(GRAPHQL_RESPONSE_JSON, ranges)
    q_json, exact_json = _quality(JSON, ranges)
    if q_gr <= 0 and q_json <= 0:
        return None
    if q_gr != q_json:
        return GRAPHQL_RESPONSE_JSON if q_gr > q_json else JSON
    if exact_gr == 2:
        return GRAPHQL_RESPONSE_JSON
    return JSON


def content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """A Content-Type header as (media type, parameters), lower-cased names."""
    if not header:
        return "", {}
    media, *params = header.split(";")
    parsed = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), parsed


@dataclass
class Operation:
    """One operation's GraphQL-over-HTTP request parameters, as read from GET or a POST body."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


def _absent(value: Any) -> bool:
    return value is None or value == ""


def operation(params: Any, *, from_url: bool, decode_json: Any) -> Operation:
    """The parameters of one operation: a POST body's JSON object, or a GET request's query
    string (where ``variables`` and ``extensions`` are JSON text). ``null``, and in a URL the
    empty string, mean absent; anything of the wrong type is ``Malformed``. Unknown keys are
    ignored, as the spec requires."""
    if not isinstance(params, dict):
        raise Malformed("each operation must be a JSON object")
    query = params.get("query")
    if from_url and query == "":
        query = None
    if not isinstance(query, (str, type(None))):
        raise Malformed("the operation's `query` must be a string")
    name = params.get("operationName")
    if _absent(name):
        name = None
    elif not isinstance(name, str):
        raise Malformed("the operation's `operationName` must be a string")
    values = {}
    for key in ("variables", "extensions"):
        value = params.get(key)
        if from_url and isinstance(value, str) and value != "":
            value = decode_json(value)
        if _absent(value):
            value = None
        elif not isinstance(value, dict):
            raise Malformed(f"the operation's `{key}` must be a JSON object")
        values[key] = value
    return Operation(query=query, variables=values["variables"], operation_name=name,
                     extensions=values["extensions"])


# The HTTP status of a request error (no `data`) by its code, under graphql-response+json. A
# code missing here is 422 (the request could not be executed as sent), a syntax error 400.
REQUEST_ERROR_STATUS: dict[str, int] = {
    "INTERNAL_SERVER_ERROR": 500,
    "DATABASE_UNAVAILABLE": 503,
}


def request_error_status(data: Any, errors: list[GraphQLError] | None) -> int | None:
    """The 4xx/5xx status of a result that failed before execution (a GraphQL request error:
    the document did not parse or validate, the variables could not be coerced, a check before
    execution refused it), or None for an execution result (``data`` set, possibly null after a
    field error: every error of execution has a path)."""
    if data is not None or not errors or any(e.path for e in errors):
        return None
    first = errors[0]
    code = (first.extensions or {}).get("code")
    if code in REQUEST_ERROR_STATUS:
        return REQUEST_ERROR_STATUS[code]
    if isinstance(first, GraphQLSyntaxError):
        return 400
    return 422
