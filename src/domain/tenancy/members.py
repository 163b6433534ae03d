"""Members: people in a tenant, their roles, and the brands they may use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import delete, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.errors import DomainError, ErrorCode, InvalidState, NotFound, Validator
from domain.models import new_id
from domain.platform.db import tenant_session
from domain.tenancy import principal_cache, scoping, validation
from domain.tenancy.models import Brand, BrandGrant, Membership
from domain.tenancy.policies import (
    Action,
    Principal,
    PrincipalKind,
    Role,
    authorize,
    authorize_role_change,
)


class MemberStatus(str, Enum):
    INVITED = "invited"  # added by the tenant, not yet accepted by the person: grants nothing
    ACTIVE = "active"


@dataclass(frozen=True)
class Member:
    """A membership as its tenant knows it. ``id`` is the member id the API shows; ``email``
    and ``name`` are what the tenant typed and gave; ``user_id`` (the global identity) never
    leaves the domain."""

    id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str | None
    role: Role
    status: MemberStatus
    all_brands: bool
    brand_ids: frozenset[uuid.UUID]
    created_at: datetime
    accepted_at: datetime | None

    @property
    def invited(self) -> bool:
        return self.status is MemberStatus.INVITED

    @property
    def effective_brand_ids(self) -> frozenset[uuid.UUID] | None:
        """None when the member sees every brand."""
        return None if self.role.sees_every_brand or self.all_brands else self.brand_ids

    def summary(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "role": self.role.value,
            "status": self.status.value,
            "all_brands": self.all_brands,
            "brand_ids": sorted(str(b) for b in self.brand_ids),
        }


def parse_role(value: str, field: str = "role") -> Role:
    try:
        return Role(value)
    except ValueError:
        raise DomainError(
            f"role must be one of {', '.join(r.value for r in Role)}", field=field
        ) from None


async def _members(s: AsyncSession, tenant_id: uuid.UUID, member_ids: list[uuid.UUID] | None) -> list[Member]:
    stmt = select(Membership).where(Membership.tenant_id == tenant_id).order_by(func.lower(Membership.email))
    if member_ids is not None:
        stmt = stmt.where(Membership.id.in_(member_ids))
    rows = (await s.scalars(stmt)).all()
    if not rows:
        return []
    grants = await s.execute(
        select(BrandGrant.user_id, BrandGrant.brand_id).where(
            BrandGrant.tenant_id == tenant_id,
            BrandGrant.user_id.in_([m.user_id for m in rows]),
        )
    )
    by_user: dict[uuid.UUID, set[uuid.UUID]] = {}
    for user_id, brand_id in grants:
        by_user.setdefault(user_id, set()).add(brand_id)
    return [
        Member(
            id=m.id,
            user_id=m.user_id,
            email=m.email,
            name=m.name,
            role=Role(m.role),
            status=MemberStatus(m.status),
            all_brands=m.all_brands,
            brand_ids=frozenset(by_user.get(m.user_id, ())),
            created_at=m.created_at,
            accepted_at=m.accepted_at,
        )
        for m in rows
    ]


async def _member(s: AsyncSession, tenant_id: uuid.UUID, member_id: uuid.UUID, *, lock: bool = False) -> Member:
    if lock:
        await s.execute(
            select(Membership.id)
            .where(Membership.tenant_id == tenant_id, Membership.id == member_id)
            .with_for_update()
        )
    found = await _members(s, tenant_id, [member_id])
    if not found:
        raise NotFound("no such member", field="userId")
    return found[0]


async def _check_brands(s: AsyncSession, principal: Principal, brand_ids: list[uuid.UUID], field: str) -> None:
    if not brand_ids:
        return
    existing = set(
        await s.scalars(
            select(Brand.id).where(Brand.tenant_id == principal.tenant_id, Brand.id.in_(brand_ids))
        )
    )
    for i, brand_id in enumerate(brand_ids):
        if brand_id not in existing or not scoping.may_use_brand(principal, brand_id):
            raise NotFound("brand not found", field=f"{field}[{i}]" if field.endswith("s") else field)


async def _owner_count(s: AsyncSession, tenant_id: uuid.UUID) -> int:
    return await s.scalar(
        select(func.count()).where(Membership.tenant_id == tenant_id, Membership.role == Role.OWNER.value,
                                   Membership.status == MemberStatus.ACTIVE.value)
    ) or 0


async def list_members(principal: Principal) -> list[Member]:
    authorize(principal, Action.MEMBER_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await _members(s, principal.tenant_id, None)


async def members_by_ids(principal: Principal, member_ids: list[uuid.UUID]) -> dict[uuid.UUID, Member]:
    authorize(principal, Action.MEMBER_READ)
    async with tenant_session(principal.tenant_id) as s:
        return {m.id: m for m in await _members(s, principal.tenant_id, list(set(member_ids)))}


async def add_member(
    principal: Principal,
    email: str,
    role: str,
    *,
    name: str | None = None,
    brand_ids: list[uuid.UUID] | None = None,
) -> Member:
    """Invite a person by e-mail. ``brand_ids`` limits them to those brands; without it they
    see every brand. The membership is ``invited`` and grants nothing until the person accepts
    it (``accept_invitation``). The answer is built from what the caller gave alone (the
    e-mail as typed, the name, a fresh member id), whether the address is known elsewhere or
    not, and the statements run are the same in both cases."""
    v = Validator()
    email = validation.email(v, "email", email, required=True)
    name = validation.text(v, "name", name, required=False, max_len=200)
    v.check()
    new_role = parse_role(role)
    authorize_role_change(principal, None, new_role)
    async with tenant_session(principal.tenant_id) as s:
        await _check_brands(s, principal, brand_ids or [], "brandIds")
        member_id = await _insert_membership(s, principal.tenant_id, email, new_role, name=name,
                                             brand_ids=brand_ids, status=MemberStatus.INVITED)
        if member_id is None:
            raise DomainError(f"{email} is already a member or invited", field="email", code=ErrorCode.DUPLICATE)
        member = await _member(s, principal.tenant_id, member_id)
        audit.record(s, principal, "member.add", "Member", member_id, summary={"after": member.summary()})
    return member


async def _insert_membership(
    s: AsyncSession, tenant_id: uuid.UUID, email: str, role: Role, *, name: str | None,
    brand_ids: list[uuid.UUID] | None, status: MemberStatus, user_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """A new membership's id (fresh and random, never the user id: a person's member ids differ
    from tenant to tenant), or None when the person already has one in this tenant."""
    if user_id is None:
        user_id = await s.scalar(text("select bg_ensure_user(:email)"), {"email": email})
    inserted = await s.execute(
        insert(Membership)
        .values(
            tenant_id=tenant_id,
            user_id=user_id,
            id=new_id(),
            email=email,
            name=name,
            role=role.value,
            all_brands=brand_ids is None,
            status=status.value,
            accepted_at=func.now() if status is MemberStatus.ACTIVE else None,
        )
        .on_conflict_do_nothing()
        .returning(Membership.id)
    )
    member_id = inserted.scalar()
    if member_id is not None:
        for brand_id in set(brand_ids or []):
            s.add(BrandGrant(tenant_id=tenant_id, user_id=user_id, brand_id=brand_id))
        await s.flush()
    return member_id


async def accept_invitation(principal: Principal) -> Member:
    """The invited person, signed in to the tenant, accepts: the membership becomes active
    and its role and brands apply from the next request."""
    if principal.kind is not PrincipalKind.USER or not principal.invited:
        raise InvalidState("there is no invitation to accept", field=None)
    async with tenant_session(principal.tenant_id) as s:
        member_id = await s.scalar(
            Membership.__table__.update()
            .where(Membership.tenant_id == principal.tenant_id, Membership.user_id == principal.id,
                   Membership.status == MemberStatus.INVITED.value)
            .values(status=MemberStatus.ACTIVE.value, accepted_at=func.now(), updated_at=func.now())
            .returning(Membership.id)
        )
        if member_id is None:
            raise InvalidState("there is no invitation to accept", field=None)
        principal_cache.invalidate(s, principal.tenant_id)
        member = await _member(s, principal.tenant_id, member_id)
        audit.record(s, principal, "member.accept", "Member", member_id,
                     summary={"after": member.summary()})
    return member


async def change_member_role(principal: Principal, member_id: uuid.UUID, role: str) -> Member:
    new_role = parse_role(role)
    authorize(principal, Action.MEMBER_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        before = await _member(s, principal.tenant_id, member_id, lock=True)
        user_id = before.user_id
        authorize_role_change(principal, before.role, new_role)
        if (before.role is Role.OWNER and new_role is not Role.OWNER and before.status is MemberStatus.ACTIVE
                and await _owner_count(s, principal.tenant_id) <= 1):
            raise InvalidState("a tenant keeps at least one owner", field="role")
        await s.execute(
            Membership.__table__.update()
            .where(Membership.tenant_id == principal.tenant_id, Membership.id == member_id)
            .values(role=new_role.value, updated_at=func.now())
        )
        principal_cache.invalidate(s, principal.tenant_id)
        after = await _member(s, principal.tenant_id, member_id)
        audit.record(s, principal, "member.change_role", "Member", member_id,
                     summary=audit.diff(before.summary(), after.summary()))
    return after


async def remove_member(principal: Principal, member_id: uuid.UUID) -> Member:
    authorize(principal, Action.MEMBER_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        before = await _member(s, principal.tenant_id, member_id, lock=True)
        user_id = before.user_id
        authorize_role_change(principal, before.role, None)
        if (before.role is Role.OWNER and before.status is MemberStatus.ACTIVE
                and await _owner_count(s, principal.tenant_id) <= 1):
            raise InvalidState("a tenant keeps at least one owner", field="userId")
        await s.execute(
            delete(Membership).where(Membership.tenant_id == principal.tenant_id, Membership.id == member_id)
        )
        principal_cache.invalidate(s, principal.tenant_id)
        audit.record(s, principal, "member.remove", "Member", member_id, summary={"before": before.summary()})
    return before


async def grant_brand_access(principal: Principal, member_id: uuid.UUID, brand_id: uuid.UUID) -> Member:
    authorize(principal, Action.MEMBER_MANAGE, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        before = await _member(s, principal.tenant_id, member_id, lock=True)
        user_id = before.user_id
        authorize_role_change(principal, before.role, None)
        await _check_brands(s, principal, [brand_id], "brandId")
        await s.execute(
            insert(BrandGrant)
            .values(tenant_id=principal.tenant_id, user_id=user_id, brand_id=brand_id)
            .on_conflict_do_nothing()
        )
        principal_cache.invalidate(s, principal.tenant_id)
        after = await _member(s, principal.tenant_id, member_id)
        audit.record(s, principal, "member.grant_brand", "Member", member_id, brand_id=brand_id,
                     summary=audit.diff(before.summary(), after.summary()))
    return after


async def revoke_brand_access(principal: Principal, member_id: uuid.UUID, brand_id: uuid.UUID) -> Member:
    """Take one brand away. A member who saw every brand keeps every other current brand."""
    authorize(principal, Action.MEMBER_MANAGE, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        before = await _member(s, principal.tenant_id, member_id, lock=True)
        user_id = before.user_id
        authorize_role_change(principal, before.role, None)
        if before.role.sees_every_brand:
            raise InvalidState(f"a {before.role.value} always sees every brand; change the role first",
                               field="userId")
        await _check_brands(s, principal, [brand_id], "brandId")
        if before.all_brands:
            await s.execute(
                Membership.__table__.update()
                .where(Membership.tenant_id == principal.tenant_id, Membership.id == member_id)
                .values(all_brands=False, updated_at=func.now())
            )
            others = select(
                Brand.tenant_id, literal(user_id, Brand.id.type), Brand.id
            ).where(Brand.tenant_id == principal.tenant_id, Brand.id != brand_id, Brand.archived_at.is_(None))
            await s.execute(
                insert(BrandGrant).from_select(["tenant_id", "user_id", "brand_id"], others).on_conflict_do_nothing()
            )
        await s.execute(
            delete(BrandGrant).where(
                BrandGrant.tenant_id == principal.tenant_id,
                BrandGrant.user_id == user_id,
                BrandGrant.brand_id == brand_id,
            )
        )
        principal_cache.invalidate(s, principal.tenant_id)
        after = await _member(s, principal.tenant_id, member_id)
        audit.record(s, principal, "member.revoke_brand", "Member", member_id, brand_id=brand_id,
                     summary=audit.diff(before.summary(), after.summary()))
    return after


async def principal_for_user(tenant_id: uuid.UUID, user_id: uuid.UUID | None = None, *, email: str | None = None) -> Principal | None:
    """The principal of a member of ``tenant_id``, by user id or e-mail; None if not a member.
    An invited member's principal is ``invited``: it may do nothing but accept."""
    async with tenant_session(tenant_id) as s:
        if user_id is None:
            where = func.lower(Membership.email) == (email or "").lower()
        else:
            where = Membership.user_id == user_id
        member_id = await s.scalar(select(Membership.id).where(Membership.tenant_id == tenant_id, where))
        if member_id is None:
            return None
        found = await _members(s, tenant_id, [member_id])
    if not found:
        return None
    member = found[0]
    return Principal(
        tenant_id=tenant_id,
        kind=PrincipalKind.USER,
        id=member.user_id,
        role=member.role,
        label=member.email,
        brand_ids=frozenset() if member.invited else member.effective_brand_ids,
        invited=member.invited,
        member_id=member.id,
    )


