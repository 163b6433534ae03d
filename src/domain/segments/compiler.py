"""Compiles a validated rule tree into SQLAlchemy Core: bound parameters only.

Every value, attribute name, property name and event name from a definition reaches PostgreSQL
as a bound parameter; the SQL text is built only from the declared catalogue. A segment sees one
brand: its customers (``customer_brands``), that brand's profile, orders and events (events
without a brand count as the customer's own).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Numeric,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from domain.commerce.models import Order, OrderItem, Product, TrackedEvent
from domain.customers.models import Consent, Customer, CustomerBrand, CustomerTag
from domain.profiles.models import CustomerProfile
from domain.segments.dsl import Group, Match, Operator, Rule, RuleKind, ValueType
from domain.segments.models import SegmentMembership

O = Operator
NOT_COUNTED = ("cancelled", "refunded")
_CALENDAR_DAY = cast(literal('$.d.datetime("YYYY-MM-DD")'), JSONPATH)


@dataclass
class Scope:
    tenant_id: uuid.UUID
    brand_id: uuid.UUID
    now: datetime
    profile: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.profile is None:
            self.profile = aliased(CustomerProfile, name="p")


def _profile_column(scope: Scope, name: str) -> ColumnElement:
    p = scope.profile
    return {
        "total_order_value": func.coalesce(p.total_order_value_cents, 0),
        "total_order_count": func.coalesce(p.total_order_count, 0),
        "average_order_value": func.coalesce(p.average_order_value_cents, 0),
        "first_order_date": p.first_order_at,
        "last_order_date": p.last_order_at,
        "purchase_frequency": func.coalesce(p.purchase_frequency, 0),
        "engagement_score": func.coalesce(p.engagement_score, 0),
        "churn_risk": func.coalesce(p.churn_risk, 100),
    }[name]


def _attribute_column(scope: Scope, name: str, t: ValueType) -> ColumnElement:
    if name.startswith("attributes."):
        key = name.removeprefix("attributes.")  # bound as a parameter by the JSONB index operator
        node = Customer.attributes[key]
        kind = func.jsonb_typeof(node)
        text_value = Customer.attributes[key].astext
        if t is ValueType.NUMBER:
            return case((kind == "number", cast(text_value, Numeric)), else_=None)
        if t is ValueType.BOOLEAN:
            return case((kind == "boolean", text_value == "true"), else_=None)
        if t is ValueType.DATE:
            # a text that starts with a calendar date; one that is not (2026-02-30, 2026-13-01) reads
            # as missing instead of failing the query: the silent jsonpath test never raises
            day = func.substr(text_value, 1, 10)
            real_day = func.jsonb_path_exists(func.jsonb_build_object("d", day), _CALENDAR_DAY,
                                              cast(literal("{}"), JSONB), true())
            return case((and_(kind == "string", text_value.regexp_match(r"^\d{4}-\d{2}-\d{2}"), real_day),
                         cast(day, Date)), else_=None)
        return case((kind.in_(["string", "number", "boolean"]), text_value), else_=None)
    if name == "age":
        return cast(func.date_part("year", func.age(cast(literal(scope.now), Date), Customer.birth_date)), Numeric)
    return getattr(Customer, name)


def _money(v: Any) -> Any:
    if isinstance(v, list):
        return [_money(x) for x in v]
    return None if v is None else round(v * 100)


def compare(col: ColumnElement, op: Operator, value: Any, t: ValueType, now: datetime) -> ColumnElement:
    """``col <op> value`` for a field of type ``t``."""
    if op is O.EXISTS:
        return col.is_not(None)
    if op is O.NOT_EXISTS:
        return col.is_(None)
    if t is ValueType.MONEY:
        value = _money(value)
    if t is ValueType.DATE:
        if op is O.WITHIN_DAYS:
            return col >= now - timedelta(days=value)
        if op is O.OLDER_THAN_DAYS:
            return col < now - timedelta(days=value)
        col = cast(col, Date)
        value = [date.fromisoformat(v) for v in value] if isinstance(value, list) else date.fromisoformat(value)
    if t is ValueType.STRING and op is not O.CONTAINS:  # text compares ignore case
        col = func.lower(col)
        value = [v.lower() for v in value] if isinstance(value, list) else value.lower()
    match op:
        case O.EQUALS:
            return col == value
        case O.NOT_EQUALS:
            return col.is_distinct_from(value)
        case O.GREATER_THAN:
            return col > value
        case O.LESS_THAN:
            return col < value
        case O.GREATER_THAN_OR_EQUAL:
            return col >= value
        case O.LESS_THAN_OR_EQUAL:
            return col <= value
        case O.BETWEEN:
            return col.between(value[0], value[1])
        case O.IN | O.INCLUDES:
            return col.in_(value)
        case O.NOT_IN:
            return or_(col.is_(None), col.not_in(value))
        case O.CONTAINS:
            return col.icontains(value, autoescape=True)
    raise ValueError(f"operator {op} does not apply here")  # validation prevents this


def _purchase_count(rule: Rule, scope: Scope) -> ColumnElement:
    o, i = aliased(Order, name="o"), aliased(OrderItem, name="i")
    conditions = [o.tenant_id == Customer.tenant_id, o.customer_id == Customer.id, o.brand_id == scope.brand_id,
                  o.status.not_in(NOT_COUNTED), i.tenant_id == o.tenant_id, i.order_id == o.id]
    values = rule.value if isinstance(rule.value, list) else [rule.value]
    stmt = select(func.count(func.distinct(o.id))).select_from(o).join(i, and_(i.tenant_id == o.tenant_id, i.order_id == o.id))
    if rule.field == "sku":
        conditions.append(i.sku.in_(values))
    elif rule.field == "category":
        conditions.append(func.lower(i.category).in_([v.lower() for v in values]))
    else:
        pr = aliased(Product, name="pr")
        stmt = stmt.join(pr, and_(pr.tenant_id == i.tenant_id, pr.id == i.product_id))
        conditions.append(pr.brand_id.in_([uuid.UUID(v) for v in values]))
    if rule.within_days:
        conditions.append(o.placed_at >= scope.now - timedelta(days=rule.within_days))
    return stmt.where(*conditions).correlate(Customer).scalar_subquery()


def _event_count(rule: Rule, scope: Scope) -> ColumnElement:
    e = aliased(TrackedEvent, name="e")
    conditions = [e.tenant_id == Customer.tenant_id, e.customer_id == Customer.id, e.name == rule.name,
                  or_(e.brand_id == scope.brand_id, e.brand_id.is_(None))]
    if rule.within_days:
        conditions.append(e.occurred_at >= scope.now - timedelta(days=rule.within_days))
    for pf in rule.properties:
        node = e.properties[pf.property]
        if pf.operator in (O.EXISTS, O.NOT_EXISTS):
            conditions.append(compare(node, pf.operator, None, ValueType.STRING, scope.now))
            continue
        sample = pf.value[0] if isinstance(pf.value, list) else pf.value
        if isinstance(sample, (int, float)) and not isinstance(sample, bool):
            col = case((func.jsonb_typeof(node) == "number", cast(node.astext, Numeric)), else_=None)
            conditions.append(compare(col, pf.operator, pf.value, ValueType.NUMBER, scope.now))
        elif isinstance(sample, bool):  # JSON booleans only, as numbers match JSON numbers only
            col = case((func.jsonb_typeof(node) == "boolean", node.astext == "true"), else_=None)
            conditions.append(compare(col, pf.operator, pf.value, ValueType.BOOLEAN, scope.now))
        else:
            conditions.append(compare(node.astext, pf.operator, pf.value, ValueType.STRING, scope.now))
    return select(func.count()).select_from(e).where(*conditions).correlate(Customer).scalar_subquery()


def _has_tag(rule: Rule) -> ColumnElement:
    return exists(select(CustomerTag.customer_id).where(
        CustomerTag.tenant_id == Customer.tenant_id, CustomerTag.customer_id == Customer.id,
        CustomerTag.tag_id.in_([uuid.UUID(v) for v in rule.value])).correlate(Customer))


def _consented(rule: Rule, scope: Scope) -> ColumnElement:
    return exists(select(Consent.customer_id).where(
        Consent.tenant_id == Customer.tenant_id, Consent.customer_id == Customer.id,
        Consent.brand_id == scope.brand_id, Consent.channel == rule.field, Consent.granted.is_(True),
    ).correlate(Customer))


def _member_of(rule: Rule) -> ColumnElement:
    m = aliased(SegmentMembership, name="m")
    return exists(select(m.customer_id).where(
        m.tenant_id == Customer.tenant_id, m.customer_id == Customer.id,
        m.segment_id.in_([uuid.UUID(v) for v in rule.value]), m.exited_at.is_(None)).correlate(Customer))


def _preference(rule: Rule, scope: Scope) -> ColumnElement:
    """Whether the brand profile's preferences hold any of the values (includes) or, for the
    price range, whether it holds a price or overlaps [low, high]; false without a profile."""
    p = scope.profile
    if rule.field == "price_range":
        low, high = p.price_low_cents, p.price_high_cents
        if rule.operator is O.EXISTS:
            return low.is_not(None)
        if rule.operator is O.NOT_EXISTS:
            return low.is_(None)
        cents = _money(rule.value)
        if rule.operator is O.BETWEEN:
            return func.coalesce(and_(low <= cents[1], high >= cents[0]), false())
        return func.coalesce(or_(*[and_(low <= c, high >= c) for c in cents]), false())
    column = {"genres": p.genres, "types": p.types, "creators": p.creators, "preferred_day": p.preferred_days,
              "watchlist": p.watchlist}[rule.field]
    values = [uuid.UUID(v) for v in rule.value] if rule.field == "watchlist" else list(rule.value)
    return func.coalesce(column.overlap(cast(values, column.type)), false())


def _preference_actual(rule: Rule, scope: Scope) -> ColumnElement:
    p = scope.profile
    if rule.field == "price_range":
        return func.jsonb_build_array(p.price_low_cents, p.price_high_cents)
    return {"genres": p.genres, "types": p.types, "creators": p.creators, "preferred_day": p.preferred_days,
            "watchlist": p.watchlist}[rule.field]


def recommendations(tenant_id: Any, product_id: Any):
    """``bg_recommendations(tenant, product)`` as a table: one row per customer of the product's
    brand with its score and each factor's points (migrations/0018_offers.up.sql)."""
    return func.bg_recommendations(tenant_id, product_id).table_valued(
        "customer_id", "score", "genre", "type", "creator", "price", "location", "engagement", "watchlist",
        name="r")


