"""The typed, recursive definition input: groups holding rules (a one-of per rule kind) and
groups. It converts to the stored JSON form that the domain validates."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry import UNSET
from strawberry.relay import GlobalID
from strawberry.scalars import JSON

from domain.segments import dsl
from graph.core import ids
from graph.customers.enums import Channel


def _seed_enum(name: str, values, description: str):
    """A GraphQL enum named in UPPER_CASE (GREATER_THAN, TOTAL_ORDER_VALUE) whose Python values are
    the names stored in definitions (greater_than, total_order_value): stored definitions keep
    their form; only the API spelling is upper case."""
    return strawberry.enum(Enum(name, {v.upper(): v for v in values}, type=str), name=name, description=description)


SegmentOperator = _seed_enum("SegmentOperator", [o.value for o in dsl.Operator], "A rule's comparison.")
ProfileField = _seed_enum("ProfileField", list(dsl.PROFILE_FIELDS), "A per-brand profile metric.")
PreferenceField = _seed_enum("PreferenceField", list(dsl.PREFERENCE_FIELDS),
                             "A preference of the brand profile (docs/profiles.md, Preferences).")
PurchaseField = _seed_enum("PurchaseField", list(dsl.PURCHASE_FIELDS), "What a purchase rule matches on.")
SegmentMatch = strawberry.enum(dsl.Match, name="SegmentMatch")
SegmentRuleKind = strawberry.enum(dsl.RuleKind, name="SegmentRuleKind", description="What a rule looks at.")
SegmentValueType = strawberry.enum(dsl.ValueType, name="SegmentValueType",
                                   description="The type of the value a rule compares (MONEY: major units).")
CustomAttributeType = _seed_enum("CustomAttributeType", list(dsl.CUSTOM_TYPES),
                                 "The type of a declared custom attribute.")


@strawberry.input(description="Compare a per-brand profile metric. Money values are in major units (12.50).")
class ProfileRuleInput:
    field: ProfileField
    operator: SegmentOperator
    value: JSON | None = None


@strawberry.input(description="Compare a customer attribute: a built-in one, or attributes.<name> (declared).")
class AttributeRuleInput:
    field: str
    operator: SegmentOperator
    value: JSON | None = None


@strawberry.input(description="Bought (or never bought) a SKU, a category or a product brand in this brand's shop.")
class PurchaseRuleInput:
    field: PurchaseField
    operator: SegmentOperator
    value: JSON
    within_days: int | None = None
    min_count: int | None = strawberry.field(default=None, description="Orders with a match; 1 when omitted.")


@strawberry.input
class EventPropertyFilterInput:
    property: str
    operator: SegmentOperator
    value: JSON | None = None


@strawberry.input(description="Performed an event N times (GREATER_THAN_OR_EQUAL: at least; LESS_THAN_OR_EQUAL: at most).")
class EventRuleInput:
    name: str
    operator: SegmentOperator
    value: JSON
    within_days: int | None = None
    properties: list[EventPropertyFilterInput] | None = None


@strawberry.input(description="Has (INCLUDES) or has none of (NOT_IN) these tags.")
class TagRuleInput:
    operator: SegmentOperator
    tag_ids: list[GlobalID]


@strawberry.input(description="Whether the brand may reach the customer on a channel.")
class ConsentRuleInput:
    channel: Channel
    granted: bool = True


@strawberry.input(description="Is (INCLUDES) or is not (NOT_IN) a member of these segments of the same brand.")
class SegmentMembershipRuleInput:
    operator: SegmentOperator
    segment_ids: list[GlobalID]


@strawberry.input(description="A preference of the customer's brand profile: GENRES, TYPES, CREATORS, "
                              "PREFERRED_DAY (ISO 1-7), WATCHLIST (Product ids) with INCLUDES (any of the values) "
                              "or NOT_IN (none of them); PRICE_RANGE with INCLUDES (a list of prices in major "
                              "units, one inside the range) or BETWEEN ([low, high] overlaps the range), EXISTS, "
                              "NOT_EXISTS.")
class PreferenceRuleInput:
    field: PreferenceField
    operator: SegmentOperator
    value: JSON | None = None


@strawberry.input(description="The customer's recommendation score (0-100) for a product of the same brand "
                              "(docs/offers.md); operators greater_than_or_equal, greater_than, less_than_or_equal, "
                              "less_than, between.")
class RecommendationScoreRuleInput:
    product_id: GlobalID
    operator: SegmentOperator
    value: JSON


@strawberry.input(one_of=True, description="One rule: exactly one of its kinds.")
class SegmentRuleInput:
    profile: ProfileRuleInput | None = UNSET
    attribute: AttributeRuleInput | None = UNSET
    purchase: PurchaseRuleInput | None = UNSET
    event: EventRuleInput | None = UNSET
    tag: TagRuleInput | None = UNSET
    consent: ConsentRuleInput | None = UNSET
    segment: SegmentMembershipRuleInput | None = UNSET
    preference: PreferenceRuleInput | None = UNSET
    recommendation_score: RecommendationScoreRuleInput | None = UNSET


@strawberry.input(description="A group: ALL or ANY of its rules and nested groups.")
class SegmentDefinitionInput:
    match: SegmentMatch = dsl.Match.ALL
    rules: list[SegmentRuleInput] | None = None
    groups: list[SegmentDefinitionInput] | None = None


def _rule(r: SegmentRuleInput, path: str) -> dict[str, Any]:
    if r.profile:
        return {"kind": "profile", "field": r.profile.field.value, "operator": r.profile.operator.value,
                "value": r.profile.value}
    if r.attribute:
        return {"kind": "attribute", "field": r.attribute.field, "operator": r.attribute.operator.value,
                "value": r.attribute.value}
    if r.purchase:
        return {"kind": "purchase", "field": r.purchase.field.value, "operator": r.purchase.operator.value,
                "value": r.purchase.value, "within_days": r.purchase.within_days, "min_count": r.purchase.min_count}
    if r.event:
        return {"kind": "event", "name": r.event.name, "operator": r.event.operator.value, "value": r.event.value,
                "within_days": r.event.within_days,
                "properties": [{"property": p.property, "operator": p.operator.value, "value": p.value}
                               for p in (r.event.properties or [])]}
    if r.tag:
        return {"kind": "tag", "operator": r.tag.operator.value,
                "value": [str(i) for i in ids.decode_many(r.tag.tag_ids, "Tag", f"{path}.tag.tagIds")]}
    if r.consent:
        return {"kind": "consent", "field": r.consent.channel.value, "operator": "equals", "value": r.consent.granted}
    if r.segment:
        return {"kind": "segment", "operator": r.segment.operator.value,
                "value": [str(i) for i in ids.decode_many(r.segment.segment_ids, "Segment", f"{path}.segment.segmentIds")]}
    if r.preference:
        value = r.preference.value
        if r.preference.field.value == "watchlist" and value is not None:  # global Product ids
            raw = value if isinstance(value, list) else [value]
            if all(isinstance(v, str) for v in raw):
                value = [str(i) for i in ids.decode_many(raw, "Product", f"{path}.preference.value")]
        return {"kind": "preference", "field": r.preference.field.value, "operator": r.preference.operator.value,
                "value": value}
    if r.recommendation_score:
        product = ids.decode(r.recommendation_score.product_id, "Product", f"{path}.recommendationScore.productId")
        return {"kind": "recommendation_score", "field": str(product),
                "operator": r.recommendation_score.operator.value, "value": r.recommendation_score.value}
    return {}


def _group(g: SegmentDefinitionInput, path: str) -> dict[str, Any]:
    prefix = f"{path}." if path else ""
    return {
        "match": g.match.value,
        "rules": [_rule(r, f"{prefix}rules[{i}]") for i, r in enumerate(g.rules or [])],
        "groups": [_group(sub, f"{prefix}groups[{i}]") for i, sub in enumerate(g.groups or [])],
    }


def to_definition(g: SegmentDefinitionInput) -> dict[str, Any]:
    """The stored JSON form of a definition input (validated by the domain)."""
    return {"version": dsl.VERSION, **_group(g, "")}
