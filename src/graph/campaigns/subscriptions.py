from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import strawberry
from strawberry import relay

from domain.campaigns import service
from domain.campaigns.stats import Figures
from graph.campaigns.types import CampaignStats
from graph.core import fanout, ids
from graph.core.context import Info

RATE = 4.0  # frames a second per subscriber, on average
BURST = 2.0  # frames that may go out back to back after a quiet moment


@strawberry.type
class CampaignSubscription:
    @strawberry.subscription(description="The campaign's stats and progress now, then after each change (at most "
                                         "four updates a second on average; a change after a quiet moment goes out at once, a burst is "
                                         "coalesced into its newest figures).")
    async def campaign_stats(self, info: Info, campaign_id: relay.GlobalID) -> AsyncGenerator[CampaignStats, None]:
        principal = info.context.principal
        cid = ids.decode(campaign_id, "Campaign", "campaignId")
        hub = info.context.request.app.state.event_hub
        async with hub.subscribe(principal.tenant_id, service.topic(cid)) as queue:
            campaign = await service.get_campaign(principal, cid)  # visible, or NOT_FOUND; after subscribing
            row = (await service.stats_by_ids(principal, [cid])).get(cid)
            now_figures = Figures.of(row, campaign.cost_cents) if row else None
            shown = now_figures.version if now_figures else None  # the version last sent
            if now_figures is not None:
                yield CampaignStats.of(now_figures)
            # a token bucket: a change after a quiet moment goes out at once (no added latency);
            # a burst is held to RATE frames a second and coalesced into its newest figures
            tokens, stamp = BURST, time.monotonic()
            while True:
                latest = await queue.get()  # an event: only its version is read here
                now = time.monotonic()
                tokens, stamp = min(BURST, tokens + (now - stamp) * RATE), now
                if tokens < 1:
                    await asyncio.sleep((1 - tokens) / RATE)
                    now = time.monotonic()
                    tokens, stamp = min(BURST, tokens + (now - stamp) * RATE), now
                version = Figures.version_of(latest)
                while not queue.empty():  # coalesce: keep the newest figures
                    candidate = queue.get_nowait()
                    if Figures.version_of(candidate) > version:
                        latest, version = candidate, Figures.version_of(candidate)
                if shown is not None and version <= shown:
                    continue
                await info.context.recheck()
                shown, tokens = version, tokens - 1
                # the same figures for everyone who shares this document, variables and scope,
                # read from the event once
                if not await fanout.deliver(info, version, lambda e=latest: CampaignStats.of(Figures.from_event(e))):
                    yield CampaignStats.of(Figures.from_event(latest))
