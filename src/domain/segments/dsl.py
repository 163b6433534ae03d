"""The segment rule language: a versioned tree of groups (match ALL or ANY) holding rules and
nested groups, stored as JSON, validated with paths (``groups[1].rules[0].value``).

    {"version": 1, "match": "all",
     "rules": [{"kind": "profile", "field": "engagement_score", "operator": "greater_than", "value": 60}],
     "groups": [{"match": "any", "rules": [...], "groups": []}]}

Rule kinds: profile, attribute, purchase, event, tag, consent, segment, preference,
recommendation_score (``{"kind": "recommendation_score", "field": "<product id>", "operator":
"greater_than_or_equal", "value": 70}``: the customer's score for that product, docs/offers.md).
Preference rules read the brand profile's preferences (docs/profiles.md "Preferences"):
``{"kind": "preference", "field": "genres", "operator": "includes", "value": ["rock"]}``. Each field declares the
operators and the value type it accepts (:data:`PROFILE_FIELDS`, :data:`ATTRIBUTE_FIELDS`, ...);
the catalogue served to SPAs (``segmentFields``) is built from the same declarations.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from domain.errors import DomainError, ErrorCode, ValidationFailed

VERSION = 1
MAX_DEPTH = 5
MAX_RULES = 50
MAX_LIST = 500
ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PROPERTY_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
EVENT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$")


class Match(str, Enum):
    ALL = "all"
    ANY = "any"


class Operator(str, Enum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"
    GREATER_THAN_OR_EQUAL = "greater_than_or_equal"
    LESS_THAN_OR_EQUAL = "less_than_or_equal"
    BETWEEN = "between"
    CONTAINS = "contains"
    IN = "in"
    NOT_IN = "not_in"
    INCLUDES = "includes"
    WITHIN_DAYS = "within_days"
    OLDER_THAN_DAYS = "older_than_days"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"


class ValueType(str, Enum):
    NUMBER = "number"
    INTEGER = "integer"
    MONEY = "money"  # major currency units (12.50), compared with amounts kept in cents
    STRING = "string"
    DATE = "date"
    BOOLEAN = "boolean"
    ID = "id"


class RuleKind(str, Enum):
    PROFILE = "profile"
    ATTRIBUTE = "attribute"
    PURCHASE = "purchase"
    EVENT = "event"
    TAG = "tag"
    CONSENT = "consent"
    SEGMENT = "segment"
    PREFERENCE = "preference"
    RECOMMENDATION_SCORE = "recommendation_score"


O = Operator
COMPARE = (O.EQUALS, O.NOT_EQUALS, O.GREATER_THAN, O.LESS_THAN, O.GREATER_THAN_OR_EQUAL, O.LESS_THAN_OR_EQUAL, O.BETWEEN)
NUMERIC_OPS = COMPARE + (O.IN, O.NOT_IN, O.EXISTS, O.NOT_EXISTS)
DATE_OPS = (O.WITHIN_DAYS, O.OLDER_THAN_DAYS, O.GREATER_THAN, O.LESS_THAN, O.BETWEEN, O.EXISTS, O.NOT_EXISTS)
STRING_OPS = (O.EQUALS, O.NOT_EQUALS, O.CONTAINS, O.IN, O.NOT_IN, O.EXISTS, O.NOT_EXISTS)
BOOLEAN_OPS = (O.EQUALS, O.NOT_EQUALS, O.EXISTS, O.NOT_EXISTS)
OPS_BY_TYPE = {
    ValueType.NUMBER: NUMERIC_OPS, ValueType.INTEGER: NUMERIC_OPS, ValueType.MONEY: NUMERIC_OPS,
    ValueType.DATE: DATE_OPS, ValueType.STRING: STRING_OPS, ValueType.BOOLEAN: BOOLEAN_OPS,
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    type: ValueType
    operators: tuple[Operator, ...]
    enum_values: tuple[str, ...] = ()


def _spec(name: str, label: str, t: ValueType, ops: tuple[Operator, ...] | None = None, enum: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(name, label, t, ops or OPS_BY_TYPE[t], enum)


PROFILE_FIELDS = {f.name: f for f in (
    _spec("total_order_value", "Total order value", ValueType.MONEY, COMPARE),
    _spec("total_order_count", "Number of orders", ValueType.INTEGER, COMPARE),
    _spec("average_order_value", "Average order value", ValueType.MONEY, COMPARE),
    _spec("first_order_date", "First order date", ValueType.DATE),
    _spec("last_order_date", "Last order date", ValueType.DATE),
    _spec("purchase_frequency", "Orders per month", ValueType.NUMBER, COMPARE),
    _spec("engagement_score", "Engagement score (0-100)", ValueType.INTEGER, COMPARE),
    _spec("churn_risk", "Churn risk (0-100)", ValueType.INTEGER, COMPARE),
)}
ATTRIBUTE_FIELDS = {f.name: f for f in (
    _spec("buyer_type", "Buyer type", ValueType.STRING),
    _spec("city", "City", ValueType.STRING),
    _spec("state", "State or region", ValueType.STRING),
    _spec("country", "Country (ISO code)", ValueType.STRING),
    _spec("age", "Age in years", ValueType.INTEGER),
    _spec("timezone", "Time zone", ValueType.STRING),
    _spec("company", "Company", ValueType.STRING),
    _spec("email", "E-mail address", ValueType.STRING),
    _spec("phone", "Phone number", ValueType.STRING),
)}
PURCHASE_FIELDS = {f.name: f for f in (
    _spec("sku", "Purchased product (SKU)", ValueType.STRING, (O.EQUALS, O.IN, O.NOT_EQUALS, O.NOT_IN)),
    _spec("category", "Purchased product category", ValueType.STRING, (O.EQUALS, O.IN, O.NOT_EQUALS, O.NOT_IN)),
    _spec("brand", "Purchased product brand", ValueType.ID, (O.EQUALS, O.IN, O.NOT_EQUALS, O.NOT_IN)),
)}
EVENT_COUNT_OPS = (O.GREATER_THAN_OR_EQUAL, O.LESS_THAN_OR_EQUAL, O.EQUALS, O.GREATER_THAN, O.LESS_THAN, O.BETWEEN)
EVENT_PROPERTY_OPS = (O.EQUALS, O.NOT_EQUALS, O.CONTAINS, O.IN, O.NOT_IN, O.GREATER_THAN, O.LESS_THAN,
                      O.EXISTS, O.NOT_EXISTS)
TAG_OPS = (O.INCLUDES, O.NOT_IN)
SEGMENT_OPS = (O.INCLUDES, O.NOT_IN)
LIST_OPS = (O.INCLUDES, O.NOT_IN)  # has any of / has none of the values
PREFERENCE_FIELDS = {f.name: f for f in (
    _spec("genres", "Preferred genres (top 5)", ValueType.STRING, LIST_OPS),
    _spec("types", "Preferred types (top 5)", ValueType.STRING, LIST_OPS),
    _spec("creators", "Creators bought before", ValueType.STRING, LIST_OPS),
    _spec("preferred_day", "Preferred day of the week (ISO, 1 = Monday)", ValueType.INTEGER, LIST_OPS,
          enum=tuple(str(d) for d in range(1, 8))),
    _spec("price_range", "Price range (the middle of what they pay)", ValueType.MONEY,
          (O.INCLUDES, O.BETWEEN, O.EXISTS, O.NOT_EXISTS)),
    _spec("watchlist", "On the watchlist (product ids)", ValueType.ID, LIST_OPS),
)}
RECOMMENDATION_OPS = (O.GREATER_THAN_OR_EQUAL, O.GREATER_THAN, O.LESS_THAN_OR_EQUAL, O.LESS_THAN, O.BETWEEN)
CONSENT_CHANNELS = ("email", "sms", "push", "ads")
CONSENT_OPS = (O.EQUALS,)
CUSTOM_TYPES = {"string": ValueType.STRING, "number": ValueType.NUMBER, "boolean": ValueType.BOOLEAN,
                "date": ValueType.DATE}


@dataclass(frozen=True)
class PropertyFilter:
    property: str
    operator: Operator
    value: Any = None


@dataclass(frozen=True)
class Rule:
    kind: RuleKind
    operator: Operator
    field: str | None = None  # profile/attribute/purchase field, "attributes.<name>", consent channel
    value: Any = None
    within_days: int | None = None  # purchase, event
    min_count: int | None = None  # purchase
    name: str | None = None  # event name
    properties: tuple[PropertyFilter, ...] = ()  # event property filters
    value_type: ValueType | None = None  # resolved at validation


@dataclass(frozen=True)
class Group:
    match: Match
    rules: tuple[Rule, ...] = ()
    groups: tuple[Group, ...] = ()

    def walk_rules(self):
        yield from self.rules
        for g in self.groups:
            yield from g.walk_rules()


@dataclass
class Context:
    """What validation needs to know about the tenant."""

    custom_attributes: dict[str, str] = field(default_factory=dict)  # name -> declared type


class _Errors:
    def __init__(self) -> None:
        self.items: list[DomainError] = []

    def add(self, path: str, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        if len(self.items) < 50:
            self.items.append(DomainError(message, field=path, code=code))


def _number(v: Any, integer: bool) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if integer and (not float(v).is_integer()):
        return None
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return int(v) if integer else float(v)


def _date(v: Any) -> date | None:
    if isinstance(v, str):
        try:
            return date.fromisoformat(v[:10]) if len(v) >= 10 else None
        except ValueError:
            return None
    return None


def _days(v: Any) -> int | None:
    n = _number(v, integer=True)
    return n if n is not None and 0 <= n <= 36_500 else None


def check_value(t: ValueType, op: Operator, value: Any, path: str, errors: _Errors) -> Any:
    """The value normalised for ``t`` and ``op``; errors under ``path`` when it does not fit."""
    if op in (O.EXISTS, O.NOT_EXISTS):
        if value is not None:
            errors.add(path, f"{op.value} takes no value")
        return None
    if op in (O.WITHIN_DAYS, O.OLDER_THAN_DAYS):
        days = _days(value)
        if days is None:
            errors.add(path, f"{op.value} takes a whole number of days from 0 to 36500")
        return days
    if op is O.BETWEEN:
        if not isinstance(value, list) or len(value) != 2:
            errors.add(path, "between takes a list of two values [low, high]")
            return None
        low = check_value(t, O.EQUALS, value[0], f"{path}[0]", errors)
        high = check_value(t, O.EQUALS, value[1], f"{path}[1]", errors)
        if low is not None and high is not None and low > high:
            errors.add(path, "between: the first value is greater than the second")
        return [low, high]
    if op in (O.IN, O.NOT_IN, O.INCLUDES):
        if not isinstance(value, list) or not value:
            errors.add(path, f"{op.value} takes a non-empty list")
            return None
        if len(value) > MAX_LIST:
            errors.add(path, f"at most {MAX_LIST} values", ErrorCode.LIMIT_EXCEEDED)
            return None
        return [check_value(t, O.EQUALS, v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if op is O.CONTAINS:
        if not isinstance(value, str) or not value or len(value) > 200 or "\x00" in value:
            errors.add(path, "contains takes a text of 1 to 200 characters")
            return None
        return value
    # a single value of the field's type
    if t in (ValueType.NUMBER, ValueType.MONEY):
        n = _number(value, integer=False)
        if n is None:
            errors.add(path, "expected a number")
        return n
    if t is ValueType.INTEGER:
        n = _number(value, integer=True)
        if n is None:
            errors.add(path, "expected a whole number")
        return n
    if t is ValueType.DATE:
        d = _date(value)
        if d is None:
            errors.add(path, "expected a date (YYYY-MM-DD)")
        return d.isoformat() if d else None
    if t is ValueType.BOOLEAN:
        if not isinstance(value, bool):
            errors.add(path, "expected true or false")
            return None
        return value
    if t is ValueType.ID:
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            errors.add(path, "expected an id")
            return None
    if not isinstance(value, str) or len(value) > 500 or "\x00" in value:
        errors.add(path, "expected a text of at most 500 characters (no NUL character)")
        return None
    return value


def _enum(cls, value: Any, path: str, errors: _Errors):
    try:
        return cls(value)
    except ValueError:
        errors.add(path, f"{value!r} is not one of {', '.join(m.value for m in cls)}")
        return None


def _opt_days(rule: dict, key: str, path: str, errors: _Errors) -> int | None:
    if rule.get(key) is None:
        return None
    days = _days(rule[key])
    if days is None or days == 0:
        errors.add(f"{path}.{key}", f"{key} takes a whole number of days from 1 to 36500")
    return days


def _rule(raw: Any, path: str, ctx: Context, errors: _Errors) -> Rule | None:
    if not isinstance(raw, dict):
        errors.add(path, "a rule is an object")
        return None
    kind = _enum(RuleKind, raw.get("kind"), f"{path}.kind", errors)
    op = _enum(Operator, raw.get("operator"), f"{path}.operator", errors)
    if kind is None or op is None:
        return None
    value = raw.get("value")

    def allowed(ops: tuple[Operator, ...], what: str) -> bool:
        if op not in ops:
            errors.add(f"{path}.operator", f"{what} accepts {', '.join(o.value for o in ops)}, not {op.value}")
            return False
        return True

    if kind in (RuleKind.PROFILE, RuleKind.ATTRIBUTE):
        name = raw.get("field")
        if kind is RuleKind.ATTRIBUTE and isinstance(name, str) and name.startswith("attributes."):
            attr = name.removeprefix("attributes.")
            if not ATTRIBUTE_NAME_RE.match(attr):
                errors.add(f"{path}.field", "a custom attribute name uses letters, digits and _")
                return None
            declared = ctx.custom_attributes.get(attr)
            if declared is None:
                errors.add(f"{path}.field", f"custom attribute {attr!r} is not declared")
                return None
            spec = _spec(name, attr, CUSTOM_TYPES[declared])
        else:
            catalogue = PROFILE_FIELDS if kind is RuleKind.PROFILE else ATTRIBUTE_FIELDS
            spec = catalogue.get(name) if isinstance(name, str) else None
            if spec is None:
                errors.add(f"{path}.field", f"unknown {kind.value} field {name!r}")
                return None
        if not allowed(spec.operators, spec.name):
            return None
        return Rule(kind=kind, operator=op, field=spec.name, value_type=spec.type,
                    value=check_value(spec.type, op, value, f"{path}.value", errors))

    if kind is RuleKind.PURCHASE:
        spec = PURCHASE_FIELDS.get(raw.get("field")) if isinstance(raw.get("field"), str) else None
        if spec is None:
            errors.add(f"{path}.field", f"purchase rules use {', '.join(PURCHASE_FIELDS)}")
            return None
        if not allowed(spec.operators, f"purchase {spec.name}"):
            return None
        min_count = raw.get("min_count")
        if min_count is not None:
            min_count = _number(min_count, integer=True)
            if min_count is None or not 1 <= min_count <= 10_000:
                errors.add(f"{path}.min_count", "min_count takes a whole number from 1 to 10000")
        return Rule(kind=kind, operator=op, field=spec.name, value_type=spec.type,
                    value=check_value(spec.type, op, value, f"{path}.value", errors),
                    within_days=_opt_days(raw, "within_days", path, errors), min_count=min_count)

    if kind is RuleKind.EVENT:
        name = raw.get("name")
        if not isinstance(name, str) or not EVENT_NAME_RE.match(name):
            errors.add(f"{path}.name", "an event name: letters, digits, _ . : - (starting with a letter)")
            return None
        if not allowed(EVENT_COUNT_OPS, "an event count"):
            return None
        props = []
        raw_props = raw.get("properties") or []
        if not isinstance(raw_props, list) or len(raw_props) > 10:
            errors.add(f"{path}.properties", "properties is a list of at most 10 filters")
            raw_props = []
        for i, pf in enumerate(raw_props):
            ppath = f"{path}.properties[{i}]"
            if not isinstance(pf, dict):
                errors.add(ppath, "a property filter is an object")
                continue
            prop = pf.get("property")
            if not isinstance(prop, str) or not PROPERTY_NAME_RE.match(prop):
                errors.add(f"{ppath}.property", "a property name uses letters, digits, _ . -")
                continue
            pop = _enum(Operator, pf.get("operator"), f"{ppath}.operator", errors)
            if pop is None:
                continue
            if pop not in EVENT_PROPERTY_OPS:
                errors.add(f"{ppath}.operator", f"property filters accept {', '.join(o.value for o in EVENT_PROPERTY_OPS)}")
                continue
            pv = pf.get("value")
            ptype = ValueType.NUMBER if pop in (O.GREATER_THAN, O.LESS_THAN) else (
                ValueType.NUMBER if isinstance(pv, (int, float)) and not isinstance(pv, bool) else
                ValueType.BOOLEAN if isinstance(pv, bool) else ValueType.STRING)
            props.append(PropertyFilter(prop, pop, check_value(ptype, pop, pv, f"{ppath}.value", errors)))
        return Rule(kind=kind, operator=op, name=name, value_type=ValueType.INTEGER,
                    value=check_value(ValueType.INTEGER, op, value, f"{path}.value", errors),
                    within_days=_opt_days(raw, "within_days", path, errors), properties=tuple(props))

    if kind is RuleKind.TAG:
        if not allowed(TAG_OPS, "tag rules"):
            return None
        values = value if isinstance(value, list) else [value]
        return Rule(kind=kind, operator=op, value_type=ValueType.ID,
                    value=check_value(ValueType.ID, O.IN, values, f"{path}.value", errors))

    if kind is RuleKind.CONSENT:
        channel = raw.get("field")
        if channel not in CONSENT_CHANNELS:
            errors.add(f"{path}.field", f"consent rules use a channel: {', '.join(CONSENT_CHANNELS)}")
            return None
        if not allowed(CONSENT_OPS, "consent rules"):
            return None
        return Rule(kind=kind, operator=op, field=channel, value_type=ValueType.BOOLEAN,
                    value=check_value(ValueType.BOOLEAN, op, value, f"{path}.value", errors))

    if kind is RuleKind.PREFERENCE:
        spec = PREFERENCE_FIELDS.get(raw.get("field")) if isinstance(raw.get("field"), str) else None
        if spec is None:
            errors.add(f"{path}.field", f"preference rules use {', '.join(PREFERENCE_FIELDS)}")
            return None
        if not allowed(spec.operators, f"preference {spec.name}"):
            return None
        if spec.type is not ValueType.MONEY and op in LIST_OPS and value is not None and not isinstance(value, list):
            value = [value]
        checked = check_value(spec.type, op, value, f"{path}.value", errors)
        if spec.name in ("genres", "types") and isinstance(checked, list):
            checked = [v.strip().lower() if isinstance(v, str) else v for v in checked]  # stored lower case
        if spec.name == "preferred_day" and isinstance(checked, list):
            if any(d is not None and not 1 <= d <= 7 for d in checked):
                errors.add(f"{path}.value", "a day of the week is 1 (Monday) to 7 (Sunday)")
        if spec.name == "price_range" and checked is not None:
            if any(n is not None and n < 0 for n in checked):
                errors.add(f"{path}.value", "a price is zero or more")
        return Rule(kind=kind, operator=op, field=spec.name, value_type=spec.type, value=checked)

    if kind is RuleKind.RECOMMENDATION_SCORE:
        product = check_value(ValueType.ID, O.EQUALS, raw.get("field"), f"{path}.field", errors)
        if not allowed(RECOMMENDATION_OPS, "recommendation score rules"):
            return None
        score = check_value(ValueType.INTEGER, op, value, f"{path}.value", errors)
        for n in (score if isinstance(score, list) else [score]):
            if n is not None and not 0 <= n <= 100:
                errors.add(f"{path}.value", "a recommendation score is from 0 to 100")
                break
        return Rule(kind=kind, operator=op, field=product, value_type=ValueType.INTEGER, value=score)

    # segment membership
    if not allowed(SEGMENT_OPS, "segment rules"):
        return None
    values = value if isinstance(value, list) else [value]
    return Rule(kind=kind, operator=op, value_type=ValueType.ID,
                value=check_value(ValueType.ID, O.IN, values, f"{path}.value", errors))


def _group(raw: Any, path: str, depth: int, ctx: Context, errors: _Errors, counter: list[int]) -> Group | None:
    prefix = f"{path}." if path else ""
    if not isinstance(raw, dict):
        errors.add(path or "definition", "a group is an object with match, rules and groups")
        return None
    if depth > MAX_DEPTH:
        errors.add(path, f"groups nest at most {MAX_DEPTH} deep", ErrorCode.LIMIT_EXCEEDED)
        return None
    match = _enum(Match, raw.get("match", "all"), f"{prefix}match", errors)
    raw_rules, raw_groups = raw.get("rules") or [], raw.get("groups") or []
    if not isinstance(raw_rules, list):
        errors.add(f"{prefix}rules", "rules is a list")
        raw_rules = []
    if not isinstance(raw_groups, list):
        errors.add(f"{prefix}groups", "groups is a list")
        raw_groups = []
    counter[0] += len(raw_rules)
    if counter[0] > MAX_RULES:
        errors.add(f"{prefix}rules", f"a segment has at most {MAX_RULES} rules", ErrorCode.LIMIT_EXCEEDED)
        return None
    rules = [_rule(r, f"{prefix}rules[{i}]", ctx, errors) for i, r in enumerate(raw_rules)]
    groups = [_group(g, f"{prefix}groups[{i}]", depth + 1, ctx, errors, counter) for i, g in enumerate(raw_groups)]
    return Group(match=match or Match.ALL, rules=tuple(r for r in rules if r), groups=tuple(g for g in groups if g))


def parse(definition: Any, ctx: Context | None = None) -> Group:
    """Validate a definition; raise ValidationFailed naming every failing path."""
    errors = _Errors()
    if not isinstance(definition, dict):
        raise ValidationFailed([DomainError("a definition is an object", field="definition")])
    version = definition.get("version", VERSION)
    if version != VERSION:
        errors.add("version", f"this server reads definition version {VERSION}")
    group = _group(definition, "", 1, ctx or Context(), errors, [0])
    if errors.items or group is None:
        raise ValidationFailed(errors.items or [DomainError("invalid definition", field="definition")])
    return group


def to_json(group: Group) -> dict[str, Any]:
    """The stored form (normalised values, version stamped)."""

    def rule(r: Rule) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": r.kind.value, "operator": r.operator.value}
        for key in ("field", "name", "within_days", "min_count"):
            if getattr(r, key) is not None:
                out[key] = getattr(r, key)
        if r.value is not None:
            out["value"] = r.value
        if r.properties:
            out["properties"] = [{"property": p.property, "operator": p.operator.value,
                                  **({"value": p.value} if p.value is not None else {})} for p in r.properties]
        return out

    def grp(g: Group) -> dict[str, Any]:
        return {"match": g.match.value, "rules": [rule(r) for r in g.rules], "groups": [grp(x) for x in g.groups]}

    return {"version": VERSION, **grp(group)}


def referenced_segments(group: Group) -> set[uuid.UUID]:
    return {uuid.UUID(v) for r in group.walk_rules() if r.kind is RuleKind.SEGMENT for v in (r.value or []) if v}


def referenced_products(group: Group) -> set[uuid.UUID]:
    return {uuid.UUID(r.field) for r in group.walk_rules() if r.kind is RuleKind.RECOMMENDATION_SCORE and r.field}


def referenced_watchlist_products(group: Group) -> set[uuid.UUID]:
    return {uuid.UUID(v) for r in group.walk_rules() if r.kind is RuleKind.PREFERENCE and r.field == "watchlist"
            for v in (r.value or []) if v}


def referenced_tags(group: Group) -> set[uuid.UUID]:
    return {uuid.UUID(v) for r in group.walk_rules() if r.kind is RuleKind.TAG for v in (r.value or []) if v}