def _recommendation_score(rule: Rule, scope: Scope) -> ColumnElement:
    r = recommendations(scope.tenant_id, uuid.UUID(rule.field))
    return select(r.c.score).where(r.c.customer_id == Customer.id).correlate(Customer).scalar_subquery()


def _recommended(rule: Rule, scope: Scope) -> ColumnElement:
    """Uncorrelated: the product's scores are computed once, set-based, then matched by id."""
    r = recommendations(scope.tenant_id, uuid.UUID(rule.field))
    return Customer.id.in_(select(r.c.customer_id).where(
        compare(r.c.score, rule.operator, rule.value, ValueType.INTEGER, scope.now)))


def actual(rule: Rule, scope: Scope) -> ColumnElement:
    """The customer's value the rule looks at (for explain)."""
    match rule.kind:
        case RuleKind.PROFILE:
            return _profile_column(scope, rule.field)
        case RuleKind.ATTRIBUTE:
            return _attribute_column(scope, rule.field, rule.value_type)
        case RuleKind.PURCHASE:
            return _purchase_count(rule, scope)
        case RuleKind.EVENT:
            return _event_count(rule, scope)
        case RuleKind.TAG:
            return _has_tag(rule)
        case RuleKind.CONSENT:
            return _consented(rule, scope)
        case RuleKind.SEGMENT:
            return _member_of(rule)
        case RuleKind.PREFERENCE:
            return _preference_actual(rule, scope)
        case RuleKind.RECOMMENDATION_SCORE:
            return _recommendation_score(rule, scope)
    raise ValueError(rule.kind)


