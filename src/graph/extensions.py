"""Schema extensions: caches, limits, input checks, and error masking with request ids."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    StringValueNode,
    parse,
    validate,
    visit,
)
from graphql.execution.values import get_argument_values
from graphql.language import Visitor
from starlette.websockets import WebSocket
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.graphql import OperationType

from domain.config import Settings
from domain.errors import DomainError, Unauthenticated
from domain.platform.db import (
    DatabaseUnavailable,
    count_statements,
    current_statement_counter,
    shared_reads,
)
from domain.platform.observability import current_request_id
from graph.cost import cost_extension

log = logging.getLogger("graph.errors")


BAD_USER_INPUT = "BAD_USER_INPUT"


class BadUserInput(GraphQLError):
    """An input value one of our scalars refuses (out of range, of the wrong kind): the client's
    doing. Raise this, not a plain GraphQLError, for refusals: graphql-core raises GraphQLError
    for output values it cannot serialise too, and those are defects."""


def _argument_coercion(error: BaseException) -> bool:
    """Raised while graphql-core coerced a field's arguments during execution."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is get_argument_values.__code__:
            return True
        tb = tb.tb_next
    return False


_REFUSALS = (BadUserInput, StrawberryInputCoercionError)  # ours; Strawberry's (a malformed GlobalID)


def _refused_input(error: GraphQLError) -> bool:
    """A GraphQLError refusing the client's input: one of our scalars or Strawberry's argument
    conversion refused a value, or graphql-core refused a variable (before execution: no path)
    or an argument (during execution, in get_argument_values). Any other GraphQLError, an output value that cannot be serialised
    ("Int cannot represent ...", "Expected Iterable"), is a defect of ours."""
    if error.path is None:
        return True
    inner: BaseException | None = error.original_error
    while isinstance(inner, GraphQLError):
        if isinstance(inner, _REFUSALS) or _argument_coercion(inner):
            return True
        inner = inner.original_error
    return isinstance(inner, _REFUSALS)


