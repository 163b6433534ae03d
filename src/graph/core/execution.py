"""How operations execute: Strawberry's executor, with two changes.

* **The event loop is shared fairly.** graphql-core completes a result synchronously as long as
  the values are at hand, and a dataloader's batch wakes thousands of waiting fields at once, so
  one large result (tens of thousands of objects) would hold the loop until it is built while
  every other request, websocket and ``/healthz`` waits. Here result building runs in slices of
  ``SLICE`` seconds: once a slice is used up, the lists still to complete and the late values
  (a resolver's awaited result) still to complete wait their turn at a per-operation gate, and
  each turn that finds the slice used up passes through the loop first (``asyncio.sleep(0)``).
  Waiting at the gate keeps them out of the loop's queue, so an operation has one slice in the
  queue at a time and a few large operations cannot crowd out a small one. It costs nothing
  until a slice is used up; a large result takes about 10 to 30 % longer to build
  (``bench/event_loop_bench.py``).
* **Live events shared by several subscribers** execute with the executor of the subscriber
  that delivers them first (:func:`graph.core.fanout.adopt`).
* **No "Did you mean ...?" hints** in variable errors when introspection is off: they would
  reveal the schema (:class:`ExecutionWithoutSuggestions`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.core import fanout

SLICE = 0.02  # seconds of result building between passes through the event loop


class Execution(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slice_started = time.perf_counter()
        self.gate = asyncio.Lock()
        fanout.adopt(self)

    def slice_used_up(self) -> bool:
        return time.perf_counter() - self.slice_started >= SLICE

    async def take_turn(self) -> None:
        """Called holding the gate: a pass through the loop if this slice is used up."""
        if self.slice_used_up():
            await asyncio.sleep(0)
            self.slice_started = time.perf_counter()

    def complete_list_value(self, return_type, field_details_list, info, path, result, position_context):
        complete = super().complete_list_value
        if not self.slice_used_up():
            return complete(return_type, field_details_list, info, path, result, position_context)

        async def in_turn() -> Any:
            async with self.gate:
                await self.take_turn()
                value = complete(return_type, field_details_list, info, path, result, position_context)
            # deferred lists inside take the gate themselves: awaited outside it
            return await value if self.is_awaitable(value) else value

        return in_turn()

    async def complete_awaitable_value(self, return_type, field_details_list, info, path, result, position_context):
        async def then_in_turn() -> Any:
            value = await result
            if self.slice_used_up():
                async with self.gate:
                    await self.take_turn()
            return value

        return await super().complete_awaitable_value(return_type, field_details_list, info, path, then_in_turn(),
                                                      position_context)


class ExecutionWithoutSuggestions(Execution):
    """Input errors (a variable's unknown field or enum value) without "Did you mean ...?" hints:
    used when introspection is off, as the hints would reveal the schema."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)
