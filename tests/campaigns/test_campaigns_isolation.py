"""Isolation of campaigns, delivery settings, provider webhooks and tracking links.

Every campaign operation of the schema (queries ``campaigns``, ``campaign``, ``node`` on a
Campaign, ``Brand.campaigns``, ``previewCampaign``, ``previewCampaignAudience``,
``deliveryProviders``, ``messagingSettings``, ``suppressions``; the mutations of :data:`WRITES`;
the ``campaignStats`` subscription) is aimed, in the manner of ``test_isolation.py`` (whose
coverage test counts the rows of this file), by:

* the owner of ANOTHER tenant at tenant A's campaigns and brands: it sees none of A (null, empty,
  or NOT_FOUND, never data) and changes none of A (A's campaign, stats, recipient, provider,
  settings and suppression rows and its audit trail are compared row by row), and cannot put A's
  segments or products in a campaign of its own;
* principals of A limited to brand "a" (a marketer, and an admin API key) at brand "b": NOT_FOUND
  where the role may act at all, FORBIDDEN the same way on both brands where it may not; nor can
  they put brand b's segments or products in a brand "a" campaign, or follow brand b's stats;
* the roles below admin: analysts and agents write nothing, marketers write campaigns but not
  the delivery settings (docs/campaigns.md, "Permissions").

Each refusal is paired with a control: the same request by someone who may, so that the ids are
known to be live and the assertion can fail. Then the HTTP side: a correctly signed webhook posted
to another tenant's (or another brand's) URL about A's messages changes nothing of A, tracking
tokens are per tenant, and credentials never come back: not in the API, not in the audit trail,
not in the processes' logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text, update

from conftest import DATA_DIR, Api, Fakes, TenantFixture, create_tenant_fixture, gid
from domain.campaigns import service as campaigns
from domain.campaigns import tracking
from domain.campaigns.models import Campaign
from domain.delivery import service as delivery
from domain.delivery.base import Channel
from domain.delivery.webhooks import SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER
from domain.platform.db import tenant_session
from support.campaigns import (
    audience,
    create,
    identity,
    launch,
    recipients,
    use_provider,
    wait_status,
)
from support.graphql import codes, leaks, perrs
from support.isolation import two_tenants
from support.isolation.campaigns import (
    AUDIENCE,
    BRAND_CAMPAIGNS,
    CAMPAIGN_Q,
    CAMPAIGNS,
    CONTENT,
    NODE,
    PREVIEW,
    PROVIDERS,
    READS,
    SETTINGS,
    SUPPRESSIONS,
    WRITES,
    Other,
    Read,
    Victim,
    World,
    Write,
    edge_ids,
    mutation_doc,
)
from support.provider_events import (
    SendGridKey,
    Sent,
    accepted,
    links_of,
    post_sendgrid,
    post_twilio,
    refused,
    send_campaign,
    sendgrid_credentials,
    sendgrid_event,
    table_rows,
)
from support.ws import Client, bearer, wait_for

# campaigns whose sending started in a control (launch, resume): a worker running in the session
# may change their rows at any moment, so they are left out of "nothing changed"
STARTED: set[str] = set()
TABLES = ("campaigns", "campaign_stats", "campaign_recipients", "campaign_conversions", "delivery_providers",
          "brand_messaging_settings", "suppressions", "audit_log")


# --- tenant A, tenant B -------------------------------------------------------------------------


async def _make_world() -> World:
    from domain.commerce.service import upsert_product

    t = await create_tenant_fixture()
    seg, customers, campaign, suppressed, product = {}, {}, {}, {}, {}
    for side in ("a", "b"):
        await identity(t, side)
        await use_provider(t, side, "email", "log")
        seg[side], customers[side] = await audience(t, 2, brand=side, prefix=f"{t.slug}-{side}")
        campaign[side] = (await campaigns.create_campaign(t.owner, t.brands[side], {
            "name": f"Campaign {t.slug} {side}", "channel": "email", "content": CONTENT,
            "segment_ids": [seg[side]]})).id
        suppressed[side] = f"suppressed-{t.slug}-{side}@example.test"
        async with tenant_session(t.id) as s:
            await delivery.suppress(s, t.id, t.brands[side], "email", suppressed[side], "bounced", "test")
        product[side] = (await upsert_product(t.owner, f"SKU-{t.slug}-{side}", f"Product {side}",
                                              brand_id=t.brands[side])).id
    return World(t, seg, customers, campaign, suppressed, product)


async def _make_other() -> Other:
    t = await create_tenant_fixture()
    await identity(t, "a")
    await use_provider(t, "a", "email", "log")
    seg, ids = await audience(t, 1, prefix=f"{t.slug}-own")
    c = await campaigns.create_campaign(t.owner, t.brands["a"], {"name": "B's own", "channel": "email",
                                                                 "content": CONTENT, "segment_ids": [seg]})
    return Other(t, seg, ids[0], c.id)


world, other, tokens = two_tenants(_make_world, _make_other, (
    "analyst", "agent", "marketer", "analyst-key", "marketer-a", "admin-key-a"))


async def state(t: TenantFixture) -> dict[str, list[tuple[str, ...]]]:
    """Every row the tenant has in :data:`TABLES`, campaigns whose sending started aside."""
    out: dict[str, list[tuple[str, ...]]] = {}
    async with tenant_session(t.id) as s:
        for table in TABLES:
            result = await s.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": t.id})
            cols = list(result.keys())
            key = "id" if table == "campaigns" else "campaign_id" if "campaign_id" in cols else None
            rows = [dict(zip(cols, row, strict=True)) for row in result]
            out[table] = sorted(tuple(str(v) for v in r.values()) for r in rows
                                if key is None or str(r[key]) not in STARTED)
    return out


# --- the objects a write aims at: fresh for each test -------------------------------------------


async def victim(w: World, needs: str, side: str) -> Victim:
    t, brand = w.t, w.t.brands[side]
    v = Victim(w, side)
    if needs in ("draft", "scheduled", "sending", "paused"):
        c = await campaigns.create_campaign(t.owner, brand, {"name": f"victim {needs} {v.key[:6]}", "channel": "email",
                                                             "content": CONTENT, "segment_ids": [w.seg[side]]})
        v.campaign = c.id
        if needs == "scheduled":
            await campaigns.schedule_campaign(t.owner, c.id, campaigns.ScheduleMode.AT, "2031-01-01T09:00")
        elif needs in ("sending", "paused"):  # as a launch leaves it, without queueing anything
            async with tenant_session(t.id) as s:
                await s.execute(update(Campaign).where(Campaign.tenant_id == t.id, Campaign.id == c.id).values(
                    status=needs, launch_key=f"victim-{v.key}", launched_at=Campaign.created_at))
    elif needs == "no-sms":  # setDeliveryProvider then writes a row that was not there
        async with tenant_session(t.id) as s:
            await s.execute(text("DELETE FROM delivery_providers WHERE tenant_id = :t AND brand_id = :b "
                                 "AND channel = 'sms'"), {"t": t.id, "b": brand})
    elif needs == "push":
        await delivery.set_provider(t.owner, brand, Channel.PUSH, "log", {}, {})
    elif needs == "suppressed":
        v.address = f"victim-{v.key[:8]}@example.test"
        async with tenant_session(t.id) as s:
            await delivery.suppress(s, t.id, brand, "email", v.address, "complained", "test")
    return v


# --- mutations ----------------------------------------------------------------------------------


OP = {w.name: w for w in WRITES}
# what each role below admin may do (docs/campaigns.md, "Permissions")
MAY: dict[str, set[str]] = {
    "analyst": set(),
    "agent": set(),
    "marketer": {w.name for w in WRITES if not w.admin},
}


async def run(api: Api, op: Write, variables: dict[str, Any], token: str) -> dict[str, Any]:
    """The mutation's payload; the operation itself must not fail at the GraphQL level."""
    return (await api.data(op.doc, variables, token=token))[op.name]


