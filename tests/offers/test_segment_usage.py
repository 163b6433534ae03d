"""Where a segment is used: campaigns that target or exclude it, its automations, segments whose
rules refer to it; the same statements at every page size; nothing of another brand."""

from __future__ import annotations

import uuid

from conftest import Api, TenantFixture
from domain.automations.models import SegmentAutomation
from domain.campaigns.models import Campaign
from domain.platform.db import tenant_session
from domain.segments.models import SegmentKind
from domain.segments.service import create_segment
from support.graphql import warm

USAGE = """query($b: ID, $first: Int) { segments(brandId: $b, first: $first) { edges { node { name
  usage { campaigns { nodeId name } automations { name } segments { name } } } } } }"""


async def _used_segment(t: TenantFixture, tag: str, brand: str = "a") -> uuid.UUID:
    b = t.brands[brand]
    seg = await create_segment(t.owner, b, SegmentKind.STATIC, {"name": f"{tag}-base"})
    await create_segment(t.owner, b, SegmentKind.DYNAMIC, {"name": f"{tag}-refers"}, definition={
        "rules": [{"kind": "segment", "operator": "includes", "value": [str(seg.id)]}]})
    async with tenant_session(t.id) as s:
        s.add(Campaign(id=uuid.uuid4(), tenant_id=t.id, brand_id=b, name=f"{tag}-targets", channel="email",
                       segment_ids=[seg.id]))
        s.add(Campaign(id=uuid.uuid4(), tenant_id=t.id, brand_id=b, name=f"{tag}-excludes", channel="email",
                       exclusion_segment_ids=[seg.id]))
        s.add(SegmentAutomation(id=uuid.uuid4(), tenant_id=t.id, segment_id=seg.id, name=f"{tag}-welcome",
                                trigger="enter", action="add_tag", config={}))
    return seg.id


def _by_name(body: dict) -> dict[str, dict]:
    return {e["node"]["name"]: e["node"]["usage"] for e in body["segments"]["edges"]}


async def test_a_segment_shows_where_it_is_used(api: Api, tenant: TenantFixture) -> None:
    await _used_segment(tenant, "u")
    found = _by_name(await api.data(USAGE, {"b": tenant.brand_gid("a"), "first": 50}, token=tenant.owner_token))
    base = found["u-base"]
    assert sorted(c["name"] for c in base["campaigns"]) == ["u-excludes", "u-targets"]
    assert base["automations"] == [{"name": "u-welcome"}] and base["segments"] == [{"name": "u-refers"}]
    assert found["u-refers"] == {"campaigns": [], "automations": [], "segments": []}


async def test_usage_costs_the_same_statements_at_every_page_size(api: Api, tenant: TenantFixture) -> None:
    for i in range(10):
        await _used_segment(tenant, f"p{i}")
    await warm(api, tenant.owner_token)
    counts = []
    for first in (1, 5, 20):
        body = await api.gql(USAGE, {"b": tenant.brand_gid("a"), "first": first}, token=tenant.owner_token)
        assert not body.get("errors") and len(body["data"]["segments"]["edges"]) == first, body
        counts.append(body["extensions"]["sqlStatements"])
    assert counts[0] == counts[1] == counts[2], counts


async def test_usage_shows_nothing_of_a_brand_the_caller_cannot_use(api: Api, tenant: TenantFixture) -> None:
    await _used_segment(tenant, "hidden", brand="b")
    _, token_a = await tenant.member("marketer", brands=["a"])
    body = await api.gql(USAGE, {"b": tenant.brand_gid("b")}, token=token_a)
    assert "hidden-" not in str(body)
    mine = await api.data(USAGE, {"b": tenant.brand_gid("b")}, token=tenant.owner_token)
    assert _by_name(mine)["hidden-base"]["automations"] == [{"name": "hidden-welcome"}]

