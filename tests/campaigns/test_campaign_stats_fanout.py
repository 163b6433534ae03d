"""Live campaign stats executed once per event for every subscriber that shares them.

Subscribers of ``campaignStats`` with the same document, variables and scope (tenant, role, brand
grants, active brand) get the same frame for a change, from one execution: the API (run with
``GRAPHQL_SQL_STATS=1``) numbers each shared execution in the payload's
``extensions.sharedExecution``, so one execution per subscriber would show as different numbers.
Different variables or scopes never share a payload, a subscriber that completes or disconnects
stops receiving while the others go on, and a subscriber that never reads holds up no one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

from conftest import Api, TenantFixture, start_api
from support.campaigns import audience, create
from support.ws import PROTOCOL, Client, bearer, wait_for, ws_url

STATS = "subscription($id: ID!) { campaignStats(campaignId: $id) { opens clicks version progress { queued } } }"
SPACING = 0.35  # seconds between changes: slower than the subscription's rate, so none coalesce


def campaign_uuid(campaign: str) -> uuid.UUID:
    return uuid.UUID(base64.b64decode(campaign).decode().split(":")[1])


async def new_campaign(api: Api, tenant: TenantFixture) -> tuple[str, uuid.UUID]:
    seg, _ = await audience(tenant, 2, prefix=uuid.uuid4().hex[:8])
    campaign = await create(api, tenant, seg)
    return campaign, campaign_uuid(campaign)


async def bump(tenant: TenantFixture, campaign_id: uuid.UUID, **deltas: int) -> int:
    """One committed change of the campaign's counters (published through the outbox): its version."""
    return (await bumped(tenant, campaign_id, **deltas)).version


async def bumped(tenant: TenantFixture, campaign_id: uuid.UUID, **deltas: int) -> Any:
    from domain.campaigns import stats
    from domain.platform.db import tenant_session

    async with tenant_session(tenant.id) as s:
        return await stats.bump(s, tenant.id, campaign_id, **deltas)


def frames(conn: Client, op: str) -> dict[int, dict[str, Any]]:
    """The ``next`` payloads of ``op`` after its first frame, by version."""
    out = {}
    for m in conn.of(op)[1:]:
        assert m["type"] == "next" and not m["payload"].get("errors"), m
        out[m["payload"]["data"]["campaignStats"]["version"]] = m["payload"]
    return out


async def subscribed(conn: Client, campaign: str) -> str:
    op = await conn.subscribe(STATS, {"id": campaign})
    await wait_for(lambda: len(conn.of(op)) >= 1, "the current stats")
    assert conn.of(op)[0]["type"] == "next" and not conn.errors(op), conn.of(op)
    return op


async def changes(tenant: TenantFixture, campaign_id: uuid.UUID, n: int, **deltas: int) -> list[int]:
    versions = []
    for _ in range(n):
        versions.append(await bump(tenant, campaign_id, **(deltas or {"opens": 1})))
        await asyncio.sleep(SPACING)
    return versions


async def test_subscribers_of_one_document_share_one_execution_per_event(api: Api, tenant: TenantFixture) -> None:
    campaign, cid = await new_campaign(api, tenant)
    conns = [await Client.open(api, bearer(tenant.owner_token)) for _ in range(4)]
    try:
        subs = [(c, await subscribed(c, campaign)) for c in conns]
        subs.append((conns[0], await subscribed(conns[0], campaign)))  # a second one on a connection
        versions = await changes(tenant, cid, 3)
        await wait_for(lambda: all(len(frames(c, op)) == 3 for c, op in subs), "every change, to everyone")

        numbers = []
        for v in versions:
            payloads = [frames(c, op)[v] for c, op in subs]
            assert all(p == payloads[0] for p in payloads), payloads  # the same frame for everyone
            assert payloads[0]["data"]["campaignStats"]["opens"] == versions.index(v) + 1
            numbers.append(payloads[0]["extensions"]["sharedExecution"])
        assert numbers == sorted(set(numbers)), numbers  # one execution per change
        for c, op in subs:  # each frame names its own operation
            assert [m["id"] for m in c.of(op)] == [op] * 4
    finally:
        for c in conns:
            await c.close()


async def test_different_variables_and_scopes_never_share(api: Api, tenant: TenantFixture) -> None:
    (a, a_id), (b, b_id) = await new_campaign(api, tenant), await new_campaign(api, tenant)
    _, marketer_a = await tenant.member("marketer", ["a"])
    _, marketer_b = await tenant.member("marketer", ["b"])
    owner = await Client.open(api, bearer(tenant.owner_token))
    owner_in_a = await Client.open(api, {**bearer(tenant.owner_token), "brandId": tenant.brand_gid("a")})
    limited = await Client.open(api, bearer(marketer_a))
    foreign = await Client.open(api, bearer(marketer_b))  # may not see brand a's campaigns
    try:
        sub_a, sub_b = await subscribed(owner, a), await subscribed(owner, b)
        sub_active, sub_limited = await subscribed(owner_in_a, a), await subscribed(limited, a)
        refused = await foreign.subscribe(STATS, {"id": a})
        await wait_for(lambda: foreign.failed(refused), "the refusal")
        assert [e["extensions"]["code"] for e in foreign.errors(refused)] == ["NOT_FOUND"]

        for _ in range(3):  # both campaigns at the same versions: only the variables tell them apart
            await bump(tenant, a_id, opens=1)
            await bump(tenant, b_id, clicks=1)
            await asyncio.sleep(SPACING)
        subs = {"a": (owner, sub_a), "b": (owner, sub_b), "active brand": (owner_in_a, sub_active),
                "limited": (limited, sub_limited)}
        await wait_for(lambda: all(len(frames(c, op)) == 3 for c, op in subs.values()), "every change")

        got = {name: frames(c, op) for name, (c, op) in subs.items()}
        assert got["a"].keys() == got["b"].keys()
        for v in got["a"]:
            assert got["b"][v]["data"]["campaignStats"]["opens"] == 0  # never campaign a's figures
            assert got["a"][v]["data"]["campaignStats"]["clicks"] == 0
            for name in ("active brand", "limited"):
                assert got[name][v]["data"] == got["a"][v]["data"]  # the same figures ...
            numbers = [got[name][v]["extensions"]["sharedExecution"] for name in subs]
            assert len(set(numbers)) == len(numbers), numbers  # ... each scope from its own execution
        assert not foreign.data("campaignStats", refused)  # nothing of brand a, ever
    finally:
        for c in (owner, owner_in_a, limited, foreign):
            await c.close()


