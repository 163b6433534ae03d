"""Isolation of conversations: who may see, answer, manage and follow which conversation.

Every conversation operation of the schema (queries ``conversations``, ``conversation``, ``node``
on a Conversation, ``conversationCounts``, ``conversationLabels``, ``cannedResponses``,
``renderCannedResponse``; the fifteen mutations of :data:`WRITES`; subscription
``conversationEvents``) and the inbound and delivery webhooks are aimed, in the manner of
``test_isolation.py``, by:

* the owner of ANOTHER tenant (every right in its own tenant) at tenant A's conversations,
  labels, canned responses, customers, members and brands: it sees none of A, changes none of A
  (every row of the conversation tables, the customers and the audit trail are compared), cannot
  use A's customer, member or label from its own conversations, and its subscription to A's brand
  is refused and hears nothing;
* a principal of A limited to brand "a" (marketer user and marketer API key) at brand "b";
* the roles: analyst (user and API key) reads what the owner reads and changes nothing but its own
  read marker; an agent works the inbox but cannot create labels;
* tenant B's inbound webhook, signed with B's secret, even when it names A's customers and A's
  messages: it only ever creates or uses B's; and a delivery event carrying A's message key,
  posted to B's URL (or to A's other brand), changes nothing of A.

Each refusal is paired with a control (the same request by someone who may) so that the ids are
known to be live and the assertion can fail.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from strawberry.relay import GlobalID

from conftest import Api, TenantFixture, create_tenant_fixture, gid
from domain.platform.db import tenant_session
from support.campaigns import identity, use_provider
from support.conversations import (
    email_item,
    phone,
    post_email,
    post_event,
    post_sms,
    sms_params,
    until,
)
from support.graphql import errs, form_leaks, perrs
from support.isolation import refused_unchanged, two_tenants
from support.isolation.conversations import (
    ASSIGN,
    CANNED,
    CHAT,
    CONVERSATION,
    COUNTS,
    INBOX,
    LABEL,
    LABELS,
    MARK_READ,
    NODE,
    PRIORITY,
    READS,
    RENDER,
    REPLY,
    SIDES,
    START,
    STATUS,
    UNLABEL,
    WRITES,
    Home,
    Other,
    Read,
    Refs,
    Victims,
    World,
    Write,
    conversation_gid,
    fresh_key,
    inbox_ids,
)
from support.ws import Client, bearer, poll

A_TOKEN = "a-inbound-token-0123456789"
B_TOKEN = "b-inbound-token-9876543210"
A_TWILIO = "a-twilio-auth-token-0123"
B_TWILIO = "b-twilio-auth-token-9876"
# --- tenant A and tenant B ------------------------------------------------------------------------


async def _conversation(t: TenantFixture, side: str, email: str, subject: str, body: str,
                        message_id: str | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    """A conversation a customer starts with an e-mail to brand ``side``: (conversation, customer)."""
    from domain.conversations import inbound
    from domain.delivery.inbound import InboundMessage

    m = InboundMessage(channel="email", provider="brevo", provider_message_id=uuid.uuid4().hex, from_address=email,
                       to_address=f"support@{side}.example.test", received_at=datetime.now(UTC),
                       from_name=f"Cust {side.upper()}", subject=subject, text=body,
                       message_id=message_id or f"<{uuid.uuid4().hex}@cust.example>")
    conv, _, new = await inbound.store(t.id, t.brands[side], m)
    assert new
    return conv.id, conv.customer_id


async def _make_world(fakes: Any) -> World:
    from domain.conversations import canned
    from domain.conversations.labels import change_labels, create_label
    from domain.customers.service import upsert_customer

    t = await create_tenant_fixture()
    tag = uuid.uuid4().hex[:8]
    for side in SIDES:
        await identity(t, side)
        await use_provider(t, side, "email", "brevo", credentials={"apiKey": fakes.brevo.api_key,
                                                                   "webhookToken": A_TOKEN})
    await use_provider(t, "a", "sms", "twilio", credentials={"accountSid": fakes.twilio.account_sid,
                                                             "authToken": A_TWILIO})
    w = World(t=t, tag=tag, conv={}, customer={}, email={}, phone={}, message_id={}, label={}, canned={}, member={})
    for side in SIDES:
        w.email[side] = f"{side}-secret-{tag}@cust.example"
        w.phone[side] = phone()
        w.message_id[side] = f"<{side}.{tag}@cust.example>"
        w.conv[side], w.customer[side] = await _conversation(
            t, side, w.email[side], f"{side} secret {tag} subject", f"{side} secret {tag} body", w.message_id[side])
        await upsert_customer(t.owner, {"email": w.email[side], "phone": w.phone[side], "first_name": "Cust"})
        label = await create_label(t.owner, t.brands[side], f"{side} secret {tag} label", None)
        w.label[side] = label.id
        await change_labels(t.owner, w.conv[side], [label.id], [])
        w.canned[side] = (await canned.create_canned(t.owner, t.brands[side], {
            "shortcode": f"asecret{side}{tag}", "title": f"{side} secret {tag} canned",
            "body": "Hello {{ customer.first_name }}"})).id
        w.member[side] = (await t.member("agent", brands=[side]))[0]
    return w


async def _make_other(fakes: Any) -> Other:
    from domain.conversations import canned
    from domain.conversations.labels import create_label

    t = await create_tenant_fixture()
    await identity(t, "a")
    await use_provider(t, "a", "email", "brevo", credentials={"apiKey": fakes.brevo.api_key, "webhookToken": B_TOKEN})
    await use_provider(t, "a", "sms", "twilio", credentials={"accountSid": fakes.twilio.account_sid,
                                                             "authToken": B_TWILIO})
    conv, customer = await _conversation(t, "a", f"own@{t.slug}.test", "B's own", "B's own body")
    label = await create_label(t.owner, t.brands["a"], "B label", None)
    made = await canned.create_canned(t.owner, t.brands["a"], {"shortcode": "bown", "title": "B's",
                                                                "body": "Hi {{ customer.first_name }}"})
    member = (await t.member("agent"))[0]
    return Other(t=t, conv=conv, customer=customer, label=label.id, canned=made.id, member=member)


world, other, tokens = two_tenants(_make_world, _make_other, (
    "analyst", "analyst-key", "agent", "marketer-a", "marketer-key-a"), uses=("fakes",))


# --- what "changes nothing" compares ----------------------------------------------------------------

# an outbound message's delivery bookkeeping moves when a worker (other modules' or this one's)
# sends it, at any moment: it is not compared
DELIVERY = ("delivery_status", "error", "sent_at", "delivered_at", "provider", "provider_message_id",
            "message_id_header", "claimed_by")
TABLES = {
    "conversations": "id",
    "conversation_messages": "id",
    "conversation_labels": "id",
    "conversation_label_links": "conversation_id, label_id",
    "conversation_reads": "conversation_id, user_id",
    "canned_responses": "id",
    "customers": "id",
    "customer_brands": "customer_id, brand_id",
    "customer_consents": "customer_id, brand_id, channel",
}


async def state(t: TenantFixture) -> dict[str, Any]:
    """Every row of ``t`` the conversation operations may write, and the length of its audit
    trail and timeline."""
    out: dict[str, Any] = {}
    async with tenant_session(t.id) as s:
        for table, order in TABLES.items():
            rows = [dict(r) for r in (await s.execute(text(
                f"SELECT * FROM {table} WHERE tenant_id = :t ORDER BY {order}"), {"t": t.id})).mappings()]
            if table == "conversation_messages":
                for r in rows:
                    if r["direction"] == "outbound":
                        for key in DELIVERY:
                            r.pop(key)
            out[table] = rows
        for table in ("audit_log", "timeline_events"):
            out[table] = await s.scalar(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": t.id})
    return out


def leaks(body: Any, w: World, variables: dict[str, Any] | None = None) -> list[str]:
    """A's things named in ``body``, except those the caller itself put in the request."""
    return form_leaks(body, w.markers(), variables)