def compile_rule(rule: Rule, scope: Scope) -> ColumnElement:
    match rule.kind:
        case RuleKind.PROFILE | RuleKind.ATTRIBUTE:
            return compare(actual(rule, scope), rule.operator, rule.value, rule.value_type, scope.now)
        case RuleKind.PURCHASE:
            count = _purchase_count(rule, scope)
            if rule.operator in (O.NOT_EQUALS, O.NOT_IN):
                return count == 0
            return count >= (rule.min_count or 1)
        case RuleKind.EVENT:
            return compare(_event_count(rule, scope), rule.operator, rule.value, ValueType.INTEGER, scope.now)
        case RuleKind.TAG:
            return _has_tag(rule) if rule.operator is O.INCLUDES else ~_has_tag(rule)
        case RuleKind.CONSENT:
            return _consented(rule, scope) if rule.value else ~_consented(rule, scope)
        case RuleKind.SEGMENT:
            return _member_of(rule) if rule.operator is O.INCLUDES else ~_member_of(rule)
        case RuleKind.PREFERENCE:
            held = _preference(rule, scope)
            return ~held if rule.operator is O.NOT_IN else held
        case RuleKind.RECOMMENDATION_SCORE:
            return _recommended(rule, scope)
    raise ValueError(rule.kind)


