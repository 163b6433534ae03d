"""Campaigns over the API with a real worker: validation, the status machine, launch
idempotency, previews, the audience decision (every exclusion reason, quiet hours, frequency cap,
schedules), the scheduler's passes, pause/resume/cancel, stats, and no N+1 in campaign lists."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from conftest import Api, TenantFixture, create_tenant_fixture, gid
from support.campaigns import (
    audience,
    create,
    identity,
    launch,
    recipients,
    use_provider,
    wait_status,
)
from support.graphql import warm
from support.sending import cid, emails_of, fake_messages, mutate, set_customers, settings, until

CAMPAIGN_FIELDS = "campaign { id status scheduledAt launchedAt failureReason } errors { field code message }"
UPDATE = f"mutation($input: UpdateCampaignInput!) {{ updateCampaign(input: $input) {{ {CAMPAIGN_FIELDS} }} }}"
CREATE = f"mutation($input: CreateCampaignInput!) {{ createCampaign(input: $input) {{ {CAMPAIGN_FIELDS} }} }}"
DELETE = "mutation($id: ID!) { deleteCampaign(input: {id: $id}) { deletedId errors { field code message } } }"
SCHEDULE = f"mutation($input: ScheduleCampaignInput!) {{ scheduleCampaign(input: $input) {{ {CAMPAIGN_FIELDS} }} }}"
SIMPLE = {name: f"mutation($id: ID!) {{ {name}(input: {{id: $id}}) {{ {CAMPAIGN_FIELDS} }} }}"
          for name in ("unscheduleCampaign", "pauseCampaign", "resumeCampaign", "cancelCampaign")}
LAUNCH = f"mutation($id: ID!, $key: String!) {{ launchCampaign(input: {{id: $id, idempotencyKey: $key}}) {{ {CAMPAIGN_FIELDS} }} }}"
PROVIDER = """mutation($input: SetDeliveryProviderInput!) { setDeliveryProvider(input: $input) {
  deliveryProvider { provider credentialsSet } errors { field code message } } }"""
PREVIEW_AUDIENCE = """query($id: ID!) { previewCampaignAudience(campaignId: $id) { count deferred total
  excluded { excludedSegment noAddress suppressed noConsent frequencyCap } } }"""
CAMPAIGN = """query($id: ID!) { campaign(id: $id) { status scheduledAt failureReason audienceSnapshot
  stats { audience excluded sent failed progress { queued } } } }"""
BREVO_KEY = "brevo-test-key"


# --- helpers ------------------------------------------------------------------------------


async def act(api: Api, t: TenantFixture, name: str, campaign: str) -> dict[str, Any]:
    return await mutate(api, t, SIMPLE[name], {"id": campaign})


def refused(payload: dict[str, Any], code: str, field: str | None = "input.id") -> dict[str, Any]:
    assert payload["campaign"] is None and len(payload["errors"]) == 1, payload
    error = payload["errors"][0]
    assert error["code"] == code and error["field"] == field, payload
    return error


async def brevo(api: Api, t: TenantFixture, brand: str = "a") -> None:
    body = await mutate(api, t, PROVIDER, {"input": {"brandId": t.brand_gid(brand), "channel": "EMAIL",
                                                     "provider": "BREVO", "credentials": {"apiKey": BREVO_KEY}}})
    assert body["errors"] == [] and body["deliveryProvider"]["credentialsSet"], body


async def segment_of(t: TenantFixture, customer_ids: list[uuid.UUID], brand: str = "a") -> uuid.UUID:
    """A static segment of existing customers."""
    from sqlalchemy.dialects.postgresql import insert

    from domain.platform.db import tenant_session
    from domain.segments.models import Segment, SegmentMembership

    async with tenant_session(t.id) as s:
        now = await s.scalar(select(func.now()))
        seg = Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=t.brands[brand], name=f"seg {uuid.uuid4().hex[:6]}",
                      kind="static", member_count=len(customer_ids), last_refreshed_at=now)
        s.add(seg)
        await s.flush()
        await s.execute(insert(SegmentMembership).values([dict(tenant_id=t.id, segment_id=seg.id, customer_id=c,
                                                               entered_at=now) for c in customer_ids]))
    return seg.id


async def by_customer(t: TenantFixture, campaign: str) -> dict[uuid.UUID, Any]:
    return {r.customer_id: r for r in await recipients(t, campaign)}


async def campaign_of(api: Api, t: TenantFixture, campaign: str) -> dict[str, Any]:
    return (await api.data(CAMPAIGN, {"id": campaign}, token=t.owner_token))["campaign"]


# --- the original end-to-end test --------------------------------------------------------------


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


# --- definitions: typed errors ---------------------------------------------------------------------


async def test_create_and_update_refuse_bad_input_with_field_paths(api: Api, tenant: TenantFixture) -> None:
    seg, _ = await audience(tenant, 1)
    other_brand_seg, _ = await audience(tenant, 1, brand="b")
    base = {"brandId": tenant.brand_gid("a"), "name": "Spring", "channel": "EMAIL", "segmentIds": [gid("Segment", seg)]}

    async def create_with(**changes: Any) -> dict[str, Any]:
        return await mutate(api, tenant, CREATE, {"input": {**base, **changes}})

    # a variable the customer does not have: refused at save time, with the template's line
    body = await create_with(content={"subject": "Hi", "html": "<p>Hello</p>\n<p>{{ customer.shoe_size }}</p>"})
    assert body["campaign"] is None and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["field"] == "input.content.html" and error["code"] == "INVALID", error
    assert "line 2" in error["message"] and "shoe_size" in error["message"], error
    # a template that does not parse
    body = await create_with(content={"subject": "Hi {{ customer.first_name", "text": "ok"})
    error = body["errors"][0]
    assert body["campaign"] is None and error["field"] == "input.content.subject", body
    assert "line 1" in error["message"], error
    body = await create_with(content={"subject": "Hi", "html": "<p>a</p>\n\n{% if customer.first_name %}x"})
    assert body["errors"][0]["field"] == "input.content.html" and "line 3" in body["errors"][0]["message"], body
    # no subject
    body = await create_with(content={"html": "<p>Hi</p>"})
    assert body["errors"] == [{"field": "input.content.subject", "code": "REQUIRED",
                               "message": body["errors"][0]["message"]}], body
    # a segment of another brand looks like no segment at all
    body = await create_with(segmentIds=[gid("Segment", seg), gid("Segment", other_brand_seg)])
    assert body["errors"][0]["field"] == "input.segmentIds[1]" and body["errors"][0]["code"] == "NOT_FOUND", body
    body = await create_with(segmentIds=[gid("Segment", other_brand_seg)])
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("input.segmentIds[0]", "NOT_FOUND")], body
    # nothing was created by the refused calls
    listed = await api.data("{ campaigns(first: 50) { edges { node { id } } } }", token=tenant.owner_token)
    assert listed["campaigns"]["edges"] == []

    # update: the same checks; a good change goes through
    body = await create_with(content={"subject": "Hi {{ customer.first_name }}", "text": "Hello"})
    assert body["errors"] == [], body
    campaign = body["campaign"]["id"]
    body = await mutate(api, tenant, UPDATE, {"input": {"id": campaign, "content": {
        "subject": "Hi", "text": "line one\n{{ brand.nickname }}"}}})
    assert body["errors"][0]["field"] == "input.content.text" and "line 2" in body["errors"][0]["message"], body
    body = await mutate(api, tenant, UPDATE, {"input": {"id": campaign, "segmentIds": [gid("Segment", other_brand_seg)]}})
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("input.segmentIds[0]", "NOT_FOUND")], body
    body = await mutate(api, tenant, UPDATE, {"input": {"id": campaign, "name": "Renamed"}})
    assert body["errors"] == [], body
    found = (await api.data("query($id: ID!) { campaign(id: $id) { name content { subject text } segments { id } } }",
                            {"id": campaign}, token=tenant.owner_token))["campaign"]
    assert found == {"name": "Renamed", "content": {"subject": "Hi {{ customer.first_name }}", "text": "Hello"},
                     "segments": [{"id": gid("Segment", seg)}]}, found
    # delete: a draft goes
    body = await mutate(api, tenant, DELETE, {"id": campaign})
    assert body == {"deletedId": campaign, "errors": []}, body
    assert (await api.data("query($id: ID!) { campaign(id: $id) { id } }", {"id": campaign},
                           token=tenant.owner_token))["campaign"] is None


# --- the status machine ----------------------------------------------------------------------------


async def test_status_transitions_and_refusals(api: Api, tenant: TenantFixture, worker) -> None:
    await identity(tenant)
    seg, _ = await audience(tenant, 3)
    campaign = await create(api, tenant, seg)
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")

    # draft: nothing to pause, resume or unschedule; no provider yet → cannot launch
    for name in ("pauseCampaign", "resumeCampaign", "unscheduleCampaign"):
        error = refused(await act(api, tenant, name, campaign), "INVALID_STATE")
        assert "draft" in error["message"], error
    error = refused(await mutate(api, tenant, LAUNCH, {"id": campaign, "key": "k0"}), "INVALID_STATE")
    assert "provider" in error["message"], error
    await use_provider(tenant, "a", "email", "log")

    # draft → scheduled → (reschedule) → draft → scheduled → cancelled
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT", "localTime": future}})
    assert body["errors"] == [] and body["campaign"]["status"] == "SCHEDULED", body
    past = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT", "localTime": "2001-01-01T09:00"}})
    assert past["errors"][0]["field"] == "input.localTime", past
    body = await mutate(api, tenant, UPDATE, {"input": {"id": campaign, "name": "Still editable"}})
    assert body["errors"] == [], body
    body = await act(api, tenant, "unscheduleCampaign", campaign)
    assert body["errors"] == [] and body["campaign"]["status"] == "DRAFT" and body["campaign"]["scheduledAt"] is None
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT", "localTime": future}})
    assert body["campaign"]["status"] == "SCHEDULED", body
    for name in ("pauseCampaign", "resumeCampaign"):
        refused(await act(api, tenant, name, campaign), "INVALID_STATE")
    refused(await mutate(api, tenant, DELETE, {"id": campaign}) | {"campaign": None}, "INVALID_STATE")
    body = await act(api, tenant, "cancelCampaign", campaign)
    assert body["errors"] == [] and body["campaign"]["status"] == "CANCELLED", body
    # cancelled is final
    for name in ("pauseCampaign", "resumeCampaign", "unscheduleCampaign", "cancelCampaign"):
        refused(await act(api, tenant, name, campaign), "INVALID_STATE")
    refused(await mutate(api, tenant, LAUNCH, {"id": campaign, "key": "k1"}), "INVALID_STATE")
    refused(await mutate(api, tenant, UPDATE, {"input": {"id": campaign, "name": "x"}}), "INVALID_STATE", "input.id")
    refused(await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT", "localTime": future}}),
            "INVALID_STATE", "input.id")
    refused(await mutate(api, tenant, DELETE, {"id": campaign}) | {"campaign": None}, "INVALID_STATE")

    # draft → sending → sent; then nothing but reading
    sent = await create(api, tenant, seg)
    body = await mutate(api, tenant, LAUNCH, {"id": sent, "key": "first"})
    assert body["errors"] == [] and body["campaign"]["status"] == "SENDING", body
    refused(await act(api, tenant, "resumeCampaign", sent), "INVALID_STATE")  # resume of a sending one
    await wait_status(api, tenant, sent)
    error = refused(await mutate(api, tenant, LAUNCH, {"id": sent, "key": "second"}), "INVALID_STATE")
    assert "sent" in error["message"], error
    for name in ("pauseCampaign", "resumeCampaign", "unscheduleCampaign", "cancelCampaign"):
        refused(await act(api, tenant, name, sent), "INVALID_STATE")
    refused(await mutate(api, tenant, UPDATE, {"input": {"id": sent, "name": "x"}}), "INVALID_STATE", "input.id")
    refused(await mutate(api, tenant, SCHEDULE, {"input": {"id": sent, "mode": "AT", "localTime": future}}),
            "INVALID_STATE", "input.id")
    refused(await mutate(api, tenant, DELETE, {"id": sent}) | {"campaign": None}, "INVALID_STATE")
    # a draft can be cancelled too
    draft = await create(api, tenant, seg)
    assert (await act(api, tenant, "cancelCampaign", draft))["campaign"]["status"] == "CANCELLED"

    # a campaign that stays sending (every recipient waits for their local time):
    # sending → paused → sending → cancelled
    local = await create(api, tenant, seg)
    when = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": local, "mode": "LOCAL", "localTime": when}})
    assert body["campaign"]["status"] == "SCHEDULED", body
    body = await mutate(api, tenant, LAUNCH, {"id": local, "key": "local"})
    assert body["campaign"]["status"] == "SENDING", body
    await until(lambda: recipients(tenant, local), what="recipient rows")
    refused(await act(api, tenant, "resumeCampaign", local), "INVALID_STATE")
    refused(await act(api, tenant, "unscheduleCampaign", local), "INVALID_STATE")
    refused(await mutate(api, tenant, UPDATE, {"input": {"id": local, "name": "x"}}), "INVALID_STATE", "input.id")
    assert (await act(api, tenant, "pauseCampaign", local))["campaign"]["status"] == "PAUSED"
    refused(await act(api, tenant, "pauseCampaign", local), "INVALID_STATE")
    refused(await mutate(api, tenant, LAUNCH, {"id": local, "key": "again"}), "INVALID_STATE")
    assert (await act(api, tenant, "resumeCampaign", local))["campaign"]["status"] == "SENDING"
    assert (await act(api, tenant, "pauseCampaign", local))["campaign"]["status"] == "PAUSED"
    assert (await act(api, tenant, "cancelCampaign", local))["campaign"]["status"] == "CANCELLED"
    refused(await act(api, tenant, "resumeCampaign", local), "INVALID_STATE")
    rows = await recipients(tenant, local)
    assert len(rows) == 3 and {r.status for r in rows} == {"cancelled"}, [r.status for r in rows]
    stats = (await campaign_of(api, tenant, local))["stats"]
    assert stats["progress"]["queued"] == 0 and stats["sent"] == 0, stats


async def test_launch_with_the_same_key_launches_once(api: Api, tenant: TenantFixture, worker) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    seg, ids = await audience(tenant, 20)
    campaign = await create(api, tenant, seg)
    results = await asyncio.gather(*(mutate(api, tenant, LAUNCH, {"id": campaign, "key": "same"}) for _ in range(4)))
    assert all(r["errors"] == [] for r in results), results
    assert len({r["campaign"]["launchedAt"] for r in results}) == 1, results
    done = await wait_status(api, tenant, campaign)
    again = await mutate(api, tenant, LAUNCH, {"id": campaign, "key": "same"})
    assert again["errors"] == [] and again["campaign"]["launchedAt"] == results[0]["campaign"]["launchedAt"]
    assert again["campaign"]["status"] == "SENT"
    rows = await recipients(tenant, campaign)
    assert sorted(r.customer_id for r in rows) == sorted(ids)
    assert all(r.status == "sent" and r.attempts == 1 for r in rows)
    assert done["stats"]["audience"] == 20 and done["stats"]["sent"] == 20, done
    from domain.audit.models import AuditEntry
    from domain.platform.db import tenant_session

    async with tenant_session(tenant.id) as s:
        launches = await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tenant.id, AuditEntry.action == "campaign.launch"))
    assert launches == 1


# --- previews -------------------------------------------------------------------------------------


async def test_preview_renders_one_customers_message(api: Api, tenant: TenantFixture, api_url: str) -> None:
    await identity(tenant)
    seg, ids = await audience(tenant, 2)
    await set_customers(tenant, ids[1:], first_name="Zoë", last_name="Martin")
    campaign = await create(api, tenant, seg, content={
        "subject": "{{ customer.first_name }}, news from {{ brand.name }}",
        "html": '<html><body><p>Hi {{ customer.full_name }}</p><a href="https://shop.example.test/sale?a=1&amp;b=2">'
                'Sale</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>',
        "text": "Hi {{ customer.first_name }}. Unsubscribe: {{ unsubscribe_url }}"})
    found = (await api.data("""query($c: ID!, $u: ID!) { previewCampaign(campaignId: $c, customerId: $u) {
        to subject html text headers } }""", {"c": campaign, "u": gid("Customer", ids[1])},
                            token=tenant.owner_token))["previewCampaign"]
    [email] = await emails_of(tenant, ids[1:])
    assert found["to"] == email
    assert found["subject"] == "Zoë, news from Brand A"
    headers = found["headers"]
    unsubscribe = headers["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{api_url}/u/"), headers
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Message-ID"] == f"<c.{cid(campaign).hex}.{ids[1].hex}@a.example.test>"
    html = found["html"]
    assert "Hi Zoë Martin" in html
    assert 'href="https://shop.example.test' not in html and f'href="{api_url}/t/c/' in html  # tracked click
    assert f'href="{unsubscribe}"' in html  # the unsubscribe link is not wrapped
    assert f'src="{api_url}/t/o/' in html and html.index("/t/o/") < html.index("</body>")  # open pixel
    assert found["text"] == f"Hi Zoë. Unsubscribe: {unsubscribe}"
    # the tracked link goes where the campaign pointed
    click = html.split(f'href="{api_url}/t/c/', 1)[1].split('"', 1)[0]
    r = await api.http.get(f"/t/c/{click}", follow_redirects=False)
    assert r.status_code in (302, 303, 307) and r.headers["location"] == "https://shop.example.test/sale?a=1&b=2", r
    # another customer's preview is theirs
    other = (await api.data("""query($c: ID!, $u: ID!) { previewCampaign(campaignId: $c, customerId: $u) {
        subject headers } }""", {"c": campaign, "u": gid("Customer", ids[0])}, token=tenant.owner_token))
    assert other["previewCampaign"]["subject"] == "P0, news from Brand A"
    assert other["previewCampaign"]["headers"]["List-Unsubscribe"] != headers["List-Unsubscribe"]


async def test_audience_counts_every_exclusion_reason_and_launch_records_them(
        api: Api, tenant: TenantFixture, worker) -> None:
    from domain.delivery import service as delivery
    from domain.platform.db import tenant_session

    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    ok_seg, ok = await audience(tenant, 3)
    _, excl = await audience(tenant, 2)
    _, no_address = await audience(tenant, 2)
    _, suppressed = await audience(tenant, 2)
    _, no_consent = await audience(tenant, 2, consent=False)
    capped_seg, capped = await audience(tenant, 2)
    await set_customers(tenant, no_address, email=None)
    async with tenant_session(tenant.id) as s:
        for address in await emails_of(tenant, suppressed):
            await delivery.suppress(s, tenant.id, tenant.brands["a"], "email", address, "unsubscribed", "test")
    # the capped customers already got a message from the brand; the cap is one a day
    earlier = await create(api, tenant, capped_seg)
    await launch(api, tenant, earlier)
    await wait_status(api, tenant, earlier)
    saved = await settings(api, tenant, frequencyCapCount=1, frequencyCapHours=24)
    assert saved == {"quietHoursStart": None, "quietHoursEnd": None, "frequencyCapCount": 1, "frequencyCapHours": 24,
                     "sendRatePerSecond": 500}, saved  # the cap as given, the rest the defaults

    everyone = ok + excl + no_address + suppressed + no_consent + capped
    target = await segment_of(tenant, everyone)
    exclusion = await segment_of(tenant, excl + no_consent[:1])  # the exclusion segment comes first
    campaign = await create(api, tenant, target, segmentIds=[gid("Segment", target), gid("Segment", ok_seg)],
                            exclusionSegmentIds=[gid("Segment", exclusion)])
    expected = {"excludedSegment": 3, "noAddress": 2, "suppressed": 2, "noConsent": 1, "frequencyCap": 2}
    preview = (await api.data(PREVIEW_AUDIENCE, {"id": campaign}, token=tenant.owner_token))["previewCampaignAudience"]
    assert preview == {"count": 3, "deferred": 0, "total": 13, "excluded": expected}, preview

    await launch(api, tenant, campaign)
    done = await wait_status(api, tenant, campaign)
    rows = await by_customer(tenant, campaign)
    assert len(rows) == 13
    reasons = {c: (r.status, r.exclusion_reason) for c, r in rows.items()}
    assert {c: reasons[c] for c in ok} == {c: ("sent", None) for c in ok}
    assert {c: reasons[c] for c in excl + no_consent[:1]} == {c: ("excluded", "excluded_segment") for c in excl + no_consent[:1]}
    assert {c: reasons[c] for c in no_address} == {c: ("excluded", "no_address") for c in no_address}
    assert {c: reasons[c] for c in suppressed} == {c: ("excluded", "suppressed") for c in suppressed}
    assert reasons[no_consent[1]] == ("excluded", "no_consent")
    assert {c: reasons[c] for c in capped} == {c: ("excluded", "frequency_cap") for c in capped}
    stats = done["stats"]
    assert (stats["audience"], stats["excluded"], stats["sent"], stats["failed"], stats["progress"]["queued"]) == \
        (3, 10, 3, 0, 0), stats
    snapshot = (await campaign_of(api, tenant, campaign))["audienceSnapshot"]
    assert snapshot["audience"] == 3 and snapshot["excluded"] == {
        "excluded_segment": 3, "no_address": 2, "suppressed": 2, "no_consent": 1, "frequency_cap": 2}, snapshot


# --- send times: quiet hours, frequency cap deferral, schedules -----------------------------------------


async def test_quiet_hours_defer_to_their_end_in_the_recipients_timezone(
        api: Api, tenant: TenantFixture, worker) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    seg, ids = await audience(tenant, 3)
    tokyo, new_york, brand_zone = ids
    await set_customers(tenant, [tokyo], timezone="Asia/Tokyo")
    await set_customers(tenant, [new_york], timezone="America/New_York")
    zone = ZoneInfo("Asia/Tokyo")
    now_tokyo = datetime.now(zone)
    start = (now_tokyo - timedelta(hours=1)).replace(second=0, microsecond=0)
    end = (now_tokyo + timedelta(hours=2)).replace(second=0, microsecond=0)
    saved = await settings(api, tenant, quietHoursStart=start.strftime("%H:%M:%S"), quietHoursEnd=end.strftime("%H:%M:%S"))
    assert saved["quietHoursStart"].startswith(start.strftime("%H:%M")), saved
    campaign = await create(api, tenant, seg)
    preview = (await api.data(PREVIEW_AUDIENCE, {"id": campaign}, token=tenant.owner_token))["previewCampaignAudience"]
    assert (preview["count"], preview["deferred"]) == (3, 1), preview

    await launch(api, tenant, campaign)
    await until(lambda: _sent(tenant, campaign, 2), what="the two recipients outside quiet hours")
    rows = await by_customer(tenant, campaign)
    assert rows[tokyo].status == "queued" and rows[tokyo].sent_at is None
    assert rows[tokyo].send_after == end.replace(tzinfo=zone)  # the next end of quiet hours, in Tokyo
    assert rows[new_york].status == rows[brand_zone].status == "sent"
    assert rows[new_york].send_after < datetime.now(UTC)
    assert (await campaign_of(api, tenant, campaign))["status"] == "SENDING"  # the deferred one is still due


async def _sent(t: TenantFixture, campaign: str, n: int) -> bool:
    return sum(r.status == "sent" for r in await recipients(t, campaign)) >= n


async def test_scheduled_campaign_defers_over_cap_recipients_within_its_window(
        api: Api, tenant: TenantFixture, worker) -> None:
    from domain.campaigns.service import launch_due

    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    capped_seg, capped = await audience(tenant, 2)
    _, fresh = await audience(tenant, 1)
    earlier = await create(api, tenant, capped_seg)
    await launch(api, tenant, earlier)
    await wait_status(api, tenant, earlier)
    last_sent = {c: r.sent_at for c, r in (await by_customer(tenant, earlier)).items()}
    await settings(api, tenant, frequencyCapCount=1, frequencyCapHours=24)
    target = await segment_of(tenant, capped + fresh)

    async def preview(c: str) -> dict[str, Any]:
        return (await api.data(PREVIEW_AUDIENCE, {"id": c}, token=tenant.owner_token))["previewCampaignAudience"]

    # sent now: the cap excludes them
    now_campaign = await create(api, tenant, target)
    p = await preview(now_campaign)
    assert (p["count"], p["deferred"], p["excluded"]["frequencyCap"]) == (1, 0, 2), p
    # scheduled with a window the next allowed time falls outside of: still excluded
    narrow = await create(api, tenant, target, sendWindowHours=12)
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": narrow, "mode": "AT", "localTime": in_an_hour}})
    assert body["errors"] == [], body
    p = await preview(narrow)
    assert (p["count"], p["excluded"]["frequencyCap"]) == (1, 2), p
    # scheduled with a 48-hour window: deferred to when the cap allows
    wide = await create(api, tenant, target, sendWindowHours=48)
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": wide, "mode": "AT",
                                                          "localTime": soon.strftime("%Y-%m-%dT%H:%M:%S")}})
    assert body["errors"] == [] and datetime.fromisoformat(body["campaign"]["scheduledAt"]) >= soon, body
    p = await preview(wide)
    assert (p["count"], p["deferred"], p["excluded"]["frequencyCap"]) == (3, 2, 0), p

    await until(lambda: launch_due(tenant.id), within=10, what="the scheduled campaign to be due")
    await until(lambda: _sent(tenant, wide, 1), what="the fresh recipient")
    rows = await by_customer(tenant, wide)
    for c in capped:
        assert rows[c].status == "queued" and rows[c].exclusion_reason is None
        assert rows[c].send_after == last_sent[c] + timedelta(hours=24)
    assert rows[fresh[0]].status == "sent"
    assert (await campaign_of(api, tenant, narrow))["status"] == "SCHEDULED"  # not due yet


async def test_schedule_at_converts_the_brands_wall_clock_to_utc(api: Api, tenant: TenantFixture) -> None:
    from domain.tenancy import brands

    seg, _ = await audience(tenant, 1)
    campaign = await create(api, tenant, seg)
    year = datetime.now(UTC).year + 2
    cases = [("America/New_York", f"{year}-01-15T09:00", datetime(year, 1, 15, 14, 0, tzinfo=UTC)),
             ("America/New_York", f"{year}-07-15T09:00", datetime(year, 7, 15, 13, 0, tzinfo=UTC)),
             ("Asia/Kolkata", f"{year}-03-01T09:00", datetime(year, 3, 1, 3, 30, tzinfo=UTC)),
             ("UTC", f"{year}-03-01T09:00", datetime(year, 3, 1, 9, 0, tzinfo=UTC))]
    for zone, local, expected in cases:
        await brands.update_brand(tenant.owner, tenant.brands["a"], {"timezone": zone})
        body = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT", "localTime": local}})
        assert body["errors"] == [], body
        assert datetime.fromisoformat(body["campaign"]["scheduledAt"]) == expected, (zone, local, body)
    found = (await api.data("query($id: ID!) { campaign(id: $id) { scheduleMode localSendTime } }", {"id": campaign},
                            token=tenant.owner_token))["campaign"]
    assert found == {"scheduleMode": "AT", "localSendTime": f"{year}-03-01T09:00"}
    bad = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT", "localTime": f"{year}-03-01T09:00+02:00"}})
    assert bad["errors"][0]["field"] == "input.localTime", bad


async def test_schedule_local_sends_at_each_recipients_local_time(api: Api, tenant: TenantFixture, worker) -> None:
    from domain.tenancy import brands

    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    await brands.update_brand(tenant.owner, tenant.brands["a"], {"timezone": "Europe/Paris"})
    seg, ids = await audience(tenant, 3)
    tokyo, new_york, unknown = ids
    await set_customers(tenant, [tokyo], timezone="Asia/Tokyo")
    await set_customers(tenant, [new_york], timezone="America/New_York")
    campaign = await create(api, tenant, seg)
    local = (datetime.now(UTC) + timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0, tzinfo=None)
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "LOCAL",
                                                          "localTime": local.strftime("%Y-%m-%dT%H:%M")}})
    assert body["errors"] == [], body
    # sending starts when the first zone on Earth (UTC+14) reaches the time
    assert datetime.fromisoformat(body["campaign"]["scheduledAt"]) == local.replace(tzinfo=UTC) - timedelta(hours=14)
    preview = (await api.data(PREVIEW_AUDIENCE, {"id": campaign}, token=tenant.owner_token))["previewCampaignAudience"]
    assert (preview["count"], preview["deferred"]) == (3, 3), preview
    await launch(api, tenant, campaign)
    rows = await until(lambda: by_customer(tenant, campaign), what="recipient rows")
    assert rows[tokyo].send_after == local.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    assert rows[new_york].send_after == local.replace(tzinfo=ZoneInfo("America/New_York"))
    assert rows[unknown].send_after == local.replace(tzinfo=ZoneInfo("Europe/Paris"))  # the brand's zone
    assert {r.status for r in rows.values()} == {"queued"}


async def test_scheduler_launches_due_campaigns_and_dispatches_deferred_recipients(
        api: Api, tenant: TenantFixture, worker) -> None:
    from domain.campaigns.sending import dispatch_due
    from domain.campaigns.service import launch_due

    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    seg, ids = await audience(tenant, 4)
    campaign = await create(api, tenant, seg)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    body = await mutate(api, tenant, SCHEDULE, {"input": {"id": campaign, "mode": "AT",
                                                          "localTime": start.strftime("%Y-%m-%dT%H:%M:%S")}})
    assert body["campaign"]["status"] == "SCHEDULED", body
    # quiet hours (brand's zone, UTC) end a few seconds after the campaign starts
    quiet_end = start + timedelta(seconds=7)
    await settings(api, tenant, quietHoursStart=(start - timedelta(hours=1)).strftime("%H:%M:%S"),
                   quietHoursEnd=quiet_end.strftime("%H:%M:%S"))
    assert await launch_due(tenant.id) == 0  # not yet
    assert (await campaign_of(api, tenant, campaign))["status"] == "SCHEDULED"
    await until(lambda: launch_due(tenant.id), within=10, what="the campaign to be due")
    assert datetime.now(UTC) >= start
    rows = await until(lambda: recipients(tenant, campaign), what="recipient rows")
    assert len(rows) == 4 and all(r.status == "queued" and r.send_after == quiet_end for r in rows)
    assert (await campaign_of(api, tenant, campaign))["status"] == "SENDING"
    await until(lambda: _due(quiet_end), within=10, what="the end of quiet hours")
    assert await dispatch_due(tenant.id) == 1  # one batch
    done = await wait_status(api, tenant, campaign)
    assert done["stats"]["sent"] == 4 and done["stats"]["progress"]["queued"] == 0, done
    rows = await recipients(tenant, campaign)
    assert all(r.status == "sent" and r.sent_at >= quiet_end for r in rows)


async def _due(at: datetime) -> bool:
    return datetime.now(UTC) >= at


# --- pause, resume, cancel --------------------------------------------------------------------------


async def _slow_brevo_campaign(api: Api, t: TenantFixture, n: int) -> tuple[str, list[uuid.UUID]]:
    """A Brevo campaign sent at 10 messages a second (one provider call of 10 each second)."""
    await identity(t)
    await brevo(api, t)
    await settings(api, t, sendRatePerSecond=10)
    seg, ids = await audience(t, n)
    return await create(api, t, seg), ids


async def _settled(t: TenantFixture, campaign: str) -> list[Any] | None:
    """Recipient rows once none is in flight (claimed, not yet marked)."""
    rows = await recipients(t, campaign)
    return None if any(r.status == "sending" for r in rows) else rows


async def test_pause_stops_sending_and_resume_sends_the_rest_once(
        api: Api, tenant: TenantFixture, worker, fakes) -> None:
    n = 400  # 40 seconds of sending at 10 a second: the pause lands long before the end, even under load
    campaign, ids = await _slow_brevo_campaign(api, tenant, n)
    await launch(api, tenant, campaign)
    await until(lambda: _async(len(fake_messages(fakes.brevo, campaign)) >= 10), what="the first messages")
    body = await act(api, tenant, "pauseCampaign", campaign)
    assert body["errors"] == [] and body["campaign"]["status"] == "PAUSED", body
    paused, at_pause = time.monotonic(), len(fake_messages(fakes.brevo, campaign))
    # a call already under way still goes out: its rows were claimed before the pause (or by a
    # chunk that read the status just before), and it waits up to a second for the send rate
    await asyncio.sleep(max(0.0, paused + 1.5 - time.monotonic()))
    await until(lambda: _settled(tenant, campaign), what="the call in flight to finish")
    settled = len(fake_messages(fakes.brevo, campaign))
    assert settled - at_pause <= 10  # at most that one call
    await asyncio.sleep(2)
    assert len(fake_messages(fakes.brevo, campaign)) == settled < n  # nothing more while paused
    statuses = Counter(r.status for r in await recipients(tenant, campaign))
    assert statuses == {"sent": settled, "queued": n - settled}, statuses
    assert (await campaign_of(api, tenant, campaign))["status"] == "PAUSED"

    await settings(api, tenant, sendRatePerSecond=500)  # the rest at full speed (read per provider call)
    body = await act(api, tenant, "resumeCampaign", campaign)
    assert body["campaign"]["status"] == "SENDING", body
    done = await wait_status(api, tenant, campaign)
    messages = fake_messages(fakes.brevo, campaign)
    assert len(messages) == n and len({m.key for m in messages}) == n
    emails = set(await emails_of(tenant, ids))
    assert Counter(m.to for m in messages) == {e: 1 for e in emails}
    assert done["stats"]["sent"] == n and done["stats"]["progress"]["queued"] == 0, done
    rows = await recipients(tenant, campaign)
    assert all(r.status == "sent" for r in rows) and len(rows) == n


async def _async(value: Any) -> Any:
    return value


async def test_cancel_marks_unsent_recipients_cancelled(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    n = 400  # 40 seconds of sending at 10 a second: the cancel lands long before the end, even under load
    campaign, _ = await _slow_brevo_campaign(api, tenant, n)
    await launch(api, tenant, campaign)
    await until(lambda: _async(len(fake_messages(fakes.brevo, campaign)) >= 10), what="the first messages")
    body = await act(api, tenant, "cancelCampaign", campaign)
    assert body["errors"] == [] and body["campaign"]["status"] == "CANCELLED", body
    at_cancel = len(fake_messages(fakes.brevo, campaign))
    rows = await until(lambda: _settled(tenant, campaign), what="the call in flight to finish")
    statuses = Counter(r.status for r in rows)
    sent = len(fake_messages(fakes.brevo, campaign))
    assert sent - at_cancel <= 10, (at_cancel, sent)  # at most the one call under way
    assert statuses == {"sent": sent, "cancelled": n - sent} and sent < n, statuses
    # nothing after: every row is settled (sent or cancelled), so there is nothing left to claim
    assert len(fake_messages(fakes.brevo, campaign)) == sent
    found = await campaign_of(api, tenant, campaign)
    assert found["status"] == "CANCELLED"
    assert found["stats"]["sent"] == sent and found["stats"]["progress"]["queued"] == 0, found


# --- lists without N+1 ---------------------------------------------------------------------------------


async def test_brand_campaigns_use_the_same_statements_for_5_and_50(api: Api) -> None:
    from domain.campaigns import service

    t = await create_tenant_fixture()
    segs = [(await audience(t, 1))[0] for _ in range(3)]
    for i in range(50):
        await service.create_campaign(t.owner, t.brands["a"], {"name": f"c{i}", "channel": "email",
                                                                 "segment_ids": segs[: 1 + i % 3]})
    query = """query($id: ID!, $n: Int!) { brand(id: $id) { campaigns(first: $n) { edges { node {
      name stats { sent audience } segments { id name } } } } } }"""

    async def statements(n: int) -> int:
        body = await api.gql(query, {"id": t.brand_gid("a"), "n": n}, token=t.owner_token)
        assert not body.get("errors"), body
        edges = body["data"]["brand"]["campaigns"]["edges"]
        assert len(edges) == n and all(e["node"]["segments"] and e["node"]["stats"]["sent"] == 0 for e in edges)
        return body["extensions"]["sqlStatements"]

    await warm(api, t.owner_token)  # both requests then count their operation's statements alone
    small, large = await statements(5), await statements(50)
    assert small >= 3  # campaigns, then stats and segments through their loaders
    assert small == large, (small, large)
