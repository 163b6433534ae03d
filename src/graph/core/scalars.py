"""Custom scalars: a Python type for annotations, and its definition for the schema's scalar_map."""

from __future__ import annotations

from typing import Any, NewType

import strawberry

from graph.extensions import BadUserInput

BigInt = NewType("BigInt", int)

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # what a PostgreSQL bigint column holds


def parse_bigint(value: Any) -> int:
    """A whole number within 64 bits; anything else is refused with the limits in the message."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadUserInput(f"BigInt must be a whole number, got {value!r:.40}")
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise BadUserInput(f"BigInt must be between {BIGINT_MIN} and {BIGINT_MAX}, got {value}")
    return value


SCALARS = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A whole number within 64 bits (-9223372036854775808 to 9223372036854775807): money in "
        "cents, counters. Sent as a JSON number.",
        serialize=int,
        parse_value=parse_bigint,
    ),
}