async def test_a_subscriber_that_leaves_mid_stream_stops_and_the_others_go_on(
    api: Api, tenant: TenantFixture
) -> None:
    campaign, cid = await new_campaign(api, tenant)
    one, two, three = [await Client.open(api, bearer(tenant.owner_token)) for _ in range(3)]
    try:
        leaving, staying = await subscribed(one, campaign), await subscribed(one, campaign)
        on_two, on_three = await subscribed(two, campaign), await subscribed(three, campaign)
        first = await changes(tenant, cid, 1)
        await wait_for(lambda: all(len(frames(c, op)) == 1 for c, op in
                                   ((one, leaving), (one, staying), (two, on_two), (three, on_three))), "the change")

        await one.complete(leaving)
        await one.sync()  # the server has handled the complete
        await three.close()
        later = await changes(tenant, cid, 2)
        await wait_for(lambda: len(frames(one, staying)) == 3 and len(frames(two, on_two)) == 3, "the later changes")
        await asyncio.sleep(SPACING)  # anything still coming

        assert list(frames(one, leaving)) == first  # nothing after its complete
        assert not [m for m in one.of(leaving) if m["type"] in ("error", "complete")]  # the client ended it
        assert list(frames(one, staying)) == list(frames(two, on_two)) == first + later
        for v in later:
            assert frames(one, staying)[v] == frames(two, on_two)[v]
    finally:
        for c in (one, two, three):
            await c.close()


async def test_a_subscriber_that_never_reads_holds_up_no_one(api: Api, tenant: TenantFixture) -> None:
    campaign, cid = await new_campaign(api, tenant)
    # a connection with a tiny receive buffer whose client stops reading after the acknowledgement:
    # its 50 subscriptions' frames pile up in the server's buffers
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    where = urlsplit(api.base_url)
    sock.connect((where.hostname, where.port))
    slow = await connect(ws_url(api), sock=sock, subprotocols=[PROTOCOL], max_queue=1, ping_interval=None)
    conns = [await Client.open(api, bearer(tenant.owner_token)) for _ in range(3)]
    try:
        await slow.send(json.dumps({"type": "connection_init", "payload": bearer(tenant.owner_token)}))
        assert json.loads(await slow.recv())["type"] == "connection_ack"
        for k in range(50):
            await slow.send(json.dumps({"id": str(k), "type": "subscribe",
                                        "payload": {"query": STATS, "variables": {"id": campaign}}}))
        subs = [(c, await subscribed(c, campaign)) for c in conns]
        versions = await changes(tenant, cid, 6)
        await wait_for(lambda: all(len(frames(c, op)) == 6 for c, op in subs), "every change, to the readers")
        for c, op in subs:
            assert list(frames(c, op)) == versions  # every frame, none coalesced
    finally:
        for c in conns:
            await c.close()
        await slow.close()


async def test_an_internal_error_in_a_shared_event_is_masked_with_a_request_id_and_logged_once(
    api: Api, tenant: TenantFixture
) -> None:
    from domain.campaigns.service import topic
    from domain.platform import outbox
    from domain.platform.db import tenant_session

    campaign, cid = await new_campaign(api, tenant)
    proc, url = await asyncio.to_thread(start_api, "api-fanout")  # an API whose log is this test's alone
    conns: list[Client] = []
    try:
        conns = [await Client.open(url, bearer(tenant.owner_token)) for _ in range(2)]
        subs = [(c, await subscribed(c, campaign)) for c in conns]
        figures = await bumped(tenant, cid, opens=1)
        await wait_for(lambda: all(len(c.of(op)) == 2 for c, op in subs), "the change")
        assert not [c.errors(op) for c, op in subs if c.errors(op)]

        # the next event's opens are no number: completing the selection fails (a defect of ours)
        event = figures.to_event()
        event["version"] = figures.version + 1
        event["counters"]["opens"] = "many"
        async with tenant_session(tenant.id) as s:
            outbox.publish(s, tenant.id, topic(cid), event)
        await wait_for(lambda: all(len(c.of(op)) == 3 for c, op in subs), "the broken event")

        broken = [c.of(op)[2] for c, op in subs]
        assert [m["type"] for m in broken] == ["next", "next"]
        assert broken[0]["payload"] == broken[1]["payload"]  # one execution, shared
        [error] = broken[0]["payload"]["errors"]
        request_id = error["extensions"]["requestId"]
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and request_id in error["message"]
        assert "many" not in json.dumps(broken[0])  # nothing of the defect reaches the client
        await asyncio.sleep(0.5)
        logged = [line for line in proc.output().splitlines() if "internal error" in line]
        assert len(logged) == 1 and request_id in logged[0], logged
    finally:
        for c in conns:
            await c.close()
        proc.stop()
