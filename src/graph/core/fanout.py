"""Shared execution of live events: one execution and one JSON encoding per event, whatever the
number of subscribers that share it.

A subscription event normally costs each subscriber a graphql-core execution of the selection
set, Strawberry's per-result processing (the extensions' stream hooks) and a JSON encoding.
Subscribers with the same document, operation name and variables, and the same scope (what
``domain.tenancy.scoping.scope_key`` says decides what a principal sees: tenant, role, brand
grants, active brand) get the same bytes for the same event, so here the first of them to
deliver an event executes and encodes it once; every other one writes
``{"id":<its id>,"type":"next","payload":<the shared payload>}`` to its socket, built by string
concatenation.

**Opting in.** A subscription resolver (an async generator) that delivers an event whose result
depends only on the document, the variables, the scope and a version it names (nothing of the
principal but its scope, nothing of the time but the event) hands it to :func:`deliver` instead
of yielding it::

    if not await fanout.deliver(info, figures.version, lambda: CampaignStats.of(figures)):
        yield CampaignStats.of(figures)

:func:`deliver` answers False when the operation does not run over this module's transport
handler (then the resolver yields, as before). Everything else stays the subscriber's own, in its
own resolver: its subscription to the event hub, authorization, its rate and coalescing, the
credential recheck (``Context.recheck``) before each event, the first frame (yielded as usual).
A subscriber's write never waits for its socket (uvicorn buffers it), so a slow one holds up no
other.

**Errors.** The shared execution's errors get what the schema extensions give every streamed
result (codes; internal errors masked, carrying the request id of the connection whose execution
produced them, and logged once, under that id). An exception outside the selection (not a field
error) reaches the executing subscriber's stream like any resolver exception and is not shared.

**Counting.** ``shared.executions`` counts the shared executions of the process; with
``GRAPHQL_SQL_STATS=1`` (tests) each shared payload carries its execution's number in
``extensions.sharedExecution``, so a test tells one execution per event (every subscriber of a key
gets the same number) from one per subscriber, and two keys apart (different numbers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler, Operation

from domain.config import get_settings
from domain.tenancy.scoping import scope_key
from graph.cost import charge_event
from graph.extensions import finish_errors

log = logging.getLogger(__name__)

PAYLOADS_KEPT = 4096  # shared payloads kept (key, version): a few recent events of each key
KEYS_KEPT = 4096  # numbered keys kept


class _Sink:
    """One operation on one connection: where its frames go, and its share key."""

    __slots__ = ("executor", "handler", "operation", "prefix", "_key", "_principal", "_brand")

    def __init__(self, handler: Handler, operation: Operation) -> None:
        self.handler = handler
        self.operation = operation
        self.prefix = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":'
        self.executor: Any = None  # the operation's graphql-core executor (adopt)
        self._key: int | None = None
        self._principal: Any = None
        self._brand: Any = None

    def key(self) -> int:
        """The number of (document, operation name, variables, scope); looked up again when a
        recheck changed the principal."""
        ctx = self.handler.context
        if self._key is None or ctx.principal_ is not self._principal or ctx.brand_id is not self._brand:
            self._principal, self._brand = ctx.principal_, ctx.brand_id
            op = self.operation
            variables = json.dumps(op.variables or {}, sort_keys=True, separators=(",", ":"), default=str)
            self._key = shared.number((op.query, op.operation_name, variables, scope_key(ctx.principal, ctx.brand_id)))
        return self._key

    def live(self) -> bool:
        """Still subscribed: not completed by either side, the connection not closed."""
        return self.handler.operations.get(self.operation.id) is self.operation and not self.operation.completed


_sink: ContextVar[_Sink | None] = ContextVar("fanout_sink", default=None)


class Handler(BaseGraphQLTransportWSHandler):
    """Strawberry's graphql-transport-ws handler; each operation's task knows its sink."""

    async def run_operation(self, operation: Operation) -> None:
        _sink.set(_Sink(self, operation))  # this task's context: the operation's resolver runs in it
        await super().run_operation(operation)


def adopt(executor: Any) -> None:
    """Called by the executor (``graph/core/execution.py``) when it is built: an operation over
    :class:`Handler` executes its shared events with its own executor (same document, variables,
    context and middleware as its own events)."""
    sink = _sink.get()
    if sink is not None and sink.executor is None:
        sink.executor = executor


class SharedPayloads:
    """The process's shared payloads, by (key, version): a future, done once executed."""

    def __init__(self) -> None:
        self.payloads: OrderedDict[tuple[int, Hashable], asyncio.Future[str]] = OrderedDict()
        self.executions = 0
        # a number for each key, never reused: a slot is (number, version), cheap to hash
        self.keys: OrderedDict[tuple, int] = OrderedDict()
        self._numbers = itertools.count(1)

    def number(self, key: tuple) -> int:
        found = self.keys.get(key)
        if found is None:
            found = self.keys[key] = next(self._numbers)
            if len(self.keys) > KEYS_KEPT:  # a key seen again later gets a new number: shares less
                self.keys.popitem(last=False)
        return found

    async def payload(self, sink: _Sink, version: Hashable, build: Callable[[], Any]) -> str:
        key = sink.key()
        slot = (key, version)
        found = self.payloads.get(slot)
        if found is not None:
            if not found.done():
                await asyncio.wait([found])  # another subscriber is executing it
            if not found.cancelled() and found.exception() is None:
                return found.result()
            # that execution failed: this subscriber executes the event itself
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.payloads[slot] = future
        if len(self.payloads) > PAYLOADS_KEPT:
            self.payloads.popitem(last=False)
        try:
            text = await self._execute(sink, build())
        except BaseException as exc:  # not shared: whoever waits executes the event itself
            if self.payloads.get(slot) is future:
                del self.payloads[slot]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: this subscriber's stream reports it
            raise
        future.set_result(text)
        return text

    async def _execute(self, sink: _Sink, value: Any) -> str:
        executor = sink.executor.build_per_event_executor(value)
        executor.context_value = replace(executor.context_value, _loaders=None)  # fresh dataloaders
        result = executor.execute_operation(False)
        if executor.is_awaitable(result):
            result = await result
        finish_errors(result)
        self.executions += 1
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        if get_settings().sql_stats:
            payload["extensions"] = {"sharedExecution": self.executions}
        return sink.handler.view.encode_json(payload)


shared = SharedPayloads()


async def deliver(info: Any, version: Hashable, build: Callable[[], Any]) -> bool:
    """Send ``build()``'s result for the event ``version`` to this subscriber, executed and encoded
    once for every subscriber that shares the key; False when this operation cannot share (the
    caller then yields the value)."""
    sink = _sink.get()
    if sink is None or sink.executor is None or sink.handler.context is not info.context:
        return False
    payload = await shared.payload(sink, version, build)
    if not sink.live():
        return True
    try:
        await sink.handler.websocket.ws.send_text(sink.prefix + payload + "}")
    except (WebSocketDisconnect, RuntimeError, OSError):
        return True  # the connection is closing: its handler ends the operation
    await charge_event(info.context)  # the subscriber's bucket pays for each event (graph/cost.py)
    return True