def assert_done(payload: dict[str, Any], op: Write) -> None:
    assert payload["errors"] == [], payload
    assert payload[op.result] not in (None, False), payload


def assert_nothing_done(payload: dict[str, Any], op: Write) -> None:
    assert payload[op.result] in (None, False), payload


async def control(api: Api, op: Write, v: Victim, variables: dict[str, Any], token: str) -> None:
    """Someone who may runs the very same mutation, and it does change A (one audit entry)."""
    if op.starts:
        STARTED.add(str(v.campaign))
    before = await state(v.w.t)
    assert_done(await run(api, op, variables, token), op)
    after = await state(v.w.t)
    assert len(after["audit_log"]) == len(before["audit_log"]) + 1
    assert [t for t in TABLES if t != "audit_log" and after[t] != before[t]] or op.starts, "nothing was written"


@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_another_tenants_owner_changes_nothing_of_a(api: Api, world: World, other: Other, op: Write) -> None:
    v = await victim(world, op.needs, "a")
    variables = op.variables(v)
    before_a, before_b = await state(world.t), await state(other.t)
    result = await run(api, op, variables, other.t.owner_token)
    assert perrs(result) == [(op.field, "NOT_FOUND")], result
    assert_nothing_done(result, op)
    assert leaks(result, world.markers(), variables) == []
    assert await state(other.t) == before_b
    assert await state(world.t) == before_a
    await control(api, op, v, variables, world.t.owner_token)


