"""Schema extensions: caches, limits, and error masking with request ids."""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from domain.config import Settings
from domain.errors import DomainError, Unauthenticated
from domain.platform.db import count_statements
from domain.platform.observability import current_request_id

log = logging.getLogger("graph.errors")


def _is_internal(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None:  # syntax, validation, limits: the client's own doing
        return False
    return not isinstance(original, (DomainError, Unauthenticated))


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
                error.extensions = {"code": first.code.value, "field": first.field}
            elif isinstance(original, Unauthenticated):
                error.extensions = {"code": "UNAUTHENTICATED"}

    def on_operation(self):
        yield
        result = self.execution_context.result
        self._code(getattr(result, "initial_result", None) or result)

    def on_stream_result(self, result):
        """Subscription events arrive here, one by one, instead of through on_operation."""
        self._code(result)
        yield None


class ReportSqlStatements(SchemaExtension):
    """Development aid (GRAPHQL_SQL_STATS=1): the number of SQL statements the operation ran,
    in ``extensions.sqlStatements``. Tests use it to prove list fields stay flat (no N+1)."""

    def on_operation(self):
        self.counter = count_statements()
        yield

    def get_results(self) -> dict[str, int]:
        return {"sqlStatements": self.counter.count}


def extensions(settings: Settings) -> list:
    exts: list = [
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        DomainErrorCodes,
        MaskInternalErrors,
    ]
    if settings.sql_stats:
        exts.append(ReportSqlStatements)
    if not settings.introspection:
        exts.append(DisableIntrospection)
    return exts
