"""The frequency cap decided again when a recipient is claimed for sending: two campaigns whose
launches could not see each other (both queued a customer the cap allows once) send that
customer one message, through the real worker and the Brevo fake; the other row ends excluded
with reason ``frequency_cap``, as launch would have left it. A cap that allows both sends both.
And the claim's per-customer lock: a claim waits for another campaign's uncommitted claim of the
same customer and then sees it."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Api, TenantFixture
from support.campaigns import audience, create, identity, launch, recipients, wait_status
from support.sending import cid, emails_of, fake_messages, provider, settings, until

N = 3  # customers in both campaigns


async def _queued_until(t: TenantFixture, campaign: str, at: datetime) -> list[Any] | None:
    rows = await recipients(t, campaign)
    if len(rows) == N and all(r.status == "queued" and r.send_after == at for r in rows):
        return rows
    return None


async def _two_campaigns_both_queued(api: Api, t: TenantFixture, fakes: Any) -> tuple[str, str, list[uuid.UUID], datetime]:
    """Two campaigns of brand a to the same ``N`` customers, launched together with no cap, both
    holding every customer as a queued recipient until quiet hours end a few seconds from now:
    the state two launches in the same moment leave when neither sees the other's rows."""
    await identity(t)
    await provider(api, t, "EMAIL", "brevo", credentials={"apiKey": fakes.brevo.api_key})
    seg, ids = await audience(t, N)
    quiet_end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    await settings(api, t, quietHoursStart=(quiet_end - timedelta(hours=1)).strftime("%H:%M:%S"),
                   quietHoursEnd=quiet_end.strftime("%H:%M:%S"))
    first, second = await create(api, t, seg), await create(api, t, seg)
    await asyncio.gather(launch(api, t, first), launch(api, t, second))
    for campaign in (first, second):
        await until(lambda c=campaign: _queued_until(t, c, quiet_end), what="every recipient queued to the end of quiet hours")
    return first, second, ids, quiet_end


async def _send_both(api: Api, t: TenantFixture, first: str, second: str, quiet_end: datetime) -> None:
    from domain.campaigns.sending import dispatch_due

    await until(lambda: _past(quiet_end), within=15, what="the end of quiet hours")
    assert await dispatch_due(t.id) == 2  # one batch each, sent at once by the worker's threads
    for campaign in (first, second):
        await wait_status(api, t, campaign)


async def _past(at: datetime) -> bool:
    return datetime.now(UTC) >= at


async def test_two_campaigns_queued_together_send_a_capped_customer_once(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    first, second, ids, quiet_end = await _two_campaigns_both_queued(api, tenant, fakes)
    await settings(api, tenant, frequencyCapCount=1, frequencyCapHours=24)
    await _send_both(api, tenant, first, second, quiet_end)

    messages = fake_messages(fakes.brevo, first) + fake_messages(fakes.brevo, second)
    assert Counter(m.to for m in messages) == {a: 1 for a in await emails_of(tenant, ids)}, \
        [(m.key, m.to) for m in messages]
    rows = {c: [r for campaign in (first, second) for r in await recipients(tenant, campaign) if r.customer_id == c]
            for c in ids}
    for customer, pair in rows.items():
        outcome = sorted((r.status, r.exclusion_reason) for r in pair)
        assert outcome == [("excluded", "frequency_cap"), ("sent", None)], (customer, outcome)
        loser = next(r for r in pair if r.status == "excluded")
        assert loser.sent_at is None and loser.chunk_key is None and loser.batch_no is None and loser.send_after is None
    # stats: each excluded recipient moved from the audience to the excluded
    for campaign in (first, second):
        excluded = sum(r.status == "excluded" for r in await recipients(tenant, campaign))
        done = await wait_status(api, tenant, campaign)
        assert done["stats"]["sent"] == N - excluded and done["stats"]["excluded"] == excluded, done
        assert done["stats"]["audience"] == N - excluded and done["stats"]["progress"]["queued"] == 0, done


async def test_a_cap_that_allows_both_sends_both(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    first, second, ids, quiet_end = await _two_campaigns_both_queued(api, tenant, fakes)
    await settings(api, tenant, frequencyCapCount=2, frequencyCapHours=24)
    await _send_both(api, tenant, first, second, quiet_end)

    messages = fake_messages(fakes.brevo, first) + fake_messages(fakes.brevo, second)
    assert Counter(m.to for m in messages) == {a: 2 for a in await emails_of(tenant, ids)}
    for campaign in (first, second):
        assert {r.status for r in await recipients(tenant, campaign)} == {"sent"}


@pytest.mark.parametrize("lock_row", ["first claimed now", "claimed before"])
async def test_a_claim_waits_for_another_campaigns_claim_of_the_customer_and_sees_it(
        api: Api, tenant: TenantFixture, lock_row: str) -> None:
    """Two claims in two transactions, each campaign's only recipient the same customer: the
    second blocks on the customer's lock row while the first is uncommitted, then counts its
    claim; whether the first claim creates the lock row or finds it."""
    from sqlalchemy import select, update

    from domain.campaigns import audience as aud
    from domain.campaigns.models import Campaign, CapLock, Recipient
    from domain.delivery.models import MessagingSettings
    from domain.platform.db import tenant_session
    from domain.tenancy.models import Brand

    seg, ids = await audience(tenant, 1)
    first, second = await create(api, tenant, seg), await create(api, tenant, seg)
    now = datetime.now(UTC)
    async with tenant_session(tenant.id) as s:
        s.add_all([Recipient(tenant_id=tenant.id, campaign_id=cid(c), customer_id=ids[0], brand_id=tenant.brands["a"],
                             status="queued", address="x@example.test", batch_no=0, send_after=now - timedelta(seconds=1))
                   for c in (first, second)])
        await s.execute(update(Campaign).where(Campaign.tenant_id == tenant.id, Campaign.id.in_([cid(first), cid(second)]))
                        .values(status="sending", launched_at=now))
        if lock_row == "claimed before":
            s.add(CapLock(tenant_id=tenant.id, brand_id=tenant.brands["a"], customer_id=ids[0]))
    rules = MessagingSettings(tenant_id=tenant.id, brand_id=tenant.brands["a"], frequency_cap_count=1,
                              frequency_cap_hours=24, send_rate_per_second=500)

    async def load(s: Any, campaign: str) -> tuple[Any, Any]:
        c = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant.id, Campaign.id == cid(campaign)))
        b = await s.scalar(select(Brand).where(Brand.tenant_id == tenant.id, Brand.id == c.brand_id))
        return c, b

    holding = asyncio.Event()
    release = asyncio.Event()

    async def first_claim() -> Any:
        async with tenant_session(tenant.id) as s:
            c, b = await load(s, first)
            claimed = await aud.claim_within_cap(s, c, b, rules, 0, 500, uuid.uuid4())
            holding.set()
            await release.wait()  # uncommitted, holding the customer's lock
        return claimed

    async def second_claim() -> Any:
        await holding.wait()
        async with tenant_session(tenant.id) as s:
            c, b = await load(s, second)
            return await aud.claim_within_cap(s, c, b, rules, 0, 500, uuid.uuid4())

    one = asyncio.create_task(first_claim())
    two = asyncio.create_task(second_claim())
    await holding.wait()
    await asyncio.sleep(1.0)
    assert not two.done(), "the second claim did not wait for the first one's lock"
    release.set()
    claimed_one, claimed_two = await asyncio.wait_for(asyncio.gather(one, two), 10)
    assert claimed_one == ([(ids[0], "x@example.test")], 0), claimed_one
    assert claimed_two == ([], 1), claimed_two
    statuses = {cid(c): (r.status, r.exclusion_reason) for c in (first, second) for r in await recipients(tenant, c)}
    assert statuses == {cid(first): ("sending", None), cid(second): ("excluded", "frequency_cap")}, statuses


