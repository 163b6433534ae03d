"""Best-fit customers for a product or event: the recommendation score (docs/offers.md).

The score is computed set-based in PostgreSQL by ``bg_recommendations`` (migrations/0018), the one
definition that ``recommendedCustomers`` and the segment rule ``recommendation_score`` both read:
no per-customer Python loop, and a list and a segment made from it cannot disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from domain.audit import service as audit
from domain.commerce.models import Product
from domain.customers.models import Customer
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.offers.models import DEFAULT_WEIGHTS, RecommendationWeights
from domain.pagination import Page, decode_cursor, encode_cursor
from domain.platform.db import tenant_session
from domain.segments import changes, compiler
from domain.segments import service as segments
from domain.segments.models import Segment, SegmentKind
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

FACTORS = tuple(DEFAULT_WEIGHTS)  # genre, type, creator, price, location, engagement, watchlist
REASONS = {"genre": "genre_match", "type": "type_match", "creator": "creator_match", "price": "price_fit",
           "location": "location", "engagement": "high_engagement", "watchlist": "on_watchlist"}


@dataclass(frozen=True)
class Reason:
    reason: str  # genre_match, type_match, creator_match, price_fit, location, high_engagement, on_watchlist
    weight: int


@dataclass(frozen=True)
class Recommendation:
    customer: Customer
    score: int
    reasons: list[Reason]


@dataclass(frozen=True)
class RecommendationPage:
    page: Page[Recommendation]
    total_count: int
    product: Product


async def _product(s: Any, principal: Principal, product_id: uuid.UUID, brand_id: uuid.UUID | None) -> Product:
    """The product, if the principal may use its brand (and it is of ``brand_id`` when given)."""
    product = await scoping.load_brand_owned(s, principal, Product, product_id, what="product", field="productId")
    if product.brand_id is None or (brand_id is not None and product.brand_id != brand_id):
        raise NotFound("product not found", field="productId")
    return product


def _cursor(r: Recommendation) -> str:
    return encode_cursor(r.score, r.customer.id)


async def recommended_customers(principal: Principal, product_id: uuid.UUID, *, brand_id: uuid.UUID | None = None,
                                min_score: int = 0, first: int = 20, after: str | None = None
                                ) -> RecommendationPage:
    """The customers of the product's brand the principal may see, by score (highest first, then
    id), with score >= ``min_score``: one statement scores them all and reads the page and the
    total. Consent is not filtered (the campaign decides)."""
    authorize(principal, Action.CUSTOMER_READ)
    v = Validator()
    if not 0 <= min_score <= 100:
        v.add("minScore", "minScore is from 0 to 100")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        product = await _product(s, principal, product_id, brand_id)
        r = compiler.recommendations(principal.tenant_id, product.id)
        conditions = [Customer.tenant_id == principal.tenant_id, r.c.score >= min_score]
        visible = scoping.customer_visible_clause(principal, Customer)
        if visible is not None:
            conditions.append(visible)
        if after:
            score, last = decode_cursor(after, int, uuid.UUID)
            conditions.append(or_(r.c.score < score, and_(r.c.score == score, Customer.id > last)))
        total = func.count().over().label("total")
        stmt = (select(Customer, *(r.c[f] for f in ("score", *FACTORS)), total)
                .select_from(r).join(Customer, Customer.id == r.c.customer_id).where(*conditions)
                .order_by(r.c.score.desc(), Customer.id).limit(first + 1))
        rows = (await s.execute(stmt)).all()
    # the window counts the rows after the cursor; the total of the whole list is counted
    # without it, so a later page reads the same total as the first
    total_count = rows[0].total if rows and not after else None
    items = [Recommendation(customer=row[0], score=row.score,
                            reasons=[Reason(REASONS[f], getattr(row, f)) for f in FACTORS if getattr(row, f)])
             for row in rows]
    if total_count is None:
        total_count = await _total(principal, product, min_score) if after else 0
    return RecommendationPage(page=Page.of(items, first, _cursor), total_count=total_count, product=product)


async def _total(principal: Principal, product: Product, min_score: int) -> int:
    async with tenant_session(principal.tenant_id) as s:
        r = compiler.recommendations(principal.tenant_id, product.id)
        conditions = [Customer.tenant_id == principal.tenant_id, r.c.score >= min_score]
        visible = scoping.customer_visible_clause(principal, Customer)
        if visible is not None:
            conditions.append(visible)
        return await s.scalar(select(func.count()).select_from(r).join(Customer, Customer.id == r.c.customer_id)
                              .where(*conditions)) or 0


async def create_segment_from_recommendations(principal: Principal, product_id: uuid.UUID, min_score: int,
                                              name: str, *, brand_id: uuid.UUID | None = None) -> Segment:
    """A dynamic segment of the product's brand: customers whose score for the product is at
    least ``min_score``. It stays current like every rule-based segment."""
    authorize(principal, Action.SEGMENT_WRITE)
    v = Validator()
    if not 0 <= min_score <= 100:
        v.add("minScore", "minScore is from 0 to 100")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        product = await _product(s, principal, product_id, brand_id)
    definition = {"version": 1, "match": "all", "rules": [
        {"kind": "recommendation_score", "field": str(product.id), "operator": "greater_than_or_equal",
         "value": min_score}]}
    return await segments.create_segment(
        principal, product.brand_id, SegmentKind.DYNAMIC,
        {"name": name, "description": f"Recommendation score {min_score} or more for {product.name}"},
        definition=definition)


def _required_brand(brand_id: uuid.UUID | None) -> uuid.UUID:
    if brand_id is None:
        raise DomainError("brandId is required (or X-Brand-Id)", field="brandId", code=ErrorCode.REQUIRED)
    return brand_id


async def weights(principal: Principal, brand_id: uuid.UUID | None) -> dict[str, int]:
    """The brand's weights: its own, or the defaults."""
    authorize(principal, Action.CUSTOMER_READ)
    brand_id = _required_brand(brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)  # another tenant's brand is not found
        row = await s.scalar(select(RecommendationWeights).where(
            RecommendationWeights.tenant_id == principal.tenant_id, RecommendationWeights.brand_id == brand_id))
    return {f: getattr(row, f) for f in FACTORS} if row is not None else dict(DEFAULT_WEIGHTS)


async def set_weights(principal: Principal, brand_id: uuid.UUID | None, given: dict[str, int | None]
                      ) -> dict[str, int]:
    """Set some of the brand's weights (each 0 to 100; the others keep their value)."""
    brand_id = _required_brand(brand_id)
    authorize(principal, Action.SEGMENT_WRITE, brand_id=brand_id)
    v = Validator()
    for f, value in given.items():
        if value is not None and not 0 <= value <= 100:
            v.add(f, f"{f} takes 0 to 100", ErrorCode.INVALID)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        current = await s.scalar(select(RecommendationWeights).where(
            RecommendationWeights.tenant_id == principal.tenant_id, RecommendationWeights.brand_id == brand_id))
        values = {f: getattr(current, f) for f in FACTORS} if current is not None else dict(DEFAULT_WEIGHTS)
        values |= {f: value for f, value in given.items() if value is not None}
        await s.execute(insert(RecommendationWeights).values(tenant_id=principal.tenant_id, brand_id=brand_id,
                                                             **values)
                        .on_conflict_do_update(index_elements=["tenant_id", "brand_id"],
                                               set_={**values, "updated_at": func.now()}))
        audit.record(s, principal, "recommendation_weights.set", "Brand", brand_id, brand_id=brand_id,
                     summary=values)
        await changes.segments_changed(s, principal.tenant_id, brand_id)  # recommendation rules may answer otherwise
    return values