def b_leaks(body: Any, w: World, variables: dict[str, Any] | None = None) -> list[str]:
    return form_leaks(body, w.b_markers(), variables)


def _refused_payload(p: dict[str, Any]) -> bool:
    return all(p.get(k) is None for k in ("conversation", "message", "label", "cannedResponse", "deletedId"))


# --- fresh objects for each write -------------------------------------------------------------------


async def victims(w: World, sides: tuple[str, ...] = SIDES) -> Victims:
    from domain.conversations import canned
    from domain.conversations.labels import change_labels, create_label
    from domain.customers import consent
    from domain.customers.service import upsert_customer

    t, n = w.t, uuid.uuid4().hex[:8]
    v = Victims(w=w, conv={}, customer={}, consented={}, label={}, labelled={}, canned={})
    for side in sides:
        brand = t.brands[side]
        v.conv[side], v.customer[side] = await _conversation(
            t, side, f"{side}-{n}@cust.example", f"{side} secret {w.tag} {n}", f"{side} secret {w.tag} body {n}")
        v.label[side] = (await create_label(t.owner, brand, f"{side} secret {w.tag} {n} 1", None)).id
        v.labelled[side] = (await create_label(t.owner, brand, f"{side} secret {w.tag} {n} 2", None)).id
        await change_labels(t.owner, v.conv[side], [v.labelled[side]], [])
        v.canned[side] = (await canned.create_canned(t.owner, brand, {
            "shortcode": f"asecret{side}{w.tag}{n}", "title": "t", "body": "Hi {{ customer.first_name }}"})).id
        c, _ = await upsert_customer(t.owner, {"email": f"consented-{side}-{n}@cust.example"}, brand_id=brand)
        async with tenant_session(t.id) as s:
            await consent.record(s, t.id, c.id, brand, consent.Channel.EMAIL, True, source="test")
        v.consented[side] = c.id
    return v