async def ensure_member(
    tenant_id: uuid.UUID, email: str, role: Role, *, name: str | None = None,
    brand_ids: list[uuid.UUID] | None = None,
) -> tuple[uuid.UUID, bool]:
    """Operator path (``brandgraph token``, the demo seed): the user's id (for a token's ``sub``),
    and whether the membership was created now. The operator vouches for the person, so a
    membership made here is active at once, with a fresh member id like any other; an existing
    membership (an invitation too) is left as it is. :func:`principal_for_user` gives the
    member's principal."""
    v = Validator()
    email = validation.email(v, "email", email, required=True)
    v.check()
    async with tenant_session(tenant_id) as s:
        user_id = await s.scalar(text("select bg_ensure_user(:email)"), {"email": email})
        member_id = await _insert_membership(s, tenant_id, email, role, name=name, brand_ids=brand_ids,
                                             status=MemberStatus.ACTIVE, user_id=user_id)
        created = member_id is not None
        if created:
            audit.record(s, None, "member.add", "Member", member_id, tenant_id=tenant_id,
                         summary={"after": {"email": email, "name": name, "role": role.value,
                                            "status": MemberStatus.ACTIVE.value}})
    return user_id, created


async def invitation_pending(tenant_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether this person's membership of the tenant is an invitation not yet accepted."""
    async with tenant_session(tenant_id) as s:
        return bool(await s.scalar(select(func.count()).where(
            Membership.tenant_id == tenant_id, Membership.user_id == user_id,
            Membership.status == MemberStatus.INVITED.value)))
