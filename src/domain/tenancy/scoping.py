"""The brand rule: which brands a principal may see and touch. This module is its only home.

A principal sees every brand of its tenant or a fixed set of them (``Principal.brand_ids``,
None for every brand; ``members.py`` and ``api_keys.py`` decide the set). Row-level security
keeps tenants apart; this module keeps brands apart within one. No other module compares a
brand id with a principal's grants: each asks one of these functions (``tests/architecture/test_brand_rule.py``
holds every module under src/domain and src/graph to that).

What a principal gets for a brand it may not use (docs/security.md, "Brands: who sees which"):

- **Lists** (root or nested) leave that brand's rows out: ``brand_filter``, ``in_brands``,
  ``by_ids`` (dataloaders, so ``node(id:)`` and single-object fields answer null), and
  ``customer_visible_clause`` for customers, whom brands know through brand links.
- **One row by id** (a root lookup, an id in a mutation's input) of that brand answers
  NOT_FOUND, exactly like a row that does not exist: ``load_brand_owned``, ``load_visible``.
- **A brand named explicitly** (a ``brandId`` argument of a root field or a mutation) answers
  NOT_FOUND on that argument: ``require_brand``, ``check_brand``, ``brand_filter``.
- **A field nested in a row the principal sees** (a customer's ``lastOrder``, ``orders``,
  ``consents``, ``timeline``, ``profile``) whose ``brandId`` names that brand answers as though
  the brand held nothing there: null, an empty list or connection, an empty profile
  (``brand_filter(..., nested=True)``). The parent is visible, the argument only narrows it, and
  an empty answer says nothing about whether the brand exists.
- **A row of no brand** (tenant-wide) is touched only by a principal who sees every brand
  (``may_use_brand(p, None)``), except rows that belong to everyone when they name no brand
  (brand-less notes and timeline events: ``shared=True``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.customers.models import Customer, CustomerBrand
from domain.errors import DomainError, ErrorCode, NotFound
from domain.tenancy.models import Brand

if TYPE_CHECKING:  # policies.py asks this module; this one only reads a Principal's fields
    from domain.tenancy.policies import Principal

M = TypeVar("M")


# --- deciding for one brand ---------------------------------------------------------------


def sees_every_brand(principal: Principal) -> bool:
    """True for a principal not limited to some brands (brands created later included)."""
    return principal.brand_ids is None


def may_use_brand(principal: Principal, brand_id: uuid.UUID | None) -> bool:
    """May ``principal`` see and touch what belongs to ``brand_id``? None (a row of no brand,
    tenant-wide) only when it sees every brand."""
    return principal.brand_ids is None or (brand_id is not None and brand_id in principal.brand_ids)


def usable_brands(principal: Principal, brand_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """The ids among ``brand_ids`` the principal may use (each once)."""
    return [b for b in dict.fromkeys(brand_ids) if may_use_brand(principal, b)]


def only_brand(principal: Principal) -> uuid.UUID | None:
    """The one brand of a principal limited to exactly one; None otherwise."""
    grants = principal.brand_ids
    return next(iter(grants)) if grants is not None and len(grants) == 1 else None


def require_brand(principal: Principal, brand_id: uuid.UUID, field: str = "brandId") -> None:
    """NOT_FOUND on ``field`` unless the principal may use ``brand_id`` (no query)."""
    if not may_use_brand(principal, brand_id):
        raise NotFound("brand not found", field=field)


def require_brand_if_limited(principal: Principal, brand_id: uuid.UUID | None,
                             field: str = "brandId") -> None:
    """A principal limited to some brands names the brand it writes through."""
    if brand_id is None and principal.brand_ids is not None:
        raise DomainError("brandId is required for a principal limited to some brands", field=field,
                          code=ErrorCode.REQUIRED)


async def check_brand(session: AsyncSession, principal: Principal, brand_id: uuid.UUID,
                      field: str = "brandId") -> Brand:
    """The brand, if it exists, is not archived, and the principal may use it."""
    require_brand(principal, brand_id, field)
    brand = await session.scalar(select(Brand).where(Brand.tenant_id == principal.tenant_id,
                                                     Brand.id == brand_id))
    if brand is None:
        raise NotFound("brand not found", field=field)
    if brand.archived_at is not None:
        raise DomainError("brand is archived", field=field, code=ErrorCode.INVALID_STATE)
    return brand


def scope_key(principal: Principal, active_brand: uuid.UUID | None) -> tuple:
    """Everything of a principal that decides what it may see, as one hashable value: its tenant,
    role (and whether it is only invited), brand grants and active brand. Two principals with the
    same key see the same thing (live events executed once for several subscribers share a
    payload only under the same key, ``graph/core/fanout.py``); the person or key behind it is
    not part of it."""
    return (principal.tenant_id, principal.role, principal.invited, principal.brand_ids, active_brand)


# --- queries ------------------------------------------------------------------------------


def grants_clause(grants: frozenset[uuid.UUID] | None, column: Any, *, shared: bool = False) -> Any:
    """SQL condition: ``column`` is one of ``grants`` (None when every brand is seen). With
    ``shared``, rows of no brand pass too. ``grants`` as a job carries them:
    ``grants_from_params``."""
    if grants is None:
        return None
    inside = column.in_(grants)
    return or_(column.is_(None), inside) if shared else inside


def brand_filter(principal: Principal, column: Any, brand_id: uuid.UUID | None = None, *,
                 shared: bool = False, nested: bool = False) -> list[Any]:
    """Conditions for a list query over rows whose brand is ``column``: the principal's brands,
    narrowed to ``brand_id`` when one is given. A ``brand_id`` the principal may not use is
    NOT_FOUND, or, for a field nested in a visible row (``nested``), matches nothing."""
    if brand_id is not None:
        if not may_use_brand(principal, brand_id):
            if nested:
                return [false()]
            raise NotFound("brand not found", field="brandId")
        return [column == brand_id]
    clause = grants_clause(principal.brand_ids, column, shared=shared)
    return [] if clause is None else [clause]


def in_brands(stmt: Select, principal: Principal, brand_column: Any) -> Select:
    """``stmt`` limited to the principal's brands (unchanged for a principal who sees all)."""
    conditions = brand_filter(principal, brand_column)
    return stmt.where(*conditions) if conditions else stmt


