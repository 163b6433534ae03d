"""GraphQL types of the tenancy area, built from domain objects with ``from_model``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from domain.campaigns.models import Status
from domain.plans import api_usage, quotas
from domain.tenancy import models
from domain.tenancy.api_keys import list_api_keys
from domain.tenancy.brands import list_brands
from domain.tenancy.members import Member as MemberModel
from domain.tenancy.members import MemberStatus as DomainMemberStatus
from domain.tenancy.policies import Action as DomainAction
from domain.tenancy.policies import PrincipalKind as DomainPrincipalKind
from domain.tenancy.policies import Role as DomainRole
from domain.tenancy.tenants import get_tenant
from graph.core.connection import page_request
from graph.core.context import Info
from graph.core.nodes import node_resolver
from graph.plans.types import ApiUsageHour, TenantPlan

Role = strawberry.enum(DomainRole, name="Role", description="What a member or API key may do.")
PrincipalKind = strawberry.enum(DomainPrincipalKind, name="PrincipalKind")
MemberStatus = strawberry.enum(
    DomainMemberStatus, name="MemberStatus",
    description="INVITED until the person accepts (an invitation grants nothing); then ACTIVE.",
)
Permission = strawberry.enum(
    DomainAction, name="Permission", description="An action the policy allows or refuses."
)


@strawberry.type(description="Flags that switch product capabilities on for a tenant.")
class TenantFeatures:
    copilot_enabled: bool


async def _tenant_by_id(info: Info, node_ids: list[str]) -> dict:
    tenant = await get_tenant(info.context.principal)
    return {str(tenant.id): tenant}


@strawberry.type(description="A business: it owns brands, members, customers and everything else.")
class Tenant(relay.Node):
    id: relay.NodeID[str]
    slug: str
    name: str
    features: TenantFeatures
    created_at: datetime

    @strawberry.field(description="The tenant's plan: its API limits, and each quota's limit, use and reset.")
    async def plan(self, info: Info) -> TenantPlan:
        return TenantPlan.of(*await quotas.usage(info.context.principal))

    @strawberry.field(description="The API's use by consumer (client app, API key or member) and hour, oldest "
                                  "first, in [from, to) (at most 31 days and 500 rows; owners and admins who "
                                  "see every brand).")
    async def api_usage(self, info: Info, from_: Annotated[datetime, strawberry.argument(name="from")],
                        to: datetime) -> list[ApiUsageHour]:
        return [ApiUsageHour.from_row(r) for r in await api_usage.usage(info.context.principal, from_, to)]

    @classmethod
    def from_model(cls, t: models.Tenant) -> Tenant:
        return cls(
            id=str(t.id), slug=t.slug, name=t.name,
            features=TenantFeatures(copilot_enabled=t.copilot_enabled), created_at=t.created_at,
        )

    resolve_nodes = node_resolver(_tenant_by_id, parse=str)


@strawberry.type(description="Who messages appear to come from.")
class SendingIdentity:
    from_name: str | None
    from_email: str | None
    reply_to: str | None
    sms_sender: str | None


@strawberry.type(description="How the brand speaks; the copilot drafts in this voice.")
class BrandVoice:
    tone: str | None
    style_guide: str | None
    words_to_use: list[str]
    words_to_avoid: list[str]
    sample_copy: str | None


@strawberry.type(description="A brand of the tenant. Segments, campaigns and conversations belong to one.")
class Brand(relay.Node):
    id: relay.NodeID[str]
    name: str
    slug: str
    timezone: str
    sending_identity: SendingIdentity
    voice: BrandVoice
    segment_refresh_hours: int = strawberry.field(description=(
        "Every rule-based segment of the brand is refreshed whole at least this often, behind live evaluation."))
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @strawberry.field(description="The brand's campaigns, newest first.")
    async def campaigns(
        self, info: Info, first: int | None = 20, after: str | None = None,
        status: list[Annotated["CampaignStatus", strawberry.lazy("graph.campaigns.types")]] | None = None,
        last: int | None = None, before: str | None = None,
    ) -> Annotated["CampaignConnection", strawberry.lazy("graph.campaigns.types")]:
        # the GraphQL types of two areas refer to each other: imported when resolved
        from graph.campaigns.types import brand_campaigns

        statuses = [Status(s.value) for s in status] if status else None
        return await brand_campaigns(info, uuid.UUID(self.id), statuses, page_request(info, first, after, last, before))

    @classmethod
    def from_model(cls, b: models.Brand) -> Brand:
        return cls(
            id=str(b.id),
            name=b.name,
            slug=b.slug,
            timezone=b.timezone,
            segment_refresh_hours=b.segment_refresh_hours,
            sending_identity=SendingIdentity(
                from_name=b.from_name, from_email=b.from_email, reply_to=b.reply_to,
                sms_sender=b.sms_sender,
            ),
            voice=BrandVoice(
                tone=b.voice_tone, style_guide=b.voice_style_guide,
                words_to_use=list(b.voice_words_to_use or []),
                words_to_avoid=list(b.voice_words_to_avoid or []),
                sample_copy=b.voice_sample_copy,
            ),
            archived_at=b.archived_at,
            created_at=b.created_at,
            updated_at=b.updated_at,
        )

    resolve_nodes = node_resolver(lambda info, keys: info.context.loaders.brand.load_many(keys))


async def brand_of(info: Info, brand_id: uuid.UUID | None) -> Brand | None:
    """The Brand behind an optional brand id, through the request's dataloader."""
    if brand_id is None:
        return None
    found = await info.context.loaders.brand.load(brand_id)
    return Brand.from_model(found) if found else None


