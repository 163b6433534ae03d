"""Customers: upsert by external id or e-mail, brand relationships, and who may see whom.

Which customers a principal limited to some brands sees (those related to one of its brands) is
part of the brand rule, in ``domain/tenancy/scoping.py`` (``customer_visible_clause``).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.customers.models import Consent, Customer, CustomerBrand, CustomerTag
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.pagination import Page, PageRequest, encode_cursor
from domain.platform.db import tenant_session
from domain.profiles.models import ALL_BRANDS, CustomerProfile
from domain.segments import changes
from domain.segments.compiler import ATTRIBUTE, BRAND
from domain.segments.models import Segment, SegmentMembership
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline import service as timeline

FIELDS = ("external_id", "email", "phone", "push_token", "first_name", "last_name", "company", "buyer_type", "city",
          "state", "country", "timezone", "locale", "birth_date", "attributes")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
LOCALE_RE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_ATTRIBUTES_BYTES = 16_384


class CustomerSource(str, Enum):
    API = "api"
    ORDER = "order"
    EVENT = "event"
    IMPORT = "import"
    SUBSCRIPTION = "subscription"
    MESSAGE = "message"


def clean_fields(data: dict[str, Any], v: Validator, prefix: str = "") -> dict[str, Any]:
    """Validate and normalise customer fields; errors go to ``v`` under ``prefix``."""
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise ValueError(f"not customer fields: {sorted(unknown)}")
    nul = [k for k, value in data.items() if validation.has_nul(value)]
    for key in nul:
        v.add(prefix + key, f"{key} contains a NUL character")
    data = {k: value for k, value in data.items() if k not in nul}
    out: dict[str, Any] = {}
    for key in ("external_id", "first_name", "last_name", "company", "buyer_type", "city", "state"):
        if key in data:
            limit = {"external_id": 200, "company": 200, "buyer_type": 50}.get(key, 100)
            out[key] = validation.text(v, prefix + key, data[key], required=False, max_len=limit)
    if "email" in data:
        email = validation.email(v, prefix + "email", data["email"])
        out["email"] = email.lower() if email else None
    if "phone" in data:
        phone = (data["phone"] or "").strip() or None
        if phone is not None:
            phone = re.sub(r"[\s().-]", "", phone)
            if not validation.E164_RE.match(phone):
                v.add(prefix + "phone", f"{data['phone']!r} is not an E.164 phone number (+15551234567)")
        out["phone"] = phone
    if "push_token" in data:
        out["push_token"] = validation.text(v, prefix + "push_token", data["push_token"], required=False, max_len=512)
    if "country" in data:
        country = (data["country"] or "").strip().upper() or None
        if country and not COUNTRY_RE.match(country):
            v.add(prefix + "country", "use an ISO 3166-1 alpha-2 code (for example FR)")
        out["country"] = country
    if "timezone" in data:
        out["timezone"] = validation.timezone(v, prefix + "timezone", data["timezone"] or None)
    if "locale" in data:
        locale = (data["locale"] or "").strip() or None
        if locale and (len(locale) > 35 or not LOCALE_RE.match(locale)):
            v.add(prefix + "locale", "use a language tag (for example fr-FR)")
        out["locale"] = locale
    if "birth_date" in data:
        bd = data["birth_date"]
        if isinstance(bd, str) and bd.strip():
            try:
                bd = date.fromisoformat(bd.strip())
            except ValueError:
                v.add(prefix + "birth_date", "use YYYY-MM-DD")
                bd = None
        elif isinstance(bd, str):
            bd = None
        if isinstance(bd, datetime):
            bd = bd.date()
        if isinstance(bd, date) and not (date(1900, 1, 1) <= bd <= date.today()):
            v.add(prefix + "birth_date", "birth date is out of range")
        out["birth_date"] = bd
    if "attributes" in data:
        attrs = data["attributes"] if data["attributes"] is not None else {}
        if not isinstance(attrs, dict):
            v.add(prefix + "attributes", "attributes must be a JSON object")
            attrs = {}
        for key in attrs:
            if not ATTRIBUTE_KEY_RE.match(str(key)):
                v.add(prefix + "attributes", f"attribute name {key!r}: use letters, digits and _")
        if len(json.dumps(attrs, default=str)) > MAX_ATTRIBUTES_BYTES:
            v.add(prefix + "attributes", f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes", ErrorCode.TOO_LONG)
        out["attributes"] = attrs
    return out


async def link_brand(session: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID,
                     brand_id: uuid.UUID, source: CustomerSource, at: datetime | None = None, *,
                     field: str = "customerId", refuse: bool = True) -> None:
    """Relate the customer to the brand. A record private to one brand is never linked to
    another, and a shared record is not linked to a brand that has a private record for the same
    e-mail or external id (the brand would hold two records for one address): refused with a
    DomainError, or, with ``refuse`` false (an inbound message, which is kept all the same),
    left unlinked."""
    other = aliased(Customer)
    linked = exists().where(CustomerBrand.tenant_id == Customer.tenant_id, CustomerBrand.customer_id == Customer.id,
                            CustomerBrand.brand_id == brand_id)
    already, private_to, clash = (await session.execute(select(
        linked, Customer.private_to_brand_id,
        select(other.id).where(
            other.tenant_id == Customer.tenant_id, other.private_to_brand_id == brand_id, other.id != Customer.id,
            or_(and_(Customer.email.is_not(None), other.email == Customer.email),
                and_(Customer.external_id.is_not(None), other.external_id == Customer.external_id)),
        ).limit(1).scalar_subquery(),
    ).where(Customer.tenant_id == tenant_id, Customer.id == customer_id))).one()
    if already:
        return
    problem = None
    if private_to is not None and private_to != brand_id:
        problem = DomainError("this customer is private to another brand", field=field, code=ErrorCode.INVALID_STATE)
    elif private_to is None and clash is not None:
        problem = DomainError("the brand already has its own record for this email or externalId", field=field,
                              code=ErrorCode.DUPLICATE)
    if problem is not None:
        if refuse:
            raise problem
        return
    values: dict[str, Any] = dict(tenant_id=tenant_id, customer_id=customer_id, brand_id=brand_id, source=source.value)
    if at is not None:
        values["first_seen_at"] = at
    await session.execute(insert(CustomerBrand).values(**values).on_conflict_do_nothing())
    await changes.customers_changed(session, tenant_id, [customer_id], [BRAND])  # the brand's segments may take them


_IDENTIFIERS = (("external_id", "externalId"), ("email", "email"))


def identifier_changes(customer: Customer, fields: dict[str, Any]) -> dict[str, Any]:
    """The e-mail and external id ``fields`` would change on ``customer``."""
    return {k: fields[k] for k, _ in _IDENTIFIERS if k in fields and fields[k] != getattr(customer, k)}


async def check_identifiers(session: AsyncSession, principal: Principal, customer: Customer,
                            changes: dict[str, Any], brand_id: uuid.UUID | None = None, prefix: str = "") -> None:
    """May ``principal`` give ``customer`` these identifiers (see docs/security.md, "Customers
    only other brands know")? A principal limited to some brands changes none on a shared
    record: whether the new value is held, and by whom, would tell it about customers only other
    brands know. Otherwise a value is taken when a record in the same brand's view holds it: for
    a record private to a brand, that brand's other private records and the shared records
    linked to it; for a shared record, the other shared records and the private records of the
    brands it is (or, with ``brand_id``, is about to be) linked to."""
    if not changes:
        return
    name = dict(_IDENTIFIERS)
    first = next(iter(changes))
    if not scoping.sees_every_brand(principal) and customer.private_to_brand_id is None:
        raise DomainError("a customer other brands may share keeps its email and externalId: ask a principal "
                          "that sees every brand to change them", field=prefix + name[first],
                          code=ErrorCode.FORBIDDEN)
    held = [getattr(Customer, k) == v for k, v in changes.items() if v is not None]
    if not held:
        return
    linked = select(CustomerBrand.brand_id).where(CustomerBrand.tenant_id == customer.tenant_id,
                                                  CustomerBrand.customer_id == customer.id)
    if customer.private_to_brand_id is not None:
        scope = or_(Customer.private_to_brand_id == customer.private_to_brand_id, and_(
            Customer.private_to_brand_id.is_(None), exists(select(CustomerBrand.customer_id).where(
                CustomerBrand.tenant_id == Customer.tenant_id, CustomerBrand.customer_id == Customer.id,
                CustomerBrand.brand_id == customer.private_to_brand_id))))
    else:
        brands = [Customer.private_to_brand_id.in_(linked)]
        if brand_id is not None:
            brands.append(Customer.private_to_brand_id == brand_id)
        scope = or_(Customer.private_to_brand_id.is_(None), *brands)
    taken = await session.scalar(select(exists().where(
        Customer.tenant_id == customer.tenant_id, Customer.id != customer.id, or_(*held), scope)))
    if taken:
        raise _taken(prefix)


async def load_visible(session: AsyncSession, principal: Principal, customer_id: uuid.UUID, *,
                       lock: bool = False, field: str = "customerId") -> Customer:
    stmt = select(Customer).where(Customer.tenant_id == principal.tenant_id, Customer.id == customer_id)
    clause = scoping.customer_visible_clause(principal)
    if clause is not None:
        stmt = stmt.where(clause)
    if lock:
        stmt = stmt.with_for_update()
    customer = await session.scalar(stmt)
    if customer is None:
        raise NotFound("customer not found", field=field)
    return customer


async def find_existing(session: AsyncSession, tenant_id: uuid.UUID, external_id: str | None,
                        email: str | None, *, brand_id: uuid.UUID | None = None,
                        principal: Principal | None = None, lock: bool = True) -> Customer | None:
    """The customer this data is about: by external id, failing that by e-mail; for each, written
    through a brand, that brand's private record comes first, then the shared one (the order
    imports follow too, ``imports/customers.py``). With ``principal`` (one limited to some
    brands), only shared records it sees are candidates: the others are unknown to it."""
    scopes = [Customer.private_to_brand_id == brand_id] if brand_id is not None else []
    shared = Customer.private_to_brand_id.is_(None)
    clause = scoping.customer_visible_clause(principal) if principal is not None else None
    scopes.append(shared if clause is None else and_(shared, clause))
    for column, value in ((Customer.external_id, external_id), (Customer.email, email)):
        for scope in scopes:
            if value:
                stmt = select(Customer).where(Customer.tenant_id == tenant_id, column == value, scope)
                if lock:
                    stmt = stmt.with_for_update()
                found = await session.scalar(stmt)
                if found is not None:
                    return found
    return None


async def _held_by_a_shared_record(session: AsyncSession, tenant_id: uuid.UUID, external_id: str | None,
                                   email: str | None) -> bool:
    held = [column == value for column, value in ((Customer.external_id, external_id), (Customer.email, email))
            if value]
    return bool(held) and bool(await session.scalar(select(exists().where(
        Customer.tenant_id == tenant_id, Customer.private_to_brand_id.is_(None), or_(*held)))))


async def upsert_in_session(session: AsyncSession, principal: Principal, fields: dict[str, Any],
                            brand_id: uuid.UUID | None, source: CustomerSource,
                            prefix: str = "") -> tuple[Customer, bool]:
    """Create or update within the caller's transaction; returns (customer, created). ``prefix``
    places field errors under a nested input (``customer.``).

    A principal limited to some brands matches only customers it sees (and the private records
    of the brand it writes through). A customer only other brands know is unknown to it: when
    such a customer holds the external id or e-mail it gives, it gets a new record private to
    its brand, and the same answer as for an address nobody has. It neither reads nor changes
    the other brands' record, and nothing tells it that one exists."""
    if not fields.get("external_id") and not fields.get("email"):
        raise DomainError("give an externalId or an email to identify the customer", field=f"{prefix}externalId",
                          code=ErrorCode.REQUIRED)
    scoping.require_brand_if_limited(principal, brand_id)
    if brand_id is not None:
        await scoping.check_brand(session, principal, brand_id)
    ext, email = fields.get("external_id"), fields.get("email")
    limited = None if scoping.sees_every_brand(principal) else principal
    customer = await find_existing(session, principal.tenant_id, ext, email, brand_id=brand_id, principal=limited)
    created = False
    if customer is None:
        private_to = brand_id if limited and await _held_by_a_shared_record(session, principal.tenant_id, ext,
                                                                              email) else None
        customer = await _insert(session, principal.tenant_id, fields, private_to)
        created = customer is not None
        if customer is None:  # created concurrently: continue with that one
            customer = await find_existing(session, principal.tenant_id, ext, email, brand_id=brand_id,
                                           principal=limited)
            if customer is None and limited and private_to is None:
                # a shared record another brand created meanwhile, unknown to this principal: a
                # record private to its brand, as when that record was there before
                customer = await _insert(session, principal.tenant_id, fields, brand_id)
                created = customer is not None
                if customer is None:  # the brand's own record, created meanwhile too
                    customer = await find_existing(session, principal.tenant_id, ext, email, brand_id=brand_id,
                                                   principal=limited)
            if customer is None:
                raise _taken(prefix)
    if not created:
        await check_identifiers(session, principal, customer, identifier_changes(customer, fields), brand_id, prefix)
        for key, value in fields.items():
            if key == "attributes":
                value = {**(customer.attributes or {}), **value}  # merge; null values are kept as null
            setattr(customer, key, value)
        try:
            async with session.begin_nested():
                await session.flush()
        except IntegrityError:
            raise _taken(prefix) from None
    else:
        timeline.write(session, principal.tenant_id, customer.id, timeline.Kind.CUSTOMER_CREATED,
                       customer.created_at, brand_id=brand_id, data={"source": source.value})
    if brand_id is not None:
        await link_brand(session, principal.tenant_id, customer.id, brand_id, source, field=f"{prefix}email")
    return customer, created