# --- the mutations --------------------------------------------------------------------------------

async def _refused_unchanged(api: Api, world: World, op: Write | Cross, variables: dict[str, Any],
                             token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return await refused_unchanged(api, world.t, state, _refused_payload, op, variables, token)


async def control(api: Api, op: Write, variables: dict[str, Any], token: str, t: TenantFixture) -> None:
    """Someone who may runs the very same mutation, and it does change A."""
    before = await state(t)
    mine = (await api.data(op.doc, variables, token=token))[op.op]
    assert mine["errors"] == [], mine
    assert op.done(mine), mine
    after = await state(t)
    assert after["audit_log"] == before["audit_log"] + op.audit
    assert after != before


async def _refused_to_other_tenant(api: Api, world: World, other: Other, op: Write | Cross,
                                   variables: dict[str, Any]) -> dict[str, Any]:
    """``other``'s owner sends ``op`` naming A's things: refused as not found, naming nothing of
    A, changing neither tenant. Returns A's state from before."""
    before_a, before_b = await state(world.t), await state(other.t)
    result = (await api.data(op.doc, variables, token=other.t.owner_token))[op.op]
    assert perrs(result) == [(op.field, "NOT_FOUND")], result
    assert _refused_payload(result), result
    assert leaks(result, world, variables) == []
    assert await state(other.t) == before_b
    assert await state(world.t) == before_a
    return before_a


@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_another_tenants_owner_changes_nothing_of_a(api: Api, world: World, other: Other, op: Write) -> None:
    v = await victims(world, ("a",))
    variables = op.variables(v, "a")
    await _refused_to_other_tenant(api, world, other, op, variables)
    await control(api, op, variables, world.t.owner_token, world.t)


# --- a caller's own objects with a reference to A's ---------------------------------------------------


@dataclass(frozen=True)
class Cross:
    name: str
    op: str
    doc: str
    variables: Callable[[Home, Refs], dict[str, Any]]
    field: str
    done: Callable[[dict[str, Any]], bool]
    audit: int = 1

    def __str__(self) -> str:
        return self.name


CROSS: list[Cross] = [
    Cross("startConversation(customerId)", "startConversation", START,
          lambda h, r: {"i": {"brandId": h.brand, "customerId": r.customer, "channel": "CHAT", "body": "Hi",
                              "idempotencyKey": fresh_key()}},
          "input.customerId", lambda p: p["conversation"] is not None),
    Cross("receiveChatMessage(customerId)", "receiveChatMessage", CHAT,
          lambda h, r: {"i": {"brandId": h.brand, "customerId": r.customer, "body": "Hi", "idempotencyKey": fresh_key()}},
          "input.customerId", lambda p: p["message"] is not None, audit=0),
    Cross("assignConversation(assigneeId)", "assignConversation", ASSIGN,
          lambda h, r: {"c": h.conv, "a": r.member}, "input.assigneeId",
          lambda p: p["conversation"]["assignee"] is not None),
    Cross("labelConversation(labelIds)", "labelConversation", LABEL,
          lambda h, r: {"c": h.conv, "l": [r.label]}, "input.labelIds[0]",
          lambda p: any(x["id"] for x in p["conversation"]["labels"])),
    Cross("unlabelConversation(labelIds)", "unlabelConversation", UNLABEL,
          lambda h, r: {"c": h.conv, "l": [r.label]}, "input.labelIds[0]", lambda p: p["conversation"] is not None,
          audit=0),  # the label is not on the conversation: nothing to remove, nothing audited
]


@pytest.mark.parametrize("op", CROSS, ids=str)
async def test_another_tenants_owner_cannot_use_a_from_its_own_conversations(
    api: Api, world: World, other: Other, op: Cross
) -> None:
    v = await victims(world, ("a",))
    variables = op.variables(other.home, v.refs("a"))
    before_a = await _refused_to_other_tenant(api, world, other, op, variables)
    # control: A's owner uses the same things from A's own brand "a"
    mine = (await api.data(op.doc, op.variables(v.home, v.refs("a")), token=world.t.owner_token))[op.op]
    assert mine["errors"] == [] and op.done(mine), mine
    assert (await state(world.t))["audit_log"] == before_a["audit_log"] + op.audit


# --- the queries ------------------------------------------------------------------------------------

@pytest.mark.parametrize("read", READS, ids=str)
async def test_another_tenants_owner_reads_nothing_of_a(api: Api, world: World, other: Other, read: Read) -> None:
    mine = await api.data(read.doc, read.own_vars(world, other), token=world.t.owner_token)
    assert read.own(mine, world), mine  # the legitimate owner does see it: the ids are live
    variables = (read.foreign_vars or read.own_vars)(world, other)
    before = await state(world.t)
    body = await api.gql(read.doc, variables, token=other.t.owner_token)
    assert read.foreign(body), body
    assert leaks(body, world, variables) == [], body
    assert await state(world.t) == before


async def test_another_tenants_owner_filters_its_inbox_by_a_member_of_a(
    api: Api, world: World, other: Other
) -> None:
    from domain.conversations import service

    member = (await world.t.member("agent", brands=["a"]))[0]
    await service.assign(other.t.owner, other.conv, other.member)
    await service.assign(world.t.owner, world.conv["a"], member)
    mine = await api.data(INBOX, {"b": world.brand("a"), "assignee": gid("Member", member)},
                          token=world.t.owner_token)
    assert inbox_ids(mine) == [conversation_gid(world)]
    theirs = await api.data(INBOX, {"b": other.t.brand_gid("a"), "assignee": gid("Member", other.member)},
                            token=other.t.owner_token)
    assert inbox_ids(theirs) == [gid("Conversation", other.conv)]  # control: the filter works for B's own
    variables = {"b": other.t.brand_gid("a"), "assignee": gid("Member", member)}
    body = await api.gql(INBOX, variables, token=other.t.owner_token)
    assert not body.get("errors") and body["data"]["conversations"]["edges"] == [], body
    assert leaks(body, world, variables) == []


# --- the same tenant, limited to brand "a" ---------------------------------------------------------

LIMITED = ["marketer-a", "marketer-key-a"]


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_brand_limited_principal_cannot_touch_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, op: Write
) -> None:
    v = await victims(world)
    token = tokens[kind]
    variables = op.variables(v, "b")
    result, _ = await _refused_unchanged(api, world, op, variables, token)
    assert perrs(result) == [(op.limited_field or op.field, "NOT_FOUND")], result
    assert b_leaks(result, world, variables) == []
    # control: the same principal, the same mutation on brand "a"
    await control(api, op, op.variables(v, "a"), token, world.t)


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize("op", CROSS, ids=str)
async def test_brand_limited_principal_cannot_use_brand_b_from_brand_a(
    api: Api, world: World, tokens: dict[str, str], kind: str, op: Cross
) -> None:
    v = await victims(world)
    token = tokens[kind]
    variables = op.variables(v.home, v.refs("b"))
    result, _ = await _refused_unchanged(api, world, op, variables, token)
    assert perrs(result) == [(op.field, "NOT_FOUND")], result
    mine = (await api.data(op.doc, op.variables(v.home, v.refs("a")), token=token))[op.op]
    assert mine["errors"] == [] and op.done(mine), mine


