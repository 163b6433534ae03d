"""The MESSAGE action end to end through the API and the worker: an order that qualifies a
customer moves them into the segment, whose entry automation sends one e-mail through the
campaign pipeline to the loopback provider; no consent, no message; a retried run sends nothing
twice; a wait defers the message to a row the scheduler's pass sends when due."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from conftest import Api, TenantFixture, gid
from domain.automations.models import AutomationExecution, AutomationRun
from domain.automations.running import run_for_changes
from domain.automations.runs import MESSAGE_MAX_ATTEMPTS
from domain.delivery.base import ProviderUnavailable
from domain.campaigns import sending
from domain.campaigns.models import Campaign, CampaignStats, Recipient
from domain.customers.service import upsert_customer
from domain.platform.db import tenant_session
from domain.segments import refresh
from domain.segments.models import SegmentMembership
from support.campaigns import identity
from support.sending import provider, until

CREATE_SEGMENT = """mutation($input: CreateSegmentInput!) { createSegment(input: $input) {
  segment { id } errors { field code message } } }"""
CREATE = """mutation($i: CreateSegmentAutomationInput!) { createSegmentAutomation(input: $i) {
  automation { id action config } errors { field code message } } }"""

ORDER = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { created errors { field code message } } }"""
CONSENT = """mutation($input: SetConsentInput!) { setConsent(input: $input) { errors { field code message } } }"""
CAMPAIGNS = """query($b: ID!) { campaigns(brandId: $b, first: 20) { edges { node { id } } } }"""
RUNS = """query($s: ID!) { segmentAutomations(segmentId: $s) { name action config
  executions(first: 5) { edges { node { status error } } }
  runs(first: 5) { edges { node { status customers succeeded failed messageStats { audience sent failed } } } } } }"""
EMAIL = {"subject": "Welcome, {{ customer.first_name }}", "text": "Hi {{ customer.first_name }} from {{ brand.name }}"}
VIP = [{"profile": {"field": "TOTAL_ORDER_VALUE", "operator": "GREATER_THAN_OR_EQUAL", "value": 300}}]


def raw(global_id: str) -> uuid.UUID:
    from graph.core.ids import decode

    return decode(global_id, "Segment")


async def segment(api: Api, t: TenantFixture, name: str, rules: list[dict]) -> str:
    made = (await api.data(CREATE_SEGMENT, {"input": {"brandId": t.brand_gid("a"), "name": name,
                                                      "definition": {"match": "ALL", "rules": rules}}},
                           token=t.owner_token))["createSegment"]
    assert made["errors"] == [], made
    return made["segment"]["id"]


async def automation(api: Api, t: TenantFixture, seg: str, name: str, action: str, config: dict) -> dict:
    return (await api.data(CREATE, {"i": {"segmentId": seg, "name": name, "trigger": "ENTER", "action": action,
                                          "config": config}}, token=t.owner_token))["createSegmentAutomation"]


async def eventually(check, within: float = 30):  # noqa: ANN001, ANN201
    try:
        return await until(check, within=within)
    except AssertionError:
        return None


async def _setup(api: Api, t: TenantFixture, fakes, *, delay: int | None = None) -> tuple[str, str]:
    await identity(t)
    await provider(api, t, "EMAIL", "brevo", credentials={"apiKey": fakes.brevo.api_key})
    vip = await segment(api, t, "VIP", VIP)
    await refresh.refresh(t.id, raw(vip))
    config = {"channel": "EMAIL", "content": EMAIL, **({"delayMinutes": delay} if delay else {})}
    made = await automation(api, t, vip, "Welcome", "MESSAGE", config)
    assert made["errors"] == [] and made["automation"]["config"] == config, made
    return vip, made["automation"]["id"]


async def _customer(api: Api, t: TenantFixture, email: str, *, consent: bool = True) -> uuid.UUID:
    c, _ = await upsert_customer(t.owner, {"email": email, "first_name": "Ivy"}, brand_id=t.brands["a"])
    if consent:
        body = await api.data(CONSENT, {"input": {"customerId": gid("Customer", c.id), "brandId": t.brand_gid("a"),
                                                  "channel": "EMAIL", "granted": True}}, token=t.owner_token)
        assert body["setConsent"]["errors"] == [], body
    return c.id


async def _order(api: Api, t: TenantFixture, customer: uuid.UUID, ref: str) -> None:
    placed = await api.data(ORDER, {"input": {
        "brandId": t.brand_gid("a"), "externalOrderId": ref, "totalCents": 50_000, "currency": "EUR",
        "placedAt": datetime.now(UTC).isoformat(), "customerId": gid("Customer", customer)}}, token=t.owner_token)
    assert placed["recordOrder"]["errors"] == [], placed


async def _runs(api: Api, t: TenantFixture, vip: str) -> list[dict]:
    edges = (await api.data(RUNS, {"s": vip}, token=t.owner_token))["segmentAutomations"][0]["runs"]["edges"]
    return [e["node"] for e in edges]


