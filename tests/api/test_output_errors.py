"""A value the schema cannot send back (an Int beyond 32 bits, a list that is not a list, an enum
value without a name) is our defect, not the client's: masked with a request id and logged with
its traceback, never answered as BAD_USER_INPUT with the value in the message. A value the client
sent that one of our scalars refuses stays BAD_USER_INPUT."""

from __future__ import annotations

import enum
import logging

import pytest
import strawberry
from strawberry import relay

from domain.config import load_settings
from domain.platform.observability import request_id_var
from graph.core.scalars import SCALARS, BigInt
from graph.extensions import extensions


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"


@strawberry.type
class Query:
    @strawberry.field
    def huge(self) -> int | None:
        return 2**40

    @strawberry.field
    def items(self) -> list[int] | None:
        return 42  # type: ignore[return-value]

    @strawberry.field
    def colour(self) -> Colour | None:
        return "purple"  # type: ignore[return-value]

    @strawberry.field
    def echo(self, n: BigInt) -> str:
        return str(n)

    @strawberry.field
    def small(self, n: int) -> int:
        return n

    @strawberry.field
    def thing(self, id: relay.GlobalID) -> str:
        return id.type_name


schema = strawberry.Schema(query=Query, scalar_overrides=SCALARS, extensions=extensions(load_settings({})))


@pytest.mark.parametrize(("field", "leaked"), [("huge", "1099511627776"), ("items", "Iterable"),
                                               ("colour", "purple")])
async def test_unserialisable_output_is_masked_with_request_id(caplog, field: str, leaked: str) -> None:
    token = request_id_var.set("req-output-1")
    try:
        with caplog.at_level(logging.ERROR, logger="graph.errors"):
            result = await schema.execute(f"{{ {field} }}")
    finally:
        request_id_var.reset(token)
    (error,) = result.errors
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-output-1"}, error
    assert leaked not in error.message and error.message == "Internal server error (request id req-output-1)"
    assert any(r.exc_info and r.exc_info[0] is not None for r in caplog.records), "no traceback was logged"


async def test_refused_inputs_stay_bad_user_input(caplog) -> None:
    """Control: variables and literals our scalars or graphql-core refuse are the client's doing."""
    with caplog.at_level(logging.ERROR, logger="graph.errors"):
        for query, variables, needle in [
            ("query($n: BigInt!) { echo(n: $n) }", {"n": 2**64}, "9223372036854775807"),
            ("query($n: BigInt!) { echo(n: $n) }", {"n": "12"}, "whole number"),
            ("query($n: Int!) { small(n: $n) }", {"n": 2**40}, "32-bit"),
            ("query($i: ID!) { thing(id: $i) }", {"i": "not base64"}, "GlobalID"),
        ]:
            result = await schema.execute(query, variable_values=variables)
            assert not result.data, result
            (error,) = result.errors
            assert error.extensions["code"] == "BAD_USER_INPUT", error
            assert needle in error.message, error.message
        # a literal the validation refuses carries no code and is not masked
        result = await schema.execute("{ echo(n: 99999999999999999999) }")
        assert "Internal server error" not in result.errors[0].message, result.errors
    assert [r for r in caplog.records if r.name == "graph.errors"] == []
