"""Every object with an id is a Node: node(id) and nodes(ids) resolve each type under the
caller's scope (another tenant's or another brand's object reads as null), nodes(ids) looks each
type up once, and mutation payloads speak global ids."""

from __future__ import annotations

import base64
import uuid

import pytest

from conftest import Api, TenantFixture, create_tenant_fixture
from support.graphql import warm
from support.nodes import TENANT_WIDE, make_nodes

NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
NODE_TYPES = '{ __type(name: "Node") { possibleTypes { name } } }'
# the owner is assigned conversations in both brands: their assignee node is seen through either
SHARED = TENANT_WIDE | {"ConversationAssignee"}
# Node types support/nodes.py does not make an object of yet (a copilot run needs the copilot
# feature and a provider): take one off when it does
NOT_MADE_YET = {"CopilotRun"}


@pytest.fixture(scope="module")
async def world() -> tuple[TenantFixture, dict[str, str], dict[str, str]]:
    t = await create_tenant_fixture()
    return t, await make_nodes(t, "a"), await make_nodes(t, "b")


def _type_of(global_id: str) -> str:
    return base64.b64decode(global_id).decode().split(":", 1)[0]


async def test_every_node_type_resolves_through_node(api: Api, world) -> None:
    t, a, _ = world
    types = {x["name"] for x in (await api.data(NODE_TYPES, token=t.owner_token))["__type"]["possibleTypes"]}
    assert types - NOT_MADE_YET == set(a), types ^ set(a)  # a new Node type needs an object in support/nodes.py
    for name, global_id in sorted(a.items()):
        found = (await api.data(NODE, {"id": global_id}, token=t.owner_token))["node"]
        assert found == {"__typename": name, "id": global_id}, (name, found)


async def test_nodes_resolves_many_in_order_with_null_for_unknown(api: Api, world) -> None:
    t, a, b = world
    unknown = base64.b64encode(f"Customer:{uuid.uuid4()}".encode()).decode()
    no_type = base64.b64encode(b"NoSuchType:1").decode()
    ids = [*a.values(), unknown, no_type, *b.values()]
    got = (await api.data(NODES, {"ids": ids}, token=t.owner_token))["nodes"]
    assert [n["id"] if n else None for n in got] == [*a.values(), None, None, *b.values()]
    assert [n["__typename"] for n in got if n] == [_type_of(i) for i in [*a.values(), *b.values()]]


async def test_nodes_looks_each_type_up_once(api: Api, world) -> None:
    t, a, b = world
    await warm(api, t.owner_token)
    one = await api.gql(NODES, {"ids": list(a.values())}, token=t.owner_token)
    two = await api.gql(NODES, {"ids": [*a.values(), *b.values()]}, token=t.owner_token)
    assert all(one["data"]["nodes"]) and all(two["data"]["nodes"])
    assert one["extensions"]["sqlStatements"] == two["extensions"]["sqlStatements"]


async def test_nodes_refuses_more_than_a_hundred_ids(api: Api, world) -> None:
    t, a, _ = world
    body = await api.gql(NODES, {"ids": [a["Customer"]] * 101}, token=t.owner_token)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


async def test_another_tenants_nodes_are_null(api: Api, world, other_tenant: TenantFixture) -> None:
    _, a, _ = world
    for name, global_id in a.items():
        body = await api.gql(NODE, {"id": global_id}, token=other_tenant.owner_token)
        assert body["data"]["node"] is None, (name, body)
    got = await api.data(NODES, {"ids": list(a.values())}, token=other_tenant.owner_token)
    assert got["nodes"] == [None] * len(a)


async def test_a_brand_limited_principal_sees_no_node_of_another_brand(api: Api, world) -> None:
    t, a, b = world
    _, token = await t.api_key("admin", brands=["a"])
    own = [i for n, i in a.items() if n not in SHARED]
    foreign = [i for n, i in b.items() if n not in SHARED]
    got = (await api.data(NODES, {"ids": own + foreign}, token=token))["nodes"]
    assert [n["id"] if n else None for n in got] == own + [None] * len(foreign)
    for global_id in foreign:
        assert (await api.data(NODE, {"id": global_id}, token=token))["node"] is None, _type_of(global_id)


REPLY = """mutation($c: ID!, $k: String!) { replyToConversation(input: {conversationId: $c, body: "Thanks",
  idempotencyKey: $k}) { errors { code } message { id } conversation { id } } }"""
TRACK = """mutation($b: ID!, $c: ID!, $e: String!) { trackEvent(input: {eventId: $e, name: "clicked", brandId: $b,
  customerId: $c}) { errors { code } event { id } } }"""


async def test_mutation_payloads_return_global_ids(api: Api, world) -> None:
    t, a, _ = world
    replied = (await api.data(REPLY, {"c": a["Conversation"], "k": uuid.uuid4().hex},
                              token=t.owner_token))["replyToConversation"]
    assert replied["errors"] == []
    assert _type_of(replied["message"]["id"]) == "ConversationMessage"
    assert replied["conversation"]["id"] == a["Conversation"]
    tracked = (await api.data(TRACK, {"b": t.brand_gid("a"), "c": a["Customer"], "e": uuid.uuid4().hex},
                              token=t.owner_token))["trackEvent"]
    assert tracked["errors"] == [] and _type_of(tracked["event"]["id"]) == "TrackedEvent"
    for global_id in (replied["message"]["id"], tracked["event"]["id"]):
        assert (await api.data(NODE, {"id": global_id}, token=t.owner_token))["node"]["id"] == global_id


TIMELINE_REFS = """query($id: ID!) { node(id: $id) { ... on Customer { timeline(first: 50) { edges { node {
  id ... on OrderPlacedEvent { orderId } ... on NoteAddedEvent { noteId } ... on TagAddedEvent { tagId } } } } } } }"""


async def test_timeline_events_refer_to_objects_by_global_id(api: Api, world) -> None:
    t, a, _ = world
    edges = (await api.data(TIMELINE_REFS, {"id": a["Customer"]}, token=t.owner_token))["node"]["timeline"]["edges"]
    refs = {k: v for e in edges for k, v in e["node"].items() if k != "id"}
    assert refs == {"orderId": a["Order"], "noteId": a["Note"], "tagId": a["Tag"]}
