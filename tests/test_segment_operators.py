"""Every operator on every field kind compiles, runs, and agrees with its complement
(x op v) + (x complement v) = everyone, on a small shop with known data."""

from __future__ import annotations

import pytest

from conftest import TenantFixture, create_tenant_fixture
from domain.segments import dsl, service
from test_segments import _shop

O = dsl.Operator
COMPLEMENTS = {O.EQUALS: O.NOT_EQUALS, O.IN: O.NOT_IN, O.EXISTS: O.NOT_EXISTS, O.GREATER_THAN: O.LESS_THAN_OR_EQUAL,
               O.LESS_THAN: O.GREATER_THAN_OR_EQUAL, O.INCLUDES: O.NOT_IN}
SAMPLE = {  # a value for each (type, operator) shape
    dsl.ValueType.NUMBER: 150, dsl.ValueType.MONEY: 150, dsl.ValueType.INTEGER: 1,
    dsl.ValueType.STRING: "FR", dsl.ValueType.DATE: "2026-01-01", dsl.ValueType.BOOLEAN: True,
}


def value_for(t: dsl.ValueType, op: dsl.Operator):
    if op in (O.EXISTS, O.NOT_EXISTS):
        return None
    if op in (O.WITHIN_DAYS, O.OLDER_THAN_DAYS):
        return 30
    if op is O.CONTAINS:
        return "x"
    one = SAMPLE[t]
    if op is O.BETWEEN:
        return ["2025-01-01", "2027-01-01"] if t is dsl.ValueType.DATE else [0, one]
    if op in (O.IN, O.NOT_IN):
        return [one] if t is not dsl.ValueType.STRING else ["FR", "de"]
    return one


@pytest.fixture(scope="module")
async def shop() -> tuple[TenantFixture, dict]:
    t = await create_tenant_fixture()
    data = await _shop(t)
    await service.declare_custom_attribute(t.owner, "plan", "string", "Plan")
    await service.declare_custom_attribute(t.owner, "seats", "number", None)
    return t, data


def _rules(t: TenantFixture, data: dict) -> list[tuple[str, dict]]:
    out = []
    for spec in [*dsl.PROFILE_FIELDS.values(), *dsl.ATTRIBUTE_FIELDS.values(),
                 dsl._spec("attributes.plan", "plan", dsl.ValueType.STRING),
                 dsl._spec("attributes.seats", "seats", dsl.ValueType.NUMBER)]:
        kind = "profile" if spec.name in dsl.PROFILE_FIELDS else "attribute"
        for op in spec.operators:
            out.append((f"{spec.name}:{op.value}", {"kind": kind, "field": spec.name, "operator": op.value,
                                                    "value": value_for(spec.type, op)}))
    for spec in dsl.PURCHASE_FIELDS.values():
        for op in spec.operators:
            value = [str(t.brands["a"])] if spec.name == "brand" else (["TENT"] if op in (O.IN, O.NOT_IN) else "TENT")
            if spec.name == "brand" and op in (O.EQUALS, O.NOT_EQUALS):
                value = str(t.brands["a"])
            out.append((f"purchase.{spec.name}:{op.value}", {"kind": "purchase", "field": spec.name,
                                                             "operator": op.value, "value": value, "within_days": 365}))
    for op in dsl.EVENT_COUNT_OPS:
        out.append((f"event:{op.value}", {"kind": "event", "name": "product_viewed", "operator": op.value,
                                          "value": [1, 3] if op is O.BETWEEN else 2, "within_days": 7,
                                          "properties": [{"property": "price", "operator": "greater_than", "value": 100}]}))
    for op in dsl.EVENT_PROPERTY_OPS:
        value = None if op in (O.EXISTS, O.NOT_EXISTS) else (["TENT"] if op in (O.IN, O.NOT_IN) else
                                                             100 if op in (O.GREATER_THAN, O.LESS_THAN) else "TEN")
        out.append((f"event.property:{op.value}", {"kind": "event", "name": "product_viewed",
                                                   "operator": "greater_than_or_equal", "value": 1, "properties": [
                                                       {"property": "sku" if op not in (O.GREATER_THAN, O.LESS_THAN)
                                                        else "price", "operator": op.value, "value": value}]}))
    for op in dsl.TAG_OPS:
        out.append((f"tag:{op.value}", {"kind": "tag", "operator": op.value, "value": [str(data["vip"].id)]}))
    for channel in dsl.CONSENT_CHANNELS:
        out.append((f"consent.{channel}", {"kind": "consent", "field": channel, "operator": "equals", "value": True}))
    return out


