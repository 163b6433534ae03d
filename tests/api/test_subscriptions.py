"""Live audit events over graphql-transport-ws, fanned out across API processes through Redis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import Api, TenantFixture, start_api
from support.audit import AUDIT_EVENTS, AuditClient, marker, renamer, until_live
from support.ws import PROTOCOL, bearer, wait_for, ws_url


async def close_code(api_url: str, *first: dict[str, Any]) -> int:
    """Open a socket, send ``first`` messages, and return the close code the server sends."""
    async with connect(ws_url(api_url), subprotocols=[PROTOCOL], open_timeout=5) as ws:
        for message in first:
            await ws.send(json.dumps(message))
        try:
            async with asyncio.timeout(5):
                while True:
                    message = json.loads(await ws.recv())
                    assert message.get("type") in ("ping", "pong"), f"expected a close, got {message}"
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, f"closed without a close frame from the server: {exc}"
            return exc.rcvd.code
    raise AssertionError("unreachable")


# --- delivery ----------------------------------------------------------------------------


async def test_events_fan_out_across_processes(api_url: str, tenant: TenantFixture) -> None:
    """Subscribers on the first API process get events of a mutation made on a second one."""
    proc, api2_url = await asyncio.to_thread(start_api, "api2")
    api2 = Api(api2_url)
    conns: list[AuditClient] = []
    try:
        _, admin_key = await tenant.api_key("admin")
        owner = await AuditClient.open(api_url, bearer(tenant.owner_token))
        owner_token_form = await AuditClient.open(api_url, {"token": tenant.owner_token})
        admin = await AuditClient.open(api_url, {"token": admin_key})
        admin_header = await AuditClient.open(api_url, bearer(admin_key))
        conns = [owner, owner_token_form, admin, admin_header]
        subs = [(c, await c.subscribe()) for c in conns]
        rename = renamer(api2, tenant)
        await until_live(subs, rename)

        name = marker()
        await rename(name)
        await wait_for(lambda: all(name in c.names(op) for c, op in subs), "the event on every subscriber")
        await asyncio.sleep(0.3)
        for conn, op in subs:
            matching = [e for e in conn.events(op) if (e["summary"] or {}).get("name", {}).get("after") == name]
            assert matching == [
                {
                    "action": "brand.update",
                    "targetType": "Brand",
                    "principalLabel": f"owner@{tenant.slug}.test",
                    "summary": matching[0]["summary"],
                    "brand": {"slug": "brand-a"},
                }
            ], conn.events(op)
    finally:
        for c in conns:
            await c.close()
        await api2.http.aclose()
        await asyncio.to_thread(proc.stop)


async def test_events_of_another_tenant_are_not_delivered(api: Api, api_url: str, tenant: TenantFixture,
                                                          other_tenant: TenantFixture) -> None:
    conn = await AuditClient.open(api_url, bearer(tenant.owner_token))
    other = await AuditClient.open(api_url, bearer(other_tenant.owner_token))
    try:
        op, other_op = await conn.subscribe(), await other.subscribe()
        await until_live([(conn, op)], renamer(api, tenant))
        await until_live([(other, other_op)], renamer(api, other_tenant))
        mine = marker()
        await renamer(api, tenant)(mine)
        await wait_for(lambda: mine in conn.names(op), "the tenant's own event")
        await asyncio.sleep(0.3)
        assert mine not in other.names(other_op)
        assert all(e["principalLabel"] == f"owner@{other_tenant.slug}.test" for e in other.events(other_op))
    finally:
        await conn.close()
        await other.close()


async def test_several_subscribers_each_get_event_once_and_complete_stops_delivery(
    api: Api, api_url: str, tenant: TenantFixture
) -> None:
    conns = [await AuditClient.open(api_url, bearer(tenant.owner_token)) for _ in range(3)]
    try:
        subs = [(c, await c.subscribe()) for c in conns]
        subs.append((conns[0], await conns[0].subscribe()))  # two operations on one connection
        rename = renamer(api, tenant)
        await until_live(subs, rename)

        first = marker()
        await rename(first)
        await wait_for(lambda: all(first in c.names(op) for c, op in subs), "the event on every subscriber")
        await asyncio.sleep(0.5)
        for conn, op in subs:
            assert conn.names(op).count(first) == 1, conn.names(op)

        # stop one of the two operations on the first connection, and the whole of the second
        stopped = [subs[0], subs[1]]
        still = [subs[2], subs[3]]
        for conn, op in stopped:
            await conn.complete(op)
        for conn in {id(c): c for c, _ in stopped}.values():
            await conn.sync()

        second = marker()
        await rename(second)
        await wait_for(lambda: all(second in c.names(op) for c, op in still), "the event on live subscribers")
        await asyncio.sleep(0.5)
        for conn, op in still:
            assert conn.names(op).count(second) == 1, conn.names(op)
        for conn, op in stopped:
            assert second not in conn.names(op), f"delivered after complete: {conn.names(op)}"
    finally:
        for c in conns:
            await c.close()


# --- refusals ---------------------------------------------------------------------------


async def test_bad_missing_or_expired_token_is_refused_with_4403(api_url: str, tenant: TenantFixture) -> None:
    from domain.tenancy.auth import mint_token

    expired = mint_token(tenant.id, tenant.owner_id, f"owner@{tenant.slug}.test", ttl=-3600)
    for payload in (
        bearer("not-a-token"),
        {"token": "bg_not-a-key"},
        {},
        None,
        bearer(expired),
        {"token": expired},
    ):
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        assert await close_code(api_url, init) == 4403, payload


async def test_subscribe_before_connection_init_closes_4401(api_url: str) -> None:
    code = await close_code(api_url, {"id": "1", "type": "subscribe", "payload": {"query": AUDIT_EVENTS}})
    assert code == 4401


async def test_brand_id_the_principal_cannot_use_is_refused(api_url: str, tenant: TenantFixture,
                                                            other_tenant: TenantFixture) -> None:
    _, marketer = await tenant.member("marketer", brands=["a"])
    ok = await AuditClient.open(api_url, {**bearer(marketer), "brandId": tenant.brand_gid("a")})
    await ok.close()
    for payload in (
        {**bearer(marketer), "brandId": tenant.brand_gid("b")},
        {**bearer(tenant.owner_token), "brandId": other_tenant.brand_gid("a")},
        {**bearer(tenant.owner_token), "brandId": "not-a-brand-id"},
    ):
        init = {"type": "connection_init", "payload": payload}
        assert await close_code(api_url, init) == 4403, payload


async def test_marketer_cannot_subscribe_to_audit_events(api: Api, api_url: str, tenant: TenantFixture) -> None:
    _, marketer = await tenant.member("marketer")
    conn = await AuditClient.open(api_url, bearer(marketer))
    owner = await AuditClient.open(api_url, bearer(tenant.owner_token))
    try:
        op = await conn.subscribe()

        def refusal() -> dict[str, Any] | None:
            for m in conn.messages:
                if m.get("id") != op:
                    continue
                if m["type"] == "error":
                    return m
                if m["type"] == "next" and m["payload"].get("errors"):
                    return m
            return None

        await wait_for(lambda: refusal() is not None, "an error for the marketer's subscription", within=5)
        found = refusal()
        assert found is not None

        # events that the owner receives never reach the marketer
        owner_op = await owner.subscribe()
        await until_live([(owner, owner_op)], renamer(api, tenant))
        name = marker()
        await renamer(api, tenant)(name)
        await wait_for(lambda: name in owner.names(owner_op), "the owner's event")
        await asyncio.sleep(0.3)
        assert not any(
            m.get("type") == "next" and (m["payload"].get("data") or {}).get("auditEvents")
            for m in conn.messages
        ), conn.messages

        if found["type"] == "next":  # an execution error must carry its machine-readable code
            assert found["payload"].get("data") is None, found
            codes = [(e.get("extensions") or {}).get("code") for e in found["payload"]["errors"]]
            assert codes == ["FORBIDDEN"], found
    finally:
        await conn.close()
        await owner.close()


async def test_hub_reconnecting_to_a_redis_that_came_back_with_less_replays_nothing(monkeypatch: Any) -> None:
    """Redis can come back with less than the hub had read (the last second lost with
    ``appendfsync everysec``, or the whole stream with snapshots only): the hub reads on after
    the last entry it handed out, so the entries Redis still has are not handed out again, and
    the ones appended afterwards arrive once each."""
    import redis.asyncio as aioredis

    from domain.platform import events
    from domain.platform import redis as redis_mod

    # a stream of its own: the suite's API processes follow the real one
    stream = f"events:test:{uuid.uuid4().hex}"
    monkeypatch.setattr(events, "STREAM", stream)
    tenant_id = uuid.uuid4()
    r = aioredis.Redis.from_url(redis_mod.redis_url(), decode_responses=True)
    hub = events.EventHub()
    hub.BLOCK_MS = 200  # its blocking reads return soon after the stream goes away

    async def append(n: int, entry_id: str = "*") -> str:
        c, d = events.entry(tenant_id, "probe", {"n": n})
        return await r.xadd(stream, {"c": c, "d": d}, id=entry_id)

    async def received(queue: asyncio.Queue[dict[str, Any]], within: float) -> list[int]:
        got: list[int] = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append((await asyncio.wait_for(queue.get(), left))["n"])
            except TimeoutError:
                break
        return got

    try:
        async with hub.subscribe(tenant_id, "probe") as queue:
            for n in (1, 2, 3):
                await append(n)
            assert await received(queue, 1.0) == [1, 2, 3]
            # the hub's reads fail for a while (the stream is unreadable, as while Redis is away) ...
            await r.delete(stream)
            await r.set(stream, "away")
            await asyncio.sleep(1.0)
            # ... and Redis comes back with less: the stream holds two older entries only
            await r.delete(stream)
            await append(-1, "1-1")
            await append(-2, "1-2")
            await asyncio.sleep(0.5)  # the hub reads again
            for n in (4, 5):
                await append(n)
            assert await received(queue, 1.5) == [4, 5]
    finally:
        await hub.close()
        await r.delete(stream)
        await r.aclose()