# B's own campaign or brand, with an object of A mixed in: (label, mutation, variables, the same
# with B's own objects instead, the faulty field)
MIXED: list[tuple[str, str, Callable[[World, Other], dict[str, Any]], Callable[[World, Other], dict[str, Any]], str]] = [
    ("createCampaign(own brand, A's segment)", "createCampaign",
     lambda w, o: _new(o, segmentIds=[gid("Segment", o.seg), w.s("a")]),
     lambda w, o: _new(o, segmentIds=[gid("Segment", o.seg)]), "input.segmentIds[1]"),
    ("createCampaign(own brand, A's exclusion segment)", "createCampaign",
     lambda w, o: _new(o, exclusionSegmentIds=[w.s("b")]),
     lambda w, o: _new(o, exclusionSegmentIds=[gid("Segment", o.seg)]), "input.exclusionSegmentIds[0]"),
    ("createCampaign(own brand, A's product)", "createCampaign", lambda w, o: _new(o, productId=w.p("a")),
     lambda w, o: _new(o, productId=None), "input.productId"),
    ("updateCampaign(own campaign, A's segment)", "updateCampaign",
     lambda w, o: {"input": {"id": gid("Campaign", o.campaign), "segmentIds": [w.s("a")]}},
     lambda w, o: {"input": {"id": gid("Campaign", o.campaign), "segmentIds": [gid("Segment", o.seg)]}},
     "input.segmentIds[0]"),
]


def _new(o: Other, **more: Any) -> dict[str, Any]:
    return {"input": {"brandId": o.t.brand_gid("a"), "name": "Mine", "channel": "EMAIL",
                      "segmentIds": [gid("Segment", o.seg)], **more}}


@pytest.mark.parametrize(("label", "name", "variables", "own", "fault"), MIXED, ids=[m[0] for m in MIXED])
async def test_another_tenants_owner_cannot_use_an_object_of_a(
    api: Api, world: World, other: Other, label: str, name: str,
    variables: Callable[[World, Other], dict[str, Any]], own: Callable[[World, Other], dict[str, Any]], fault: str,
) -> None:
    op = OP[name]
    before_a, before_b = await state(world.t), await state(other.t)
    sent = variables(world, other)
    result = await run(api, op, sent, other.t.owner_token)
    assert perrs(result) == [(fault, "NOT_FOUND")], result
    assert result["campaign"] is None
    assert leaks(result, world.markers(), sent) == []
    assert await state(world.t) == before_a and await state(other.t) == before_b
    assert_done(await run(api, op, own(world, other), other.t.owner_token), op)  # control: B's own objects


# --- the same tenant, limited to brand "a" ------------------------------------------------------

LIMITED = ["marketer-a", "admin-key-a"]


def _b_leaks(body: Any, w: World, sent: Any) -> list[str]:
    return leaks(body, w.side_markers("b"), sent)


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_brand_limited_principal_cannot_touch_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, op: Write
) -> None:
    token = tokens[kind]
    on_b, on_a = await victim(world, op.needs, "b"), await victim(world, op.needs, "a")
    may = kind.startswith("admin") or not op.admin
    before = await state(world.t)
    result = await run(api, op, op.variables(on_b), token)
    assert_nothing_done(result, op)
    assert _b_leaks(result, world, op.variables(on_b)) == []
    assert await state(world.t) == before
    if may:
        assert perrs(result) == [(op.field, "NOT_FOUND")], result
        await control(api, op, on_a, op.variables(on_a), token)  # the same principal, on brand "a"
    else:  # refused for the role, the same way on either brand: b's existence does not leak
        assert [c for _, c in perrs(result)] == ["FORBIDDEN"], result
        on_a_result = await run(api, op, op.variables(on_a), token)
        assert on_a_result == result
        assert await state(world.t) == before
        await control(api, op, on_b, op.variables(on_b), world.t.owner_token)


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize(("what", "fault"), [("segmentIds", "input.segmentIds[1]"),
                                             ("exclusionSegmentIds", "input.exclusionSegmentIds[0]"),
                                             ("productId", "input.productId")])
