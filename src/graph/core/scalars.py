"""Custom scalars: a Python type for annotations, and its definition for the schema's scalar_map."""

from __future__ import annotations

from typing import NewType

import strawberry

BigInt = NewType("BigInt", int)

SCALARS = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A whole number beyond 32 bits (money in cents, counters), sent as a JSON number.",
        serialize=int,
        parse_value=int,
    ),
}
