"""Typed errors in mutation payloads, and the mapping from domain errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from domain.errors import DomainError
from domain.errors import ErrorCode as DomainErrorCode

ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode", description="Why an input was refused.")


@strawberry.type(description="An input the server refused: which field, why, and a readable message.")
class UserError:
    field: str | None = strawberry.field(
        description="Path of the input field at fault, for example `input.voice.wordsToAvoid[2]`; "
        "null when the error concerns the whole request."
    )
    code: ErrorCode
    message: str


_CAMEL = re.compile(r"_([a-z])")


def _camel(path: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), path)


def user_errors(exc: DomainError, prefix: str | None = "input") -> list[UserError]:
    out = []
    for err in exc.errors:
        path = _camel(err.field) if err.field else None
        if path and prefix:
            path = f"{prefix}.{path}"
        out.append(UserError(field=path, code=ErrorCode(err.code.value), message=err.message))
    return out


P = TypeVar("P")
R = TypeVar("R")


async def payload(
    make: type[P],
    action: Callable[[], Awaitable[R]],
    build: Callable[[R], dict[str, Any]],
    *,
    prefix: str | None = "input",
) -> P:
    """Run a domain action; its DomainError becomes the payload's ``errors``."""
    try:
        result = await action()
    except DomainError as exc:
        return make(errors=user_errors(exc, prefix))  # type: ignore[call-arg]
    return make(errors=[], **build(result))  # type: ignore[call-arg]
