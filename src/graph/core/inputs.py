"""Reading optional input fields."""

from __future__ import annotations

from typing import Any

from strawberry import UNSET


def given(**fields: Any) -> dict[str, Any]:
    """The fields the client actually sent (UNSET ones left out; an explicit null kept)."""
    return {k: v for k, v in fields.items() if v is not UNSET}
