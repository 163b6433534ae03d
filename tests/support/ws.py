"""GraphQL over graphql-transport-ws: one client for every subscription test.

:class:`Client` connects with the ``graphql-transport-ws`` subprotocol, sends ``connection_init``
(with the given payload, or none) and insists on ``connection_ack`` within 5 seconds. A background
task then reads every frame: it answers the server's pings with a pong, counts pongs (for
:meth:`Client.sync`), and keeps every other message, with its arrival time, in ``messages``.
Tests look at ``messages`` as a whole (:meth:`Client.data`, :meth:`Client.errors`, …) or take
them one at a time, in order (:meth:`Client.receive`, :meth:`Client.collect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL = "graphql-transport-ws"


def ws_url(api: Any) -> str:
    """The websocket address of ``/graphql`` on an API server (its base URL, or an ``Api``)."""
    base = api if isinstance(api, str) else api.base_url
    return base.replace("http://", "ws://", 1) + "/graphql"


def bearer(token: str) -> dict[str, str]:
    """A ``connection_init`` payload carrying ``token`` as an Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def wait_for(condition: Callable[[], Any], what: str, within: float = 10) -> None:
    """Until ``condition()`` is true; an AssertionError naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def poll(condition: Callable[[], bool], within: float = 5) -> bool:
    """Whether ``condition()`` became true within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Client:
    """A graphql-transport-ws connection whose messages a background task collects."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []  # everything but pings and pongs, in order
        self.arrived: list[float] = []  # when each of ``messages`` was read (time.monotonic())
        self.pongs = 0
        self._received = 0  # how many of ``messages`` receive() has returned
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api: Any, payload: dict[str, Any] | None) -> Self:
        """Connect to ``api`` (a base URL or an ``Api``) and initialise with ``payload`` (no
        payload at all when None); fails unless the server acknowledges."""
        ws = await connect(ws_url(api), subprotocols=[PROTOCOL], open_timeout=5)
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
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif message.get("type") == "pong":
                    self.pongs += 1
                else:
                    self.messages.append(message)
                    self.arrived.append(time.monotonic())

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """Start an operation; its id ("1", "2", … on each connection)."""
        op_id = str(next(self._ids))
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        await self.ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
        return op_id

    async def complete(self, op_id: str) -> None:
        await self.ws.send(json.dumps({"id": op_id, "type": "complete"}))

    async def sync(self) -> None:
        """A ping/pong round trip: every message sent before it has been handled by the server."""
        pongs = self.pongs
        await self.ws.send(json.dumps({"type": "ping"}))
        await wait_for(lambda: self.pongs > pongs, "pong")

    async def receive(self, within: float) -> dict[str, Any] | None:
        """The next message :meth:`receive` has not returned yet; None when none comes within
        ``within`` seconds."""
        if within <= 0 or not await poll(lambda: len(self.messages) > self._received, within):
            return None
        self._received += 1
        return self.messages[self._received - 1]

    async def collect(self, seconds: float) -> list[dict[str, Any]]:
        """What :meth:`receive` gets over the next ``seconds`` seconds."""
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            message = await self.receive(left)
            if message is not None:
                out.append(message)
        return out

    def of(self, op_id: str | None) -> list[dict[str, Any]]:
        """The messages of operation ``op_id`` (every message when None)."""
        return [m for m in self.messages if op_id is None or m.get("id") == op_id]

    def data(self, field: str, op_id: str | None = None) -> list[Any]:
        """``field`` of each ``next`` message that carries it (not null)."""
        return [m["payload"]["data"][field] for m in self.of(op_id)
                if m["type"] == "next" and (m["payload"].get("data") or {}).get(field)]

    def errors(self, op_id: str | None = None) -> list[dict[str, Any]]:
        """The GraphQL errors received: those of ``next`` messages and of ``error`` messages."""
        out = []
        for m in self.of(op_id):
            if m["type"] == "next":
                out += m["payload"].get("errors") or []
            elif m["type"] == "error":
                out += m["payload"]
        return out

    def ended(self, op_id: str | None = None) -> bool:
        """The server ended the operation (``complete`` or ``error``)."""
        return any(m["type"] in ("complete", "error") for m in self.of(op_id))

    def failed(self, op_id: str | None = None) -> bool:
        """The operation ended, or an error arrived."""
        return self.ended(op_id) or bool(self.errors(op_id))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
