"""Every connection pages both ways with the same edge and pageInfo shape: walking backward with
``last``/``before`` gives the same items as walking forward with ``first``/``after``, each page's
``pageInfo`` knows both its ends, and ``totalCount`` (where a connection has it) counts the whole
list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from conftest import Api, TenantFixture, create_tenant_fixture, gid

HELD = 7  # items of every list below
PAGE = 3  # pages of 3, 3 and 1

ARGS = "first: $first, after: $after, last: $last, before: $before"
VARS = "$first: Int, $after: String, $last: Int, $before: String"
SELECTION = "edges { cursor } pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"


@dataclass
class World:
    t: TenantFixture
    customer: str
    segment: str
    conversation: str
    automation: str


@dataclass
class Listed:
    name: str
    doc: str  # with $first $after $last $before, and $id for a nested list
    path: tuple[str, ...]  # from data to the connection
    counted: bool  # has totalCount


ROOT = [("customers", "customers(brandId: $b, {args})", False), ("products", "products({args})", True),
        ("orders", "orders({args})", False), ("segments", "segments({args})", True),
        ("campaigns", "campaigns({args})", True), ("conversations", "conversations(brandId: $b, {args})", True),
        ("suppressions", "suppressions(brandId: $b, {args})", True),
        ("previewSegment", "previewSegment(brandId: $b, definition: {{}}, {args})", True)]
NESTED = [("Customer", "notes", True), ("Customer", "orders", False), ("Customer", "timeline", False),
          ("Segment", "members", True), ("Conversation", "messages", False), ("SegmentAutomation", "runs", False)]


def _lists() -> list[Listed]:
    out = [Listed(name, f"query({VARS}{', $b: ID' if '$b' in field else ''}) {{ {field.format(args=ARGS)} {{ "
                        f"{'totalCount ' if counted else ''}{SELECTION} }} }}", (name,), counted)
           for name, field, counted in ROOT]
    for type_name, field, counted in NESTED:
        sel = f"{'totalCount ' if counted else ''}{SELECTION}"
        out.append(Listed(f"{type_name}.{field}", f"query({VARS}, $id: ID!) {{ node(id: $id) {{ ... on {type_name} "
                                                  f"{{ {field}({ARGS}) {{ {sel} }} }} }} }}", ("node", field), counted))
    return out


LISTS = _lists()
OWNER = {"Customer": "customer", "Segment": "segment", "Conversation": "conversation",
         "SegmentAutomation": "automation"}


@pytest.fixture(scope="module")
async def world() -> World:
    from domain.automations import service as automations
    from domain.automations.models import AutomationRun
    from domain.campaigns import service as campaigns
    from domain.commerce import service as commerce
    from domain.conversations import inbound
    from domain.conversations.models import Message
    from domain.customers import notes
    from domain.customers.service import upsert_customer
    from domain.delivery.inbound import InboundMessage
    from domain.delivery.models import Suppression
    from domain.platform.db import tenant_session
    from domain.segments import membership
    from domain.segments.models import Segment

    t = await create_tenant_fixture(brands=("a",))
    a, now = t.brands["a"], datetime.now(UTC)
    people = [(await upsert_customer(t.owner, {"email": f"p{i}@shop.test"}, brand_id=a))[0] for i in range(HELD)]
    first = people[0]
    for i in range(HELD):
        await notes.add_note(t.owner, first.id, f"note {i}")
        await commerce.upsert_product(t.owner, f"sku-{i}", f"Thing {i}", brand_id=a)
        await commerce.record_order(t.owner, commerce.OrderInput(
            brand_id=a, external_order_id=f"o{i}", total_cents=100 + i, currency="EUR",
            placed_at=now - timedelta(days=i), customer_id=first.id,
            items=[commerce.OrderLine(sku=f"sku-{i}", quantity=1, unit_price_cents=100 + i)]))
    async with tenant_session(t.id) as s:
        segments = [Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=a, name=f"seg {i}", kind="static")
                    for i in range(HELD)]
        s.add_all(segments)
        s.add_all([Suppression(tenant_id=t.id, brand_id=a, channel="email", address=f"gone{i}@shop.test",
                               reason="bounced", created_at=now - timedelta(minutes=i)) for i in range(HELD)])
    await membership.change_static_members(t.owner, segments[0].id, [p.id for p in people], [])
    for i in range(HELD):
        await campaigns.create_campaign(t.owner, a, {"name": f"c{i}", "channel": "email",
                                                     "segment_ids": [segments[0].id]})
    automation = await automations.create_automation(t.owner, segments[0].id, "hook", "enter", "webhook",
                                                     {"url": "https://hooks.example.com/x"})
    conv, _, _ = await inbound.store(t.id, a, InboundMessage(
        channel="email", provider="brevo", provider_message_id=uuid.uuid4().hex, from_address=first.email,
        to_address=None, received_at=now, subject="Hello", text="hi", message_id=f"<{uuid.uuid4().hex}@x>"))
    async with tenant_session(t.id) as s:
        s.add_all([Message(tenant_id=t.id, id=uuid.uuid4(), conversation_id=conv.id, direction="outbound",
                           kind="message", author_type="user", body_text=f"reply {i}") for i in range(HELD - 1)])
        s.add_all([AutomationRun(id=uuid.uuid4(), tenant_id=t.id, automation_id=automation.id, status="succeeded",
                                 started_at=now - timedelta(hours=i)) for i in range(HELD)])
    # conversations: seven threads
    for i in range(HELD - 1):
        await inbound.store(t.id, a, InboundMessage(
            channel="email", provider="brevo", provider_message_id=uuid.uuid4().hex,
            from_address=people[i + 1].email, to_address=None, received_at=now, subject=f"S{i}", text="hi",
            message_id=f"<{uuid.uuid4().hex}@x>"))
    return World(t, gid("Customer", first.id), gid("Segment", segments[0].id), gid("Conversation", conv.id),
                 gid("SegmentAutomation", automation.id))


async def _page(api: Api, w: World, listed: Listed, **args) -> dict:
    variables = {"first": None, "after": None, "last": None, "before": None, "b": w.t.brand_gid("a"), **args}
    if listed.path[0] == "node":
        variables["id"] = getattr(w, OWNER[listed.name.split(".")[0]])
    if "$b:" not in listed.doc:
        del variables["b"]
    data = await api.data(listed.doc, variables, token=w.t.owner_token)
    for step in listed.path:
        data = data[step]
    return data


def _cursors(conn: dict) -> list[str]:
    return [e["cursor"] for e in conn["edges"]]


@pytest.mark.parametrize("listed", LISTS, ids=[x.name for x in LISTS])
async def test_backward_pages_are_the_forward_pages_reversed(api: Api, world: World, listed: Listed) -> None:
    forward, pages, after = [], [], None
    while True:
        conn = await _page(api, world, listed, first=PAGE, after=after)
        pages.append(conn["pageInfo"])
        forward += _cursors(conn)
        if not conn["pageInfo"]["hasNextPage"]:
            assert not listed.counted or conn["totalCount"] == len(forward)
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(forward) >= HELD and len(set(forward)) == len(forward), (listed.name, forward)
    assert not pages[0]["hasPreviousPage"] and all(p["hasPreviousPage"] for p in pages[1:])
    assert all(p["hasNextPage"] for p in pages[:-1]) and not pages[-1]["hasNextPage"]

    backward, before, ends = [], None, []
    while True:
        conn = await _page(api, world, listed, last=PAGE, before=before)
        ends.append(conn["pageInfo"])
        assert conn["pageInfo"]["startCursor"] == (_cursors(conn) or [None])[0]
        assert conn["pageInfo"]["endCursor"] == (_cursors(conn) or [None])[-1]
        backward = _cursors(conn) + backward
        if not conn["pageInfo"]["hasPreviousPage"]:
            break
        before = conn["pageInfo"]["startCursor"]
    assert backward == forward, listed.name
    assert not ends[0]["hasNextPage"] and all(p["hasNextPage"] for p in ends[1:])
    assert all(p["hasPreviousPage"] for p in ends[:-1]) and not ends[-1]["hasPreviousPage"]
    assert len(_cursors(await _page(api, world, listed, last=PAGE))) == PAGE


@pytest.mark.parametrize("listed", [x for x in LISTS if x.counted], ids=[x.name for x in LISTS if x.counted])
async def test_total_count_counts_the_whole_list(api: Api, world: World, listed: Listed) -> None:
    every = _cursors(await _page(api, world, listed, first=100))
    for args in ({"first": 1}, {"last": 2}, {"first": 100}):
        assert (await _page(api, world, listed, **args))["totalCount"] == len(every) >= HELD, (listed.name, args)


async def test_a_window_between_two_cursors(api: Api, world: World) -> None:
    listed = next(x for x in LISTS if x.name == "Customer.notes")
    every = _cursors(await _page(api, world, listed, first=HELD))
    inside = await _page(api, world, listed, after=every[0], before=every[5], last=2)
    assert _cursors(inside) == every[3:5]
    assert inside["pageInfo"]["hasPreviousPage"] and inside["pageInfo"]["hasNextPage"]
    inside = await _page(api, world, listed, after=every[0], before=every[5], first=10)
    assert _cursors(inside) == every[1:5]


async def test_last_alone_pages_backward_under_a_list(api: Api, world: World) -> None:
    """``first`` has a default; ``last`` without ``first`` pages backward, nested too (a customer's
    notes loaded with the page of customers)."""
    doc = """{ customers(first: 1, orderBy: CREATED_AT_ASC) { edges { node { notes(last: 2) { edges { cursor }
      pageInfo { hasNextPage hasPreviousPage } } } } } }"""
    [edge] = (await api.data(doc, token=world.t.owner_token))["customers"]["edges"]
    listed = next(x for x in LISTS if x.name == "Customer.notes")
    every = _cursors(await _page(api, world, listed, first=HELD))
    assert _cursors(edge["node"]["notes"]) == every[-2:]
    assert edge["node"]["notes"]["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}


async def test_first_and_last_together_and_a_foreign_cursor_are_refused(api: Api, world: World) -> None:
    listed = next(x for x in LISTS if x.name == "segments")
    body = await api.gql(listed.doc, {"first": 2, "last": 2}, token=world.t.owner_token)
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [("INVALID", "last")]
    body = await api.gql(listed.doc, {"last": 2, "before": "bm90IGEgY3Vyc29y"}, token=world.t.owner_token)
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [("INVALID", "before")]
