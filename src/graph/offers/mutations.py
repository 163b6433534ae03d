from __future__ import annotations

from typing import Any

import strawberry
from strawberry.relay import GlobalID

from domain.offers import service
from graph.core import ids
from graph.core.context import Info
from graph.core.errors import UserError, payload
from graph.offers.types import RecommendationWeights
from graph.segments.mutations import SegmentPayload
from graph.segments.types import Segment


@strawberry.input
class CreateSegmentFromRecommendationsInput:
    product_id: GlobalID
    min_score: int = strawberry.field(description="0 to 100: customers scoring this or more are members.")
    name: str
    brand_id: GlobalID | None = strawberry.field(default=None, description="When given (or X-Brand-Id), the "
                                                                           "product's brand.")


@strawberry.input
class SetRecommendationWeightsInput:
    brand_id: GlobalID | None = None
    genre: int | None = None
    type: int | None = None
    creator: int | None = None
    price: int | None = None
    location: int | None = None
    engagement: int | None = None
    watchlist: int | None = None


@strawberry.type
class RecommendationWeightsPayload:
    weights: RecommendationWeights | None = None
    errors: list[UserError]


@strawberry.type
class OfferMutation:
    @strawberry.mutation(description="A dynamic segment of the product's brand: customers whose recommendation score "
                                     "for the product is at least minScore (rule recommendation_score); it stays current.")
    async def create_segment_from_recommendations(self, info: Info, input: CreateSegmentFromRecommendationsInput
                                                  ) -> SegmentPayload:
        async def run():
            brand = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            return await service.create_segment_from_recommendations(
                info.context.principal, ids.decode(input.product_id, "Product", "productId"), input.min_score,
                input.name, brand_id=brand)

        return await payload(SegmentPayload, run, lambda s: {"segment": Segment.from_model(s)})

    @strawberry.mutation(description="Set some of a brand's recommendation weights (0 to 100 each).")
    async def set_recommendation_weights(self, info: Info, input: SetRecommendationWeightsInput
                                         ) -> RecommendationWeightsPayload:
        async def run():
            brand = ids.decode(input.brand_id, "Brand", "brandId") if input.brand_id else info.context.brand_id
            given = {f: getattr(input, f) for f in service.FACTORS}
            return await service.set_weights(info.context.principal, brand, given)

        def build(w: dict[str, Any]) -> dict[str, Any]:
            return {"weights": RecommendationWeights.from_domain(w)}

        return await payload(RecommendationWeightsPayload, run, build)
