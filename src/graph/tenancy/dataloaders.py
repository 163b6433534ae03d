"""Batch loaders for tenancy objects: one query per batch, scoped to the principal."""

from __future__ import annotations

import uuid

from strawberry.dataloader import DataLoader

from domain.tenancy import brands, members
from domain.tenancy.members import Member
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal
from graph.core.batch import batch_loader


def brand_loader(principal: Principal) -> DataLoader[uuid.UUID, Brand | None]:
    return batch_loader(lambda ids: brands.brands_by_ids(principal, ids))


def member_loader(principal: Principal) -> DataLoader[uuid.UUID, Member | None]:
    async def fetch(ids: list[uuid.UUID]) -> dict[uuid.UUID, Member]:
        if not principal.may(Action.MEMBER_READ):
            return {}
        return await members.members_by_ids(principal, ids)

    return batch_loader(fetch)
