"""Exactly once through crashes: a worker killed with SIGKILL in the middle of a 5,000-recipient
send, and a batch message delivered twice at once."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from conftest import Api, TenantFixture
from support.campaigns import audience, create, identity, launch, recipients, wait_status
from support.sending import cid, emails_of, fake_messages, once_each, provider, settings, until

N = 5000


def kill_hard(worker: Any) -> None:
    """SIGKILL the worker's whole process group at once (Dramatiq's main process and the worker
    process that sends)."""
    worker.kill()


async def test_a_worker_killed_mid_send_still_delivers_each_message_exactly_once(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    from domain.campaigns.models import Recipient
    from domain.campaigns.sending import dispatch_due
    from domain.platform.db import tenant_session

    await identity(tenant)
    await provider(api, tenant, "EMAIL", "brevo", credentials={"apiKey": fakes.brevo.api_key})
    await settings(api, tenant, sendRatePerSecond=5000)  # calls of 500, up to ten a second
    seg, ids = await audience(tenant, N)
    campaign = await create(api, tenant, seg)
    ours = f"c.{cid(campaign).hex}."

    # The worst moment to die: the fake has accepted a call (and recorded its messages) but the
    # worker never hears back, so those rows stay claimed ("sending") in the database. The fake
    # kills the worker on the second call of this campaign, before it answers.
    fake = fakes.brevo
    record = fake._record
    calls = Counter()
    killed = threading.Event()

    def record_then_crash(data: dict, key: str | None) -> dict:
        response = record(data, key)
        first = (data.get("messageVersions") or [data])[0]
        if ours in (first.get("headers") or {}).get("X-Mailin-custom", "") and not killed.is_set():
            calls["ours"] += 1
            if calls["ours"] == 2:
                kill_hard(worker)
                killed.set()
        return response

    fake._record = record_then_crash
    try:
        await launch(api, tenant, campaign)
        await until(lambda: _is_set(killed), within=30, what="the worker to be killed mid-send")
    finally:
        del fake._record
        if not killed.is_set():
            worker.restart()
    delivered = Counter(m.key for m in fake_messages(fake, campaign))
    assert 0 < sum(delivered.values()) < N and set(delivered.values()) == {1}, sum(delivered.values())
    async with tenant_session(tenant.id) as s:
        in_doubt = set((await s.scalars(select(Recipient.address).where(
            Recipient.tenant_id == tenant.id, Recipient.campaign_id == cid(campaign),
            Recipient.status == "sending"))).all())
    accepted_by_fake = {m.to for m in fake_messages(fake, campaign)}
    assert in_doubt & accepted_by_fake, "no call was in doubt when the worker died"
    assert (await api.data("query($id: ID!) { campaign(id: $id) { status } }", {"id": campaign},
                           token=tenant.owner_token))["campaign"]["status"] == "SENDING"

    worker.restart()
    assert await dispatch_due(tenant.id) >= 1  # what the scheduler does every minute
    done = await wait_status(api, tenant, campaign, within=90)

    messages = fake_messages(fake, campaign)
    by_key = Counter(m.key for m in messages)
    assert len(by_key) == N and set(by_key.values()) == {1}, {k: n for k, n in by_key.items() if n != 1}
    once_each(messages, set(await emails_of(tenant, ids)))
    rows = await recipients(tenant, campaign)
    assert len(rows) == N and Counter(r.status for r in rows) == {"sent": N}
    assert {f"{ours}{r.customer_id.hex}" for r in rows} == set(by_key)
    assert done["stats"]["sent"] == N and done["stats"]["failed"] == 0 and done["stats"]["progress"]["queued"] == 0
    # the in-doubt rows were sent again under their own key, which the provider took once
    async with tenant_session(tenant.id) as s:
        keys = await s.scalar(select(func.count(func.distinct(Recipient.chunk_key))).where(
            Recipient.tenant_id == tenant.id, Recipient.campaign_id == cid(campaign)))
    assert keys == len({m.idempotency_key for m in messages})


async def _is_set(event: threading.Event) -> bool:
    return event.is_set()


async def test_a_batch_delivered_twice_at_once_sends_each_message_once(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    """SendGrid has no idempotency key: only the batch's lock stands between a duplicate
    delivery of the batch message and a second copy of the messages in flight."""
    from domain.campaigns.sending import send_batch
    from domain.platform.broker import enqueue

    await identity(tenant)
    await provider(api, tenant, "EMAIL", "sendgrid", credentials={"apiKey": fakes.sendgrid.api_key})
    await settings(api, tenant, sendRatePerSecond=10)  # the batch takes seconds: ten a call, a call a second
    seg, ids = await audience(tenant, 40)
    campaign = await create(api, tenant, seg)
    await launch(api, tenant, campaign)
    await until(lambda: recipients(tenant, campaign), what="the audience")
    # the batch is running (or about to); two more deliveries of its message
    await asyncio.gather(*(enqueue(send_batch, tenant.id, str(cid(campaign)), 0) for _ in range(2)))
    await until(lambda: _claimed(tenant, campaign), what="the first call")
    await asyncio.gather(*(enqueue(send_batch, tenant.id, str(cid(campaign)), 0) for _ in range(2)))
    await wait_status(api, tenant, campaign)
    messages = fake_messages(fakes.sendgrid, campaign)
    once_each(messages, set(await emails_of(tenant, ids)))
    assert len({m.key for m in messages}) == 40
    rows = await recipients(tenant, campaign)
    assert Counter(r.status for r in rows) == {"sent": 40} and all(r.attempts == 1 for r in rows)


async def _claimed(t: TenantFixture, campaign: str) -> bool:
    return any(r.status != "queued" for r in await recipients(t, campaign))