async def load_brands(info: Info, ids: Iterable[uuid.UUID]) -> list[Brand]:
    found = await info.context.loaders.brand.load_many(list(ids))
    return [Brand.from_model(b) for b in found if b is not None]


@strawberry.type(description="A person's place in the tenant: role and brands. The id, e-mail and name are "
                             "this tenant's own: the e-mail as it was typed, the name as it was given.")
class Member(relay.Node):
    id: relay.NodeID[str]
    email: str
    name: str | None
    role: Role
    status: MemberStatus
    accepted_at: datetime | None = strawberry.field(description="When the person accepted the invitation.")
    all_brands: bool = strawberry.field(description="True when the member sees every brand.")
    created_at: datetime
    brand_ids: strawberry.Private[frozenset[uuid.UUID]]

    @strawberry.field(description="The brands granted to a member limited to some brands.")
    async def brands(self, info: Info) -> list[Brand]:
        return await load_brands(info, sorted(self.brand_ids))

    @classmethod
    def from_model(cls, m: MemberModel) -> Member:
        return cls(
            id=str(m.id), email=m.email, name=m.name, role=m.role, status=m.status,
            accepted_at=m.accepted_at, all_brands=m.all_brands or m.role.sees_every_brand,
            created_at=m.created_at, brand_ids=m.brand_ids,
        )

    resolve_nodes = node_resolver(lambda info, keys: info.context.loaders.member.load_many(keys))


async def _api_keys_by_id(info: Info, node_ids: list[str]) -> dict:
    if not info.context.principal.may(DomainAction.API_KEY_MANAGE):
        return {}
    return {str(k.id): k for k in await list_api_keys(info.context.principal, include_revoked=True)}


@strawberry.type(description="A credential for an integration. The secret is shown once, at creation.")
class ApiKey(relay.Node):
    id: relay.NodeID[str]
    name: str
    prefix: str = strawberry.field(description="The key's first characters, to recognise it.")
    role: Role
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    brand_ids: strawberry.Private[list[uuid.UUID] | None]

    @strawberry.field(description="The brands the key is limited to; null when it sees every brand.")
    async def brands(self, info: Info) -> list[Brand] | None:
        if self.brand_ids is None:
            return None
        return await load_brands(info, self.brand_ids)

    @classmethod
    def from_model(cls, k: models.ApiKey) -> ApiKey:
        return cls(
            id=str(k.id), name=k.name, prefix=k.prefix, role=DomainRole(k.role),
            created_by=k.created_by, created_at=k.created_at, last_used_at=k.last_used_at,
            revoked_at=k.revoked_at, brand_ids=k.brand_ids,
        )

    resolve_nodes = node_resolver(_api_keys_by_id, parse=str)


async def _principals_by_id(info: Info, keys: list[uuid.UUID]) -> dict:
    """The caller itself; members (for those who read members) and API keys (for those who
    manage them) of its tenant."""
    p = info.context.principal
    found: dict[uuid.UUID, Principal] = {}
    if p.tenant_facing_id in keys:
        found[p.tenant_facing_id] = Principal(kind=p.kind, id=str(p.tenant_facing_id), label=p.label)
    rest = [k for k in keys if k not in found]
    if rest and p.may(DomainAction.MEMBER_READ):
        for m in await info.context.loaders.member.load_many(rest):
            if m is not None:
                found[m.id] = Principal(kind=DomainPrincipalKind.USER, id=str(m.id), label=m.email)
    rest = [k for k in rest if k not in found]
    if rest and p.may(DomainAction.API_KEY_MANAGE):
        for k in await list_api_keys(p, include_revoked=True):
            if k.id in rest:
                found[k.id] = Principal(kind=DomainPrincipalKind.API_KEY, id=str(k.id), label=f"{k.name} ({k.prefix})")
    return found


@strawberry.type(description="The caller: a user signed in with a token, or an API key.")
class Principal(relay.Node):
    kind: PrincipalKind
    id: relay.NodeID[str] = strawberry.field(
        description="A global id over a person's member id in this tenant (as AuditEntry.principalId shows it) "
                    "or an API key's id.")
    label: str

    @classmethod
    def from_model(cls, p: Principal) -> Principal:
        return p

    resolve_nodes = node_resolver(_principals_by_id)


@strawberry.type(description="Who is calling, in which tenant, and what they may do.")
class Viewer:
    principal: Principal
    role: Role
    permissions: list[Permission]
    all_brands: bool = strawberry.field(description="True when the caller sees every brand.")
    member_id: strawberry.ID | None = strawberry.field(
        default=None, description="A person's Member id in this tenant (for assigneeId, say); null for an API key.")
    invitation_pending: bool = strawberry.field(
        default=False,
        description="True when the caller's membership is an invitation not yet accepted: "
                    "until acceptInvitation, the caller may do nothing else.",
    )
    active_brand_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def tenant(self, info: Info) -> Tenant:
        return Tenant.from_model(await get_tenant(info.context.principal))

    @strawberry.field(description="The brands the caller may use (archived ones left out).")
    async def brands(self, info: Info) -> list[Brand]:
        return [Brand.from_model(b) for b in await list_brands(info.context.principal)]

    @strawberry.field(description="The brand chosen with X-Brand-Id (or connection_init brandId).")
    async def active_brand(self, info: Info) -> Brand | None:
        if self.active_brand_id is None:
            return None
        found = await info.context.loaders.brand.load(self.active_brand_id)
        return Brand.from_model(found) if found else None
