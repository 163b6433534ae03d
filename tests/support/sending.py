"""Sending a campaign through the API and checking what went out: the brand's messaging settings
and delivery provider, the customers' addresses, and what the provider fakes received."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import select, update

from conftest import Api, TenantFixture

SETTINGS = """mutation($input: UpdateMessagingSettingsInput!) { updateMessagingSettings(input: $input) {
  messagingSettings { quietHoursStart quietHoursEnd frequencyCapCount frequencyCapHours sendRatePerSecond }
  errors { field code message } } }"""


def cid(campaign: str) -> uuid.UUID:
    import base64

    return uuid.UUID(base64.b64decode(campaign).decode().split(":")[1])


async def mutate(api: Api, t: TenantFixture, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The mutation's payload (the only top-level field)."""
    data = await api.data(query, variables, token=t.owner_token)
    return next(iter(data.values()))


async def settings(api: Api, t: TenantFixture, **values: Any) -> dict[str, Any]:
    body = await mutate(api, t, SETTINGS, {"input": {"brandId": t.brand_gid("a"), **values}})
    assert body["errors"] == [], body
    return body["messagingSettings"]


async def set_customers(t: TenantFixture, ids: list[uuid.UUID], **values: Any) -> None:
    from domain.customers.models import Customer
    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        await s.execute(update(Customer).where(Customer.tenant_id == t.id, Customer.id.in_(ids)).values(**values))


async def emails_of(t: TenantFixture, ids: list[uuid.UUID]) -> list[str]:
    from domain.customers.models import Customer
    from domain.platform.db import tenant_session

    async with tenant_session(t.id) as s:
        return list((await s.scalars(select(Customer.email).where(Customer.tenant_id == t.id,
                                                                  Customer.id.in_(ids)))).all())


async def until(predicate, within: float = 20, what: str = "condition"):  # noqa: ANN001, ANN201
    """Polls an async predicate until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        found = await predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def fake_messages(fake: Any, campaign: str) -> list[Any]:
    prefix = f"c.{cid(campaign).hex}."
    return [m for m in list(fake.messages) if (m.key or "").startswith(prefix)]


SET_PROVIDER = """mutation($input: SetDeliveryProviderInput!) { setDeliveryProvider(input: $input) {
  deliveryProvider { channel provider credentialsSet } errors { field code message } } }"""


async def provider(api: Api, t: TenantFixture, channel: str, name: str, *, credentials: dict[str, Any] | None = None,
                   settings_: dict[str, Any] | None = None) -> None:
    body = await mutate(api, t, SET_PROVIDER, {"input": {"brandId": t.brand_gid("a"), "channel": channel, "provider": name.upper(),
                                                     "credentials": credentials, "settings": settings_}})
    assert body["errors"] == [], body
    assert body["deliveryProvider"]["provider"] == name.upper() and body["deliveryProvider"]["credentialsSet"] == bool(credentials)


def once_each(messages: list[Any], addresses: set[str]) -> None:
    """Every address got exactly one message, and nobody else got one."""
    got = Counter(m.to for m in messages)
    assert got == {a: 1 for a in addresses}, (len(messages), len(addresses),
                                              {a: n for a, n in got.items() if n != 1})