def _to(fakes, address: str) -> list:
    return [m for m in list(fakes.brevo.messages) if m.to == address]


async def test_an_order_that_qualifies_a_customer_sends_the_entry_message_once(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    t = tenant
    vip, _ = await _setup(api, t, fakes)
    address = f"ivy-{uuid.uuid4().hex[:6]}@example.test"
    ivy = await _customer(api, t, address)
    await _order(api, t, ivy, "ivy-1")

    sent = await until(lambda: _async(_to(fakes, address)), what="the welcome message at the provider")
    assert [(m.subject, m.text) for m in sent] == [("Welcome, Ivy", "Hi Ivy from " + sent[0].text.split("from ")[1])]
    runs = await eventually(lambda: _runs_if(api, t, vip))
    assert [(r["status"], r["customers"], r["succeeded"], r["failed"]) for r in runs] == [("SUCCEEDED", 1, 1, 0)]
    assert runs[0]["messageStats"] == {"audience": 1, "sent": 1, "failed": 0}

    # the run's messages are a campaign of the automation: its stats, not in the brand's list
    async with tenant_session(t.id) as s:
        run_id = await s.scalar(select(AutomationRun.id).where(AutomationRun.tenant_id == t.id))
        campaign = await s.scalar(select(Campaign).where(Campaign.tenant_id == t.id, Campaign.id == run_id))
        stats = await s.scalar(select(CampaignStats).where(CampaignStats.tenant_id == t.id,
                                                           CampaignStats.campaign_id == run_id))
        entered = await s.scalar(select(SegmentMembership.entered_at).where(
            SegmentMembership.tenant_id == t.id, SegmentMembership.customer_id == ivy))
    assert campaign.automation_id is not None and campaign.channel == "email"
    assert (stats.audience, stats.sent) == (1, 1)
    listed = (await api.data(CAMPAIGNS, {"b": t.brand_gid("a")}, token=t.owner_token))["campaigns"]["edges"]
    assert listed == []

    # the same entry again (a retried job, a second refresh): nothing claimed, nothing sent twice
    await run_for_changes(t.id, raw(vip), entered)
    await sending.dispatch_due(t.id)
    assert await sending._send_chunk(t.id, run_id, 0) is False  # the batch again: nothing left to claim
    assert len(_to(fakes, address)) == 1
    assert len(await _runs(api, t, vip)) == 1


async def test_no_consent_no_message_and_the_log_says_why(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    t = tenant
    vip, _ = await _setup(api, t, fakes)
    address = f"noc-{uuid.uuid4().hex[:6]}@example.test"
    bob = await _customer(api, t, address, consent=False)
    await _order(api, t, bob, "bob-1")
    runs = await eventually(lambda: _runs_if(api, t, vip))
    assert [(r["status"], r["customers"], r["succeeded"], r["failed"]) for r in runs] == [("FAILED", 1, 0, 1)]
    executions = (await api.data(RUNS, {"s": vip}, token=t.owner_token))["segmentAutomations"][0]["executions"]
    assert [e["node"] for e in executions["edges"]] == [{"status": "FAILED", "error": "not sent: no_consent"}]
    await sending.dispatch_due(t.id)
    assert _to(fakes, address) == []


async def test_a_wait_defers_the_message_until_it_is_due(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    t = tenant
    vip, _ = await _setup(api, t, fakes, delay=90)
    address = f"wait-{uuid.uuid4().hex[:6]}@example.test"
    cy = await _customer(api, t, address)
    await _order(api, t, cy, "cy-1")
    row = await until(lambda: _recipient(t, cy), what="the deferred message's row")
    async with tenant_session(t.id) as s:
        now = await s.scalar(select(func.now()))
    # the run waits with its message: pending in the log
    assert [(r["status"], r["customers"], r["succeeded"]) for r in await _runs(api, t, vip)] == [("RUNNING", 1, 0)]
    assert row.status == "queued" and row.send_after >= now + timedelta(minutes=85)
    assert await sending.dispatch_due(t.id) == 0  # not due: nothing goes out
    assert _to(fakes, address) == []

    # the wait is over (the clock moved on): the scheduler's pass sends it, once
    async with tenant_session(t.id) as s:
        await s.execute(update(Recipient).where(Recipient.tenant_id == t.id, Recipient.customer_id == cy)
                        .values(send_after=now - timedelta(seconds=1)))
    assert await sending.dispatch_due(t.id) == 1
    sent = await until(lambda: _async(_to(fakes, address)), what="the message after the wait")
    assert len(sent) == 1 and sent[0].subject == "Welcome, Ivy"
    runs = await eventually(lambda: _runs_if(api, t, vip))
    assert [(r["status"], r["succeeded"], r["messageStats"]["sent"]) for r in runs] == [("SUCCEEDED", 1, 1)]
    async with tenant_session(t.id) as s:
        states = list(await s.scalars(select(AutomationExecution.status).where(AutomationExecution.tenant_id == t.id)))
    assert states == ["succeeded"]


async def test_a_failing_provider_is_retried_then_given_up_in_the_log(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    t = tenant
    vip, _ = await _setup(api, t, fakes)
    # two provider calls fail: the worker retries the batch with backoff, and it is sent once
    fakes.brevo.fail_next(2, status=503)
    address = f"retry-{uuid.uuid4().hex[:6]}@example.test"
    dee = await _customer(api, t, address)
    await _order(api, t, dee, "dee-1")
    sent = await until(lambda: _async(_to(fakes, address)), within=60, what="the message after the retries")
    assert len(sent) == 1
    runs = await eventually(lambda: _runs_if(api, t, vip))
    assert [(r["status"], r["succeeded"]) for r in runs] == [("SUCCEEDED", 1)]
    executions = (await api.data(RUNS, {"s": vip}, token=t.owner_token))["segmentAutomations"][0]["executions"]
    assert [e["node"] for e in executions["edges"]] == [{"status": "SUCCEEDED", "error": None}]
    async with tenant_session(t.id) as s:
        attempts = await s.scalar(select(AutomationExecution.attempts).where(AutomationExecution.tenant_id == t.id,
                                                                             AutomationExecution.customer_id == dee))
    assert attempts >= 2  # the failed calls (the fake may take both in one call's own retries) and the one that sent


async def test_a_provider_that_keeps_failing_is_given_up_after_the_limit(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    t = tenant
    vip, _ = await _setup(api, t, fakes, delay=60)  # deferred: this test sends the batch itself
    address = f"down-{uuid.uuid4().hex[:6]}@example.test"
    eve = await _customer(api, t, address)
    await _order(api, t, eve, "eve-1")
    row = await until(lambda: _recipient(t, eve), what="the deferred message's row")
    async with tenant_session(t.id) as s:
        await s.execute(update(Recipient).where(Recipient.tenant_id == t.id, Recipient.customer_id == eve)
                        .values(send_after=func.now() - timedelta(seconds=1)))
    fakes.brevo.fail_next(10_000, status=503)
    try:
        errors = []
        for _ in range(MESSAGE_MAX_ATTEMPTS + 2):
            try:
                if await sending._send_chunk(t.id, row.campaign_id, row.batch_no) is False:
                    break
            except ProviderUnavailable:
                errors.append(await _execution(t, eve))
    finally:
        fakes.brevo._failures.clear()
    # each failed attempt is in the log while it is retried, then the run gives up, saying why
    assert errors and all(e.status == "pending" and e.error.startswith("attempt failed, retrying: brevo unavailable")
                          for e in errors), errors
    done = await _execution(t, eve)
    assert done.status == "failed" and done.attempts >= MESSAGE_MAX_ATTEMPTS, (done.status, done.attempts)
    assert done.error.startswith(f"not sent: gave up after {done.attempts} attempts: brevo unavailable"), done.error
    runs = await _runs(api, t, vip)
    assert [(r["status"], r["failed"]) for r in runs] == [("FAILED", 1)]
    assert _to(fakes, address) == []


async def _recipient(t: TenantFixture, customer: uuid.UUID):  # noqa: ANN202
    async with tenant_session(t.id) as s:
        return await s.scalar(select(Recipient).where(Recipient.tenant_id == t.id, Recipient.customer_id == customer))


async def _execution(t: TenantFixture, customer: uuid.UUID):  # noqa: ANN202
    async with tenant_session(t.id) as s:
        return await s.scalar(select(AutomationExecution).where(AutomationExecution.tenant_id == t.id,
                                                                AutomationExecution.customer_id == customer))


async def test_message_content_is_checked_like_a_campaigns(api: Api, tenant: TenantFixture) -> None:
    t = tenant
    vip = await segment(api, t, "VIP", VIP)
    bad = await automation(api, t, vip, "Broken", "MESSAGE",
                           {"channel": "EMAIL", "content": {"subject": "Hi {{ customer.nope }", "text": "x"}})
    assert bad["automation"] is None and [e["field"] for e in bad["errors"]] == ["input.config.content.subject"], bad
    missing = await automation(api, t, vip, "Empty", "MESSAGE", {"channel": "SMS", "content": {}})
    assert [(e["field"], e["code"]) for e in missing["errors"]] == [("input.config.content.text", "REQUIRED")], missing
    long = await automation(api, t, vip, "Later", "MESSAGE", {"channel": "SMS", "content": {"text": "x"},
                                                              "delayMinutes": 50_000})
    assert [e["field"] for e in long["errors"]] == ["input.config.delayMinutes"], long


async def _async(value):  # noqa: ANN001, ANN202
    return value


async def _runs_if(api: Api, t: TenantFixture, vip: str) -> list[dict] | None:
    runs = await _runs(api, t, vip)
    return runs if runs and all(r["status"] != "RUNNING" for r in runs) else None