async def test_brand_limited_principal_cannot_put_brand_b_objects_in_a_campaign(
    api: Api, world: World, tokens: dict[str, str], kind: str, what: str, fault: str
) -> None:
    op = OP["createCampaign"]

    def sent(side: str) -> dict[str, Any]:
        value = {"segmentIds": [world.s("a"), world.s(side)], "exclusionSegmentIds": [world.s(side)],
                 "productId": world.p(side)}[what]
        return {"input": {"brandId": world.brand("a"), "name": "Mixed", "channel": "EMAIL",
                          "segmentIds": [world.s("a")], what: value}}

    before = await state(world.t)
    result = await run(api, op, sent("b"), tokens[kind])
    assert perrs(result) == [(fault, "NOT_FOUND")], result
    assert await state(world.t) == before
    assert_done(await run(api, op, sent("a"), tokens[kind]), op)  # control: brand a's own


# --- roles below admin --------------------------------------------------------------------------

ROLES = ["analyst", "agent", "marketer"]
ROLE_CASES = [(role, op) for role in ROLES for op in WRITES]


@pytest.mark.parametrize(("role", "op"), ROLE_CASES, ids=[f"{r}-{o}" for r, o in ROLE_CASES])
async def test_roles_below_admin_write_only_what_they_may(
    api: Api, world: World, tokens: dict[str, str], role: str, op: Write
) -> None:
    v = await victim(world, op.needs, "a")
    variables = op.variables(v)
    if op.name in MAY[role]:
        await control(api, op, v, variables, tokens[role])
        return
    before = await state(world.t)
    result = await run(api, op, variables, tokens[role])
    assert [c for _, c in perrs(result)] == ["FORBIDDEN"], result
    assert all(e["message"] for e in result["errors"])
    assert_nothing_done(result, op)
    assert await state(world.t) == before
    await control(api, op, v, variables, world.t.owner_token)


# --- queries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("read", READS, ids=str)
async def test_another_tenants_owner_reads_nothing_of_a(api: Api, world: World, other: Other, read: Read) -> None:
    variables = read.variables(world)
    mine = await api.data(read.doc, variables, token=world.t.owner_token)
    read.own(mine, world)  # the legitimate owner does see it: the ids are live
    body = await api.gql(read.doc, variables, token=other.t.owner_token)
    read.foreign(body, world, other)
    assert leaks(body, world.markers(), variables) == []


# (name, query, variables aimed at brand b, the same aimed at brand a, what brand b gives: the
# field that is null, or NOT_FOUND for the whole query)
LIMITED_READS: list[tuple[str, str, Callable[[World], dict[str, Any]], Callable[[World], dict[str, Any]], str]] = [
    ("campaign", CAMPAIGN_Q, lambda w: {"id": w.c("b")}, lambda w: {"id": w.c("a")}, "campaign"),
    ("node(Campaign)", NODE, lambda w: {"id": w.c("b")}, lambda w: {"id": w.c("a")}, "node"),
    ("Brand.campaigns", BRAND_CAMPAIGNS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, "brand"),
    ("campaigns(brandId)", CAMPAIGNS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, "NOT_FOUND"),
    ("previewCampaign", PREVIEW, lambda w: {"c": w.c("b"), "u": w.customer("b")},
     lambda w: {"c": w.c("a"), "u": w.customer("a")}, "NOT_FOUND"),
    ("previewCampaign(brand b customer)", PREVIEW, lambda w: {"c": w.c("a"), "u": w.customer("b", 1)},
     lambda w: {"c": w.c("a"), "u": w.customer("a", 1)}, "NOT_FOUND"),
    ("previewCampaignAudience", AUDIENCE, lambda w: {"c": w.c("b")}, lambda w: {"c": w.c("a")}, "NOT_FOUND"),
    ("deliveryProviders", PROVIDERS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, "NOT_FOUND"),
    ("messagingSettings", SETTINGS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, "NOT_FOUND"),
    ("suppressions", SUPPRESSIONS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, "NOT_FOUND"),
]


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize(("name", "doc", "on_b", "on_a", "refusal"), LIMITED_READS, ids=[r[0] for r in LIMITED_READS])
async def test_brand_limited_principal_reads_nothing_of_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, name: str, doc: str,
    on_b: Callable[[World], dict[str, Any]], on_a: Callable[[World], dict[str, Any]], refusal: str,
) -> None:
    token = tokens[kind]
    owner = await api.data(doc, on_b(world), token=world.t.owner_token)
    assert all(v is not None for v in owner.values()), owner  # control: the owner does see brand b there
    mine = await api.data(doc, on_a(world), token=token)  # control: the same principal on brand "a"
    assert all(v is not None for v in mine.values()), mine
    body = await api.gql(doc, on_b(world), token=token)
    if refusal == "NOT_FOUND":
        assert body["data"] is None and codes(body) == ["NOT_FOUND"], body
    else:
        assert not body.get("errors") and body["data"][refusal] is None, body
    assert _b_leaks(body, world, on_b(world)) == []


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_limited_principal_lists_only_brand_a_campaigns(
    api: Api, world: World, tokens: dict[str, str], kind: str
) -> None:
    owner = await api.data(CAMPAIGNS, {}, token=world.t.owner_token)
    assert world.c("b") in edge_ids(owner["campaigns"])
    body = await api.gql(CAMPAIGNS, {}, token=tokens[kind])
    assert not body.get("errors"), body
    assert world.c("a") in edge_ids(body["data"]["campaigns"])
    assert {e["node"]["brand"]["id"] for e in body["data"]["campaigns"]["edges"]} == {world.brand("a")}
    assert _b_leaks(body, world, {}) == []


