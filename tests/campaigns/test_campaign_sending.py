"""Sending through each real provider client against its loopback fake, through the whole
pipeline: setDeliveryProvider (the fake's credentials), launch, the worker's batches, the
provider's wire format; and what happens when the provider says no."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from conftest import Api, TenantFixture
from support.campaigns import audience, create, identity, launch, recipients, wait_status
from support.sending import emails_of, fake_messages, once_each, provider, set_customers, settings


def index_of(address: str) -> int:
    """The customer's number in its audience() batch: ``<prefix>-<i>@example.test``."""
    return int(address.split("@")[0].rsplit("-", 1)[1])


async def all_sent(t: TenantFixture, campaign: str, n: int) -> list[Any]:
    rows = await recipients(t, campaign)
    assert len(rows) == n and Counter(r.status for r in rows) == {"sent": n}, Counter(r.status for r in rows)
    assert all(r.provider_message_id and r.sent_at for r in rows)
    return rows


async def _send_email(api: Api, tenant: TenantFixture, name: str, api_key: str, n: int,
                      statuses: tuple[str, ...] = ("SENT",)) -> tuple[str, list[uuid.UUID], dict[str, Any]]:
    """Launches an email campaign to ``n`` new customers through provider ``name`` with
    ``api_key`` and waits for one of ``statuses``: (campaign, customer ids, its final status)."""
    await identity(tenant)
    await provider(api, tenant, "EMAIL", name, credentials={"apiKey": api_key})
    seg, ids = await audience(tenant, n)
    campaign = await create(api, tenant, seg)
    await launch(api, tenant, campaign)
    return campaign, ids, await wait_status(api, tenant, campaign, statuses)


# --- each provider ------------------------------------------------------------------------------