def _w_cg(side: str) -> Callable[[World], str]:
    return lambda w: conversation_gid(w, side)


# (name, doc, variables aimed at brand b, variables aimed at brand a, (code, field) refused with;
# None: answered with no data)
LIMITED_READS: list[tuple[str, str, Callable[[World], dict[str, Any]], Callable[[World], dict[str, Any]],
                          tuple[str, str] | None]] = [
    ("conversations", INBOX, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")}, ("NOT_FOUND", "brandId")),
    ("conversations(labelIds)", INBOX, lambda w: {"b": w.brand("a"), "labels": [gid("ConversationLabel", w.label["b"])]},
     lambda w: {"b": w.brand("a"), "labels": [gid("ConversationLabel", w.label["a"])]}, None),
    ("conversation", CONVERSATION, lambda w: {"id": conversation_gid(w, "b")}, lambda w: {"id": conversation_gid(w, "a")}, None),
    ("node(Conversation)", NODE, lambda w: {"id": conversation_gid(w, "b")}, lambda w: {"id": conversation_gid(w, "a")}, None),
    ("conversationCounts", COUNTS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")},
     ("NOT_FOUND", "brandId")),
    ("conversationLabels", LABELS, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")},
     ("NOT_FOUND", "brandId")),
    ("cannedResponses", CANNED, lambda w: {"b": w.brand("b")}, lambda w: {"b": w.brand("a")},
     ("NOT_FOUND", "brandId")),
    ("renderCannedResponse(brand b canned)", RENDER,
     lambda w: {"r": gid("CannedResponse", w.canned["b"]), "c": conversation_gid(w, "a")},
     lambda w: {"r": gid("CannedResponse", w.canned["a"]), "c": conversation_gid(w, "a")}, ("NOT_FOUND", "cannedResponseId")),
    ("renderCannedResponse(brand b conversation)", RENDER,
     lambda w: {"r": gid("CannedResponse", w.canned["b"]), "c": conversation_gid(w, "b")},
     lambda w: {"r": gid("CannedResponse", w.canned["a"]), "c": conversation_gid(w, "a")}, ("NOT_FOUND", "conversationId")),
]


# refused to the owner too (a label of brand b cannot be on a brand a conversation, a canned response
# of brand b is not for a brand a conversation)
NOBODY = {"conversations(labelIds)", "renderCannedResponse(brand b canned)"}


def _has_data(d: dict[str, Any]) -> bool:
    value = next(iter(d.values()))
    if isinstance(value, dict) and "edges" in value:
        return bool(value["edges"])
    return value not in (None, [])


@pytest.mark.parametrize("kind", LIMITED)
@pytest.mark.parametrize(("name", "doc", "on_b", "on_a", "refusal"), LIMITED_READS, ids=[r[0] for r in LIMITED_READS])
async def test_brand_limited_principal_sees_nothing_of_brand_b(
    api: Api, world: World, tokens: dict[str, str], kind: str, name: str, doc: str,
    on_b: Callable[[World], dict[str, Any]], on_a: Callable[[World], dict[str, Any]], refusal: tuple[str, str] | None,
) -> None:
    token = tokens[kind]
    if name not in NOBODY:  # the brand b ids are live: the owner gets an answer
        owner = await api.data(doc, on_b(world), token=world.t.owner_token)
        assert _has_data(owner), owner
    assert _has_data(await api.data(doc, on_a(world), token=token))  # and the principal does read brand a
    body = await api.gql(doc, on_b(world), token=token)
    if refusal is None:
        assert not body.get("errors") and not _has_data(body["data"]), body
    else:
        assert errs(body) == [refusal], body
    assert b_leaks(body, world, on_b(world)) == [], body


@pytest.mark.parametrize("kind", LIMITED)
async def test_brand_limited_principal_never_sees_brand_b_through_brand_a(
    api: Api, world: World, tokens: dict[str, str], kind: str
) -> None:
    """A customer known to both brands writes to each: the brand "a" principal's inbox, thread
    and counts hold brand "a"'s conversation only."""
    from domain.customers.service import upsert_customer

    t = world.t
    email = f"both-{uuid.uuid4().hex[:8]}@cust.example"
    await upsert_customer(t.owner, {"email": email, "first_name": "Both"}, brand_id=t.brands["a"])
    conv_a, customer = await _conversation(t, "a", email, "to a", "hello a")
    conv_b, same = await _conversation(t, "b", email, f"b secret {world.tag} both", f"b secret {world.tag} both")
    assert same == customer and conv_a != conv_b
    owner = await api.data(INBOX, {"b": world.brand("b")}, token=t.owner_token)
    assert gid("Conversation", conv_b) in inbox_ids(owner)
    mine = await api.data(INBOX, {"b": world.brand("a")}, token=tokens[kind])
    assert gid("Conversation", conv_a) in inbox_ids(mine) and gid("Conversation", conv_b) not in inbox_ids(mine)
    assert b_leaks(mine, world) == [], mine
    one = await api.data(CONVERSATION, {"id": gid("Conversation", conv_a)}, token=tokens[kind])
    assert [e["node"]["body"] for e in one["conversation"]["messages"]["edges"]] == ["hello a"]


# --- the roles ---------------------------------------------------------------------------------

EVERYTHING = """query($a: ID!, $c: ID!, $r: ID!) {
  conversations(brandId: $a, first: 100) { edges { node { id subject status priority customer { id email }
    labels { name } lastMessage { body } assignee { id } messageCount } } }
  conversation(id: $c) { id subject messages(first: 50) { edges { node { id body kind direction } } } }
  node(id: $c) { id ... on Conversation { subject } }
  conversationCounts(brandId: $a) { open pending snoozed resolved unassigned }
  conversationLabels(brandId: $a) { id name }
  cannedResponses(brandId: $a) { id shortcode body }
  renderCannedResponse(cannedResponseId: $r, conversationId: $c)
}"""
READ_ONLY = ["analyst", "analyst-key"]


@pytest.mark.parametrize("kind", [*READ_ONLY, "agent"])
async def test_lower_roles_read_what_the_owner_reads(api: Api, world: World, tokens: dict[str, str],
                                                     kind: str) -> None:
    variables = {"a": world.brand("a"), "c": conversation_gid(world), "r": gid("CannedResponse", world.canned["a"])}
    owner = await api.data(EVERYTHING, variables, token=world.t.owner_token)
    assert conversation_gid(world) in inbox_ids(owner) and owner["renderCannedResponse"] == "Hello Cust"
    before = await state(world.t)
    assert await api.data(EVERYTHING, variables, token=tokens[kind]) == owner
    assert await state(world.t) == before


# the analyst user against every mutation; the analyst API key (the same role) against those an
# analyst most plausibly tries: answering, noting, assigning, labelling, a chat message
ANALYST_CASES = [("analyst", w) for w in WRITES if w.role != "read"] + [
    ("analyst-key", w) for w in WRITES if w.op in ("replyToConversation", "addConversationNote", "assignConversation",
                                                   "labelConversation", "receiveChatMessage")]


@pytest.mark.parametrize(("kind", "op"), ANALYST_CASES, ids=[f"{o}-{k}" for k, o in ANALYST_CASES])
async def test_analyst_changes_nothing(api: Api, world: World, tokens: dict[str, str], kind: str, op: Write) -> None:
    v = await victims(world, ("a",))
    variables = op.variables(v, "a")
    before = await state(world.t)
    result = (await api.data(op.doc, variables, token=tokens[kind]))[op.op]
    assert [e["code"] for e in result["errors"]] == ["FORBIDDEN"], result
    assert _refused_payload(result), result
    assert await state(world.t) == before
    await control(api, op, variables, world.t.owner_token, world.t)


@pytest.mark.parametrize("kind", READ_ONLY)
async def test_analyst_marks_read_for_itself_only(api: Api, world: World, tokens: dict[str, str], kind: str) -> None:
    v = await victims(world, ("a",))
    c = v.g("conv", "a")
    read = (await api.data(MARK_READ, {"c": c}, token=tokens[kind]))["markConversationRead"]
    assert read["errors"] == [] and read["conversation"]["unreadCount"] == 0, read
    owner = await api.data("query($id: ID!) { conversation(id: $id) { unreadCount } }", {"id": c},
                           token=world.t.owner_token)
    assert owner["conversation"]["unreadCount"] == 1


@pytest.mark.parametrize("op", WRITES, ids=str)
async def test_agent_works_the_inbox_but_creates_no_label(
    api: Api, world: World, tokens: dict[str, str], op: Write
) -> None:
    v = await victims(world, ("a",))
    variables = op.variables(v, "a")
    if op.role == "label":
        before = await state(world.t)
        result = (await api.data(op.doc, variables, token=tokens["agent"]))[op.op]
        assert perrs(result) == [(None, "FORBIDDEN")] and _refused_payload(result), result
        assert await state(world.t) == before
        await control(api, op, variables, tokens["marketer-a"], world.t)
    else:
        await control(api, op, variables, tokens["agent"], world.t)


# --- the subscription --------------------------------------------------------------------------

EVENTS = """subscription($b: ID!) { conversationEvents(brandId: $b) { type
  conversation { id subject customer { email } } message { body } } }"""
HEARD = "conversationEvents"


async def follow(api: Api, token: str, brand: str) -> Client:
    """One conversationEvents subscription (operation "1")."""
    client = await Client.open(api, bearer(token))
    await client.subscribe(EVENTS, {"b": brand})
    return client


async def _until_live(api: Api, t: TenantFixture, conv: str, subs: list[Client], within: float = 10) -> None:
    """No acknowledgement for a subscription: change a conversation's priority until every
    subscriber has heard of it."""
    deadline = time.monotonic() + within
    for p in ["HIGH", "LOW"] * 1000:
        await api.data(PRIORITY, {"c": conv, "p": p}, token=t.owner_token)
        try:
            await until(lambda: all(s.data(HEARD) for s in subs), "a probe event", within=0.3)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.parametrize("who", ["other-tenant-owner", "marketer-limited-to-a"])
async def test_conversation_events_reach_only_who_may_see_the_brand(
    api: Api, world: World, other: Other, tokens: dict[str, str], who: str
) -> None:
    side = "a" if who == "other-tenant-owner" else "b"
    token = other.t.owner_token if who == "other-tenant-owner" else tokens["marketer-a"]
    t = world.t
    v = await victims(world)
    own = await follow(api, t.owner_token, world.brand(side))
    analyst = await follow(api, tokens["analyst"], world.brand(side))
    intruder = await follow(api, token, world.brand(side))
    try:
        assert await poll(intruder.failed), intruder.messages
        assert intruder.data(HEARD) == [], intruder.messages
        assert [(e.get("extensions") or {}).get("code") for e in intruder.errors()] == ["NOT_FOUND"], intruder.messages

        # control: A's owner and an analyst hear the brand's conversations, an inbound e-mail too
        await _until_live(api, t, v.g("conv", side), [own, analyst])
        r = await post_email(api.base_url, t, email_item(f"live-{uuid.uuid4().hex[:6]}@cust.example",
                                                         subject=f"{side} secret {world.tag} live",
                                                         text=f"{side} secret {world.tag} live body"),
                             brand=side, token=A_TOKEN)
        assert r.json()["created"] == 1, r.text
        for sub in (own, analyst):
            await until(lambda s=sub: any(e["type"] == "MESSAGE_CREATED" for e in s.data(HEARD)), "MESSAGE_CREATED")
        await asyncio.sleep(0.3)
        assert intruder.data(HEARD) == [], intruder.messages
        assert leaks(intruder.messages, world, {"b": world.brand(side)}) == []
    finally:
        for sub in (own, analyst, intruder):
            await sub.close()


async def test_brand_a_inbox_hears_nothing_of_brand_b(api: Api, world: World, tokens: dict[str, str]) -> None:
    v = await victims(world)
    limited = await follow(api, tokens["marketer-a"], world.brand("a"))
    owner_b = await follow(api, world.t.owner_token, world.brand("b"))
    try:
        await _until_live(api, world.t, v.g("conv", "a"), [limited])
        await _until_live(api, world.t, v.g("conv", "b"), [owner_b])
        heard = len(limited.data(HEARD))
        await api.data(STATUS, {"c": v.g("conv", "b"), "s": "PENDING"}, token=world.t.owner_token)
        await until(lambda: any(e["type"] == "STATUS_CHANGED" for e in owner_b.data(HEARD)), "brand b's event")
        await asyncio.sleep(0.3)
        assert all(e["conversation"]["id"] != v.g("conv", "b") for e in limited.data(HEARD)[heard:]), limited.data(HEARD)
        assert b_leaks(limited.messages, world) == []
    finally:
        await limited.close()
        await owner_b.close()


# --- webhooks --------------------------------------------------------------------------------------


async def test_tenant_b_inbound_webhook_never_touches_tenant_a(api: Api, world: World, other: Other) -> None:
    """B's customer writes with A's customer's address and phone, naming A's message in the
    e-mail headers: B's webhook creates B's customer and conversation; A is unchanged. A's URL
    refuses B's secrets, and URLs mixing the two tenants are refused."""
    from domain.delivery.webhooks import TWILIO_SIGNATURE_HEADER, sign_twilio

    t, b = world.t, other.t
    before_a, before_b = await state(t), await state(b)
    ref = world.message_id["a"]
    item = email_item(world.email["a"].upper(), subject="Re: hijack", text="B's customer", in_reply_to=ref,
                      references=[ref])
    r = await post_email(api.base_url, b, item, token=B_TOKEN)
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    sms = sms_params(world.phone["a"], "B's customer by SMS")
    r = await post_sms(api.base_url, b, sms, B_TWILIO)
    assert r.status_code == 200 and "<Response>" in r.text, r.text

    # refused: A's URLs with B's secrets, and URLs naming one tenant with the other's brand
    fresh = email_item(world.email["a"], subject="refused", in_reply_to=ref)
    assert (await post_email(api.base_url, t, fresh, token=B_TOKEN)).status_code == 401
    assert (await post_sms(api.base_url, t, sms_params(world.phone["a"], "refused"), B_TWILIO)).status_code == 401
    mixed = [f"/webhooks/brevo/inbound/{b.id}/{t.brands['a']}", f"/webhooks/brevo/inbound/{t.id}/{b.brands['a']}"]
    for path in mixed:
        for token in (A_TOKEN, B_TOKEN):
            assert (await post_email(api.base_url, t, fresh, token=token, path=path)).status_code == 401, (path, token)
    path = f"/webhooks/twilio/inbound/{b.id}/{t.brands['a']}"
    params = sms_params(world.phone["a"], "refused")
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        for token in (A_TWILIO, B_TWILIO):
            r = await http.post(path, data=params,
                                headers={TWILIO_SIGNATURE_HEADER: sign_twilio(token, api.base_url + path, params)})
            assert r.status_code == 401, token

    assert await state(t) == before_a
    after_b = await state(b)
    new_customers = [c for c in after_b["customers"] if c not in before_b["customers"]]
    assert {(c["email"], c["phone"]) for c in new_customers} == {(world.email["a"], None), (None, world.phone["a"])}
    assert all(c["id"] not in (world.customer["a"], world.customer["b"]) for c in new_customers)
    new_convs = [c for c in after_b["conversations"] if c not in before_b["conversations"]]
    assert len(new_convs) == 2 and all(c["tenant_id"] == b.id for c in new_convs)
    assert {c["customer_id"] for c in new_convs} == {c["id"] for c in new_customers}
    assert all(c["campaign_id"] is None for c in new_convs)

    # control: the same e-mail to A's URL with A's token joins A's thread
    r = await post_email(api.base_url, t, email_item(world.email["a"], subject="Re: mine", text="A's customer",
                                                     in_reply_to=ref), token=A_TOKEN)
    assert r.json()["created"] == 1
    after_a = await state(t)
    assert len(after_a["conversations"]) == len(before_a["conversations"])
    assert len(after_a["conversation_messages"]) == len(before_a["conversation_messages"]) + 1
    found = await api.data(CONVERSATION, {"id": conversation_gid(world)}, token=t.owner_token)
    assert found["conversation"]["messages"]["edges"][-1]["node"]["body"] == "A's customer"


async def test_delivery_event_with_a_key_of_a_changes_nothing_elsewhere(
    api: Api, world: World, other: Other, worker: Any, fakes: Any
) -> None:
    """A Brevo event carrying the key of A's brand "a" reply: posted to B's URL (with B's token)
    or to A's brand "b" URL, it changes nothing; to brand "a"'s URL, the reply is delivered."""
    t = world.t
    v = await victims(world, ("a",))
    sent = (await api.data(REPLY, {"i": {"conversationId": v.g("conv", "a"), "body": "A's reply",
                                         "idempotencyKey": fresh_key()}}, token=t.owner_token))["replyToConversation"]
    mid = uuid.UUID(GlobalID.from_id(sent["message"]["id"]).node_id)
    [out] = await until(lambda: [m for m in list(fakes.brevo.messages) if m.key == f"m.{mid.hex}"], "the reply")

    async def status() -> str:
        async with tenant_session(t.id) as s:
            return await s.scalar(text("SELECT delivery_status FROM conversation_messages WHERE tenant_id = :t "
                                       "AND id = :m"), {"t": t.id, "m": mid})

    await until(lambda: _equals(status(), "sent"), "the reply marked sent")
    event = {"event": "delivered", "email": out.to, "id": 1, "ts_event": int(time.time()),
             "message-id": out.provider_message_id, "X-Mailin-custom": out.headers["X-Mailin-custom"]}
    before_a, before_b = await state(t), await state(other.t)
    r = await post_event(api, "brevo", other.t, "a", json_body=event, token=B_TOKEN)
    assert r.status_code == 200 and r.json()["changed"] == 0, r.text
    r = await post_event(api, "brevo", t, "b", json_body=event, token=A_TOKEN)
    assert r.status_code == 200 and r.json()["changed"] == 0, r.text
    r = await post_event(api, "brevo", t, "a", json_body=event, token=B_TOKEN, tenant_id=other.t.id)
    assert r.status_code == 401, r.text  # B's tenant with A's brand: no such webhook
    assert await status() == "sent"
    assert await state(t) == before_a and await state(other.t) == before_b
    # control
    r = await post_event(api, "brevo", t, "a", json_body=event, token=A_TOKEN)
    assert r.status_code == 200 and r.json()["changed"] == 1, r.text
    assert await status() == "delivered"


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected
