"""Every per-request dataloader, made fresh for each request (and each subscription event)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from domain.tenancy.members import Member
from domain.tenancy.models import Brand
from domain.tenancy.policies import Principal
from graph.tenancy.dataloaders import brand_loader, member_loader


@dataclass(frozen=True)
class Loaders:
    brand: DataLoader[uuid.UUID, Brand | None]
    member: DataLoader[uuid.UUID, Member | None]

    @classmethod
    def for_principal(cls, principal: Principal) -> Loaders:
        return cls(brand=brand_loader(principal), member=member_loader(principal))