def compile_group(group: Group, scope: Scope) -> ColumnElement:
    """An empty ALL group matches everyone, an empty ANY group no one."""
    parts = [compile_rule(r, scope) for r in group.rules] + [compile_group(g, scope) for g in group.groups]
    if not parts:
        return true() if group.match is Match.ALL else false()
    return and_(*parts) if group.match is Match.ALL else or_(*parts)


def base_select(scope: Scope, *columns: Any):
    """SELECT ... FROM the brand's customers, each with the brand's profile (if any)."""
    p = scope.profile
    return (
        select(*columns)
        .select_from(Customer)
        .join(CustomerBrand, and_(CustomerBrand.tenant_id == Customer.tenant_id,
                                  CustomerBrand.customer_id == Customer.id, CustomerBrand.brand_id == scope.brand_id))
        .outerjoin(p, and_(p.tenant_id == Customer.tenant_id, p.customer_id == Customer.id,
                           p.brand_id == scope.brand_id))
        .where(Customer.tenant_id == scope.tenant_id)
    )


def members_select(group: Group, scope: Scope):
    """The member set of a rule-based segment: (customer_id, score NULL)."""
    return base_select(scope, Customer.id.label("customer_id"), literal(None, Float).label("score")).where(
        compile_group(group, scope))


# --- what a definition reads ----------------------------------------------------------------

BRAND = "brand"  # the customer joined the brand (every rule-based segment reads it)
PROFILE = "profile"
ATTRIBUTE = "attribute"
PURCHASE = "purchase"
TIME = "time"  # the rule moves with the clock (a window, an age)


def event_input(name: str) -> str:
    return f"event:{name}"


def tag_input(tag_id: uuid.UUID | str) -> str:
    return f"tag:{tag_id}"


def consent_input(channel: str) -> str:
    return f"consent:{channel}"


def segment_input(segment_id: uuid.UUID | str) -> str:
    return f"segment:{segment_id}"


