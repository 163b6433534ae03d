"""GraphQL types of offers: best-fit customers with their reasons, recommendation weights."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.relay import PageInfo

from domain.offers import service, stored
from graph.customers.types import Customer


@strawberry.enum(description="Why a customer fits a product; docs/offers.md explains each.")
class RecommendationReasonKind(Enum):
    GENRE_MATCH = "genre_match"
    TYPE_MATCH = "type_match"
    CREATOR_MATCH = "creator_match"
    PRICE_FIT = "price_fit"
    LOCATION = "location"
    HIGH_ENGAGEMENT = "high_engagement"
    ON_WATCHLIST = "on_watchlist"


@strawberry.type
class RecommendationReason:
    reason: RecommendationReasonKind
    weight: int = strawberry.field(description="The points this reason adds to the score.")


@strawberry.type(description="A customer of the product's brand with its score (0-100) and reasons.")
class CustomerRecommendation:
    customer: Customer
    score: int
    reasons: list[RecommendationReason]

    @classmethod
    def from_domain(cls, r: service.Recommendation) -> CustomerRecommendation:
        return cls(customer=Customer.from_model(r.customer), score=r.score,
                   reasons=[RecommendationReason(reason=RecommendationReasonKind(x.reason), weight=x.weight)
                            for x in r.reasons])


@strawberry.type
class CustomerRecommendationEdge:
    cursor: str
    node: CustomerRecommendation


@strawberry.type
class CustomerRecommendationConnection:
    edges: list[CustomerRecommendationEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Customers at or above minScore the caller may see.")

    @classmethod
    def from_domain(cls, r: service.RecommendationPage) -> CustomerRecommendationConnection:
        page = r.page
        return cls(edges=[CustomerRecommendationEdge(cursor=c, node=CustomerRecommendation.from_domain(i))
                          for i, c in zip(page.items, page.cursors, strict=True)],
                   page_info=PageInfo(has_next_page=page.has_next, has_previous_page=False,
                                      start_cursor=page.cursors[0] if page.cursors else None,
                                      end_cursor=page.cursors[-1] if page.cursors else None),
                   total_count=r.total_count)


@strawberry.type(description="A brand's recommendation weights: the points each factor adds (defaults 25, 20, 20, "
                             "15, 10, 5, 5; the score is capped at 100).")
class RecommendationWeights:
    genre: int
    type: int
    creator: int
    price: int
    location: int
    engagement: int
    watchlist: int

    @classmethod
    def from_domain(cls, w: dict[str, int]) -> RecommendationWeights:
        return cls(**w)


@strawberry.type(description="Stored recommendations of one score band and how many converted.")
class RecommendationScoreBand:
    low: int
    high: int
    recommended: int
    converted: int
    conversion_rate: float = strawberry.field(description="Percent (0 to 100, two decimals) of the recommended "
                                                          "customers who converted; 0 when none were recommended.")


@strawberry.type(description="Whether the score predicts buying: stored recommendations of a product per score "
                             "band (0-19, 20-39, 40-59, 60-79, 80-100) and their conversions (docs/offers.md).")
class RecommendationStats:
    generated_at: datetime | None
    bands: list[RecommendationScoreBand]

    @classmethod
    def from_domain(cls, s: stored.Stats) -> RecommendationStats:
        return cls(generated_at=s.generated_at,
                   bands=[RecommendationScoreBand(low=b.low, high=b.high, recommended=b.recommended,
                                                  converted=b.converted, conversion_rate=b.rate) for b in s.bands])
