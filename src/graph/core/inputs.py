"""Reading optional input fields, and the brand a brand-scoped input acts on."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry import UNSET
from strawberry.relay import GlobalID

from domain.errors import BrandRequired
from graph.core import ids

def given(**fields: Any) -> dict[str, Any]:
    """The fields the client actually sent (UNSET ones left out; an explicit null kept)."""
    return {k: v for k, v in fields.items() if v is not UNSET}


def brand(info: Any, gid: GlobalID | str | None, field: str = "brandId") -> uuid.UUID:
    """The brand a brand-scoped mutation acts on: the input's ``brandId``, else the request's
    active brand (``X-Brand-Id``, or ``brandId`` in a websocket's connection_init, already checked
    against the principal). Neither: BRAND_REQUIRED on ``brandId``, the same error as a query
    field's (``graph/core/brands.required_brand``)."""
    if gid is not None and gid is not UNSET:
        return ids.decode(gid, "Brand", field)
    if info.context.brand_id is not None:
        return info.context.brand_id
    raise BrandRequired(field=field)


def brand_or_none(info: Any, gid: GlobalID | str | None, field: str = "brandId") -> uuid.UUID | None:
    """For inputs where no brand has a meaning of its own: the input's ``brandId``, else the
    active brand, else None."""
    if gid is not None and gid is not UNSET:
        return ids.decode(gid, "Brand", field)
    return info.context.brand_id