async def test_brevo_sends_batched_personalised_messages_once(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    campaign, ids, done = await _send_email(api, tenant, "brevo", fakes.brevo.api_key, 30)
    assert done["stats"]["sent"] == 30 and done["stats"]["progress"]["queued"] == 0, done

    messages = fake_messages(fakes.brevo, campaign)
    once_each(messages, set(await emails_of(tenant, ids)))
    # one request carried them all, as message versions, under one idempotency key
    keys = {m.idempotency_key for m in messages}
    assert len(keys) == 1 and uuid.UUID(keys.pop())
    assert len({m.provider_message_id for m in messages}) == 30  # one id per version
    rows = {r.customer_id: r for r in await all_sent(tenant, campaign, 30)}
    for m in messages:
        i = index_of(m.to)
        assert m.subject == f"Hello P{i}" and f"Hi P{i}," in m.html and m.text == f"Hi P{i}"
        assert m.sender == "news@a.example.test"
        assert m.headers["List-Unsubscribe"].startswith("<http") and m.headers["List-Unsubscribe-Post"]
        customer = uuid.UUID(hex=m.key.rsplit(".", 1)[1])
        row = rows[customer]
        assert row.address == m.to and row.provider == "brevo"
        assert row.provider_message_id == m.provider_message_id and m.idempotency_key == str(row.chunk_key)


async def test_sendgrid_sends_each_recipient_once(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    campaign, ids, _ = await _send_email(api, tenant, "sendgrid", fakes.sendgrid.api_key, 25)
    messages = fake_messages(fakes.sendgrid, campaign)
    once_each(messages, set(await emails_of(tenant, ids)))
    for m in messages:
        assert m.subject == f"Hello P{index_of(m.to)}" and m.sender == "news@a.example.test"
        assert m.headers.get("List-Unsubscribe", "").startswith("<http")
    rows = await all_sent(tenant, campaign, 25)
    assert {r.provider for r in rows} == {"sendgrid"}


async def test_smtp_sends_each_recipient_once(api: Api, tenant: TenantFixture, worker) -> None:
    from fakes.providers import FakeSMTP

    await identity(tenant)
    seg, ids = await audience(tenant, 25)  # two SMTP chunks (20 per call)
    with FakeSMTP() as smtp:
        await provider(api, tenant, "EMAIL", "smtp", settings_={"host": smtp.host, "port": smtp.port, "starttls": False})
        campaign = await create(api, tenant, seg)
        await launch(api, tenant, campaign)
        await wait_status(api, tenant, campaign)
        messages = fake_messages(smtp, campaign)
    once_each(messages, set(await emails_of(tenant, ids)))
    for m in messages:
        i = index_of(m.to)
        assert m.subject == f"Hello P{i}" and m.sender == "news@a.example.test"
        assert m.mime["List-Unsubscribe"].startswith("<http") and m.mime["List-Unsubscribe-Post"]
        assert f"Hi P{i}," in m.html and "/t/c/" in m.html and m.text.strip() == f"Hi P{i}"
    rows = await all_sent(tenant, campaign, 25)
    assert {r.provider for r in rows} == {"smtp"}


async def test_twilio_sends_each_sms_once(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await identity(tenant)
    await provider(api, tenant, "SMS", "twilio", credentials={"accountSid": fakes.twilio.account_sid,
                                                              "authToken": fakes.twilio.auth_token})
    seg, ids = await audience(tenant, 12, channel="sms")
    phones = {c: f"+1666{uuid.uuid4().int % 10**7:07d}" for c in ids}
    for c, phone in phones.items():
        await set_customers(tenant, [c], phone=phone)
    campaign = await create(api, tenant, seg, channel="SMS")
    await launch(api, tenant, campaign)
    await wait_status(api, tenant, campaign)
    messages = [m for m in list(fakes.twilio.messages) if m.to in set(phones.values())]
    once_each(messages, set(phones.values()))
    assert all(m.sender == "+15550000000" and re.fullmatch(r"Hi P\d+ from Brand A", m.text) for m in messages)
    rows = await all_sent(tenant, campaign, 12)
    by_phone = {m.to: m for m in messages}
    assert all(r.provider_message_id == by_phone[r.address].provider_message_id for r in rows)
    assert all(r.provider_message_id.startswith("SM") for r in rows)


async def test_fcm_sends_each_push_once(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await identity(tenant)
    await provider(api, tenant, "PUSH", "fcm", credentials={"serviceAccountJson": fakes.fcm.service_account_json})
    seg, ids = await audience(tenant, 12, channel="push")
    campaign = await create(api, tenant, seg, channel="PUSH")
    await launch(api, tenant, campaign)
    await wait_status(api, tenant, campaign)
    messages = fake_messages(fakes.fcm, campaign)
    rows = await all_sent(tenant, campaign, 12)
    once_each(messages, {r.address for r in rows})
    assert all(re.fullmatch(r"Hi P\d+", m.title) and m.body == "News" for m in messages)
    assert {m.provider_message_id for m in messages} == {r.provider_message_id for r in rows}


# --- when the provider says no ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
async def test_brevo_unavailable_is_retried_and_each_recipient_still_gets_one(
        api: Api, tenant: TenantFixture, worker, fakes, status: int) -> None:
    await identity(tenant)
    await provider(api, tenant, "EMAIL", "brevo", credentials={"apiKey": fakes.brevo.api_key})
    seg, ids = await audience(tenant, 600)  # two batches (500 + 100)
    campaign = await create(api, tenant, seg)
    before = fakes.brevo.requests
    fakes.brevo.fail_next(2, status=status, retry_after=1)
    await launch(api, tenant, campaign)
    done = await wait_status(api, tenant, campaign, within=45)
    assert fakes.brevo.requests - before >= 4  # the two refused calls and the two that went through
    once_each(fake_messages(fakes.brevo, campaign), set(await emails_of(tenant, ids)))
    await all_sent(tenant, campaign, 600)
    assert done["stats"]["sent"] == 600 and done["stats"]["failed"] == 0, done
    assert f"Brevo {'rate limit' if status == 429 else 'error'}" in worker.output()


@pytest.mark.parametrize("name", ["brevo", "sendgrid"])
async def test_an_invalid_address_fails_alone(api: Api, tenant: TenantFixture, worker, fakes, name: str) -> None:
    await identity(tenant)
    fake = getattr(fakes, name)
    await provider(api, tenant, "EMAIL", name, credentials={"apiKey": fake.api_key})
    seg, ids = await audience(tenant, 7)
    await set_customers(tenant, ids[3:4], email="someone.invalid@example.test")
    campaign = await create(api, tenant, seg)
    await launch(api, tenant, campaign)
    done = await wait_status(api, tenant, campaign)
    assert (done["stats"]["sent"], done["stats"]["failed"], done["stats"]["progress"]["queued"]) == (6, 1, 0), done
    rows = {r.customer_id: r for r in await recipients(tenant, campaign)}
    bad = rows.pop(ids[3])
    assert bad.status == "failed" and bad.failed_at and bad.sent_at is None
    assert "valid address" in bad.error if name == "sendgrid" else "email is not valid" in bad.error, bad.error
    assert all(r.status == "sent" for r in rows.values())
    once_each(fake_messages(fake, campaign), {r.address for r in rows.values()})


async def test_bad_credentials_fail_the_campaign_with_a_reason(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    campaign, _, done = await _send_email(api, tenant, "brevo", "not-the-right-key", 5, ("FAILED",))
    assert "brevo" in done["failureReason"].lower() and "Key not found" in done["failureReason"], done
    assert "not-the-right-key" not in done["failureReason"]
    assert done["stats"]["sent"] == 0 and done["stats"]["progress"]["queued"] == 0, done
    assert {r.status for r in await recipients(tenant, campaign)} == {"cancelled"}
    assert fake_messages(fakes.brevo, campaign) == []


async def test_the_brand_send_rate_slows_a_send(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await identity(tenant)
    await provider(api, tenant, "EMAIL", "brevo", credentials={"apiKey": fakes.brevo.api_key})
    assert (await settings(api, tenant, sendRatePerSecond=10))["sendRatePerSecond"] == 10
    seg, ids = await audience(tenant, 40)
    campaign = await create(api, tenant, seg)
    started = time.monotonic()
    await launch(api, tenant, campaign)
    await wait_status(api, tenant, campaign)
    elapsed = time.monotonic() - started
    messages = fake_messages(fakes.brevo, campaign)
    once_each(messages, set(await emails_of(tenant, ids)))
    calls = Counter(m.idempotency_key for m in messages)
    assert sorted(calls.values()) == [10, 10, 10, 10]  # ten a call ...
    assert elapsed >= 2.0, elapsed  # ... in four different seconds
