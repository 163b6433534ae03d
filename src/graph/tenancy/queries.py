from __future__ import annotations

import strawberry

from domain.tenancy import api_keys, brands, members, scoping
from graph.core import ids
from graph.core.context import Info
from graph.core.nodes import load_node
from graph.tenancy.types import ApiKey, Brand, Member, Principal, Viewer


@strawberry.type
class TenancyQuery:
    @strawberry.field(description="The caller, their tenant, role, permissions and brands.")
    def viewer(self, info: Info) -> Viewer:
        p = info.context.principal
        return Viewer(
            principal=Principal(kind=p.kind, id=str(p.tenant_facing_id), label=p.label),
            member_id=strawberry.ID(str(ids.encode("Member", p.member_id))) if p.member_id else None,
            role=p.role,
            permissions=[] if p.invited else sorted(p.actions, key=lambda a: a.value),
            all_brands=scoping.sees_every_brand(p),
            invitation_pending=p.invited,
            active_brand_id=info.context.brand_id,
        )

    @strawberry.field(description="Brands the caller may use.")
    async def brands(self, info: Info, include_archived: bool = False) -> list[Brand]:
        found = await brands.list_brands(info.context.principal, include_archived=include_archived)
        return [Brand.from_model(b) for b in found]

    @strawberry.field(description="One brand; null when it does not exist or the caller has no grant on it.")
    async def brand(self, info: Info, id: strawberry.relay.GlobalID) -> Brand | None:
        return await load_node(id, "Brand", info.context.loaders.brand, Brand.from_model)

    @strawberry.field(description="Members of the tenant (owners and admins).")
    async def members(self, info: Info) -> list[Member]:
        return [Member.from_model(m) for m in await members.list_members(info.context.principal)]

    @strawberry.field(description="API keys of the tenant (owners and admins).")
    async def api_keys(self, info: Info, include_revoked: bool = False) -> list[ApiKey]:
        found = await api_keys.list_api_keys(info.context.principal, include_revoked=include_revoked)
        return [ApiKey.from_model(k) for k in found]
