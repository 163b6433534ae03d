from __future__ import annotations

import strawberry
from strawberry import relay

from domain.offers import service, stored
from domain.pagination import clamp_first
from graph.core import ids
from graph.core.brands import brand_or_active
from graph.core.context import Info
from graph.offers.types import (
    CustomerRecommendationConnection,
    RecommendationStats,
    RecommendationWeights,
)


@strawberry.type
class OfferQuery:
    @strawberry.field(description="The customers of a product's brand that fit it best: score (0-100) with reasons, "
                                  "highest first; consent is shown on the customer, not filtered (docs/offers.md). "
                                  "brandId (or X-Brand-Id), when given, must be the product's brand.")
    async def recommended_customers(self, info: Info, product_id: relay.GlobalID, brand_id: relay.GlobalID | None = None,
                                    min_score: int = 0, first: int = 20,
                                    after: str | None = None) -> CustomerRecommendationConnection:
        result = await service.recommended_customers(
            info.context.principal, ids.decode(product_id, "Product", "productId"), brand_id=brand_or_active(info, brand_id),
            min_score=min_score, first=clamp_first(first), after=after)
        return CustomerRecommendationConnection.from_domain(result)

    @strawberry.field(description="A brand's recommendation weights (its own or the defaults).")
    async def recommendation_weights(self, info: Info, brand_id: relay.GlobalID | None = None) -> RecommendationWeights:
        return RecommendationWeights.from_domain(await service.weights(info.context.principal, brand_or_active(info, brand_id)))

    @strawberry.field(description="Stored recommendations of a product per score band, with how many converted "
                                  "(ordered the product within the brand's attribution window).")
    async def recommendation_stats(self, info: Info, product_id: relay.GlobalID) -> RecommendationStats:
        return RecommendationStats.from_domain(await stored.recommendation_stats(
            info.context.principal, ids.decode(product_id, "Product", "productId")))
