"""No N+1: the SQL statement count of a nested list query does not grow with the list.

The server reports the count of each operation in ``extensions.sqlStatements``
(GRAPHQL_SQL_STATS=1, on in tests)."""

from __future__ import annotations

import uuid

from conftest import Api, TenantFixture, create_tenant_fixture
from domain.audit import service as audit
from domain.platform.db import tenant_session

MEMBERS_QUERY = "{ members { email role brands { name slug } } }"
AUDIT_QUERY = """query($first: Int!) { auditLog(first: $first) { edges { node {
  action brand { name sendingIdentity { fromEmail } } } } } }"""


async def _tenant_with_members(n: int) -> TenantFixture:
    t = await create_tenant_fixture(brands=("a", "b", "c"))
    for i in range(n):
        await t.member("marketer", brands=["a", "b"] if i % 2 else ["c"])
    return t


async def _statements(api: Api, query: str, token: str, variables: dict | None = None) -> tuple[int, dict]:
    body = await api.gql(query, variables, token=token)
    assert not body.get("errors"), body
    return body["extensions"]["sqlStatements"], body["data"]


async def test_members_with_brands_is_flat(api: Api) -> None:
    small, large = await _tenant_with_members(5), await _tenant_with_members(25)
    n_small, data_small = await _statements(api, MEMBERS_QUERY, small.owner_token)
    n_large, data_large = await _statements(api, MEMBERS_QUERY, large.owner_token)
    assert len(data_small["members"]) == 6 and len(data_large["members"]) == 26
    assert all(m["brands"] for m in data_large["members"] if m["role"] == "MARKETER")
    assert n_small >= 4  # the counter sees the loaders' statements: members, grants, brands (and the tenant, once)
    assert n_small == n_large, (n_small, n_large)


async def _tenant_with_audit(n: int) -> TenantFixture:
    t = await create_tenant_fixture(brands=("a", "b"))
    async with tenant_session(t.id) as s:
        for i in range(n):
            audit.record(s, t.owner, "test.event", "Brand", t.brands["a"],
                         brand_id=t.brands["a" if i % 2 else "b"])
    return t


async def test_audit_log_with_brands_is_flat(api: Api) -> None:
    small, large = await _tenant_with_audit(5), await _tenant_with_audit(50)
    n_small, d_small = await _statements(api, AUDIT_QUERY, small.owner_token, {"first": 5})
    n_large, d_large = await _statements(api, AUDIT_QUERY, large.owner_token, {"first": 50})
    assert len(d_small["auditLog"]["edges"]) == 5 and len(d_large["auditLog"]["edges"]) == 50
    assert all(e["node"]["brand"] for e in d_large["auditLog"]["edges"])
    assert n_small >= 3  # entries, then brands through the loader (and the tenant, once)
    assert n_small == n_large, (n_small, n_large)


# --- nested lists: the same statements at page sizes 1, 5 and 20, and on every run -------------

SIZES = (1, 5, 20)
RUNS = 5


async def _flat_and_stable(api: Api, query: str, token: str, check, variables: dict | None = None) -> int:
    """The statement count of ``query`` at each page size ``$n``, ``RUNS`` times each: one number.
    ``check(n, data)`` proves each answer holds what the page size asks for."""
    counts: dict[int, list[int]] = {}
    for n in SIZES:
        for _ in range(RUNS):
            count, data = await _statements(api, query, token, {"n": n, **(variables or {})})
            check(n, data)
            counts.setdefault(n, []).append(count)
    assert len({c for runs in counts.values() for c in runs}) == 1, counts
    return counts[SIZES[0]][0]


async def _tenant_with_campaigns() -> TenantFixture:
    """Brands a, b and c with 24, 21 and 3 campaigns; each campaign targets one to three segments
    and excludes one, and its stats count ``sent`` = its number."""
    from sqlalchemy import update

    from domain.campaigns import service
    from domain.campaigns.models import CampaignStats
    from domain.segments.models import Segment

    t = await create_tenant_fixture(brands=("a", "b", "c"))
    async with tenant_session(t.id) as s:
        segments = {b: [Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=t.brands[b], name=f"seg {b}{i}",
                                kind="static") for i in range(4)] for b in t.brands}
        s.add_all([x for group in segments.values() for x in group])
    for b, n in (("a", 24), ("b", 21), ("c", 3)):
        group = [x.id for x in segments[b]]
        for i in range(n):
            c = await service.create_campaign(t.owner, t.brands[b], {
                "name": f"{b}{i}", "channel": "email", "segment_ids": group[: 1 + i % 3],
                "exclusion_segment_ids": group[3:]})
            async with tenant_session(t.id) as s:
                await s.execute(update(CampaignStats).where(CampaignStats.tenant_id == t.id,
                                                            CampaignStats.campaign_id == c.id).values(sent=i))
    return t


BRANDS_CAMPAIGNS = """query($n: Int!) { brands { slug campaigns(first: $n) { edges { node {
  name stats { sent } segments { name } exclusionSegments { name } } } } } }"""
ROOT_CAMPAIGNS = """query($n: Int!) { campaigns(first: $n) { edges { node {
  name stats { sent } segments { name } ...more } } } }
fragment more on Campaign { exclusionSegments { name } }"""


async def test_brands_with_campaigns_stats_and_segments_is_flat_and_stable(api: Api) -> None:
    t = await _tenant_with_campaigns()
    held = {"brand-a": 24, "brand-b": 21, "brand-c": 3}

    def check(n: int, data: dict) -> None:
        assert {b["slug"] for b in data["brands"]} == set(held)
        for brand in data["brands"]:
            nodes = [e["node"] for e in brand["campaigns"]["edges"]]
            assert len(nodes) == min(n, held[brand["slug"]]), (n, brand["slug"], len(nodes))
            for node in nodes:
                i = int(node["name"][1:])
                assert node["stats"]["sent"] == i
                assert len(node["segments"]) == 1 + i % 3 and len(node["exclusionSegments"]) == 1

    count = _flat_and_stable
    n = await count(api, BRANDS_CAMPAIGNS, t.owner_token, check)
    assert n >= 4  # brands, then one each: campaigns of every brand, stats, segments

    def check_root(n: int, data: dict) -> None:
        nodes = [e["node"] for e in data["campaigns"]["edges"]]
        assert len(nodes) == n and all(x["segments"] and x["exclusionSegments"] for x in nodes)

    assert await count(api, ROOT_CAMPAIGNS, t.owner_token, check_root) >= 3
