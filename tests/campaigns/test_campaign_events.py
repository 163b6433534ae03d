"""What happens after a campaign is sent, over HTTP against the running API.

* provider webhooks: SendGrid's signed event webhook (ECDSA P-256 with the brand's verification
  key), Brevo's with the brand's bearer token, Twilio's status callbacks (HMAC-SHA1 with the auth
  token over the public webhook URL): recipient rows, stats counters, timelines, consents and
  suppressions; a request not signed by the brand's secret gets 401 and changes nothing;
  duplicates change nothing twice; out-of-order events settle as documented;
* our own tracking: the open pixel, the click redirect, one-click unsubscribe (RFC 8058), and
  tampered tokens;
* conversions: orders within the brand's attribution window after an open or a click;
* live stats: the ``campaignStats`` subscription on a second API process follows what the worker
  and the first API process change, coalesced to at most four frames a second.

Each campaign is really sent by the session's worker through the loopback provider fakes, so the
keys, message ids and tracking links the tests use are the ones that went out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import Api, Fakes, TenantFixture, gid, start_api
from domain.delivery.webhooks import (
    TWILIO_SIGNATURE_HEADER,
    sign_twilio,
)
from support.campaigns import (
    audience,
    create,
    identity,
    launch,
    recipients,
    use_provider,
    wait_status,
)
from support.provider_events import (
    SendGridKey,
    Sent,
    accepted,
    links_of,
    post_brevo,
    post_sendgrid,
    post_twilio,
    refused,
    send_campaign,
    sendgrid_credentials,
    sendgrid_event,
    table_rows,
    webhook_path,
)
from support.ws import Client, bearer, wait_for

ERRORS = "errors { field code message }"
STATS_FIELDS = ("audience sent failed delivered bounced opens clicks unsubscribes complaints conversions revenueCents "
                "openRate clickRate conversionRate roas version progress { queued sent failed }")
STATS = "query($id: ID!) { campaign(id: $id) { stats { " + STATS_FIELDS + " } } }"
TIMELINE = """query($id: ID!, $b: ID) { customer(id: $id) {
  consents(brandId: $b) { channel granted revokedAt source brand { id } }
  timeline(first: 100) { edges { node { kind occurredAt brand { id }
    ... on OtherTimelineEvent { data } ... on CampaignMessageEvent { data } ... on CampaignConversionEvent { data touch }
    ... on ConsentChangedEvent { channel granted source } } } } } }"""
SUPPRESSIONS = "query($b: ID!) { suppressions(brandId: $b) { edges { node { channel address reason source } } } }"
RECORD_ORDER = ("mutation($input: RecordOrderInput!) { recordOrder(input: $input) { created order { id } "
                + ERRORS + " } }")
SETTINGS = ("mutation($input: UpdateMessagingSettingsInput!) { updateMessagingSettings(input: $input) { "
            "messagingSettings { attributionDays } " + ERRORS + " } }")
ONE_CLICK = b"List-Unsubscribe=One-Click"
BREVO_TOKEN = "brevo-hook-token-0123456789abcdef"

# --- keys, campaigns, requests --------------------------------------------------------------------


async def stats(api: Api, s: Sent) -> dict[str, Any]:
    return (await api.data(STATS, {"id": s.campaign}, token=s.t.owner_token))["campaign"]["stats"]


async def rows_by_customer(s: Sent) -> dict[uuid.UUID, Any]:
    return {r.customer_id: r for r in await recipients(s.t, s.campaign)}


async def customer_view(api: Api, s: Sent, i: int) -> dict[str, Any]:
    return (await api.data(TIMELINE, {"id": s.customer(i), "b": s.t.brand_gid(s.brand)},
                           token=s.t.owner_token))["customer"]


def kinds(view: dict[str, Any]) -> list[str]:
    return [e["node"]["kind"] for e in view["timeline"]["edges"]]


def message_events(view: dict[str, Any], s: Sent) -> list[dict[str, Any]]:
    """The MESSAGE_* timeline entries of this campaign (oldest first)."""
    out = [e["node"] for e in view["timeline"]["edges"]
           if e["node"]["kind"].startswith("MESSAGE_") and e["node"]["kind"] != "MESSAGE_SENT" and (e["node"].get("data") or {}).get("campaign_id") == str(s.cid)]
    return sorted(out, key=lambda n: n["occurredAt"])


def counters(st: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: st[n] for n in names}


# --- SendGrid -------------------------------------------------------------------------------------


async def test_sendgrid_events_change_recipients_stats_timeline_and_consent(
    api: Api, tenant: TenantFixture, worker: Any
) -> None:
    key = SendGridKey.new()
    s = await send_campaign(api, tenant, 6, provider="sendgrid", credentials=sendgrid_credentials(key))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    at = [t0 + timedelta(minutes=m) for m in range(6)]
    events = [
        sendgrid_event(s, 0, "delivered", at[0]),
        sendgrid_event(s, 1, "delivered", at[0]), sendgrid_event(s, 1, "open", at[1]),
        sendgrid_event(s, 2, "delivered", at[0]), sendgrid_event(s, 2, "open", at[1]),
        sendgrid_event(s, 2, "click", at[2], url="https://shop.example.test/x?utm=1"),
        sendgrid_event(s, 3, "bounce", at[0], reason="550 5.1.1 mailbox unknown", type="bounce"),
        sendgrid_event(s, 4, "delivered", at[0]), sendgrid_event(s, 4, "spamreport", at[3]),
        sendgrid_event(s, 5, "delivered", at[0]), sendgrid_event(s, 5, "unsubscribe", at[4]),
        {"event": "processed", "bg_key": s.key(0), "timestamp": int(at[0].timestamp())},  # says nothing final
    ]
    before_rows, before_stats = await table_rows(tenant), await stats(api, s)
    assert counters(before_stats, "sent", "delivered", "opens") == {"sent": 6, "delivered": 0, "opens": 0}

    # not signed with the brand's key: 401, and nothing changes
    stranger = SendGridKey.new()
    refused(await post_sendgrid(api, tenant, "a", None, events))  # no signature at all
    refused(await post_sendgrid(api, tenant, "a", stranger, events))  # another key
    refused(await post_sendgrid(api, tenant, "a", key, events, body=json.dumps(events[:1]).encode()))  # altered
    refused(await post_sendgrid(api, tenant, "a", key, events,  # signed for another timestamp
                                signature=key.sign(str(int(time.time()) - 60), json.dumps(events).encode())))
    refused(await post_sendgrid(api, tenant, "a", key, events, signature="bm90IGEgc2lnbmF0dXJl"))
    refused(await post_sendgrid(api, tenant, "b", key, events))  # brand b has no SendGrid key
    assert await table_rows(tenant) == before_rows
    assert await stats(api, s) == before_stats

    accepted(await post_sendgrid(api, tenant, "a", key, events), 11)

    st = await stats(api, s)
    assert counters(st, "sent", "delivered", "bounced", "opens", "clicks", "complaints", "unsubscribes", "failed") == {
        "sent": 6, "delivered": 5, "bounced": 1, "opens": 2, "clicks": 1, "complaints": 1, "unsubscribes": 1,
        "failed": 0}
    assert (st["openRate"], st["clickRate"], st["conversionRate"], st["roas"]) == (40.0, 20.0, 0.0, None)
    assert st["version"] > before_stats["version"]

    rows = await rows_by_customer(s)
    r = [rows[c] for c in s.customers]
    assert (r[0].status, r[0].delivered_at, r[0].opened_at) == ("delivered", at[0], None)
    assert (r[1].delivered_at, r[1].opened_at, r[1].clicked_at) == (at[0], at[1], None)
    assert (r[2].opened_at, r[2].clicked_at) == (at[1], at[2])
    assert (r[3].status, r[3].bounced_at, r[3].delivered_at, r[3].error) == (
        "bounced", at[0], None, "550 5.1.1 mailbox unknown")
    assert (r[4].complained_at, r[4].unsubscribed_at) == (at[3], None)
    assert (r[5].unsubscribed_at, r[5].complained_at) == (at[4], None)

    # the customer timeline, through the API
    clicked = message_events(await customer_view(api, s, 2), s)
    assert [(e["kind"], e["occurredAt"]) for e in clicked] == [
        ("MESSAGE_DELIVERED", at[0].isoformat()), ("MESSAGE_OPENED", at[1].isoformat()),
        ("MESSAGE_CLICKED", at[2].isoformat())]
    assert clicked[2]["data"]["url"] == "https://shop.example.test/x?utm=1"
    assert all(e["brand"] == {"id": tenant.brand_gid("a")} and e["data"]["source"] == "sendgrid" for e in clicked)
    bounced = message_events(await customer_view(api, s, 3), s)
    assert [(e["kind"], e["data"].get("reason")) for e in bounced] == [("MESSAGE_BOUNCED", "550 5.1.1 mailbox unknown")]
    assert "MESSAGE_SENT" in kinds(await customer_view(api, s, 0))

    # complaints and unsubscribes revoke the brand's e-mail consent; a bounce does not
    for i, reason in ((4, "complained"), (5, "unsubscribed")):
        view = await customer_view(api, s, i)
        assert [(c["channel"], c["granted"], c["source"]) for c in view["consents"]] == [
            ("EMAIL", False, f"{reason}:sendgrid")], view["consents"]
        assert [e["kind"] for e in message_events(view, s)] == ["MESSAGE_DELIVERED", f"MESSAGE_{reason.upper()}"]
        assert any(e["node"]["kind"] == "CONSENT_CHANGED" and e["node"]["granted"] is False
                   for e in view["timeline"]["edges"])
    view3 = await customer_view(api, s, 3)
    assert [(c["channel"], c["granted"]) for c in view3["consents"]] == [("EMAIL", True)]
    supp = (await api.data(SUPPRESSIONS, {"b": tenant.brand_gid("a")}, token=tenant.owner_token))["suppressions"]["edges"]
    assert sorted((x["node"]["address"], x["node"]["reason"], x["node"]["source"]) for x in supp) == sorted([
        (s.email(3), "BOUNCED", "sendgrid"), (s.email(4), "COMPLAINED", "sendgrid"),
        (s.email(5), "UNSUBSCRIBED", "sendgrid")])

    # the same events again (SendGrid retries): nothing changes twice
    after = await table_rows(tenant)
    accepted(await post_sendgrid(api, tenant, "a", key, events), 0)
    accepted(await post_sendgrid(api, tenant, "a", key, list(reversed(events))), 0)
    assert await table_rows(tenant) == after
    assert await stats(api, s) == st


async def test_sendgrid_events_out_of_order_settle_as_documented(api: Api, tenant: TenantFixture, worker: Any) -> None:
    key = SendGridKey.new()
    s = await send_campaign(api, tenant, 3, provider="sendgrid", credentials=sendgrid_credentials(key))
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    async def post(i: int, event: str, minutes: int, changed: int, **more: Any) -> None:
        accepted(await post_sendgrid(api, tenant, "a", key, [sendgrid_event(s, i, event, base + timedelta(minutes=minutes),
                                                                             **more)]), changed)

    # 0: the open arrives before the delivery; the open implies it, the late delivery changes nothing
    await post(0, "open", 5, 1)
    await post(0, "delivered", 1, 0)
    # 1: a bounce, then a (late, contradicting) delivery: ignored
    await post(1, "bounce", 2, 1, reason="no such user")
    await post(1, "delivered", 1, 0)
    # 2: delivered, then bounced: the bounce takes the delivery back
    await post(2, "delivered", 1, 1)
    st = await stats(api, s)
    assert counters(st, "delivered", "bounced", "opens") == {"delivered": 2, "bounced": 1, "opens": 1}
    await post(2, "bounce", 3, 1, reason="async bounce")
    await post(2, "delivered", 4, 0)
    # a click before any open: it implies the open (but not again for 0, which opened already)
    await post(0, "click", 6, 1, url="https://shop.example.test/x")
    # a provider retrying while the first request still runs: the row's lock makes it count once
    burst = await asyncio.gather(*(post_sendgrid(api, tenant, "a", key, [
        sendgrid_event(s, 0, "unsubscribe", base + timedelta(minutes=7))]) for _ in range(5)))
    assert all(x.status_code == 200 for x in burst) and sum(x.json()["changed"] for x in burst) == 1, burst
    view = await customer_view(api, s, 0)
    assert [(c["granted"], c["source"]) for c in view["consents"]] == [(False, "unsubscribed:sendgrid")]
    assert [e["node"]["kind"] for e in view["timeline"]["edges"]].count("CONSENT_CHANGED") == 1


    st = await stats(api, s)
    assert counters(st, "delivered", "bounced", "opens", "clicks", "unsubscribes") == {
        "delivered": 1, "bounced": 2, "opens": 1, "clicks": 1, "unsubscribes": 1}
    assert (st["openRate"], st["clickRate"]) == (100.0, 100.0)
    rows = await rows_by_customer(s)
    r = [rows[c] for c in s.customers]
    assert (r[0].status, r[0].delivered_at, r[0].opened_at) == ("delivered", base + timedelta(minutes=5),
                                                                base + timedelta(minutes=5))
    assert (r[1].status, r[1].delivered_at, r[1].bounced_at) == ("bounced", None, base + timedelta(minutes=2))
    assert (r[2].status, r[2].bounced_at) == ("bounced", base + timedelta(minutes=3))
    assert r[2].delivered_at == base + timedelta(minutes=1)  # the delivery happened; the bounce took it back
    # the timeline keeps what happened, once each
    zero = [e["kind"] for e in message_events(view, s)]
    assert zero == ["MESSAGE_OPENED", "MESSAGE_CLICKED", "MESSAGE_UNSUBSCRIBED"], zero  # the delivery was implied
    assert [e["kind"] for e in message_events(await customer_view(api, s, 1), s)] == ["MESSAGE_BOUNCED"]
    assert [e["kind"] for e in message_events(await customer_view(api, s, 2), s)] == [
        "MESSAGE_DELIVERED", "MESSAGE_BOUNCED"]


# --- Brevo ----------------------------------------------------------------------------------------


def brevo_event(s: Sent, i: int, event: str, at: datetime, **more: Any) -> dict[str, Any]:
    return {"event": event, "email": s.email(i), "id": 1, "date": at.strftime("%Y-%m-%d %H:%M:%S"),
            "ts_event": int(at.timestamp()), "message-id": f"<{i}.{s.cid.hex}@smtp-relay.mailin.fr>",
            "X-Mailin-custom": json.dumps({"bg_key": s.key(i)}), "tag": "", **more}


async def test_brevo_events_with_the_brands_bearer_token(api: Api, tenant: TenantFixture, worker: Any) -> None:
    s = await send_campaign(api, tenant, 4, provider="brevo",
                            credentials={"apiKey": "brevo-test-key", "webhookToken": BREVO_TOKEN})
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    batch = [brevo_event(s, 0, "delivered", at), brevo_event(s, 0, "unique_opened", at + timedelta(minutes=1)),
             brevo_event(s, 1, "click", at + timedelta(minutes=2), link="https://shop.example.test/x"),
             brevo_event(s, 2, "hard_bounce", at, reason="user unknown"),
             brevo_event(s, 3, "delivered", at), brevo_event(s, 3, "unsubscribed", at + timedelta(minutes=3)),
             brevo_event(s, 3, "request", at)]  # "sent": nothing final
    before = await table_rows(tenant)
    for auth in (None, "Bearer wrong-token-0123456789abcdef", f"Token {BREVO_TOKEN}", BREVO_TOKEN,
                 "Basic " + base64.b64encode(b"user:wrong").decode()):
        refused(await post_brevo(api, tenant, "a", batch, auth))
    assert await table_rows(tenant) == before

    # a single event per request (Brevo's default), then the batched form
    accepted(await post_brevo(api, tenant, "a", batch[0], f"Bearer {BREVO_TOKEN}"), 1)
    accepted(await post_brevo(api, tenant, "a", batch, f"Bearer {BREVO_TOKEN}"), 5)
    accepted(await post_brevo(api, tenant, "a", batch, "Basic " + base64.b64encode(f"brevo:{BREVO_TOKEN}".encode())
                              .decode()), 0)  # basic auth with the token as password: accepted, a duplicate

    st = await stats(api, s)
    assert counters(st, "delivered", "opens", "clicks", "bounced", "unsubscribes") == {
        "delivered": 3, "opens": 2, "clicks": 1, "bounced": 1, "unsubscribes": 1}
    rows = await rows_by_customer(s)
    assert rows[s.customers[1]].clicked_at == at + timedelta(minutes=2)
    assert rows[s.customers[2]].status == "bounced"
    view = await customer_view(api, s, 3)
    assert [(c["granted"], c["source"]) for c in view["consents"]] == [(False, "unsubscribed:brevo")]
    assert [e["kind"] for e in message_events(view, s)] == ["MESSAGE_DELIVERED", "MESSAGE_UNSUBSCRIBED"]
    clicked = message_events(await customer_view(api, s, 1), s)
    # the click implies the delivery and the open (counted above); the timeline holds what was reported
    assert [(e["kind"], e["data"].get("url")) for e in clicked] == [("MESSAGE_CLICKED", "https://shop.example.test/x")]


# --- Twilio ---------------------------------------------------------------------------------------


async def test_twilio_status_callbacks_signed_with_the_auth_token(
    api: Api, tenant: TenantFixture, fakes: Fakes, worker: Any
) -> None:
    token = fakes.twilio.auth_token
    s = await send_campaign(api, tenant, 3, provider="twilio", channel="SMS",
                            credentials={"accountSid": fakes.twilio.account_sid, "authToken": token})
    rows = await rows_by_customer(s)
    sids = [rows[c].provider_message_id for c in s.customers]
    assert all(sid and sid.startswith("SM") for sid in sids), sids
    url = api.base_url + webhook_path("twilio", tenant, "a")
    sent = {m.provider_message_id: m for m in fakes.twilio.messages}
    assert {sent[sid].headers["StatusCallback"] for sid in sids} == {url}  # where Twilio will post

    def callback(i: int, status: str, **more: str) -> dict[str, str]:
        return {"AccountSid": fakes.twilio.account_sid, "ApiVersion": "2010-04-01", "From": "+15550000000",
                "To": f"+1555{i:07d}", "MessageSid": sids[i], "SmsSid": sids[i], "MessageStatus": status,
                "SmsStatus": status, **more}

    before = await table_rows(tenant)
    delivered = callback(0, "delivered")
    refused(await post_twilio(api, tenant, "a", delivered, None))
    refused(await post_twilio(api, tenant, "a", delivered, "not-the-auth-token-0123"))
    refused(await post_twilio(api, tenant, "a", delivered, token, signed_url=url + "?x=1"))
    refused(await post_twilio(api, tenant, "a", delivered, token,
                              signed_url=api.base_url + webhook_path("twilio", tenant, "b")))
    tampered = await api.http.post(webhook_path("twilio", tenant, "a"), data={**delivered, "MessageStatus": "failed"},
                                   headers={TWILIO_SIGNATURE_HEADER: sign_twilio(token, url, delivered)})
    refused(tampered)
    assert await table_rows(tenant) == before

    accepted(await post_twilio(api, tenant, "a", callback(0, "sent"), token), 0)  # a step on the way
    accepted(await post_twilio(api, tenant, "a", delivered, token), 1)
    accepted(await post_twilio(api, tenant, "a", delivered, token), 0)  # a retry
    accepted(await post_twilio(api, tenant, "a", callback(1, "undelivered", ErrorCode="30003"), token), 1)
    accepted(await post_twilio(api, tenant, "a", callback(1, "delivered"), token), 0)  # after the failure: ignored

    st = await stats(api, s)
    assert counters(st, "sent", "delivered", "failed", "bounced") == {"sent": 3, "delivered": 1, "failed": 1,
                                                                     "bounced": 0}
    rows = await rows_by_customer(s)
    assert rows[s.customers[0]].status == "delivered" and rows[s.customers[0]].delivered_at is not None
    assert (rows[s.customers[1]].status, rows[s.customers[1]].error) == ("failed", "30003")
    assert rows[s.customers[2]].status == "sent"
    assert [e["kind"] for e in message_events(await customer_view(api, s, 0), s)] == ["MESSAGE_DELIVERED"]
    failed = message_events(await customer_view(api, s, 1), s)
    assert [(e["kind"], e["data"]["reason"], e["data"]["source"]) for e in failed] == [
        ("MESSAGE_FAILED", "30003", "twilio")]


# --- our own tracking -----------------------------------------------------------------------------


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def tampered(url: str) -> list[str]:
    """Variants of a tracking link: a changed signature, a changed customer, a changed destination."""
    prefix, token = url.rsplit("/", 1)
    payload, signature = token.rsplit(".", 1)
    parts = payload.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other_customer = ".".join(parts[:3] + [uuid.uuid4().hex] + parts[4:])
    out = [f"{prefix}/{payload}.{flipped}", f"{prefix}/{other_customer}.{signature}", f"{prefix}/{payload}"]
    if len(parts) == 5:
        evil = base64.urlsafe_b64encode(b"https://evil.example.test/").decode().rstrip("=")
        out.append(f"{prefix}/{'.'.join(parts[:4] + [evil])}.{signature}")
    return out


async def test_open_pixel_and_click_redirect(api: Api, tenant: TenantFixture, fakes: Fakes, worker: Any) -> None:
    s = await send_campaign(api, tenant, 3, provider="sendgrid", credentials=sendgrid_credentials(SendGridKey.new()))
    first, second = links_of(fakes, s, 0), links_of(fakes, s, 1)
    assert first.open.startswith(api.base_url + "/t/o/") and first.click.startswith(api.base_url + "/t/c/")

    # tampered links: the click is refused with 404, the pixel still answers a pixel; nothing is recorded
    before = await table_rows(tenant)
    for bad in tampered(first.click) + tampered(second.click):
        r = await api.http.get(bad, follow_redirects=False)
        assert r.status_code == 404 and "location" not in r.headers, (bad, r.status_code, r.headers)
    for bad in tampered(first.open):
        r = await api.http.get(bad)
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    r = await api.http.get(first.click.replace("/t/c/", "/t/o/"))  # a click token is no open token
    assert r.status_code == 200
    assert (await api.http.get(first.open.replace("/t/o/", "/t/c/"), follow_redirects=False)).status_code == 404
    assert await table_rows(tenant) == before

    # the open pixel, fetched twice (mail clients do): one unique open, which implies delivery
    for _ in range(2):
        r = await api.http.get(first.open)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/gif" and r.content.startswith(b"GIF89a")
        assert "no-store" in r.headers["cache-control"]
    st = await stats(api, s)
    assert counters(st, "delivered", "opens", "clicks") == {"delivered": 1, "opens": 1, "clicks": 0}
    assert st["openRate"] == 100.0

    # the click redirect: 302 to where the e-mail pointed; a unique click that implies the open
    for _ in range(2):
        r = await api.http.get(second.click, follow_redirects=False)
        assert r.status_code == 302, r.text
        assert r.headers["location"] == "https://shop.example.test/x"
    st = await stats(api, s)
    assert counters(st, "delivered", "opens", "clicks") == {"delivered": 2, "opens": 2, "clicks": 1}
    assert (st["openRate"], st["clickRate"]) == (100.0, 50.0)

    rows = await rows_by_customer(s)
    r0, r1, r2 = (rows[c] for c in s.customers)
    assert r0.opened_at is not None and r0.clicked_at is None
    assert r1.opened_at is not None and r1.clicked_at is not None and r1.delivered_at is not None
    assert (r2.opened_at, r2.delivered_at) == (None, None)
    assert [e["kind"] for e in message_events(await customer_view(api, s, 0), s)] == ["MESSAGE_OPENED"]
    clicks = message_events(await customer_view(api, s, 1), s)
    assert [e["kind"] for e in clicks] == ["MESSAGE_CLICKED"]  # one, though followed twice
    assert all(e["data"]["source"] == "tracking" for e in clicks)
    assert [e["data"]["url"] for e in clicks if e["kind"] == "MESSAGE_CLICKED"] == ["https://shop.example.test/x"]


async def test_preview_links_work_and_record_nothing(api: Api, tenant: TenantFixture, fakes: Fakes, worker: Any) -> None:
    s = await send_campaign(api, tenant, 1, provider="sendgrid", credentials=sendgrid_credentials(SendGridKey.new()))
    preview = (await api.data("""query($c: ID!, $k: ID!) { previewCampaign(campaignId: $c, customerId: $k) { html } }""",
                              {"c": s.campaign, "k": gid("Customer", s.customers[0])}, token=tenant.owner_token))
    page = html.unescape(preview["previewCampaign"]["html"])
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', page).group(1)
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', page).group(1)
    unsubscribe = re.search(r'(http[^"<>]+/u/[^"<>]+)', page)
    before = await table_rows(tenant)
    r = await api.http.get(click, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example.test/x"
    assert (await api.http.get(pixel)).headers["content-type"] == "image/gif"
    if unsubscribe:
        assert "preview" in (await api.http.post(unsubscribe.group(1), data={"List-Unsubscribe": "One-Click"})).text
    assert await table_rows(tenant) == before
    assert counters(await stats(api, s), "opens", "clicks", "unsubscribes") == {"opens": 0, "clicks": 0,
                                                                                 "unsubscribes": 0}


async def test_one_click_unsubscribe(api: Api, tenant: TenantFixture, fakes: Fakes, worker: Any) -> None:
    s = await send_campaign(api, tenant, 2, provider="sendgrid", credentials=sendgrid_credentials(SendGridKey.new()))
    link = links_of(fakes, s, 0).unsubscribe
    assert link.startswith(api.base_url + "/u/")
    before = await table_rows(tenant)

    # a GET (a person, or a link scanner) shows a page with a button, and unsubscribes nobody
    for _ in range(2):
        r = await api.http.get(link)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in r.text and "Unsubscribe" in r.text
    # tampered links: 404 either way
    for bad in tampered(link):
        assert (await api.http.get(bad)).status_code == 404
        assert (await api.http.post(bad, content=ONE_CLICK, headers={
            "content-type": "application/x-www-form-urlencoded"})).status_code == 404
    assert await table_rows(tenant) == before
    view = await customer_view(api, s, 0)
    assert [(c["channel"], c["granted"]) for c in view["consents"]] == [("EMAIL", True)]

    # the mail client's one-click request (RFC 8058)
    r = await api.http.post(link, content=ONE_CLICK, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert "unsubscribed" in r.text.lower()

    view = await customer_view(api, s, 0)
    assert [(c["channel"], c["granted"], c["source"], c["brand"]) for c in view["consents"]] == [
        ("EMAIL", False, "unsubscribed:tracking", {"id": tenant.brand_gid("a")})]
    assert view["consents"][0]["revokedAt"] is not None
    assert [e["kind"] for e in message_events(view, s)] == ["MESSAGE_UNSUBSCRIBED"]
    assert any(e["node"]["kind"] == "CONSENT_CHANGED" and e["node"]["source"] == "unsubscribed:tracking"
               for e in view["timeline"]["edges"])
    supp = (await api.data(SUPPRESSIONS, {"b": tenant.brand_gid("a")}, token=tenant.owner_token))["suppressions"]["edges"]
    assert [(x["node"]["channel"], x["node"]["address"], x["node"]["reason"], x["node"]["source"]) for x in supp] == [
        ("EMAIL", s.email(0), "UNSUBSCRIBED", "tracking")]
    st = await stats(api, s)
    assert counters(st, "unsubscribes", "complaints") == {"unsubscribes": 1, "complaints": 0}
    # the other customer is untouched
    other = await customer_view(api, s, 1)
    assert [(c["channel"], c["granted"]) for c in other["consents"]] == [("EMAIL", True)]

    # unsubscribing again (the page's button after the one-click) changes nothing more
    after = await table_rows(tenant)
    r = await api.http.post(link, data={})
    assert r.status_code == 200
    assert await table_rows(tenant) == after


# --- conversions ----------------------------------------------------------------------------------


async def record_order(api: Api, t: TenantFixture, customer: str, cents: int, *, brand: str = "a",
                       external_id: str | None = None, placed: datetime | None = None) -> dict[str, Any]:
    data = await api.data(RECORD_ORDER, {"input": {
        "brandId": t.brand_gid(brand), "externalOrderId": external_id or f"o-{uuid.uuid4().hex[:8]}",
        "totalCents": cents, "currency": "EUR", "customerId": customer,
        "placedAt": (placed or datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "items": [{"sku": "SKU-1", "quantity": 1, "unitPriceCents": cents}]}}, token=t.owner_token)
    assert data["recordOrder"]["errors"] == [], data
    return data["recordOrder"]


async def test_orders_within_the_window_after_an_engagement_convert(
    api: Api, tenant: TenantFixture, worker: Any
) -> None:
    key = SendGridKey.new()
    s = await send_campaign(api, tenant, 5, provider="sendgrid", credentials=sendgrid_credentials(key), costCents=5_000)
    now = datetime.now(UTC).replace(microsecond=0)
    hour_ago, long_ago = now - timedelta(hours=1), now - timedelta(days=10)
    accepted(await post_sendgrid(api, tenant, "a", key, [
        sendgrid_event(s, 0, "click", hour_ago, url="https://shop.example.test/x"),  # clicks
        sendgrid_event(s, 1, "open", hour_ago),  # opens only
        sendgrid_event(s, 2, "click", long_ago, url="https://shop.example.test/x"),  # clicked 10 days ago
        sendgrid_event(s, 3, "delivered", hour_ago),  # never opened
        sendgrid_event(s, 4, "click", hour_ago, url="https://shop.example.test/x"),  # clicks, never buys
    ]), 5)
    st = await stats(api, s)
    assert counters(st, "conversions", "revenueCents", "conversionRate", "roas") == {
        "conversions": 0, "revenueCents": 0, "conversionRate": 0.0, "roas": 0.0}

    # after a click, an order of the brand: a conversion with its revenue
    first = await record_order(api, tenant, s.customer(0), 12_345, external_id="ORDER-1")
    assert first["created"] is True
    st = await stats(api, s)
    assert counters(st, "conversions", "revenueCents") == {"conversions": 1, "revenueCents": 12_345}

    # the same order again: recorded once, attributed once
    again = await record_order(api, tenant, s.customer(0), 12_345, external_id="ORDER-1")
    assert again["created"] is False and again["order"] == first["order"]
    assert counters(await stats(api, s), "conversions", "revenueCents") == {"conversions": 1, "revenueCents": 12_345}

    # not attributed: another brand's order, an order placed before the engagement, an order after
    # the window, an order of a customer who never opened
    before = counters(await stats(api, s), "conversions", "revenueCents", "version")
    await record_order(api, tenant, s.customer(0), 9_000, brand="b")
    await record_order(api, tenant, s.customer(1), 9_000, placed=hour_ago - timedelta(minutes=5))
    await record_order(api, tenant, s.customer(2), 9_000)  # the click was 10 days ago; the window is 5
    await record_order(api, tenant, s.customer(3), 9_000)
    assert counters(await stats(api, s), "conversions", "revenueCents", "version") == before

    # an open counts too (last touch); a second order of a converted customer adds revenue only
    await record_order(api, tenant, s.customer(1), 3_000)
    await record_order(api, tenant, s.customer(0), 655)
    st = await stats(api, s)
    assert counters(st, "conversions", "revenueCents", "opens", "clicks", "delivered") == {
        "conversions": 2, "revenueCents": 16_000, "opens": 4, "clicks": 3, "delivered": 5}
    # documented formulas: rates over delivered, conversion rate over clicks, ROAS revenue / cost
    assert (st["openRate"], st["clickRate"], st["conversionRate"], st["roas"]) == (80.0, 60.0, 66.67, 3.2)

    # the window is the brand's: widened to 15 days, the customer who clicked 10 days ago converts
    data = await api.data(SETTINGS, {"input": {"brandId": tenant.brand_gid("a"), "attributionDays": 15}},
                          token=tenant.owner_token)
    assert data["updateMessagingSettings"]["errors"] == [], data
    await record_order(api, tenant, s.customer(2), 4_000)
    st = await stats(api, s)
    assert counters(st, "conversions", "revenueCents", "conversionRate", "roas") == {
        "conversions": 3, "revenueCents": 20_000, "conversionRate": 100.0, "roas": 4.0}

    view = await customer_view(api, s, 0)
    conversions = [e["node"] for e in view["timeline"]["edges"] if e["node"]["kind"] == "CAMPAIGN_CONVERSION"]
    assert sorted((c["data"]["revenue_cents"], c["touch"], c["data"]["campaign_id"]) for c in conversions) == [
        (655, "CLICK", str(s.cid)), (12_345, "CLICK", str(s.cid))]
    view1 = await customer_view(api, s, 1)
    assert [(e["node"]["touch"], e["node"]["data"]["revenue_cents"]) for e in view1["timeline"]["edges"]
            if e["node"]["kind"] == "CAMPAIGN_CONVERSION"] == [("OPEN", 3_000)]


# --- live stats across processes ------------------------------------------------------------------

STATS_SUB = "subscription { campaignStats(campaignId: \"%s\") { audience sent delivered opens version progress { queued } } }"


class TimedConn(Client):
    """A :class:`Client` (which notes when each message arrived) that also notes how long its
    event loop went without reading."""

    def __init__(self, ws: Any) -> None:
        self.held_up = 0.0  # the longest this event loop went without reading, in seconds
        super().__init__(ws)
        self._watch = asyncio.create_task(self._watch_loop())

    async def _watch_loop(self, every: float = 0.005) -> None:
        """Notes the longest gap between two wake-ups of a task sleeping ``every`` seconds: no
        message is read while the loop is busy elsewhere (posting requests, parsing, the machine
        lending the CPU to others), so a message that came in then is noted up to that late."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(every)
            self.held_up = max(self.held_up, time.monotonic() - before)

    async def close(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(BaseException):
            await self._watch
        await super().close()

    def frames(self, op: str) -> list[tuple[float, dict[str, Any]]]:
        out = []
        for at, m in zip(self.arrived, self.messages, strict=True):
            if m.get("id") == op:
                assert m["type"] == "next" and not m["payload"].get("errors"), m
                out.append((at, m["payload"]["data"]["campaignStats"]))
        return out


def assert_token_bucket(arrivals: list[float], slack: float = 1.0, held_up: float = 0.0) -> None:
    """The subscription's rate rule, from the frames' arrival times: a bucket of BURST tokens
    refilled at RATE a second, one token a frame, so any run of frames i..j holds at most
    BURST + RATE * (t_j - t_i) of them. ``slack`` frames allow for arrival jitter on the way (a
    frame held up arrives closer to the next one than it was sent). ``held_up`` is the longest
    the reader's own event loop went without reading (:attr:`TimedConn.held_up`): a frame is
    noted at most that late, so t_j - t_i is at most that much shorter than it was; nothing else
    is forgiven."""
    from graph.campaigns.subscriptions import BURST, RATE

    for i in range(len(arrivals)):
        for j in range(i, len(arrivals)):
            allowed = BURST + RATE * (arrivals[j] - arrivals[i] + held_up) + slack
            assert j - i + 1 <= allowed, (f"{j - i + 1} frames in {arrivals[j] - arrivals[i]:.3f}s, the bucket "
                                          f"allows {allowed - slack:.2f} (reader held up {held_up:.3f}s)",
                                          [round(t - arrivals[0], 3) for t in arrivals])


def test_the_rate_rule_check_refuses_a_burst() -> None:
    """The check above can fail: frames back to back beyond the bucket, or faster than RATE."""
    assert_token_bucket([0.0, 0.0, 0.0])  # BURST back to back, plus the jitter allowance
    with pytest.raises(AssertionError):
        assert_token_bucket([0.0, 0.01, 0.02, 0.03])
    assert_token_bucket([0.25 * k for k in range(20)])  # RATE a second, sustained
    with pytest.raises(AssertionError):
        assert_token_bucket([0.15 * k for k in range(20)])
    # a reader held up forgives the frames it may have noted late, and no more
    with pytest.raises(AssertionError):
        assert_token_bucket([0.0, 0.01, 0.02, 0.03], held_up=0.1)
    assert_token_bucket([0.0, 0.01, 0.02, 0.03], held_up=0.25)
    with pytest.raises(AssertionError):
        assert_token_bucket([0.15 * k for k in range(20)], held_up=0.5)


async def test_live_stats_across_processes_are_coalesced(
    api: Api, tenant: TenantFixture, worker: Any
) -> None:
    n = 20
    key = SendGridKey.new()
    await identity(tenant)
    await use_provider(tenant, "a", "email", "sendgrid", credentials=sendgrid_credentials(key))
    prefix = uuid.uuid4().hex[:8]
    seg, ids = await audience(tenant, n, prefix=prefix)
    campaign = await create(api, tenant, seg)
    s = Sent(tenant, campaign, uuid.UUID(base64.b64decode(campaign).decode().split(":")[1]), ids, prefix)

    proc, api2_url = await asyncio.to_thread(start_api, "api2")
    conn: TimedConn | None = None
    try:
        conn = await TimedConn.open(api2_url, bearer(tenant.owner_token))
        op = await conn.subscribe(STATS_SUB % campaign)
        await wait_for(lambda: len(conn.frames(op)) >= 1, "the current stats")
        initial = conn.frames(op)[0][1]
        assert (initial["sent"], initial["audience"], initial["delivered"]) == (0, 0, 0), initial

        # the worker (another process) sends; the subscriber on api2 follows
        await launch(api, tenant, campaign)
        await wait_for(lambda: conn.frames(op)[-1][1]["sent"] == n and conn.frames(op)[-1][1]["progress"]["queued"] == 0,
                       "the sent campaign's figures", within=30)
        await wait_status(api, tenant, campaign)
        sending = [f for _, f in conn.frames(op)]
        assert sending[-1]["audience"] == n

        # a burst of webhook requests to the FIRST API process: far fewer frames, the right figures
        await asyncio.sleep(0.3)
        seen = len(conn.frames(op))
        at = datetime.now(UTC) - timedelta(minutes=1)
        responses = await asyncio.gather(*(post_sendgrid(api, tenant, "a", key, [sendgrid_event(s, i, "open", at)])
                                           for i in range(n)))
        for r in responses:
            accepted(r, 1)
        await wait_for(lambda: conn.frames(op)[-1][1]["opens"] == n, "the burst's final figures")
        await asyncio.sleep(0.6)  # anything still coming
        burst = conn.frames(op)[seen:]
        assert 1 <= len(burst) <= n, [f for _, f in burst]
        final = burst[-1][1]
        assert (final["opens"], final["delivered"], final["sent"]) == (n, n, n)
        assert_token_bucket([t for t, _ in conn.frames(op)[1:]], held_up=conn.held_up)

        frames = [f for _, f in conn.frames(op)]
        versions = [f["version"] for f in frames]
        assert versions == sorted(set(versions)), versions  # strictly growing: nothing stale, nothing twice
        current = await stats(api, s)
        assert (current["version"], current["opens"], current["delivered"]) == (final["version"], n, n)
    finally:
        if conn is not None:
            await conn.close()
        proc.stop()
