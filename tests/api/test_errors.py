"""Errors the product did not raise on purpose are masked and carry the request id; the ones
it did raise keep their message and gain a code."""

from __future__ import annotations

import logging

import strawberry

from domain.config import load_settings
from domain.errors import PermissionDenied
from domain.platform.observability import request_id_var
from graph.extensions import extensions


@strawberry.type
class Query:
    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("password=hunter2 leaked from a driver")

    @strawberry.field
    def refused(self) -> str:
        raise PermissionDenied("your role (analyst) may not audit:read")


schema = strawberry.Schema(query=Query, extensions=extensions(load_settings({})))


async def test_internal_error_is_masked_with_request_id(caplog) -> None:
    token = request_id_var.set("req-0123456789")
    try:
        with caplog.at_level(logging.ERROR, logger="graph.errors"):
            result = await schema.execute("{ broken }")
    finally:
        request_id_var.reset(token)
    error = result.errors[0]
    assert "hunter2" not in error.message
    assert error.message == "Internal server error (request id req-0123456789)"
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-0123456789"}
    # the full error is in the log, under the same request id
    assert any("hunter2" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


async def test_domain_error_keeps_its_message_and_gets_a_code() -> None:
    result = await schema.execute("{ refused }")
    error = result.errors[0]
    assert error.message == "your role (analyst) may not audit:read"
    assert error.extensions["code"] == "FORBIDDEN"


async def test_validation_errors_are_not_masked() -> None:
    result = await schema.execute("{ nope }")
    assert "Cannot query field 'nope'" in result.errors[0].message
