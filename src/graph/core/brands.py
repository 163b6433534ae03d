"""The brand a brand-scoped field works in: its ``brandId`` argument, else the request's active
brand (the ``X-Brand-Id`` header, or ``brandId`` in a websocket's ``connection_init``)."""

from __future__ import annotations

import uuid

from strawberry.relay import GlobalID

from domain.errors import BrandRequired
from graph.core import ids
from graph.core.context import Info


def brand_or_active(info: Info, brand_id: GlobalID | None, field: str = "brandId") -> uuid.UUID | None:
    """``brandId`` when given, else the active brand; None when neither (every brand the
    caller sees, for fields that allow it)."""
    return ids.decode(brand_id, "Brand", field) if brand_id else info.context.brand_id


def required_brand(info: Info, brand_id: GlobalID | None, field: str = "brandId") -> uuid.UUID:
    """``brand_or_active`` for a field that works in one brand: neither refuses with
    ``BRAND_REQUIRED`` on ``field``, the same error everywhere."""
    brand = brand_or_active(info, brand_id, field)
    if brand is None:
        raise BrandRequired(field=field)
    return brand