def recheck_input(segment_id: uuid.UUID | str) -> str:
    """Evaluate this segment whatever changed (its evaluation had to wait for a refresh)."""
    return f"recheck:{segment_id}"


def inputs_of(group: Group) -> list[str]:
    """The inputs the compiled tree reads, as the changes name them: rule kinds, event names,
    tags, consent channels, segments; ``time`` when a rule moves with the clock."""
    out = {BRAND}
    for r in group.walk_rules():
        match r.kind:
            case RuleKind.PROFILE:
                out.add(PROFILE)
            case RuleKind.ATTRIBUTE:
                out.add(ATTRIBUTE)
                if r.field == "age":
                    out.add(TIME)
            case RuleKind.PURCHASE:
                out.add(PURCHASE)
            case RuleKind.EVENT:
                out.add(event_input(r.name))
            case RuleKind.TAG:
                out.update(tag_input(v) for v in r.value or [])
            case RuleKind.CONSENT:
                out.add(consent_input(r.field))
            case RuleKind.SEGMENT:
                out.update(segment_input(v) for v in r.value or [])
            case RuleKind.PREFERENCE:  # refreshed with the profile, after each order and tracked event
                out.add(PROFILE)
            case RuleKind.RECOMMENDATION_SCORE:  # preferences and engagement; declared city and country
                out.update({PROFILE, ATTRIBUTE})
        if r.within_days or r.operator in (O.WITHIN_DAYS, O.OLDER_THAN_DAYS):
            out.add(TIME)
    return sorted(out)


def edge_candidates(group: Group, scope: Scope, since: datetime, until: datetime):
    """The customers for whom a time rule of ``group`` may have changed its answer between
    ``since`` and ``until`` with no change to their data (a timestamp crossed a window's edge, a
    birthday passed): a SELECT of customer ids, or None when the tree has no such rule."""
    parts = []
    for r in group.walk_rules():
        days = r.value if r.operator in (O.WITHIN_DAYS, O.OLDER_THAN_DAYS) else r.within_days
        if r.kind in (RuleKind.PROFILE, RuleKind.ATTRIBUTE) and r.operator in (O.WITHIN_DAYS, O.OLDER_THAN_DAYS):
            col = actual(r, scope)
            edge = timedelta(days=days)
            parts.append(base_select(scope, Customer.id).where(col >= since - edge, col < until - edge))
        elif r.kind is RuleKind.ATTRIBUTE and r.field == "age":
            first, last = since.date(), until.date()
            if (last - first).days >= 366:
                parts.append(base_select(scope, Customer.id).where(Customer.birth_date.is_not(None)))
            elif last > first:
                days_passed = [(first + timedelta(days=i + 1)).strftime("%m-%d") for i in range((last - first).days)]
                parts.append(base_select(scope, Customer.id).where(
                    func.to_char(Customer.birth_date, "MM-DD").in_(days_passed)))
        elif r.kind is RuleKind.PURCHASE and r.within_days:
            o, edge = aliased(Order, name="o"), timedelta(days=r.within_days)
            parts.append(select(o.customer_id).where(
                o.tenant_id == scope.tenant_id, o.brand_id == scope.brand_id,
                o.placed_at >= since - edge, o.placed_at < until - edge))
        elif r.kind is RuleKind.EVENT and r.within_days:
            e, edge = aliased(TrackedEvent, name="e"), timedelta(days=r.within_days)
            parts.append(select(e.customer_id).where(
                e.tenant_id == scope.tenant_id, e.name == r.name, or_(e.brand_id == scope.brand_id, e.brand_id.is_(None)),
                e.occurred_at >= since - edge, e.occurred_at < until - edge))
    if not parts:
        return None
    return union(*parts) if len(parts) > 1 else parts[0]


def lookalike_inputs(source_id: uuid.UUID) -> list[str]:
    return sorted({BRAND, PROFILE, segment_input(source_id)})