async def _insert(session: AsyncSession, tenant_id: uuid.UUID, fields: dict[str, Any],
                  private_to: uuid.UUID | None) -> Customer | None:
    """A new customer, or None when one holding its external id or e-mail in the same scope
    exists (committed by a concurrent writer meanwhile: the insert waits for it)."""
    values = {k: v for k, v in fields.items() if v is not None or k == "attributes"}
    values["attributes"] = values.get("attributes") or {}
    new_id = await session.scalar(insert(Customer).values(
        id=uuid.uuid4(), tenant_id=tenant_id, private_to_brand_id=private_to, **values,
    ).on_conflict_do_nothing().returning(Customer.id))
    if new_id is None:
        return None
    return await session.scalar(select(Customer).where(Customer.tenant_id == tenant_id, Customer.id == new_id))


async def _attributes_changed(s: AsyncSession, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    # attribute rules of every brand may now answer otherwise
    await changes.customers_changed(s, tenant_id, [customer_id], [ATTRIBUTE])


def _taken(prefix: str = "") -> DomainError:
    return DomainError("another customer already has this email or externalId", field=f"{prefix}email",
                       code=ErrorCode.DUPLICATE)


async def upsert_customer(principal: Principal, data: dict[str, Any], *, brand_id: uuid.UUID | None = None,
                          source: CustomerSource = CustomerSource.API) -> tuple[Customer, bool]:
    """Idempotent on external id or, failing that, e-mail. Only the given fields change."""
    authorize(principal, Action.CUSTOMER_WRITE)
    v = Validator()
    fields = clean_fields(data, v)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        customer, created = await upsert_in_session(s, principal, fields, brand_id, source)
        await s.refresh(customer)
        await _attributes_changed(s, principal.tenant_id, customer.id)
        audit.record(s, principal, "customer.create" if created else "customer.update", "Customer",
                     customer.id, brand_id=brand_id,
                     summary={"fields": sorted(k for k in fields if k != "attributes")})
    return customer, created


async def update_customer(principal: Principal, customer_id: uuid.UUID, data: dict[str, Any]) -> Customer:
    authorize(principal, Action.CUSTOMER_WRITE)
    v = Validator()
    fields = clean_fields(data, v)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        customer = await load_visible(s, principal, customer_id, lock=True, field="id")
        await check_identifiers(s, principal, customer, identifier_changes(customer, fields))
        before = {k: getattr(customer, k) for k in fields}
        for key, value in fields.items():
            setattr(customer, key, value)
        try:
            async with s.begin_nested():
                await s.flush()
        except IntegrityError:
            raise _taken() from None
        await s.refresh(customer)
        await _attributes_changed(s, principal.tenant_id, customer.id)
        audit.record(s, principal, "customer.update", "Customer", customer.id,
                     summary=audit.diff(before, {k: getattr(customer, k) for k in fields}))
    return customer


async def customers_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    authorize(principal, Action.CUSTOMER_READ)
    stmt = select(Customer).where(Customer.tenant_id == principal.tenant_id, Customer.id.in_(set(ids)))
    clause = scoping.customer_visible_clause(principal)
    if clause is not None:
        stmt = stmt.where(clause)
    async with tenant_session(principal.tenant_id) as s:
        return {c.id: c for c in await s.scalars(stmt)}


async def get_customer(principal: Principal, customer_id: uuid.UUID) -> Customer:
    found = (await customers_by_ids(principal, [customer_id])).get(customer_id)
    if found is None:
        raise NotFound("customer not found", field="id")
    return found


class CustomerOrder(str, Enum):
    CREATED_AT_DESC = "created_at_desc"
    CREATED_AT_ASC = "created_at_asc"
    UPDATED_AT_DESC = "updated_at_desc"


@dataclass(frozen=True)
class CustomerFilter:
    brand_id: uuid.UUID | None = None
    search: str | None = None
    tag_ids: tuple[uuid.UUID, ...] = ()
    segment_ids: tuple[uuid.UUID, ...] = ()  # a current member of any of them
    churn_risk_min: int | None = None  # effective churn risk (override, else the profile's), inclusive
    churn_risk_max: int | None = None
    lifetime_value_min_cents: int | None = None  # effective lifetime value, inclusive
    lifetime_value_max_cents: int | None = None
    consented_channels: tuple[str, ...] = ()  # granted for the brand on every one of them
    city: str | None = None  # ignoring case
    country: str | None = None
    account_manager_id: uuid.UUID | None = None

    @property
    def reads_profile(self) -> bool:
        return any(v is not None for v in (self.churn_risk_min, self.churn_risk_max,
                                           self.lifetime_value_min_cents, self.lifetime_value_max_cents))


MAX_SEARCH_TERMS = 5


def _search_terms(search: str) -> list[str]:
    return [t for t in re.split(r"\s+", search.strip().lower()) if t][:MAX_SEARCH_TERMS]


def search_conditions(search: str) -> list[Any]:
    """Every word of ``search`` (the first five, lower-cased) begins the customer's e-mail,
    first name or last name (lower-cased), or, for a word with three digits or more, its digits
    (and ``+``) begin the phone number. Wildcards are plain characters.

    Written with ``^@`` (starts_with) on stored columns: it is leakproof, so under row-level
    security the planner still turns each prefix into a range on an index leading with the
    tenant (``ix_customers_search_*``); ``lower(col) LIKE 'x%'`` is not, and read every customer
    of the tenant (docs/customers.md, "How it reads the database")."""
    conditions = []
    for term in _search_terms(search):
        options = [Customer.search_email.op("^@")(term), Customer.search_first_name.op("^@")(term),
                   Customer.search_last_name.op("^@")(term)]
        digits = re.sub(r"[^\d+]", "", term)
        if len(digits) >= 3:
            options.append(Customer.phone.op("^@")("+" + digits.lstrip("+")))
        conditions.append(or_(*options))
    return conditions


async def list_customers(principal: Principal, flt: CustomerFilter, order: CustomerOrder, *,
                         page: PageRequest) -> Page[Customer]:
    authorize(principal, Action.CUSTOMER_READ)
    stmt = list_statement(principal, flt, order, page=page)
    async with tenant_session(principal.tenant_id) as s:
        if flt.segment_ids:
            await _check_segments(s, principal, flt.segment_ids)
        if flt.search:
            # asyncpg prepares every statement, and after five runs PostgreSQL may keep a generic
            # plan, which knows no prefix, so no index range: it would read every customer
            await s.execute(text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"))
        rows = list((await s.scalars(stmt)).all())
    attr = "updated_at" if order is CustomerOrder.UPDATED_AT_DESC else "created_at"
    return page.page(rows, lambda c: encode_cursor(getattr(c, attr), c.id))


def list_statement(principal: Principal, flt: CustomerFilter, order: CustomerOrder, *,
                   page: PageRequest) -> Select[tuple[Customer]]:
    """The query of :func:`list_customers` (one more row than the page, for ``hasNextPage``)."""
    conditions: list[Any] = [Customer.tenant_id == principal.tenant_id]
    clause = scoping.customer_visible_clause(principal)
    if clause is not None:
        conditions.append(clause)
    if flt.brand_id is not None:
        scoping.require_brand(principal, flt.brand_id)
        conditions.append(exists(select(CustomerBrand.customer_id).where(
            CustomerBrand.tenant_id == Customer.tenant_id, CustomerBrand.customer_id == Customer.id,
            CustomerBrand.brand_id == flt.brand_id)))
    if flt.search:
        conditions += search_conditions(flt.search)
    for tag_id in flt.tag_ids:
        conditions.append(exists(select(CustomerTag.customer_id).where(
            CustomerTag.tenant_id == Customer.tenant_id, CustomerTag.customer_id == Customer.id,
            CustomerTag.tag_id == tag_id)))
    conditions += _insight_conditions(principal, flt)
    key = Customer.updated_at if order is CustomerOrder.UPDATED_AT_DESC else Customer.created_at
    descending = order is not CustomerOrder.CREATED_AT_ASC
    after, ordering = page.keyset([(key, descending), (Customer.id, descending)], datetime, uuid.UUID)
    return select(Customer).where(*conditions, *after).order_by(*ordering).limit(page.size + 1)


def _insight_conditions(principal: Principal, flt: CustomerFilter) -> list[Any]:
    """The filter panel's conditions (docs/customers.md, "Listing"): segments, risk and value
    ranges, consents, place, account manager."""
    v = Validator()
    out: list[Any] = []
    if flt.reads_profile and flt.brand_id is None and not scoping.sees_every_brand(principal):
        v.add("brandId", "risk and value filters read a brand's profile: name the brand", ErrorCode.REQUIRED)
    if flt.consented_channels and flt.brand_id is None:
        v.add("brandId", "consent is given to a brand: name the brand", ErrorCode.REQUIRED)
    for name, low, high in (("churnRisk", flt.churn_risk_min, flt.churn_risk_max),
                            ("lifetimeValueCents", flt.lifetime_value_min_cents, flt.lifetime_value_max_cents)):
        if low is not None and high is not None and low > high:
            v.add(f"{name}Min", "the minimum is greater than the maximum")
    v.check()
    if flt.segment_ids:
        m = aliased(SegmentMembership, name="fm")
        out.append(exists(select(m.customer_id).where(
            m.tenant_id == Customer.tenant_id, m.customer_id == Customer.id, m.segment_id.in_(flt.segment_ids),
            m.exited_at.is_(None))))
    if flt.reads_profile:
        p = aliased(CustomerProfile, name="fp")
        brand = flt.brand_id or ALL_BRANDS
        profile = select(p).where(p.tenant_id == Customer.tenant_id, p.customer_id == Customer.id,
                                  p.brand_id == brand)
        risk = func.coalesce(Customer.risk_override, profile.with_only_columns(p.churn_risk).scalar_subquery(), 100)
        value = func.coalesce(Customer.value_override_cents,
                              profile.with_only_columns(p.total_order_value_cents).scalar_subquery(), 0)
        for col, low, high in ((risk, flt.churn_risk_min, flt.churn_risk_max),
                               (value, flt.lifetime_value_min_cents, flt.lifetime_value_max_cents)):
            if low is not None:
                out.append(col >= low)
            if high is not None:
                out.append(col <= high)
    for channel in flt.consented_channels:
        out.append(exists(select(Consent.customer_id).where(
            Consent.tenant_id == Customer.tenant_id, Consent.customer_id == Customer.id,
            Consent.brand_id == flt.brand_id, Consent.channel == channel, Consent.granted.is_(True))))
    if flt.city:
        out.append(func.lower(Customer.city) == flt.city.strip().lower())
    if flt.country:
        out.append(Customer.country == flt.country.strip().upper())
    if flt.account_manager_id is not None:
        out.append(Customer.account_manager_id == flt.account_manager_id)
    return out


async def _check_segments(s: AsyncSession, principal: Principal, segment_ids: tuple[uuid.UUID, ...]) -> None:
    """Segments named in a filter exist and are of brands the principal may use."""
    if len(segment_ids) > 20:
        raise DomainError("at most 20 segments", field="segmentIds", code=ErrorCode.LIMIT_EXCEEDED)
    brands = dict((await s.execute(select(Segment.id, Segment.brand_id).where(
        Segment.tenant_id == principal.tenant_id, Segment.id.in_(segment_ids)))).all())
    for i, sid in enumerate(segment_ids):
        if sid not in brands or not scoping.may_use_brand(principal, brands[sid]):
            raise NotFound("segment not found", field=f"segmentIds[{i}]")


async def brand_links(principal: Principal, customer_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[CustomerBrand]]:
    """Each customer's brand relationships that the principal may see (for a dataloader)."""
    authorize(principal, Action.CUSTOMER_READ)
    stmt = select(CustomerBrand).where(CustomerBrand.tenant_id == principal.tenant_id,
                                       CustomerBrand.customer_id.in_(set(customer_ids)))
    stmt = scoping.in_brands(stmt, principal, CustomerBrand.brand_id)
    out: dict[uuid.UUID, list[CustomerBrand]] = {}
    async with tenant_session(principal.tenant_id) as s:
        for link in await s.scalars(stmt.order_by(CustomerBrand.first_seen_at)):
            out.setdefault(link.customer_id, []).append(link)
    return out
