"""Live audit events over graphql-transport-ws, fanned out across API processes through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import Api, TenantFixture, start_api

PROTOCOL = "graphql-transport-ws"
AUDIT_EVENTS = (
    "subscription { auditEvents { action targetType principalLabel summary brand { slug } } }"
)
RENAME = (
    "mutation($input: UpdateBrandInput!) { updateBrand(input: $input) { brand { name } errors { message } } }"
)
_markers = itertools.count(1)


def ws_url(api_url: str) -> str:
    return api_url.replace("http://", "ws://", 1) + "/graphql"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Conn:
    """A graphql-transport-ws connection whose messages a background task collects."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api_url: str, payload: dict[str, Any] | None) -> Conn:
        """Connect and initialise; fails unless the server acknowledges."""
        ws = await connect(ws_url(api_url), subprotocols=[PROTOCOL], open_timeout=5)
        assert ws.subprotocol == PROTOCOL
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        try:
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed as exc:
            raise AssertionError(f"connection refused: {exc}") from None
        assert ack["type"] == "connection_ack", ack
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                self.messages.append(message)
        except ConnectionClosed:
            pass

    async def subscribe(self, query: str = AUDIT_EVENTS) -> str:
        op_id = str(next(self._ids))
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}}))
        return op_id

    async def complete(self, op_id: str) -> None:
        await self.ws.send(json.dumps({"id": op_id, "type": "complete"}))

    async def sync(self) -> None:
        """A ping/pong round trip: every message sent before it has been handled by the server."""
        pongs = sum(1 for m in self.messages if m.get("type") == "pong")
        await self.ws.send(json.dumps({"type": "ping"}))
        await wait_for(lambda: sum(1 for m in self.messages if m.get("type") == "pong") > pongs, "pong")

    def events(self, op_id: str) -> list[dict[str, Any]]:
        out = []
        for m in self.messages:
            if m.get("id") == op_id and m.get("type") == "next":
                assert not m["payload"].get("errors"), m
                out.append(m["payload"]["data"]["auditEvents"])
        return out

    def names(self, op_id: str) -> list[str]:
        """The brand names set by the brand.update events this operation received."""
        return [
            e["summary"]["name"]["after"]
            for e in self.events(op_id)
            if e["action"] == "brand.update" and "name" in (e["summary"] or {})
        ]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


async def wait_for(condition: Callable[[], bool], what: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


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


def renamer(api: Api, tenant: TenantFixture, brand: str = "a") -> Callable[[str], Awaitable[None]]:
    async def rename(name: str) -> None:
        data = await api.data(RENAME, {"input": {"id": tenant.brand_gid(brand), "name": name}},
                              token=tenant.owner_token)
        assert data["updateBrand"]["errors"] == [], data

    return rename


async def until_live(subs: list[tuple[Conn, str]], rename: Callable[[str], Awaitable[None]], within: float = 10) -> None:
    """Subscriptions have no acknowledgement: rename the brand with probe names until every
    subscriber has received one, so that later events cannot be lost to a late subscription."""
    deadline = time.monotonic() + within
    while True:
        probe = f"probe {next(_markers)} {uuid.uuid4().hex[:6]}"
        await rename(probe)
        wait_until = min(time.monotonic() + 1, deadline)
        while time.monotonic() < wait_until:
            if all(conn.names(op) for conn, op in subs):
                return
            await asyncio.sleep(0.02)
        if time.monotonic() >= deadline:
            raise AssertionError(f"subscriptions not live after {within}s: {[c.messages for c, _ in subs]}")


def marker() -> str:
    return f"marker {next(_markers)} {uuid.uuid4().hex[:6]}"


# --- delivery ----------------------------------------------------------------------------


async def test_events_fan_out_across_processes(api_url: str, tenant: TenantFixture) -> None:
    """Subscribers on the first API process get events of a mutation made on a second one."""
    proc, api2_url = await asyncio.to_thread(start_api, "api2")
    api2 = Api(api2_url)
    conns: list[Conn] = []
    try:
        _, admin_key = await tenant.api_key("admin")
        owner = await Conn.open(api_url, bearer(tenant.owner_token))
        owner_token_form = await Conn.open(api_url, {"token": tenant.owner_token})
        admin = await Conn.open(api_url, {"token": admin_key})
        admin_header = await Conn.open(api_url, bearer(admin_key))
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
    conn = await Conn.open(api_url, bearer(tenant.owner_token))
    other = await Conn.open(api_url, bearer(other_tenant.owner_token))
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
    conns = [await Conn.open(api_url, bearer(tenant.owner_token)) for _ in range(3)]
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
    ok = await Conn.open(api_url, {**bearer(marketer), "brandId": tenant.brand_gid("a")})
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
    conn = await Conn.open(api_url, bearer(marketer))
    owner = await Conn.open(api_url, bearer(tenant.owner_token))
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
