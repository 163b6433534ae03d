"""The brand rule in queries: a principal limited to some brands reads and touches only rows of
those brands. Row-level security keeps tenants apart; these keep brands apart within one.
A row of a brand the principal may not use reads as absent (NOT_FOUND), like a missing one."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.errors import NotFound
from domain.tenancy.policies import Principal

M = TypeVar("M")


def in_brands(stmt: Select, principal: Principal, brand_column: Any) -> Select:
    """``stmt`` limited to the principal's brands (unchanged for a principal who sees all)."""
    return stmt if principal.brand_ids is None else stmt.where(brand_column.in_(principal.brand_ids))


async def load_brand_owned(s: AsyncSession, principal: Principal, model: type[M], object_id: uuid.UUID, *,
                           what: str, field: str = "id", lock: bool = False) -> M:
    """One brand-owned row of the principal's tenant by id, if the principal may use its brand."""
    stmt = select(model).where(model.tenant_id == principal.tenant_id, model.id == object_id)  # type: ignore[attr-defined]
    if lock:
        stmt = stmt.with_for_update()
    found = await s.scalar(stmt)
    if found is None or not principal.may_use_brand(found.brand_id):  # type: ignore[attr-defined]
        raise NotFound(f"{what} not found", field=field)
    return found


async def by_ids(s: AsyncSession, principal: Principal, model: type[M], ids: list[uuid.UUID]) -> dict[uuid.UUID, M]:
    """Brand-owned rows by id (dataloaders): those the principal may see, one query."""
    stmt = select(model).where(model.tenant_id == principal.tenant_id, model.id.in_(set(ids)))  # type: ignore[attr-defined]
    return {x.id: x for x in await s.scalars(in_brands(stmt, principal, model.brand_id))}  # type: ignore[attr-defined]