EVERYTHING = """query($c: ID!, $u: ID!, $b: ID!) {
  campaigns(brandId: $b, first: 100) { edges { node { id } } }
  campaign(id: $c) { id name stats { sent } }
  previewCampaign(campaignId: $c, customerId: $u) { to subject }
  previewCampaignAudience(campaignId: $c) { count total }
  deliveryProviders(brandId: $b) { channel provider credentialsSet }
  messagingSettings(brandId: $b) { attributionDays }
  suppressions(brandId: $b, channel: EMAIL, first: 100) { edges { node { address } } }
}"""


@pytest.mark.parametrize("kind", ["analyst", "agent", "marketer", "analyst-key"])
async def test_every_role_reads_campaigns_and_delivery_settings(
    api: Api, world: World, tokens: dict[str, str], kind: str
) -> None:
    variables = {"c": world.c("a"), "u": world.customer("a"), "b": world.brand("a")}
    owner = await api.data(EVERYTHING, variables, token=world.t.owner_token)
    assert owner["campaign"]["id"] == world.c("a") and owner["previewCampaign"]["to"] == world.email("a")
    mine = await api.data(EVERYTHING, variables, token=tokens[kind])
    # the same, except what write tests in between may have added (campaigns, suppressions)
    assert {k: v for k, v in mine.items() if k not in ("campaigns", "suppressions")} == {
        k: v for k, v in owner.items() if k not in ("campaigns", "suppressions")}
    assert world.c("a") in edge_ids(mine["campaigns"])
    assert world.suppressed["a"] in {s["node"]["address"] for s in mine["suppressions"]["edges"]}


# --- the subscription ---------------------------------------------------------------------------

STATS_SUB = 'subscription { campaignStats(campaignId: "%s") { opens version } }'


async def _bump(t: TenantFixture, campaign_id: uuid.UUID) -> None:
    """A change of the campaign's stats, published as a worker or a webhook would."""
    from domain.campaigns import stats

    async with tenant_session(t.id) as s:
        assert await stats.bump(s, t.id, campaign_id, opens=1) is not None


@pytest.mark.parametrize("who", ["other-tenant-owner", "marketer-a", "admin-key-a"])
async def test_campaign_stats_reach_only_who_may_see_the_campaign(
    api: Api, world: World, other: Other, tokens: dict[str, str], who: str
) -> None:
    if who == "other-tenant-owner":  # aimed at A's campaign; the control is B's own
        token, aimed, aimed_t = other.t.owner_token, world.campaign["a"], world.t
        mine, mine_t = other.campaign, other.t
    else:  # aimed at brand b's campaign; the control is brand a's
        token, aimed, aimed_t = tokens[who], world.campaign["b"], world.t
        mine, mine_t = world.campaign["a"], world.t
    conn = await Client.open(api.base_url, bearer(token))
    try:
        refused_op = await conn.subscribe(STATS_SUB % gid("Campaign", aimed))
        own_op = await conn.subscribe(STATS_SUB % gid("Campaign", mine))
        await wait_for(lambda: conn.of(refused_op) and conn.data("campaignStats", own_op), "both answers")
        first = conn.of(refused_op)[0]
        errors = first["payload"] if first["type"] == "error" else first["payload"].get("errors")
        assert first["type"] in ("error", "next") and errors, first
        assert [(e.get("extensions") or {}).get("code") for e in errors] == ["NOT_FOUND"], first
        assert conn.data("campaignStats", refused_op) == []
        start = conn.data("campaignStats", own_op)[-1]["version"]

        await _bump(aimed_t, aimed)  # a change of the campaign it may not see
        await _bump(mine_t, mine)  # ... and of the one it may: that one does arrive
        await wait_for(lambda: any(f["version"] > start for f in conn.data("campaignStats", own_op)),
                       "the control's change")
        await asyncio.sleep(0.5)
        assert conn.data("campaignStats", refused_op) == []
        assert leaks(conn.messages, world.side_markers("b") if who != "other-tenant-owner" else world.markers(),
                     gid("Campaign", aimed)) == []
    finally:
        await conn.close()


