"""GraphQL types of customers: the customer, profile, tags, notes, consent, brand links."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from domain.customers import models, notes
from domain.customers.consent import Channel as DomainChannel
from domain.customers.notes import NoteType as DomainNoteType
from domain.customers.notes import NoteVisibility as DomainNoteVisibility
from domain.customers.overrides import ContactMethod as DomainContactMethod
from domain.customers.tags import list_tags
from domain.pagination import Page, PageRequest
from domain.profiles import service as profiles
from domain.profiles.models import CustomerProfile as ProfileModel
from domain.timeline import service as timeline
from graph.commerce.types import Order
from graph.core import ids
from graph.core.batch import now, wanted
from graph.core.brands import brand_or_active
from graph.core.connection import Connection, TotalCount, page_request
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.core.scalars import BigInt
from graph.customers import dataloaders
from graph.customers.enums import Channel, NoteType, NoteVisibility
from graph.tenancy.types import Brand, brand_of
from graph.timeline.types import TimelineEvent, TimelineEventKind, from_entry


async def _tags_by_id(info: Info, node_ids: list[str]) -> dict:
    return {str(t.id): t for t in await list_tags(info.context.principal)}


@strawberry.type(description="A tenant-wide label on customers.")
class Tag(relay.Node):
    id: relay.NodeID[str]
    name: str
    color: str
    description: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, t: models.Tag) -> Tag:
        return cls(id=str(t.id), name=t.name, color=t.color, description=t.description, created_at=t.created_at)

    resolve_nodes = node_resolver(_tags_by_id, parse=str)


@strawberry.type
class Note(relay.Node):
    id: relay.NodeID[str]
    body: str
    type: NoteType
    visibility: NoteVisibility
    author: str | None
    created_at: datetime
    brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    def from_model(cls, n: models.Note) -> Note:
        return cls(id=str(n.id), body=n.body, type=DomainNoteType(n.type), visibility=DomainNoteVisibility(n.visibility),
                   author=n.author_label, created_at=n.created_at, brand_id=n.brand_id)

    resolve_nodes = node_resolver(lambda info, keys: notes.notes_by_ids(info.context.principal, keys))


@strawberry.type(description="A page of a customer's notes.")
class NoteConnection(Connection[Note], TotalCount):
    pass


@strawberry.type(description="Whether a brand may reach the customer on a channel.")
class Consent:
    channel: Channel
    granted: bool
    granted_at: datetime | None
    revoked_at: datetime | None
    source: str
    updated_at: datetime
    brand_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)

    @classmethod
    def from_model(cls, c: models.Consent) -> Consent:
        return cls(channel=DomainChannel(c.channel), granted=c.granted, granted_at=c.granted_at,
                   revoked_at=c.revoked_at, source=c.source, updated_at=c.updated_at, brand_id=c.brand_id)


@strawberry.type(description="A brand that knows the customer: since when and how.")
class CustomerBrand:
    first_seen_at: datetime
    source: str
    brand_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def brand(self, info: Info) -> Brand | None:
        return await brand_of(info, self.brand_id)


@strawberry.type(description="A genre or type and its share of what the customer bought (0 to 1).")
class WeightedName:
    name: str
    weight: float


@strawberry.type(description="What a customer likes, from what they bought and watch; docs/profiles.md, Preferences.")
class CustomerPreferences:
    genres: list[WeightedName] = strawberry.field(description="The five heaviest genres, heaviest first.")
    types: list[WeightedName] = strawberry.field(description="The five heaviest types, heaviest first.")
    creators: list[str] = strawberry.field(description="Creators of products bought (at most 50).")
    price_low_cents: BigInt | None = strawberry.field(description="25th percentile of the unit prices paid.")
    price_high_cents: BigInt | None = strawberry.field(description="75th percentile of the unit prices paid.")
    preferred_days: list[int] = strawberry.field(description="ISO weekdays (1 = Monday) with the most orders.")
    preferred_hours: list[int] = strawberry.field(description="UTC hours with the most orders.")
    city: str | None = strawberry.field(description="Declared on the customer, else the most bought product city.")
    country: str | None
    watchlist_product_ids: list[relay.GlobalID] = strawberry.field(description="Products on the watchlist.")

    @classmethod
    def from_model(cls, p: ProfileModel | None) -> CustomerPreferences:
        if p is None:
            return cls(genres=[], types=[], creators=[], price_low_cents=None, price_high_cents=None,
                       preferred_days=[], preferred_hours=[], city=None, country=None, watchlist_product_ids=[])

        def weighted(weights: dict, order: list[str]) -> list[WeightedName]:
            return [WeightedName(name=n, weight=float(weights.get(n, 0))) for n in order or []]

        return cls(genres=weighted(p.genre_weights or {}, p.genres), types=weighted(p.type_weights or {}, p.types),
                   creators=list(p.creators or []), price_low_cents=p.price_low_cents,
                   price_high_cents=p.price_high_cents, preferred_days=list(p.preferred_days or []),
                   preferred_hours=list(p.preferred_hours or []), city=p.city, country=p.country,
                   watchlist_product_ids=[ids.encode("Product", i) for i in p.watchlist or []])


@strawberry.type(description="Purchase and engagement metrics; docs/profiles.md has the formulas.")
class CustomerProfile:
    total_order_value_cents: BigInt
    total_order_count: int
    average_order_value_cents: BigInt
    first_order_at: datetime | None
    last_order_at: datetime | None
    purchase_frequency: float = strawberry.field(description="Orders per month since the first order.")
    engagement_score: int = strawberry.field(description="0 to 100.")
    churn_risk: int = strawberry.field(description="0 to 100.")
    orders_last_365_days: int
    events_last_30_days: int
    computed_at: datetime | None
    preferences: CustomerPreferences

    @classmethod
    def from_model(cls, p: ProfileModel | None) -> CustomerProfile:
        if p is None:  # no orders and no events: zero metrics, full churn risk (as segment rules read it)
            return cls(total_order_value_cents=0, total_order_count=0, average_order_value_cents=0,
                       first_order_at=None, last_order_at=None, purchase_frequency=0.0, engagement_score=0,
                       churn_risk=100, orders_last_365_days=0, events_last_30_days=0, computed_at=None,
                       preferences=CustomerPreferences.from_model(None))
        return cls(total_order_value_cents=p.total_order_value_cents, total_order_count=p.total_order_count,
                   average_order_value_cents=p.average_order_value_cents, first_order_at=p.first_order_at,
                   last_order_at=p.last_order_at, purchase_frequency=float(p.purchase_frequency or Decimal(0)),
                   engagement_score=p.engagement_score, churn_risk=p.churn_risk,
                   orders_last_365_days=p.orders_last_365d, events_last_30_days=p.events_last_30d,
                   computed_at=p.computed_at, preferences=CustomerPreferences.from_model(p))


ContactMethod = strawberry.enum(DomainContactMethod, name="ContactMethod")


@strawberry.type(description="Churn risk (0-100): the computed one (the profile's) unless an owner or admin "
                             "overrode it; docs/customers.md, Overrides.")
class OverriddenScore:
    value: int = strawberry.field(description="The override when set, else the computed value.")
    computed: int
    override: int | None
    reason: str | None
    set_by: str | None
    set_at: datetime | None


@strawberry.type(description="Lifetime value in cents: the profile's total order value unless overridden.")
class OverriddenAmount:
    value_cents: BigInt = strawberry.field(description="The override when set, else the computed value.")
    computed_cents: BigInt
    override_cents: BigInt | None
    reason: str | None
    set_by: str | None
    set_at: datetime | None


@strawberry.type(description="A person who buys from, subscribes to or writes to the tenant's brands.")
class Customer(relay.Node):
    id: relay.NodeID[str]
    external_id: str | None
    email: str | None
    phone: str | None
    has_push_token: bool = strawberry.field(description="Whether a device token for push messages is on file.")
    first_name: str | None
    last_name: str | None
    company: str | None
    buyer_type: str | None
    city: str | None
    state: str | None
    country: str | None
    timezone: str | None
    locale: str | None
    birth_date: date | None
    attributes: JSON
    created_at: datetime
    updated_at: datetime

    name: str | None
    preferred_contact_method: ContactMethod | None
    pk: strawberry.Private[uuid.UUID]
    overrides: strawberry.Private[models.Customer | None] = None

    @strawberry.field(description="The member who looks after this customer (a Member's global id).")
    def account_manager_id(self) -> relay.GlobalID | None:
        c = self.overrides
        return ids.encode("Member", c.account_manager_id) if c is not None and c.account_manager_id else None

    def _readable_profile(self, info: Info, convert):
        readable, brand = profiles.readable_brand(info.context.principal, None, info.context.brand_id)
        if not readable:
            return convert(None)
        return now(info.context.loaders.profile, (self.pk, brand), convert)

    @strawberry.field(description="Churn risk with its override (the profile the caller reads: tenant-wide, or the "
                                  "active brand's for a brand-limited caller).")
    def churn_risk(self, info: Info) -> OverriddenScore:
        c = self.overrides

        def build(p: ProfileModel | None) -> OverriddenScore:
            computed = p.churn_risk if p is not None else 100
            override = c.risk_override if c is not None else None
            return OverriddenScore(value=override if override is not None else computed, computed=computed,
                                   override=override, reason=c.risk_override_reason if c else None,
                                   set_by=c.risk_override_by if c else None, set_at=c.risk_override_at if c else None)

        return self._readable_profile(info, build)

    @strawberry.field(description="Lifetime value with its override (the profile's total order value).")
    def lifetime_value(self, info: Info) -> OverriddenAmount:
        c = self.overrides

        def build(p: ProfileModel | None) -> OverriddenAmount:
            computed = p.total_order_value_cents if p is not None else 0
            override = c.value_override_cents if c is not None else None
            return OverriddenAmount(value_cents=override if override is not None else computed,
                                    computed_cents=computed, override_cents=override,
                                    reason=c.value_override_reason if c else None,
                                    set_by=c.value_override_by if c else None,
                                    set_at=c.value_override_at if c else None)

        return self._readable_profile(info, build)

    @strawberry.field(description="Tenant-wide metrics, or one brand's with brandId. A principal limited to some "
                      "brands gets the active brand's (X-Brand-Id) or its only brand's; with several, pass brandId.")
    def profile(self, info: Info, brand_id: relay.GlobalID | None = None) -> CustomerProfile:
        readable, brand = profiles.readable_brand(info.context.principal, ids.optional(brand_id, "Brand", "brandId"),
                                                  info.context.brand_id)
        if not readable:
            return CustomerProfile.from_model(None)
        return now(info.context.loaders.profile, (self.pk, brand), CustomerProfile.from_model)

    @strawberry.field
    def tags(self, info: Info) -> list[Tag]:
        return now(info.context.loaders.customer_tags, self.pk, _tags)

    @strawberry.field
    def consents(self, info: Info, brand_id: relay.GlobalID | None = None) -> list[Consent]:
        brand = brand_or_active(info, brand_id)
        return now(info.context.loaders.customer_consents, self.pk,
                   lambda rows: [Consent.from_model(c) for c in rows if brand is None or c.brand_id == brand])

    @strawberry.field(description="Newest first.")
    def notes(self, info: Info, first: int | None = 20, after: str | None = None, last: int | None = None,
              before: str | None = None) -> NoteConnection:
        return now(info.context.loaders.customer_notes, (self.pk, page_request(info, first, after, last, before)),
                   lambda page: NoteConnection.of(page, Note.from_model))

    @strawberry.field(description="The brands that know this customer (those the caller may see).")
    def brands(self, info: Info) -> list[CustomerBrand]:
        return now(info.context.loaders.customer_brands, self.pk, _brand_links)

    @strawberry.field
    def last_order(self, info: Info, brand_id: relay.GlobalID | None = None) -> Order | None:
        key_brand = brand_or_active(info, brand_id)
        return now(info.context.loaders.last_order, (self.pk, key_brand),
                   lambda found: Order.from_model(found) if found else None)

    @strawberry.field(description="Newest first.")
    async def orders(self, info: Info, first: int | None = 20, after: str | None = None,
                     brand_id: relay.GlobalID | None = None, last: int | None = None,
                     before: str | None = None) -> Connection[Order]:
        brand = brand_or_active(info, brand_id)
        selected = frozenset(wanted(info, "edges", "node").keys() & {"items"})
        page = await info.context.loaders.customer_orders.load(
            (self.pk, brand, page_request(info, first, after, last, before), selected))
        return Connection.of(page, Order.from_model)

    @strawberry.field(description="Everything that happened to the customer, newest first.")
    async def timeline(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        types: list[TimelineEventKind] | None = None,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
        brand_id: relay.GlobalID | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[TimelineEvent]:
        wanted_brand = brand_or_active(info, brand_id)
        flt = timeline.TimelineFilter(kinds=tuple(types or ()), occurred_from=from_, occurred_to=to,
                                      brand_id=wanted_brand)
        page = await info.context.loaders.timeline.load((self.pk, flt, page_request(info, first, after, last, before)))
        return Connection.of(page, from_entry)

    @classmethod
    def from_model(cls, c: models.Customer) -> Customer:
        return cls(id=str(c.id), external_id=c.external_id, email=c.email, phone=c.phone, has_push_token=bool(c.push_token),
                   first_name=c.first_name,
                   last_name=c.last_name, company=c.company, buyer_type=c.buyer_type, city=c.city, state=c.state,
                   country=c.country, timezone=c.timezone, locale=c.locale, birth_date=c.birth_date,
                   attributes=c.attributes or {}, created_at=c.created_at, updated_at=c.updated_at,
                   name=" ".join(p for p in (c.first_name, c.last_name) if p) or None, pk=c.id,
                   preferred_contact_method=(DomainContactMethod(c.preferred_contact_method)
                                             if c.preferred_contact_method else None), overrides=c)

    resolve_nodes = node_resolver(lambda info, keys: info.context.loaders.customer.load_many(keys))


def customer_or_none(found: models.Customer | None) -> Customer | None:
    return Customer.from_model(found) if found else None


def _tags(rows: list[models.Tag]) -> list[Tag]:
    return [Tag.from_model(t) for t in rows]


def _brand_links(rows: list[models.CustomerBrand]) -> list[CustomerBrand]:
    return [CustomerBrand(first_seen_at=r.first_seen_at, source=r.source, brand_id=r.brand_id) for r in rows]


def _int(value: object) -> int | None:
    """A selected field's argument as a number (a literal arrives as its text)."""
    return None if value is None else int(str(value))