def _is_internal(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None:  # syntax, validation, limits: the client's own doing
        return False
    if isinstance(original, GraphQLError):
        return not _refused_input(error)
    return not isinstance(original, (DomainError, Unauthenticated, DatabaseUnavailable))


class MaskInternalErrors(MaskErrors):
    """Errors the product did not raise on purpose become a generic message with the request
    id; the full error goes to the log under the same id."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_internal)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        rid = current_request_id()
        log.error(
            "internal error in %s",
            ".".join(str(p) for p in error.path or []) or "operation",
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"Internal server error (request id {rid})",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": rid},
        )


class DomainErrorCodes(SchemaExtension):
    """Give expected errors raised in queries a machine-readable code."""

    @staticmethod
    def _code(result: object) -> None:
        for error in getattr(result, "errors", None) or []:
            original = error.original_error
            if isinstance(original, DomainError):
                first = original.errors[0]  # a ValidationFailed speaks through its first error
                # a quota's refusal names the quota, its limit, its use and its reset too
                error.extensions = {"code": first.code.value, "field": first.field,
                                    **getattr(first, "extensions", {})}
            elif isinstance(original, Unauthenticated):
                error.extensions = {"code": "UNAUTHENTICATED"}
            elif isinstance(original, DatabaseUnavailable):  # answered as a field error only
                error.message = "the database was unavailable for this field"  # after a write committed
                error.extensions = {"code": "DATABASE_UNAVAILABLE"}
            elif isinstance(original, GraphQLError) and _refused_input(error):
                error.extensions = {**(original.extensions or {}), "code": BAD_USER_INPUT}

    def on_operation(self):
        yield
        result = self.execution_context.result
        self._code(getattr(result, "initial_result", None) or result)

    def on_stream_result(self, result):
        """Subscription events arrive here, one by one, instead of through on_operation."""
        self._code(result)
        yield None


def finish_errors(result: Any) -> None:
    """What DomainErrorCodes and MaskInternalErrors do to a streamed result, for an event executed
    outside Strawberry's stream (``graph/core/fanout.py``): codes, then internal errors masked
    with the request id and logged, once."""
    DomainErrorCodes._code(result)
    if result.errors:
        result.errors = MaskInternalErrors()._process_errors(result.errors)


# Both caches are keyed by the query's text, not by its parsed document: a document is a frozen
# dataclass whose hash walks the whole tree again on every lookup.
@functools.lru_cache(maxsize=1024)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


@functools.lru_cache(maxsize=1024)
def _validate(schema: GraphQLSchema, query: str, max_tokens: int, rules: tuple,
              hide_suggestions: bool) -> list[GraphQLError]:
    return validate(schema, _parse(query, max_tokens), (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
                    hide_suggestions=hide_suggestions)


def validation_cache_info() -> functools._CacheInfo:
    """Hits and misses of the validation cache (tests)."""
    return _validate.cache_info()


class PreparedDocuments(SchemaExtension):
    """Parsing and validation, each once per distinct document (1024 of each kept): the parse
    with the token limit, the validation with Strawberry's rules plus the depth and alias limits,
    and without "Did you mean ...?" hints when introspection is off (they would spell out the
    schema that introspection hides). One extension rather than four: each is made anew for every
    operation, so every one of them costs every request."""

    def __init__(self, *, max_tokens: int, limits: tuple, hide_suggestions: bool) -> None:
        self.max_tokens = max_tokens
        self.limits = limits
        self.hide_suggestions = hide_suggestions

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.graphql_document is None and ctx.query:  # no query: Strawberry's own error follows
            ctx.graphql_document = _parse(ctx.query, self.max_tokens)
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        rules = (*ctx.validation_rules, *self.limits)
        if ctx.query:
            ctx.pre_execution_errors = _validate(ctx.schema._schema, ctx.query, self.max_tokens, rules,
                                                 self.hide_suggestions)
        else:  # a document given without its text: validated as it is
            ctx.pre_execution_errors = validate(ctx.schema._schema, ctx.graphql_document,
                                                (*rules, MaybeNullValidationRule, OneOfInputValidationRule),
                                                hide_suggestions=self.hide_suggestions)
        if not ctx.pre_execution_errors and _operation_undetermined(ctx):
            ctx.pre_execution_errors = [GraphQLError(
                "Must provide operation name if query contains multiple operations.")]
        yield


def _operation_undetermined(ctx: Any) -> bool:
    """GraphQL's GetOperation() fails when a document holds several operations and the request
    names none; Strawberry would run the first one."""
    if ctx.graphql_document is None or getattr(ctx, "_provided_operation_name", None) is not None:
        return False
    operations = [d for d in ctx.graphql_document.definitions if isinstance(d, OperationDefinitionNode)]
    return len(operations) > 1


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_text(value: Any) -> bool:
    """Text PostgreSQL cannot store anywhere in ``value``: a NUL character, or a lone surrogate
    (not valid UTF-8). Walked without recursion, so any depth is fine."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _bad_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


class _StringLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.bad = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if unstorable_text(node.value):
            self.bad = True


def _unstorable_literal(document: DocumentNode) -> bool:
    literals = _StringLiterals()
    visit(document, literals)
    return literals.bad


@functools.lru_cache(maxsize=1024)
def _unstorable_literal_in(query: str, max_tokens: int) -> bool:
    """Whether a query's text spells out unstorable text in a string literal, once per text."""
    return _unstorable_literal(_parse(query, max_tokens))


class RefuseUnstorableText(SchemaExtension):
    """No text reaches the product that PostgreSQL would refuse (NUL, lone surrogates), in a
    variable or in the document: the operation is refused as a whole, with BAD_USER_INPUT."""

    def __init__(self, *, max_tokens: int) -> None:
        self.max_tokens = max_tokens

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context
        bad = unstorable_text(ctx.variables or {})
        if not bad and ctx.graphql_document is not None:
            bad = (_unstorable_literal_in(ctx.query, self.max_tokens) if ctx.query
                   else _unstorable_literal(ctx.graphql_document))
        if bad:
            ctx.result = ExecutionResult(data=None, errors=[GraphQLError(
                "text may not contain the NUL character (U+0000) or unpaired surrogates",
                extensions={"code": BAD_USER_INPUT})])
        yield


class ShareReadTransaction(SchemaExtension):
    """A query operation over HTTP runs its resolvers' and dataloaders' tenant transactions as
    one (``domain.platform.db.shared_reads``): begun by the first, committed when the operation
    has executed. Mutations, subscriptions and operations over websockets keep a transaction
    per block. Resolvers run in tasks started inside this hook, so they see its context."""

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        if ctx.operation_type is not OperationType.QUERY or isinstance(getattr(ctx.context, "request", None),
                                                                       WebSocket):
            yield
            return
        async with shared_reads():
            yield


class ReportSqlStatements(SchemaExtension):
    """Development aid (GRAPHQL_SQL_STATS=1): the number of SQL statements the request ran, in
    ``extensions.sqlStatements``, and of transactions it began, in ``extensions.sqlTransactions``
    (BEGIN and COMMIT are not counted as statements): over HTTP the whole request, authentication
    included (the view counts from its start), over a websocket the operation. Tests use them to
    prove list fields stay flat (no N+1) and a query runs in one transaction."""

    def on_operation(self):
        self.counter = current_statement_counter() or count_statements()
        yield

    def get_results(self) -> dict[str, int]:
        return {"sqlStatements": self.counter.count, "sqlTransactions": self.counter.transactions}


def extensions(settings: Settings) -> list:
    # the limits' validation rules are built once: they are part of the validation cache's key
    limits = (*QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
              *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules)
    exts: list = [
        lambda: PreparedDocuments(max_tokens=settings.max_query_tokens, limits=limits,
                                  hide_suggestions=not settings.introspection),
        lambda: RefuseUnstorableText(max_tokens=settings.max_query_tokens),
        cost_extension(settings),  # graph/cost.py: refused before the read transaction begins
        ShareReadTransaction,
        DomainErrorCodes,
        MaskInternalErrors,
    ]
    if settings.sql_stats:
        exts.append(ReportSqlStatements)
    if not settings.introspection:
        exts.append(DisableIntrospection)
    return exts