# --- webhooks and tracking links ----------------------------------------------------------------


@dataclass
class Hooked:
    """Tenant A sent an e-mail campaign (SendGrid, brand "a") and an SMS campaign (Twilio); its
    brand "b" and tenant B have SendGrid and Twilio webhooks of their own."""

    a: TenantFixture
    b: TenantFixture
    keys: dict[str, SendGridKey]  # "a" (A's brand a), "ab" (A's brand b), "b" (B's brand a)
    email: Sent
    sms: Sent
    sids: list[str]
    b_token: str  # tenant B's Twilio auth token
    ab_token: str  # A's brand b's


@pytest.fixture(scope="module")
async def hooked(api: Api, fakes: Fakes, worker: Any) -> Hooked:
    a, b = await create_tenant_fixture(), await create_tenant_fixture()
    keys = {name: SendGridKey.new() for name in ("a", "ab", "b")}
    email = await send_campaign(api, a, 6, provider="sendgrid", credentials=sendgrid_credentials(keys["a"]))
    sms = await send_campaign(api, a, 2, provider="twilio", channel="SMS",
                              credentials={"accountSid": fakes.twilio.account_sid, "authToken": fakes.twilio.auth_token})
    await use_provider(a, "b", "email", "sendgrid", credentials=sendgrid_credentials(keys["ab"]))
    b_token, ab_token = "tenant-b-twilio-token-0123456789", "brand-b-twilio-token-0123456789"
    await use_provider(a, "b", "sms", "twilio", credentials={"accountSid": fakes.twilio.account_sid,
                                                             "authToken": ab_token})
    await use_provider(b, "a", "email", "sendgrid", credentials=sendgrid_credentials(keys["b"]))
    await use_provider(b, "a", "sms", "twilio", credentials={"accountSid": fakes.twilio.account_sid,
                                                             "authToken": b_token})
    rows = {r.customer_id: r for r in await recipients(a, sms.campaign)}
    return Hooked(a, b, keys, email, sms, [rows[c].provider_message_id for c in sms.customers], b_token, ab_token)


def _events(s: Sent, who: list[int]) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    at = datetime.now(UTC)
    out = []
    for i in who:
        out += [sendgrid_event(s, i, "delivered", at), sendgrid_event(s, i, "click", at, url="https://x.test/"),
                sendgrid_event(s, i, "spamreport", at)]
    return out


def _twilio(h: Hooked, i: int) -> dict[str, str]:
    return {"MessageSid": h.sids[i], "SmsSid": h.sids[i], "MessageStatus": "delivered", "SmsStatus": "delivered",
            "AccountSid": "AC" + "0" * 31 + "1"}


async def test_a_webhook_signed_for_another_tenant_changes_nothing_of_a(
    api: Api, hooked: Hooked, fakes: Fakes
) -> None:
    h = hooked
    events = _events(h.email, [0, 1])  # about A's messages
    before_a, before_b = await table_rows(h.a), await table_rows(h.b)
    # correctly signed for tenant B, posted to B's URL: accepted, but A's messages are not B's
    accepted(await post_sendgrid(api, h.b, "a", h.keys["b"], events), 0)
    accepted(await post_twilio(api, h.b, "a", _twilio(h, 0), h.b_token), 0)  # A's message sid
    # B's signature on A's URL: refused
    refused(await post_sendgrid(api, h.a, "a", h.keys["b"], events))
    refused(await post_twilio(api, h.a, "a", _twilio(h, 0), h.b_token))
    refused(await post_twilio(api, h.a, "a", _twilio(h, 0), h.b_token,
                              signed_url=api.base_url + f"/webhooks/twilio/{h.b.id}/{h.b.brands['a']}"))
    # URLs mixing a tenant with another tenant's brand: no such webhook, whoever signed
    for tenant_id, brand_id, key in ((h.a.id, h.b.brands["a"], h.keys["b"]), (h.b.id, h.a.brands["a"], h.keys["a"])):
        body = json.dumps(events).encode()
        stamp = str(int(time.time()))
        r = await api.http.post(f"/webhooks/sendgrid/{tenant_id}/{brand_id}", content=body, headers={
            "content-type": "application/json", SENDGRID_TIMESTAMP_HEADER: stamp,
            SENDGRID_SIGNATURE_HEADER: key.sign(stamp, body)})
        refused(r)
    assert await table_rows(h.a) == before_a
    assert await table_rows(h.b) == before_b
    # control: the same events, signed with A's own secrets on A's URL, do change A
    accepted(await post_sendgrid(api, h.a, "a", h.keys["a"], events), 6)
    accepted(await post_twilio(api, h.a, "a", _twilio(h, 0), fakes.twilio.auth_token), 1)
    assert await table_rows(h.b) == before_b


