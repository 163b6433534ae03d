"""The rows of the isolation tests, one module per area (``tenancy``, ``customers``,
``segments``, ``campaigns``, ``conversations``): what tenant A holds and every operation of the
area aimed at it. The area's isolation test module runs them; ``tests/tenancy/test_isolation.py``
and ``tests/tenancy/test_tenant_wide_actions.py`` check that together they cover the schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from conftest import Api, TenantFixture


async def principals(t: TenantFixture, *kinds: str) -> dict[str, str]:
    """A token for each kind of principal of ``t``, made in the order given: ``"<role>"`` is a
    member, ``"<role>-key"`` an API key; a ``"-<brand>"`` ending limits either to that brand
    (``"marketer-a"``, ``"admin-key-a"``)."""
    out: dict[str, str] = {}
    for kind in kinds:
        parts = kind.split("-")
        brands = [parts.pop()] if len(parts) > 1 and parts[-1] in t.brands else None
        role, key = parts[0], parts[1:] == ["key"]
        assert parts[1:] in ([], ["key"]), kind
        if key:
            out[kind] = (await t.api_key(role, brands=brands))[1]
        else:
            out[kind] = (await t.member(role, brands=brands))[1]
    return out


Maker = Callable[..., Awaitable[Any]]


def two_tenants(make_world: Maker, make_other: Maker, kinds: tuple[str, ...],
                uses: tuple[str, ...] = ()) -> tuple[Any, Any, Any]:
    """An area's module-scoped fixtures: ``world`` (tenant A, from ``make_world``), ``other``
    (tenant B, from ``make_other``) and ``tokens`` (A's principals of ``kinds``, see
    :func:`principals`). ``uses``: the fixtures both makers are given, in that order.

    ``world, other, tokens = two_tenants(make_world, make_other, ("analyst", "marketer-a"))``
    """

    @pytest.fixture(scope="module", name="world")
    async def world(request: pytest.FixtureRequest) -> Any:
        return await make_world(*(request.getfixturevalue(name) for name in uses))

    @pytest.fixture(scope="module", name="other")
    async def other(request: pytest.FixtureRequest) -> Any:
        return await make_other(*(request.getfixturevalue(name) for name in uses))

    @pytest.fixture(scope="module", name="tokens")
    async def tokens(world: Any) -> dict[str, str]:
        return await principals(world.t, *kinds)

    return world, other, tokens


async def refused_unchanged(api: Api, t: TenantFixture, state: Callable[[TenantFixture], Awaitable[Any]],
                            refused: Callable[[dict[str, Any]], bool], op: Any, variables: dict[str, Any],
                            token: str) -> tuple[dict[str, Any], Any]:
    """``token`` sends an area's mutation ``op`` (its ``doc``, answered under ``op.op``) with
    ``variables``: the payload carries no object (``refused`` holds) and ``t``, read by ``state``,
    stays as it was. Returns the payload and ``t``'s state from before."""
    before = await state(t)
    result = (await api.data(op.doc, variables, token=token))[op.op]
    assert refused(result), result
    assert await state(t) == before
    return result, before


World = TypeVar("World")
Other = TypeVar("Other")


@dataclass(frozen=True)
class Read(Generic[World, Other]):
    """A query, what A's owner gets (``own``), and what another tenant's owner gets (``foreign``):
    the rows of the ``tenancy``, ``customers`` and ``campaigns`` reads, each over its own world
    of tenant A and its own other tenant."""

    name: str
    doc: str
    variables: Callable[[World], dict[str, Any]]
    own: Callable[[dict[str, Any], World], None]
    foreign: Callable[[dict[str, Any], World, Other], None]

    def __str__(self) -> str:
        return self.name
