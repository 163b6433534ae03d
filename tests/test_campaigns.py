"""Campaigns end to end over the API with a real worker: launch, send, stats, idempotency."""

from __future__ import annotations

from conftest import Api, TenantFixture
from campaign_helpers import audience, create, identity, launch, recipients, use_provider, wait_status


async def test_email_campaign_sends_once_to_the_consenting_audience(api: Api, tenant: TenantFixture, worker) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    seg, ids = await audience(tenant, 30)
    _, no_consent = await audience(tenant, 0)
    campaign = await create(api, tenant, seg)
    preview = await api.data("""query($id: ID!) { previewCampaignAudience(campaignId: $id) { count deferred total
        excluded { noConsent noAddress suppressed frequencyCap excludedSegment } } }""", {"id": campaign},
                             token=tenant.owner_token)
    assert preview["previewCampaignAudience"]["count"] == 30
    key = "launch-1"
    first = await launch(api, tenant, campaign, key)
    again = await launch(api, tenant, campaign, key)
    assert first["status"] == again["status"] == "SENDING" and first["launchedAt"] == again["launchedAt"]
    done = await wait_status(api, tenant, campaign)
    assert done["stats"]["sent"] == 30 and done["stats"]["progress"]["queued"] == 0, done
    rows = await recipients(tenant, campaign)
    assert len(rows) == 30 and all(r.status == "sent" and r.provider_message_id for r in rows)