@pytest.mark.parametrize(("window", "quiet", "expected"), [
    (48, False, "deferred to when the cap allows"),
    (48, True, "deferred, then out of quiet hours"),
    (12, False, "excluded: the cap allows it only after the send window"),
])
async def test_a_scheduled_campaign_over_the_cap_at_claim_time_defers_like_launch(
        api: Api, tenant: TenantFixture, window: int, quiet: bool, expected: str) -> None:
    """The customer got a message from another campaign of the brand an hour ago (cap: one a
    day). A scheduled campaign's claim defers its recipient to 24 hours after that message when
    that is within its send window (then out of the brand's quiet hours), and excludes it
    otherwise: what launch decides for the same customer."""
    from sqlalchemy import select, update

    from domain.campaigns import audience as aud
    from domain.campaigns.models import Campaign, Recipient
    from domain.delivery.models import MessagingSettings
    from domain.platform.db import tenant_session
    from domain.tenancy.models import Brand

    seg, ids = await audience(tenant, 1)
    earlier, scheduled = await create(api, tenant, seg), await create(api, tenant, seg)
    now = datetime.now(UTC).replace(microsecond=0)
    sent_at = now - timedelta(hours=1)
    allowed = sent_at + timedelta(hours=24)
    async with tenant_session(tenant.id) as s:
        s.add_all([
            Recipient(tenant_id=tenant.id, campaign_id=cid(earlier), customer_id=ids[0], brand_id=tenant.brands["a"],
                      status="sent", address="x@example.test", batch_no=0, send_after=sent_at, sent_at=sent_at),
            Recipient(tenant_id=tenant.id, campaign_id=cid(scheduled), customer_id=ids[0], brand_id=tenant.brands["a"],
                      status="queued", address="x@example.test", batch_no=0, send_after=now - timedelta(seconds=1)),
        ])
        await s.execute(update(Campaign).where(Campaign.tenant_id == tenant.id, Campaign.id == cid(scheduled)).values(
            status="sending", schedule_mode="at", scheduled_at=now, launched_at=now, send_window_hours=window))
    rules = MessagingSettings(tenant_id=tenant.id, brand_id=tenant.brands["a"], frequency_cap_count=1,
                              frequency_cap_hours=24, send_rate_per_second=500)
    if quiet:  # the brand's zone is UTC: quiet from an hour before the allowed time to two after
        rules.quiet_hours_start = (allowed - timedelta(hours=1)).time()
        rules.quiet_hours_end = (allowed + timedelta(hours=2)).time()

    async with tenant_session(tenant.id) as s:
        campaign = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant.id, Campaign.id == cid(scheduled)))
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == tenant.id, Brand.id == campaign.brand_id))
        claimed = await aud.claim_within_cap(s, campaign, brand, rules, 0, 500, uuid.uuid4())
    [row] = await recipients(tenant, scheduled)
    if window == 12:
        assert claimed == ([], 1), (expected, claimed)
        assert (row.status, row.exclusion_reason, row.send_after, row.batch_no) == ("excluded", "frequency_cap", None, None)
    else:
        assert claimed == ([], 0), (expected, claimed)
        later = allowed + timedelta(hours=2) if quiet else allowed
        assert (row.status, row.exclusion_reason, row.send_after, row.batch_no) == ("queued", None, later, 0), expected
        assert row.chunk_key is None and row.attempts == 0
