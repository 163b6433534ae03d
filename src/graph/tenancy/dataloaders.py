"""Batch loaders for tenancy objects: one query per batch, scoped to the principal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from domain.tenancy import brands, members
from domain.tenancy.members import Member
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal


def brand_loader(principal: Principal) -> DataLoader[uuid.UUID, Brand | None]:
    async def load(ids: Sequence[uuid.UUID]) -> list[Brand | None]:
        found = await brands.brands_by_ids(principal, ids)
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)


def member_loader(principal: Principal) -> DataLoader[uuid.UUID, Member | None]:
    async def load(ids: Sequence[uuid.UUID]) -> list[Member | None]:
        if not principal.may(Action.MEMBER_READ):
            return [None] * len(ids)
        found = await members.members_by_ids(principal, list(ids))
        return [found.get(i) for i in ids]

    return DataLoader(load_fn=load)
