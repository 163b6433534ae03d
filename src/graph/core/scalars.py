from __future__ import annotations

import strawberry

BigInt = strawberry.scalar(
    int,
    name="BigInt",
    description="A whole number beyond 32 bits (money in cents, counters), sent as a JSON number.",
    serialize=int,
    parse_value=int,
)
