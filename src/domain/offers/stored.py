"""Stored recommendations and their conversions (docs/offers.md "Stored recommendations").

A job (``generate_recommendations``) stores, for one product, every customer of its brand with a
score above 0 from ``bg_recommendations`` (the same scores ``recommendedCustomers`` reads), with
the reasons and the generation time; it runs when an event (a product of kind EVENT) is created
or changed, and nightly for the upcoming events of every tenant. A customer who orders the
product within the brand's attribution window after the recommendation was (last) generated
converts it; converted rows keep their score and reasons. ``recommendation_stats`` gives the
conversion rate per score band.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.commerce.models import Product, ProductKind
from domain.errors import NotFound
from domain.jobs import service as jobs
from domain.jobs.models import Job
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.policies import Action, Principal, authorize

BANDS = ((0, 19), (20, 39), (40, 59), (60, 79), (80, 100))

_GENERATE = text("""
WITH r AS (SELECT * FROM bg_recommendations(:t, :p) WHERE score > 0),
gone AS (
  DELETE FROM stored_recommendations s
   WHERE s.tenant_id = :t AND s.product_id = :p AND s.converted_at IS NULL
     AND NOT EXISTS (SELECT 1 FROM r WHERE r.customer_id = s.customer_id))
INSERT INTO stored_recommendations (tenant_id, product_id, customer_id, brand_id, score, reasons, generated_at)
SELECT :t, :p, r.customer_id, :b, r.score,
       jsonb_strip_nulls(jsonb_build_object(
         'genre_match', nullif(r.genre, 0), 'type_match', nullif(r.type, 0), 'creator_match', nullif(r.creator, 0),
         'price_fit', nullif(r.price, 0), 'location', nullif(r.location, 0),
         'high_engagement', nullif(r.engagement, 0), 'on_watchlist', nullif(r.watchlist, 0))),
       :now
  FROM r
ON CONFLICT (tenant_id, product_id, customer_id) DO UPDATE
   SET score = EXCLUDED.score, reasons = EXCLUDED.reasons, generated_at = EXCLUDED.generated_at
 WHERE stored_recommendations.converted_at IS NULL
""")

_CONVERT = text("""
UPDATE stored_recommendations s
   SET converted_at = o.placed_at, converted_order_id = o.id
  FROM orders o
  JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
  LEFT JOIN brand_messaging_settings m ON m.tenant_id = o.tenant_id AND m.brand_id = o.brand_id
 WHERE o.tenant_id = :t AND o.id = ANY(CAST(:orders AS uuid[])) AND o.status NOT IN ('cancelled', 'refunded')
   AND s.tenant_id = o.tenant_id AND s.customer_id = o.customer_id AND s.product_id = i.product_id
   AND s.brand_id = o.brand_id AND s.converted_at IS NULL
   AND o.placed_at >= s.generated_at
   AND o.placed_at <= s.generated_at + make_interval(days => coalesce(m.attribution_days, 5))
""")


async def generate(tenant_id: uuid.UUID, product_id: uuid.UUID, now: datetime | None = None) -> int:
    """Store the product's recommendations now (set-based); returns how many rows were written."""
    async with tenant_session(tenant_id) as s:
        brand_id = await s.scalar(select(Product.brand_id).where(Product.tenant_id == tenant_id,
                                                                Product.id == product_id))
        if brand_id is None:  # gone, or shared by every brand (no brand's customers to score)
            return 0
        result = await s.execute(_GENERATE, {"t": tenant_id, "p": product_id, "b": brand_id,
                                             "now": now or datetime.now(UTC)})
        return result.rowcount or 0


@jobs.job_actor("generate_recommendations", time_limit=3_600_000)
async def generate_job(job: Job, progress: jobs.Progress) -> dict:
    written = await generate(job.tenant_id, uuid.UUID(job.params["product_id"]))
    await progress.set_total(written)
    await progress.advance(written)
    return {"stored": written}


async def request_generation(s: AsyncSession, principal: Principal | None, product: Product,
                             tenant_id: uuid.UUID | None = None) -> Job | None:
    """A generation job for an event of a brand, in the caller's transaction."""
    if product.brand_id is None or product.kind != ProductKind.EVENT.value:
        return None
    return await jobs.create(s, principal, "generate_recommendations", generate_job, brand_id=product.brand_id,
                             tenant_id=tenant_id, params={"product_id": str(product.id)})


async def nightly(tenant_id: uuid.UUID) -> int:
    """The scheduler's pass: a job per upcoming (or undated) event of a brand."""
    async with tenant_session(tenant_id) as s:
        events = list((await s.scalars(select(Product).where(
            Product.tenant_id == tenant_id, Product.kind == ProductKind.EVENT.value, Product.brand_id.is_not(None),
            (Product.starts_at.is_(None)) | (Product.starts_at > func.now())))).all())
        for product in events:
            await request_generation(s, None, product, tenant_id=tenant_id)
    return len(events)


async def mark_converted(s: AsyncSession, tenant_id: uuid.UUID, order_ids: list[uuid.UUID]) -> int:
    """Recommendations the given orders convert (same transaction as the orders)."""
    if not order_ids:
        return 0
    result = await s.execute(_CONVERT, {"t": tenant_id, "orders": [str(o) for o in order_ids]})
    return result.rowcount or 0


@dataclass
class Band:
    low: int
    high: int
    recommended: int
    converted: int

    @property
    def rate(self) -> float:
        """Percent of the recommended who converted, two decimals."""
        return round(100 * self.converted / self.recommended, 2) if self.recommended else 0.0


@dataclass
class Stats:
    product_id: uuid.UUID
    generated_at: datetime | None
    bands: list[Band]


async def recommendation_stats(principal: Principal, product_id: uuid.UUID) -> Stats:
    """Recommended and converted customers per score band of a product the principal may see."""
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        product = await s.scalar(select(Product).where(Product.tenant_id == principal.tenant_id,
                                                       Product.id == product_id))
        if product is None or product.brand_id is None or not scoping.may_use_brand(principal, product.brand_id):
            raise NotFound("product not found", field="productId")
        rows = (await s.execute(text(
            "SELECT least(score / 20, 4) AS band, count(*) AS recommended, count(converted_at) AS converted, "
            "max(generated_at) AS at FROM stored_recommendations WHERE tenant_id = :t AND product_id = :p "
            "GROUP BY 1"), {"t": principal.tenant_id, "p": product_id})).all()
    found: dict[int, Any] = {r.band: r for r in rows}
    bands = [Band(low, high, found[i].recommended if i in found else 0, found[i].converted if i in found else 0)
             for i, (low, high) in enumerate(BANDS)]
    generated = max((r.at for r in rows), default=None)
    return Stats(product_id, generated, bands)