async def customer_page(info: Info, page: Page[models.Customer]) -> Connection[Customer]:
    """A page of customers, with the lists and profiles its nodes select loaded: one batch each,
    and no awaitable per node for them. A field selected with a brandId argument (a profile or last
    order of a named brand) is loaded by its nodes instead (one batch)."""
    selected = wanted(info, "edges", "node")
    customer_ids = [c.id for c in page.items]
    keyed: dict[str, list[tuple]] = {"profile": [], "last_order": []}
    if any(not args.get("brandId") for args in selected.get("profile", ())):
        readable, brand = profiles.readable_brand(info.context.principal, None, info.context.brand_id)
        if readable:
            keyed["profile"] = [(c, brand) for c in customer_ids]
    if any(not args.get("brandId") for args in selected.get("lastOrder", ())):
        keyed["last_order"] = [(c, info.context.brand_id) for c in customer_ids]
    requests = {PageRequest.of(_int(a.get("first")), a.get("after"), _int(a.get("last")), a.get("before"))
                for a in selected.get("notes", ())}
    keyed["customer_notes"] = [(c, r) for r in requests for c in customer_ids]
    await dataloaders.prefetch(info.context.loaders, customer_ids, selected.keys(), keyed)
    return Connection.of(page, Customer.from_model)
