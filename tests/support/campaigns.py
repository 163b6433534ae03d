"""Shared set-up for the campaign tests: customers with consent in a static segment, a provider,
a campaign created through the API, and waiting for a status."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from conftest import Api, TenantFixture, gid

CREATE = """mutation($input: CreateCampaignInput!) { createCampaign(input: $input) {
  campaign { id name status channel } errors { field code message } } }"""
LAUNCH = """mutation($id: ID!, $key: String!) { launchCampaign(input: {id: $id, idempotencyKey: $key}) {
  campaign { id status launchedAt } errors { field code message } } }"""
STATUS = "query($id: ID!) { campaign(id: $id) { status failureReason stats { sent failed delivered audience excluded progress { queued } } } }"


async def audience(t: TenantFixture, n: int, *, brand: str = "a", prefix: str | None = None, consent: bool = True,
                   channel: str = "email", extra: dict[str, Any] | None = None) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """``n`` customers of ``brand`` (with consent for ``channel`` unless told otherwise) in a new
    static segment, inserted in bulk. Returns (segment id, customer ids)."""
    from sqlalchemy.dialects.postgresql import insert

    from domain.customers.models import Consent, Customer, CustomerBrand
    from domain.platform.db import tenant_session
    from domain.segments.models import Segment, SegmentMembership

    prefix = prefix or uuid.uuid4().hex[:6]
    ids = [uuid.uuid4() for _ in range(n)]
    brand_id = t.brands[brand]
    async with tenant_session(t.id) as s:
        now = await s.scalar(select(func.now()))
        rows = [dict(tenant_id=t.id, id=c, email=f"{prefix}-{i}@example.test", phone=f"+1555{i:07d}",
                     push_token=f"device-{prefix}-{i}", first_name=f"P{i}", **(extra or {})) for i, c in enumerate(ids)]
        for k in range(0, n, 5000):
            await s.execute(insert(Customer).values(rows[k:k + 5000]))
            await s.execute(insert(CustomerBrand).values([dict(tenant_id=t.id, brand_id=brand_id, customer_id=c,
                                                               source="import") for c in ids[k:k + 5000]]))
            if consent:
                await s.execute(insert(Consent).values([dict(tenant_id=t.id, customer_id=c, brand_id=brand_id,
                                                             channel=channel, granted=True, source="test")
                                                        for c in ids[k:k + 5000]]))
        seg = Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=brand_id, name=f"seg {prefix}", kind="static",
                      member_count=n, last_refreshed_at=now)
        s.add(seg)
        await s.flush()
        for k in range(0, n, 5000):
            await s.execute(insert(SegmentMembership).values([dict(tenant_id=t.id, segment_id=seg.id, customer_id=c,
                                                                   entered_at=now) for c in ids[k:k + 5000]]))
    return seg.id, ids


async def use_provider(t: TenantFixture, brand: str, channel: str, provider: str,
                       settings: dict[str, Any] | None = None, credentials: dict[str, Any] | None = None) -> None:
    from domain.delivery import service as delivery
    from domain.delivery.base import Channel

    await delivery.set_provider(t.owner, t.brands[brand], Channel(channel), provider, settings or {}, credentials or {})


async def identity(t: TenantFixture, brand: str = "a") -> None:
    from domain.tenancy import brands

    await brands.update_brand(t.owner, t.brands[brand], {"from_email": f"news@{brand}.example.test",
                                                                 "from_name": f"Brand {brand.upper()}",
                                                                 "sms_sender": "+15550000000"})


async def create(api: Api, t: TenantFixture, segment_id: uuid.UUID, *, channel: str = "EMAIL", brand: str = "a",
                 content: dict[str, Any] | None = None, **extra: Any) -> str:
    content = content or {"EMAIL": {"subject": "Hello {{ customer.first_name }}",
                                    "html": "<p>Hi {{ customer.first_name }}, <a href=\"https://shop.example.test/x\">shop</a></p>",
                                    "text": "Hi {{ customer.first_name }}"},
                          "SMS": {"text": "Hi {{ customer.first_name }} from {{ brand.name }}"},
                          "PUSH": {"title": "Hi {{ customer.first_name }}", "body": "News"}}[channel]
    body = await api.data(CREATE, {"input": {"brandId": t.brand_gid(brand), "name": f"Campaign {uuid.uuid4().hex[:6]}",
                                             "channel": channel, "content": content,
                                             "segmentIds": [gid("Segment", segment_id)], **extra}},
                          token=t.owner_token)
    assert body["createCampaign"]["errors"] == [], body
    return body["createCampaign"]["campaign"]["id"]


async def launch(api: Api, t: TenantFixture, campaign: str, key: str | None = None) -> dict[str, Any]:
    body = await api.data(LAUNCH, {"id": campaign, "key": key or uuid.uuid4().hex}, token=t.owner_token)
    assert body["launchCampaign"]["errors"] == [], body
    return body["launchCampaign"]["campaign"]


async def wait_status(api: Api, t: TenantFixture, campaign: str, statuses: tuple[str, ...] = ("SENT",),
                      within: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        found = (await api.data(STATUS, {"id": campaign}, token=t.owner_token))["campaign"]
        if found["status"] in statuses:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign still {found}")
        await asyncio.sleep(0.1)


async def recipients(t: TenantFixture, campaign: str) -> list[Any]:
    from domain.campaigns.models import Recipient
    from domain.platform.db import tenant_session

    cid = uuid.UUID(__import__("base64").b64decode(campaign).decode().split(":")[1])
    async with tenant_session(t.id) as s:
        return list((await s.scalars(select(Recipient).where(Recipient.tenant_id == t.id,
                                                             Recipient.campaign_id == cid))).all())