RULE_NAMES = [name for name, _ in _rules(TenantFixture(id=None, slug="", owner_id=None, owner_token="",
                                                        brands={"a": "00000000-0000-0000-0000-000000000000"}),
                                         {"vip": type("T", (), {"id": "00000000-0000-0000-0000-000000000000"})})]


@pytest.mark.parametrize("name", RULE_NAMES)
async def test_operator_runs_and_agrees_with_its_complement(shop, name: str) -> None:
    t, data = shop
    rule = dict(_rules(t, data))[name]
    everyone = (await service.preview(t.owner, t.brands["a"], {}, first=1)).count
    count = (await service.preview(t.owner, t.brands["a"], {"rules": [rule]}, first=1)).count
    assert 0 <= count <= everyone
    op = dsl.Operator(rule["operator"])
    complement = COMPLEMENTS.get(op)
    if rule["kind"] in ("profile", "attribute", "tag") and complement is not None:
        spec = (dsl.PROFILE_FIELDS | dsl.ATTRIBUTE_FIELDS).get(rule.get("field"))
        if spec is None or complement in spec.operators or rule["kind"] == "tag":
            other = {**rule, "operator": complement.value}
            if complement in (O.EXISTS, O.NOT_EXISTS):
                other["value"] = None
            opposite = (await service.preview(t.owner, t.brands["a"], {"rules": [other]}, first=1)).count
            missing = 0
            if op in (O.GREATER_THAN, O.LESS_THAN) and rule["kind"] == "attribute":  # comparisons skip NULLs
                missing = (await service.preview(t.owner, t.brands["a"], {"rules": [
                    {**rule, "operator": "not_exists", "value": None}]}, first=1)).count
            assert count + opposite + missing == everyone, (name, count, opposite, missing, everyone)
    if rule["kind"] == "consent":
        assert count == 1 if rule["field"] == "email" else count == 0


@pytest.mark.parametrize(("definition", "expected"), [
    ({"match": "all"}, 5),  # an empty ALL group: everyone of the brand
    ({"match": "any"}, 0),  # an empty ANY group: no one
    ({"match": "any", "rules": [], "groups": [{"match": "all"}]}, 5),
    ({"match": "all", "groups": [{"match": "any"}]}, 0),
    # ANY inside ALL, and ALL inside ANY
    ({"match": "all", "rules": [{"kind": "profile", "field": "total_order_count", "operator": "greater_than_or_equal",
                                 "value": 1}],
      "groups": [{"match": "any", "rules": [
          {"kind": "attribute", "field": "country", "operator": "equals", "value": "fr"},
          {"kind": "profile", "field": "total_order_value", "operator": "greater_than", "value": 400}]}]}, 2),
    ({"match": "any", "rules": [{"kind": "attribute", "field": "email", "operator": "contains", "value": "none"}],
      "groups": [{"match": "all", "rules": [
          {"kind": "attribute", "field": "country", "operator": "equals", "value": "DE"},
          {"kind": "profile", "field": "total_order_value", "operator": "greater_than", "value": 100}]}]}, 3),
])
async def test_group_semantics(shop, definition: dict, expected: int) -> None:
    t, _ = shop
    assert (await service.preview(t.owner, t.brands["a"], definition, first=1)).count == expected
