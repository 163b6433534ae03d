"""A large result is built in slices: the event loop runs other work while it is being built.

The executor (``graph.core.execution.Execution``) is exercised on a small schema whose result
has tens of thousands of objects, once from plain lists and once from a dataloader that wakes
every waiting field at once. A ticker task counts the loop's passes while the operation runs:
with Strawberry's own executor there are none (the control), with ours there are several, and
the result is the same. Its cost and the latency others see are measured in
``bench/event_loop_bench.py``, not here.
"""

from __future__ import annotations

import asyncio

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graph.core.execution import Execution

N = 300  # parents; each with N children: 90,000 objects


@strawberry.type
class Child:
    a: int
    b: str
    c: bool


@strawberry.type
class Parent:
    id: int

    @strawberry.field
    def children(self) -> list[Child]:
        return [Child(a=i, b=str(i), c=i % 2 == 0) for i in range(N)]

    @strawberry.field
    async def loaded(self, info: strawberry.Info) -> list[Child]:
        return await info.context["loader"].load(self.id)


@strawberry.type
class Query:
    @strawberry.field
    def parents(self) -> list[Parent]:
        return [Parent(id=i) for i in range(N)]


async def run(executor: type, query: str) -> tuple[dict, int]:
    """The result, and how many times the loop ran something else while it was built."""
    schema = strawberry.Schema(query=Query, execution_context_class=executor)

    async def load(keys: list[int]) -> list[list[Child]]:
        return [[Child(a=k, b=str(i), c=True) for i in range(N)] for k in keys]

    passes = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal passes
        while not done.is_set():
            await asyncio.sleep(0)
            passes += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = passes
    result = await schema.execute(query, context_value={"loader": DataLoader(load_fn=load)})
    during = passes - start
    done.set()
    await ticking
    assert result.errors is None, result.errors
    return result.data, during


async def test_plain_lists_are_built_in_slices() -> None:
    query = "{ parents { id children { a b c } } }"
    plain, plain_passes = await run(StrawberryGraphQLCoreExecutionContext, query)
    sliced, sliced_passes = await run(Execution, query)
    assert plain_passes == 0  # control: built in one go, nothing else ran
    assert sliced_passes >= 3, sliced_passes
    assert sliced == plain and len(sliced["parents"]) == N


async def test_values_a_dataloader_wakes_at_once_are_built_in_slices() -> None:
    query = "{ parents { id loaded { a b c } } }"
    plain, plain_passes = await run(StrawberryGraphQLCoreExecutionContext, query)
    sliced, sliced_passes = await run(Execution, query)
    assert sliced == plain and len(sliced["parents"][0]["loaded"]) == N
    assert sliced_passes > 2 * plain_passes + 3, (plain_passes, sliced_passes)
