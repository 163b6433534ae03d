"""No N+1: the SQL statement count of a nested list query does not grow with the list.

The server reports the count of each operation in ``extensions.sqlStatements``
(GRAPHQL_SQL_STATS=1, on in tests)."""

from __future__ import annotations

import uuid

from conftest import Api, TenantFixture, create_tenant_fixture, gid
from domain.audit import service as audit
from domain.platform.db import tenant_session
from support.graphql import warm

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


async def _flat_and_stable(api: Api, query: str, token: str, check, variables=None) -> int:
    """The statement count of ``query`` at each page size ``$n``, ``RUNS`` times each: one number.
    ``check(n, data)`` proves each answer holds what the page size asks for; ``variables(n)``
    gives the other variables. The credential is answered from the authentication cache first
    (``warm``): the count covers authentication too, and must not vary with it."""
    await warm(api, token)
    counts: dict[int, list[int]] = {}
    for n in SIZES:
        for _ in range(RUNS):
            count, data = await _statements(api, query, token, {"n": n, **(variables(n) if variables else {})})
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


async def service_create(t: TenantFixture, brand: str, n: int) -> None:
    from domain.campaigns import service
    from domain.segments.models import Segment

    async with tenant_session(t.id) as s:
        seg = Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=t.brands[brand], name="seg", kind="static")
        s.add(seg)
    for i in range(n):
        await service.create_campaign(t.owner, t.brands[brand], {"name": f"{brand}{i}", "channel": "email",
                                                                 "segment_ids": [seg.id],
                                                                 "exclusion_segment_ids": [seg.id]})


