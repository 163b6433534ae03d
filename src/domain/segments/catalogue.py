"""What rules can use: the field catalogue (every field with its operators, value type and
suggested values) and the tenant's declared custom attributes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Text, and_, cast, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from domain.audit import service as audit
from domain.commerce.models import Product, TrackedEvent
from domain.customers.models import Customer, CustomerBrand, Tag
from domain.errors import InvalidState, Validator
from domain.platform.db import tenant_session
from domain.segments import dsl
from domain.segments.models import CustomAttribute, Segment
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize


@dataclass
class FieldInfo:
    kind: dsl.RuleKind
    field: str
    label: str
    value_type: dsl.ValueType
    operators: tuple[dsl.Operator, ...]
    enum_values: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()


async def field_catalogue(principal: Principal, brand_id: uuid.UUID) -> list[FieldInfo]:
    """Every field a rule can use, with its operators, value type and, where the data has
    them, suggested values (this brand's categories, SKUs, event names; the tenant's tags)."""
    authorize(principal, Action.SEGMENT_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)

        async def distinct(col, *where, limit: int = 50) -> tuple[str, ...]:
            rows = await s.scalars(select(col).where(*where, col.is_not(None)).group_by(col)
                                   .order_by(func.count().desc(), col).limit(limit))
            return tuple(str(r) for r in rows)

        t = principal.tenant_id
        categories = await distinct(Product.category, Product.tenant_id == t, Product.brand_id == brand_id)
        skus = await distinct(Product.sku, Product.tenant_id == t, Product.brand_id == brand_id, limit=100)
        events = await distinct(TrackedEvent.name, TrackedEvent.tenant_id == t, or_(
            TrackedEvent.brand_id == brand_id,
            and_(TrackedEvent.brand_id.is_(None), TrackedEvent.customer_id.in_(select(CustomerBrand.customer_id).where(
                CustomerBrand.tenant_id == t, CustomerBrand.brand_id == brand_id)))))
        of_brand = Customer.id.in_(select(CustomerBrand.customer_id).where(
            CustomerBrand.tenant_id == t, CustomerBrand.brand_id == brand_id))  # only this brand's customers
        product_types = await distinct(Product.product_type, Product.tenant_id == t,
                                       or_(Product.brand_id == brand_id, Product.brand_id.is_(None)))
        buyer_types = await distinct(Customer.buyer_type, Customer.tenant_id == t, of_brand)
        countries = await distinct(Customer.country, Customer.tenant_id == t, of_brand)
        tags = tuple(str(x) for x in await s.scalars(select(Tag.id).where(Tag.tenant_id == t).order_by(Tag.name, Tag.id)))
        segments = tuple(str(x) for x in await s.scalars(select(Segment.id).where(
            Segment.tenant_id == t, Segment.brand_id == brand_id, Segment.archived_at.is_(None))
            .order_by(Segment.name, Segment.id)))
        customs = (await s.execute(select(CustomAttribute).where(CustomAttribute.tenant_id == t)
                                   .order_by(CustomAttribute.name))).scalars().all()
    out = [FieldInfo(dsl.RuleKind.PROFILE, f.name, f.label, f.type, f.operators) for f in dsl.PROFILE_FIELDS.values()]
    suggest = {"buyer_type": buyer_types, "country": countries}
    out += [FieldInfo(dsl.RuleKind.ATTRIBUTE, f.name, f.label, f.type, f.operators, suggestions=suggest.get(f.name, ()))
            for f in dsl.ATTRIBUTE_FIELDS.values()]
    out += [FieldInfo(dsl.RuleKind.ATTRIBUTE, f"attributes.{c.name}", c.label or c.name, dsl.CUSTOM_TYPES[c.type],
                      dsl.OPS_BY_TYPE[dsl.CUSTOM_TYPES[c.type]]) for c in customs]
    suggest_purchase = {"sku": skus, "category": categories}
    out += [FieldInfo(dsl.RuleKind.PURCHASE, f.name, f.label, f.type, f.operators,
                      suggestions=suggest_purchase.get(f.name, ())) for f in dsl.PURCHASE_FIELDS.values()]
    out.append(FieldInfo(dsl.RuleKind.EVENT, "count", "Performed event (times)", dsl.ValueType.INTEGER,
                         dsl.EVENT_COUNT_OPS, suggestions=events))
    out.append(FieldInfo(dsl.RuleKind.TAG, "tag", "Has tag", dsl.ValueType.ID, dsl.TAG_OPS, suggestions=tags))
    out += [FieldInfo(dsl.RuleKind.CONSENT, ch, f"Consent: {ch}", dsl.ValueType.BOOLEAN, dsl.CONSENT_OPS)
            for ch in dsl.CONSENT_CHANNELS]
    out.append(FieldInfo(dsl.RuleKind.SEGMENT, "segment", "Member of segment", dsl.ValueType.ID, dsl.SEGMENT_OPS,
                         suggestions=segments))
    suggest_preference = {"types": product_types}
    out += [FieldInfo(dsl.RuleKind.PREFERENCE, f.name, f.label, f.type, f.operators, f.enum_values,
                      suggestions=suggest_preference.get(f.name, ())) for f in dsl.PREFERENCE_FIELDS.values()]
    out.append(FieldInfo(dsl.RuleKind.RECOMMENDATION_SCORE, "recommendation_score",
                         "Recommendation score for a product (0-100; field: the product id)", dsl.ValueType.INTEGER,
                         dsl.RECOMMENDATION_OPS))
    return out


async def declare_custom_attribute(principal: Principal, name: str, type_: str, label: str | None) -> CustomAttribute:
    authorize(principal, Action.TAG_MANAGE)
    v = Validator()
    if not isinstance(name, str) or not dsl.ATTRIBUTE_NAME_RE.match(name):
        v.add("name", "use letters, digits and _ (starting with a letter or _)")
    if type_ not in dsl.CUSTOM_TYPES:
        v.add("type", f"type is one of {', '.join(dsl.CUSTOM_TYPES)}")
    label = validation.text(v, "label", label, required=False, max_len=200)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        current = await s.scalar(select(CustomAttribute.type).where(CustomAttribute.tenant_id == principal.tenant_id,
                                                                    CustomAttribute.name == name))
        if current is not None and current != type_:
            users = await s.scalar(select(func.count()).where(
                Segment.tenant_id == principal.tenant_id, Segment.archived_at.is_(None),
                cast(Segment.definition, Text).contains(f'"attributes.{name}"')))
            if users:
                raise InvalidState(f"{users} segment(s) use attributes.{name} as {current}; change them first",
                                   field="type")
        await s.execute(insert(CustomAttribute).values(tenant_id=principal.tenant_id, name=name, type=type_, label=label)
                        .on_conflict_do_update(index_elements=["tenant_id", "name"], set_={"type": type_, "label": label}))
        found = await s.scalar(select(CustomAttribute).where(CustomAttribute.tenant_id == principal.tenant_id,
                                                             CustomAttribute.name == name))
        audit.record(s, principal, "custom_attribute.declare", "CustomAttribute", None,
                     summary={"name": name, "type": type_})
    return found


async def list_custom_attributes(principal: Principal) -> list[CustomAttribute]:
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(select(CustomAttribute).where(CustomAttribute.tenant_id == principal.tenant_id)
                                     .order_by(CustomAttribute.name))).all())
