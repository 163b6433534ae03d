"""Live ``auditEvents`` over graphql-transport-ws: a client that reads them, and brand renames
that produce them."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from conftest import Api, TenantFixture
from support.ws import Client

AUDIT_EVENTS = (
    "subscription { auditEvents { action targetType principalLabel summary brand { slug } } }"
)
RENAME = (
    "mutation($input: UpdateBrandInput!) { updateBrand(input: $input) { brand { name } errors { message } } }"
)
_markers = itertools.count(1)


class AuditClient(Client):
    """A :class:`Client` that subscribes to :data:`AUDIT_EVENTS` unless told otherwise."""

    async def subscribe(self, query: str = AUDIT_EVENTS, variables: dict[str, Any] | None = None) -> str:
        return await super().subscribe(query, variables)

    def events(self, op_id: str) -> list[dict[str, Any]]:
        """The audit events of the operation; none of its ``next`` messages may carry errors."""
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


def renamer(api: Api, tenant: TenantFixture, brand: str = "a") -> Callable[[str], Awaitable[None]]:
    async def rename(name: str) -> None:
        data = await api.data(RENAME, {"input": {"id": tenant.brand_gid(brand), "name": name}},
                              token=tenant.owner_token)
        assert data["updateBrand"]["errors"] == [], data

    return rename


async def until_live(subs: list[tuple[AuditClient, str]], rename: Callable[[str], Awaitable[None]],
                     within: float = 10) -> None:
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