BRANDS_CAMPAIGNS = """query($n: Int!) { brands { slug campaigns(first: $n) { totalCount edges { node {
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
            assert brand["campaigns"]["totalCount"] == held[brand["slug"]]
            nodes = [e["node"] for e in brand["campaigns"]["edges"]]
            assert len(nodes) == min(n, held[brand["slug"]]), (n, brand["slug"], len(nodes))
            for node in nodes:
                i = int(node["name"][1:])
                assert node["stats"]["sent"] == i
                assert len(node["segments"]) == 1 + i % 3 and len(node["exclusionSegments"]) == 1

    count = _flat_and_stable
    n = await count(api, BRANDS_CAMPAIGNS, t.owner_token, check)
    assert n >= 4  # brands, then one each: campaigns of every brand, stats, segments
    one = await create_tenant_fixture(brands=("a",))  # one brand instead of three: the same statements
    await service_create(one, "a", 2)
    await warm(api, one.owner_token)
    assert (await _statements(api, BRANDS_CAMPAIGNS, one.owner_token, {"n": 20}))[0] == n

    def check_root(n: int, data: dict) -> None:
        nodes = [e["node"] for e in data["campaigns"]["edges"]]
        assert len(nodes) == n and all(x["segments"] and x["exclusionSegments"] for x in nodes)

    assert await count(api, ROOT_CAMPAIGNS, t.owner_token, check_root) >= 3


CONVERSATION_MESSAGES = """query($b: ID!, $n: Int!) { conversations(brandId: $b, first: $n) { edges { node {
  subject messages(first: $n) { edges { node { body } } } } } } }"""


async def test_conversations_with_messages_is_flat_and_stable(api: Api) -> None:
    from datetime import UTC, datetime

    from domain.conversations import inbound
    from domain.conversations.models import Message
    from domain.delivery.inbound import InboundMessage

    t = await create_tenant_fixture(brands=("a",))
    held: dict[str, int] = {}
    for i in range(22):
        m = InboundMessage(channel="email", provider="brevo", provider_message_id=uuid.uuid4().hex,
                           from_address=f"p{i}-{uuid.uuid4().hex[:4]}@cust.example", to_address=None,
                           received_at=datetime.now(UTC), from_name=f"Person {i}", subject=f"S{i}", text=f"body {i}",
                           message_id=f"<{uuid.uuid4().hex}@cust.example>")
        conv, _, _ = await inbound.store(t.id, t.brands["a"], m)
        extra = 21 if i % 4 == 0 else 1  # every fourth thread holds more than a page
        async with tenant_session(t.id) as s:
            s.add_all([Message(tenant_id=t.id, id=uuid.uuid4(), conversation_id=conv.id, direction="outbound",
                               kind="message", author_type="user", body_text=f"reply {k}") for k in range(extra)])
        held[f"S{i}"] = 1 + extra

    def check(n: int, data: dict) -> None:
        nodes = [e["node"] for e in data["conversations"]["edges"]]
        assert len(nodes) == n
        assert [len(x["messages"]["edges"]) for x in nodes] == [min(n, held[x["subject"]]) for x in nodes]

    assert await _flat_and_stable(api, CONVERSATION_MESSAGES, t.owner_token, check,
                                  lambda n: {"b": t.brand_gid("a")}) >= 3  # conversations, then their messages


SEGMENT_MEMBERS = """query($n: Int!) { segments(first: $n) { edges { node { name
  members(first: $n) { edges { node { enteredAt customer { email } } } }
  history(first: $n) { edges { node { change customer { email } } } } } } } }"""


async def test_segments_with_members_and_history_is_flat_and_stable(api: Api) -> None:
    from sqlalchemy import func, select, update

    from domain.segments.models import SegmentMembership
    from support.campaigns import audience

    t = await create_tenant_fixture(brands=("a",))
    held: dict[str, tuple[int, int]] = {}  # name: (members, history events)
    for i in range(22):  # the newest ones, first in the list, hold more than a page
        big = i % 3 == 0 or i >= 19
        seg, ids = await audience(t, 23 if big else 2, prefix=f"s{i}")
        if big:  # two left again: 21 members, 23 entries and 2 exits
            async with tenant_session(t.id) as s:
                await s.execute(update(SegmentMembership).where(
                    SegmentMembership.tenant_id == t.id, SegmentMembership.segment_id == seg,
                    SegmentMembership.customer_id.in_(ids[:2])).values(exited_at=func.now()))
                assert await s.scalar(select(func.count()).where(SegmentMembership.segment_id == seg,
                                                                 SegmentMembership.exited_at.is_(None))) == 21
        held[f"seg s{i}"] = (21, 25) if big else (2, 2)

    def check(n: int, data: dict) -> None:
        nodes = [e["node"] for e in data["segments"]["edges"]]
        assert len(nodes) == n
        for x in nodes:
            members, events = held[x["name"]]
            assert len(x["members"]["edges"]) == min(n, members)
            assert len(x["history"]["edges"]) == min(n, events)
            assert all(e["node"]["customer"]["email"] for e in x["members"]["edges"] + x["history"]["edges"])

    assert await _flat_and_stable(api, SEGMENT_MEMBERS, t.owner_token, check) >= 4


AUTOMATIONS = """query($s: ID!, $n: Int!) { segmentAutomations(segmentId: $s) { name
  runs(first: $n) { edges { node { status customers } } } executions(first: $n) { edges { node { status customer { email } } } } } }"""


async def test_automations_with_runs_and_executions_is_flat_and_stable(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from domain.automations.models import AutomationExecution, AutomationRun, SegmentAutomation
    from support.campaigns import audience

    t = await create_tenant_fixture(brands=("a",))
    segments: dict[int, str] = {}
    for size in SIZES:  # a segment with as many automations as the page size, each with 21 runs
        seg, ids = await audience(t, 2, prefix=f"a{size}")
        segments[size] = gid("Segment", seg)
        async with tenant_session(t.id) as s:
            for k in range(size):
                a = SegmentAutomation(id=uuid.uuid4(), tenant_id=t.id, segment_id=seg, name=f"auto {k}",
                                      trigger="enter", action="webhook", config={"url": "https://hooks.example.test"})
                s.add(a)
                await s.flush()
                for r in range(21):
                    run = AutomationRun(id=uuid.uuid4(), tenant_id=t.id, automation_id=a.id, status="succeeded",
                                        started_at=datetime.now(UTC) - timedelta(minutes=r), customers=2, succeeded=2)
                    s.add(run)
                    await s.flush()
                    s.add_all([AutomationExecution(tenant_id=t.id, automation_id=a.id, customer_id=c,
                                                   occurrence=f"o{r}", run_id=run.id, status="succeeded", attempts=1)
                               for c in ids])

    def check(n: int, data: dict) -> None:
        autos = data["segmentAutomations"]
        assert len(autos) == n
        assert all(len(a["runs"]["edges"]) == n and len(a["executions"]["edges"]) == n for a in autos)
        assert all(e["node"]["customer"]["email"] for a in autos for e in a["executions"]["edges"])

    assert await _flat_and_stable(api, AUTOMATIONS, t.owner_token, check,
                                  lambda n: {"s": segments[n]}) >= 4


CUSTOMERS = """query($n: Int!) { customers(first: $n) { edges { node { id email name
  tags { name } profile { totalOrderValueCents } consents { granted } brands { source } notes { totalCount edges { node { body } } }
  lastOrder { totalCents } orders(first: $n) { edges { node { totalCents items { sku } } } } } } } }"""


async def test_customer_list_is_flat_and_stable(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from domain.commerce.service import OrderInput, OrderLine, record_order
    from domain.customers.consent import Channel, set_consent
    from domain.customers.notes import add_note
    from domain.customers.service import upsert_customer
    from domain.customers.tags import create_tag, tag_customers
    from domain.profiles.service import refresh

    t = await create_tenant_fixture(brands=("a",))
    vip = await create_tag(t.owner, {"name": "VIP"})
    ids = []
    for i in range(22):
        c, _ = await upsert_customer(t.owner, {"email": f"c{i}@shop.test", "first_name": f"C{i}"}, brand_id=t.brands["a"])
        ids.append(c.id)
        for k in range(2):
            await record_order(t.owner, OrderInput(
                brand_id=t.brands["a"], external_order_id=f"o{i}-{k}", total_cents=1000 + i, currency="EUR",
                placed_at=datetime.now(UTC) - timedelta(days=i + k), customer_id=c.id,
                items=[OrderLine(sku=f"sku-{k}", name="Thing", quantity=1, unit_price_cents=1000 + i)]))
        await set_consent(t.owner, c.id, t.brands["a"], Channel.EMAIL, True)
        await add_note(t.owner, c.id, f"note {i}")
    await tag_customers(t.owner, ids, [vip.id])
    async with tenant_session(t.id) as s:
        await refresh(s, t.id, ids)

    def check(n: int, data: dict) -> None:
        nodes = [e["node"] for e in data["customers"]["edges"]]
        assert len(nodes) == n
        for x in nodes:
            assert x["tags"] == [{"name": "VIP"}] and x["profile"]["totalOrderValueCents"] > 0
            assert x["consents"] and x["brands"] and x["notes"]["totalCount"] == len(x["notes"]["edges"]) == 1 and x["lastOrder"]["totalCents"]
            assert len(x["orders"]["edges"]) == min(n, 2) and all(e["node"]["items"] for e in x["orders"]["edges"])

    assert await _flat_and_stable(api, CUSTOMERS, t.owner_token, check) >= 9