def customer_visible_clause(principal: Principal, customer: Any = Customer) -> Any:
    """SQL condition: the customer is visible to ``principal`` (None when every one is). A
    principal limited to some brands sees a customer linked to one of them (through an order, a
    subscription, a message or an import in that brand); a record private to a brand is linked
    to that brand."""
    if principal.brand_ids is None:
        return None
    return exists(select(CustomerBrand.customer_id).where(
        CustomerBrand.tenant_id == customer.tenant_id,
        CustomerBrand.customer_id == customer.id,
        CustomerBrand.brand_id.in_(principal.brand_ids),
    ))


async def load_brand_owned(s: AsyncSession, principal: Principal, model: type[M],
                           object_id: uuid.UUID, *, what: str, field: str = "id",
                           lock: bool = False) -> M:
    """One brand-owned row of the principal's tenant by id, if the principal may use its brand."""
    row: Any = model
    stmt = select(model).where(row.tenant_id == principal.tenant_id, row.id == object_id)
    if lock:
        stmt = stmt.with_for_update()
    found = await s.scalar(stmt)
    if found is None or not may_use_brand(principal, found.brand_id):  # type: ignore[attr-defined]
        raise NotFound(f"{what} not found", field=field)
    return found


async def by_ids(s: AsyncSession, principal: Principal, model: type[M],
                 ids: list[uuid.UUID]) -> dict[uuid.UUID, M]:
    """Brand-owned rows by id (dataloaders): those the principal may see, one query."""
    row: Any = model
    stmt = select(model).where(row.tenant_id == principal.tenant_id, row.id.in_(set(ids)))
    found = await s.scalars(in_brands(stmt, principal, row.brand_id))
    return {x.id: x for x in found}  # type: ignore[attr-defined]


# --- carrying the grants into a job -------------------------------------------------------


def grants_as_params(principal: Principal) -> list[str] | None:
    """The principal's brands as job parameters (None: every brand); read back with
    ``grants_from_params`` and decide with ``grants_clause``."""
    return sorted(str(b) for b in principal.brand_ids) if principal.brand_ids is not None else None


def grants_from_params(value: list[str] | None) -> frozenset[uuid.UUID] | None:
    return frozenset(uuid.UUID(b) for b in value) if value is not None else None


def granted_brands(principal: Principal) -> frozenset[uuid.UUID] | None:
    """The principal's brands as a set (None: every brand), for ``grants_clause`` elsewhere."""
    return principal.brand_ids