async def test_a_webhook_posted_for_brand_b_changes_nothing_of_brand_a(
    api: Api, hooked: Hooked, fakes: Fakes
) -> None:
    h = hooked
    events = _events(h.email, [2, 3])  # about brand a's messages
    before = await table_rows(h.a)
    accepted(await post_sendgrid(api, h.a, "b", h.keys["ab"], events), 0)  # brand b's URL and key
    accepted(await post_twilio(api, h.a, "b", _twilio(h, 1), h.ab_token), 0)  # brand a's message sid
    refused(await post_sendgrid(api, h.a, "b", h.keys["a"], events))  # brand a's key on brand b's URL
    refused(await post_sendgrid(api, h.a, "a", h.keys["ab"], events))  # brand b's key on brand a's URL
    refused(await post_twilio(api, h.a, "a", _twilio(h, 1), h.ab_token))
    assert await table_rows(h.a) == before
    accepted(await post_sendgrid(api, h.a, "a", h.keys["a"], events), 6)  # control
    accepted(await post_twilio(api, h.a, "a", _twilio(h, 1), fakes.twilio.auth_token), 1)


async def test_tracking_tokens_are_per_tenant(api: Api, hooked: Hooked, fakes: Fakes) -> None:
    h = hooked
    s, i = h.email, 4
    links = links_of(fakes, s, i)
    campaign, customer = s.cid, s.customers[i]
    # tokens signed by the server, but naming tenant B: A's campaign and customer are not B's
    forged = {
        "o": f"{api.base_url}/t/o/{tracking.make_token('o', h.b.id, campaign, customer)}",
        "c": f"{api.base_url}/t/c/{tracking.make_token('c', h.b.id, campaign, customer, 'https://shop.example.test/x')}",
        "u": f"{api.base_url}/u/{tracking.make_token('u', h.b.id, campaign, customer)}",
    }
    # A's own links with the tenant swapped for B's: no longer signed
    swapped = {k: url.replace(h.a.id.hex, h.b.id.hex) for k, url in
               (("o", links.open), ("c", links.click), ("u", links.unsubscribe))}
    assert all(swapped[k] != url for k, url in (("o", links.open), ("c", links.click), ("u", links.unsubscribe)))
    before_a, before_b = await table_rows(h.a), await table_rows(h.b)
    for urls in (forged, swapped):
        r = await api.http.get(urls["o"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
        r = await api.http.get(urls["c"], follow_redirects=False)
        assert r.status_code in (302, 404), r.text
        r = await api.http.post(urls["u"], content=b"List-Unsubscribe=One-Click",
                                headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code in (200, 404), r.text
    for k in ("c", "u"):
        assert (await api.http.get(swapped[k], follow_redirects=False)).status_code == 404
    assert await table_rows(h.a) == before_a
    assert await table_rows(h.b) == before_b
    # control: A's own links do record, in A
    assert (await api.http.get(links.open)).status_code == 200
    assert (await api.http.get(links.click, follow_redirects=False)).status_code == 302
    r = await api.http.post(links.unsubscribe, content=b"List-Unsubscribe=One-Click",
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    rows = {r.customer_id: r for r in await recipients(h.a, s.campaign)}
    assert rows[customer].opened_at and rows[customer].clicked_at and rows[customer].unsubscribed_at
    assert await table_rows(h.b) == before_b


# --- credentials --------------------------------------------------------------------------------

SET_PROVIDER = mutation_doc("setDeliveryProvider", "$input: SetDeliveryProviderInput!", "input: $input",
                  "deliveryProvider { channel provider settings credentialsSet webhookUrl updatedBy }")
AUDIT = "{ auditLog(first: 100) { edges { node { action targetType summary } } } }"


def _process_logs() -> dict[str, str]:
    """The output of every process this session started (API servers, workers)."""
    logs = DATA_DIR / "logs"
    return {p.name: p.read_text(errors="replace") for p in logs.glob(f"*-{os.getpid()}.log")}


async def test_credentials_are_never_returned_audited_or_logged(
    api: Api, fakes: Fakes, worker: Any
) -> None:
    t = await create_tenant_fixture()
    mark = uuid.uuid4().hex
    sg_api_key = f"SG.not-the-right-key-{mark}"  # the fake refuses it: the send fails, an error path
    brevo_key, brevo_token = f"brevo-api-key-{mark}", f"brevo-hook-token-{mark}"
    twilio_token = fakes.twilio.auth_token
    bad_sid = f"AC-bad-sid-{mark}"
    secrets = [sg_api_key, brevo_key, brevo_token, bad_sid, twilio_token]
    sg = SendGridKey.new()
    await identity(t, "a")
    await identity(t, "b")

    async def set_provider(brand: str, channel: str, provider: str, credentials: dict[str, Any]) -> dict[str, Any]:
        data = await api.data(SET_PROVIDER, {"input": {"brandId": t.brand_gid(brand), "channel": channel,
                                                        "provider": provider.upper(), "credentials": credentials}},
                              token=t.owner_token)
        return data["setDeliveryProvider"]

    done = [await set_provider("a", "EMAIL", "sendgrid", {"apiKey": sg_api_key, "webhookVerificationKey": sg.public}),
            await set_provider("b", "EMAIL", "brevo", {"apiKey": brevo_key, "webhookToken": brevo_token}),
            await set_provider("a", "SMS", "twilio", {"accountSid": fakes.twilio.account_sid,
                                                      "authToken": twilio_token})]
    for payload in done:
        assert payload["errors"] == [] and payload["deliveryProvider"]["credentialsSet"] is True, payload
    # refused configurations: the messages name the field, never the value
    bad = [await set_provider("a", "SMS", "twilio", {"accountSid": bad_sid, "authToken": "short"}),
           await set_provider("b", "EMAIL", "brevo", {"apiKey": brevo_key, f"unknown-{mark}": brevo_token})]
    for payload in bad:
        assert payload["deliveryProvider"] is None and payload["errors"], payload
    listed = [await api.data(PROVIDERS, {"b": t.brand_gid(b)}, token=t.owner_token) for b in ("a", "b")]
    assert sorted((p["provider"], p["credentialsSet"]) for d in listed for p in d["deliveryProviders"]) == [
        ("BREVO", True), ("SENDGRID", True), ("TWILIO", True)]
    assert [s for s in secrets if s in json.dumps([done, bad, listed])] == []

    # the credentials at work: a send refused for the key, an SMS sent, a webhook with a wrong token
    seg, _ = await audience(t, 2)
    failing = await api.data("""mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
        campaign { id } errors { message } } }""", {"input": {"brandId": t.brand_gid("a"), "name": "Fails",
                                                               "channel": "EMAIL", "content": CONTENT,
                                                               "segmentIds": [gid("Segment", seg)]}},
                             token=t.owner_token)
    campaign = failing["createCampaign"]["campaign"]["id"]
    await launch(api, t, campaign)
    failed = await wait_status(api, t, campaign, ("FAILED",))
    assert "sendgrid" in (failed["failureReason"] or ""), failed
    sms_seg, _ = await audience(t, 1, channel="sms")
    sms = await create(api, t, sms_seg, channel="SMS")
    await launch(api, t, sms)
    await wait_status(api, t, sms)
    r = await api.http.post(f"/webhooks/brevo/{t.id}/{t.brands['b']}", content=b"{}",
                            headers={"authorization": f"Bearer {brevo_key}"})
    assert r.status_code == 401

    # nowhere to be found: API answers, the audit trail, the stored rows, the processes' logs
    audit = await api.data(AUDIT, token=t.owner_token)
    summaries = [e["node"]["summary"] for e in audit["auditLog"]["edges"]
                 if e["node"]["action"] == "delivery.set_provider"]
    assert len(summaries) == 3 and all(s["credentialsChanged"] for s in summaries), summaries
    campaigns_read = await api.data(CAMPAIGNS, {}, token=t.owner_token)
    everything = json.dumps([audit, campaigns_read, failed])
    assert [s for s in secrets if s in everything] == []
    async with tenant_session(t.id) as s:
        stored = []
        for table in ("audit_log", "delivery_providers", "campaigns", "timeline_events"):
            result = await s.execute(text(f"SELECT * FROM {table} WHERE tenant_id = :t"), {"t": t.id})
            stored += [str(v) for row in result for v in row]
    assert [s for s in secrets if any(s in v for v in stored)] == []
    logs = _process_logs()
    assert any(name.startswith("api-") for name in logs) and any(name.startswith("worker-") for name in logs), logs
    assert {name: [s for s in secrets if s in out] for name, out in logs.items()} == {
        name: [] for name in logs}
