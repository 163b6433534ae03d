"""Batch loaders of campaigns, their stats and brands' pages of them: one query per batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Iterable
from typing import Any

from strawberry.dataloader import DataLoader

from domain.campaigns import service
from domain.campaigns.models import Campaign
from domain.pagination import PageRequest
from domain.tenancy.policies import Principal
from graph.core.batch import batch_loader, page_loader

# the Campaign fields a page prefetches when they are selected
PREFETCHED = frozenset({"stats", "segments", "exclusionSegments"})


def campaign_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.campaigns_by_ids(p, ids))


def stats_loader(p: Principal) -> DataLoader[uuid.UUID, Any]:
    return batch_loader(lambda ids: service.stats_by_ids(p, ids))


async def prefetch(campaigns: Iterable[Campaign], wanted: Collection[str], *, stats: DataLoader,
                   segments: DataLoader) -> None:
    """Load the selected stats and segments of a page's campaigns, one batch each."""
    campaigns = list(campaigns)
    loads = []
    if "stats" in wanted:
        loads.append(stats.load_many([c.id for c in campaigns]))
    segment_ids = {s for c in campaigns for s in (c.segment_ids or [])} if "segments" in wanted else set()
    if "exclusionSegments" in wanted:
        segment_ids |= {s for c in campaigns for s in (c.exclusion_segment_ids or [])}
    if segment_ids:
        loads.append(segments.load_many(sorted(segment_ids)))
    await asyncio.gather(*loads)


def brand_campaigns_loader(p: Principal, *, stats: DataLoader, segments: DataLoader) -> DataLoader[tuple, Any]:
    """Keys (brand id, statuses, page request, prefetched fields, counted): one query per distinct
    page request, then one batch each for the selected stats and segments of every brand's page."""

    async def fetch(brand_ids: list[uuid.UUID], statuses: tuple, page: PageRequest,
                    wanted: frozenset[str], counted: bool) -> dict:
        pages = await service.campaigns_of_brands(p, brand_ids, statuses=list(statuses) or None, page=page,
                                                  counted=counted)
        await prefetch((c for page in pages.values() for c in page.items), wanted, stats=stats, segments=segments)
        return pages

    return page_loader(fetch)
