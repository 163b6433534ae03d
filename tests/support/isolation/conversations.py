"""The rows of the conversation isolation tests: tenant A (:class:`World`), tenant B (:class:`Other`),
the fresh objects a write aims at (:class:`Victims`), every conversation query (:data:`READS`) and
mutation (:data:`WRITES`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import TenantFixture, gid
from support.graphql import errs

ERRORS = "errors { field code message }"


SIDES = ("a", "b")


@dataclass
class World:
    """Tenant A: in each brand a conversation started by a customer known to that brand only,
    a label on it, a canned response, and an agent with a grant on that brand alone."""

    t: TenantFixture
    tag: str
    conv: dict[str, uuid.UUID]
    customer: dict[str, uuid.UUID]
    email: dict[str, str]
    phone: dict[str, str]
    message_id: dict[str, str]  # the customer's first Message-ID
    label: dict[str, uuid.UUID]
    canned: dict[str, uuid.UUID]
    member: dict[str, uuid.UUID]

    def brand(self, side: str) -> str:
        return self.t.brand_gid(side)

    def markers(self) -> list[tuple[str, ...]]:
        """Each thing of A as the forms it may take in an answer (raw uuid, global id, text)."""
        out: list[tuple[str, ...]] = [(str(self.t.id), self.t.slug)]
        out += [(str(b), gid("Brand", b)) for b in self.t.brands.values()]
        for side in SIDES:
            out += [(str(self.conv[side]), gid("Conversation", self.conv[side])),
                    (str(self.customer[side]), gid("Customer", self.customer[side]), self.email[side]),
                    (str(self.label[side]), gid("ConversationLabel", self.label[side])),
                    (str(self.canned[side]), gid("CannedResponse", self.canned[side])),
                    (str(self.member[side]), gid("Member", self.member[side]))]
        return out + [(f"secret {self.tag}",), (f"asecret{self.tag}",)]

    def b_markers(self) -> list[tuple[str, ...]]:
        """What only brand "b" knows."""
        return [(self.brand("b"), str(self.t.brands["b"])),
                (str(self.conv["b"]), gid("Conversation", self.conv["b"])),
                (str(self.customer["b"]), gid("Customer", self.customer["b"]), self.email["b"]),
                (str(self.label["b"]), gid("ConversationLabel", self.label["b"])),
                (str(self.canned["b"]), gid("CannedResponse", self.canned["b"])),
                (f"b secret {self.tag}",), (f"asecretb{self.tag}",)]


@dataclass
class Other:
    """Tenant B: brand "a" with its own inbound secrets, a conversation, a label, a canned
    response, a customer and an agent."""

    t: TenantFixture
    conv: uuid.UUID
    customer: uuid.UUID
    label: uuid.UUID
    canned: uuid.UUID
    member: uuid.UUID

    @property
    def home(self) -> Home:
        return Home(self.t.brand_gid("a"), gid("Conversation", self.conv), gid("Customer", self.customer),
                    gid("ConversationLabel", self.label), gid("CannedResponse", self.canned))


@dataclass
class Victims:
    """Fresh objects of A in each brand, so that a write aimed at them disturbs no other test."""

    w: World
    conv: dict[str, uuid.UUID]
    customer: dict[str, uuid.UUID]  # the conversation's customer, known to that brand only
    consented: dict[str, uuid.UUID]  # a customer of the brand with e-mail consent
    label: dict[str, uuid.UUID]  # not on the conversation
    labelled: dict[str, uuid.UUID]  # on the conversation
    canned: dict[str, uuid.UUID]

    def brand(self, side: str) -> str:
        return self.w.brand(side)

    def g(self, kind: str, side: str) -> str:
        value = getattr(self, kind)[side]
        return gid({"conv": "Conversation", "customer": "Customer", "consented": "Customer",
                    "label": "ConversationLabel", "labelled": "ConversationLabel",
                    "canned": "CannedResponse"}[kind], value)

    def member(self, side: str) -> str:
        return gid("Member", self.w.member[side])

    @property
    def home(self) -> Home:
        """A's own brand "a" objects, as a caller's own."""
        return Home(self.brand("a"), self.g("conv", "a"), self.g("customer", "a"), self.g("label", "a"),
                    self.g("canned", "a"))

    def refs(self, side: str) -> Refs:
        return Refs(customer=self.g("customer", side), member=self.member(side), label=self.g("label", side))


START = f"""mutation($i: StartConversationInput!) {{ startConversation(input: $i) {{
  conversation {{ id subject customer {{ id email }} }} message {{ id body }} {ERRORS} }} }}"""


REPLY = f"""mutation($i: ReplyToConversationInput!) {{ replyToConversation(input: $i) {{
  conversation {{ id subject customer {{ id email }} }} message {{ id body }} {ERRORS} }} }}"""


NOTE = f"""mutation($c: ID!, $body: String!) {{ addConversationNote(input: {{conversationId: $c, body: $body}}) {{
  conversation {{ id subject }} message {{ id body kind }} {ERRORS} }} }}"""


CHAT = f"""mutation($i: ReceiveChatMessageInput!) {{ receiveChatMessage(input: $i) {{
  conversation {{ id customer {{ id email }} }} message {{ id body }} {ERRORS} }} }}"""


ASSIGN = f"""mutation($c: ID!, $a: ID) {{ assignConversation(input: {{conversationId: $c, assigneeId: $a}}) {{
  conversation {{ id subject assignee {{ id email }} }} {ERRORS} }} }}"""


STATUS = f"""mutation($c: ID!, $s: ConversationStatus!) {{ setConversationStatus(input: {{conversationId: $c, status: $s}}) {{
  conversation {{ id subject status }} {ERRORS} }} }}"""


SNOOZE = f"""mutation($c: ID!, $until: DateTime!) {{ snoozeConversation(input: {{conversationId: $c, until: $until}}) {{
  conversation {{ id subject status }} {ERRORS} }} }}"""


PRIORITY = f"""mutation($c: ID!, $p: ConversationPriority!) {{ setConversationPriority(input: {{conversationId: $c, priority: $p}}) {{
  conversation {{ id subject priority }} {ERRORS} }} }}"""


LABEL = f"""mutation($c: ID!, $l: [ID!]!) {{ labelConversation(input: {{conversationId: $c, labelIds: $l}}) {{
  conversation {{ id subject labels {{ id name }} }} {ERRORS} }} }}"""


UNLABEL = f"""mutation($c: ID!, $l: [ID!]!) {{ unlabelConversation(input: {{conversationId: $c, labelIds: $l}}) {{
  conversation {{ id subject labels {{ id name }} }} {ERRORS} }} }}"""


MARK_READ = f"""mutation($c: ID!) {{ markConversationRead(input: {{conversationId: $c}}) {{
  conversation {{ id subject unreadCount }} {ERRORS} }} }}"""


CREATE_LABEL = f"""mutation($b: ID!, $name: String!) {{ createConversationLabel(input: {{brandId: $b, name: $name}}) {{
  label {{ id name }} {ERRORS} }} }}"""


CREATE_CANNED = f"""mutation($i: CannedResponseInput!) {{ createCannedResponse(input: $i) {{
  cannedResponse {{ id shortcode body }} {ERRORS} }} }}"""


UPDATE_CANNED = f"""mutation($i: UpdateCannedResponseInput!) {{ updateCannedResponse(input: $i) {{
  cannedResponse {{ id shortcode title body }} {ERRORS} }} }}"""


DELETE_CANNED = f"""mutation($id: ID!) {{ deleteCannedResponse(input: {{id: $id}}) {{ deletedId {ERRORS} }} }}"""


def _later() -> str:
    return (datetime.now(UTC) + timedelta(hours=2)).isoformat()


def fresh_key() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Write:
    """A mutation aimed at an object of A's brand ``side``.

    ``field``: where another tenant's owner gets NOT_FOUND (``limited_field``: where a principal
    limited to brand "a" does, aimed at brand "b", when it differs). ``done``: the control's
    payload shows the change; ``audit``: entries the control adds; ``role``: the action it needs
    (``read``, ``reply``, ``manage``, ``label``, ``canned``).
    """

    name: str
    op: str
    doc: str
    variables: Callable[[Victims, str], dict[str, Any]]
    field: str
    done: Callable[[dict[str, Any]], bool]
    role: str
    audit: int = 1
    limited_field: str | None = None

    def __str__(self) -> str:
        return self.name


WRITES: list[Write] = [
    Write("startConversation", "startConversation", START,
          lambda v, s: {"i": {"brandId": v.brand(s), "customerId": v.g("consented", s), "channel": "EMAIL",
                              "subject": "Hello", "body": "We write first", "idempotencyKey": fresh_key()}},
          "input.brandId", lambda p: p["conversation"] is not None and p["message"]["body"] == "We write first",
          "reply"),
    Write("replyToConversation", "replyToConversation", REPLY,
          lambda v, s: {"i": {"conversationId": v.g("conv", s), "body": "An answer", "idempotencyKey": fresh_key()}},
          "input.conversationId", lambda p: p["message"] is not None and p["message"]["body"] == "An answer", "reply"),
    Write("addConversationNote", "addConversationNote", NOTE, lambda v, s: {"c": v.g("conv", s), "body": "A note"},
          "input.conversationId", lambda p: p["message"] is not None and p["message"]["kind"] == "NOTE", "reply"),
    Write("receiveChatMessage", "receiveChatMessage", CHAT,
          lambda v, s: {"i": {"brandId": v.brand(s), "customerId": v.g("customer", s), "body": "Chat hello",
                              "idempotencyKey": fresh_key()}},
          "input.customerId", lambda p: p["message"] is not None and p["message"]["body"] == "Chat hello", "reply",
          audit=0, limited_field="input.brandId"),
    Write("assignConversation", "assignConversation", ASSIGN, lambda v, s: {"c": v.g("conv", s), "a": v.member(s)},
          "input.conversationId", lambda p: p["conversation"] is not None and p["conversation"]["assignee"] is not None,
          "manage"),
    Write("setConversationStatus", "setConversationStatus", STATUS, lambda v, s: {"c": v.g("conv", s), "s": "RESOLVED"},
          "input.conversationId", lambda p: p["conversation"] is not None and p["conversation"]["status"] == "RESOLVED",
          "manage"),
    Write("snoozeConversation", "snoozeConversation", SNOOZE, lambda v, s: {"c": v.g("conv", s), "until": _later()},
          "input.conversationId", lambda p: p["conversation"] is not None and p["conversation"]["status"] == "SNOOZED",
          "manage"),
    Write("setConversationPriority", "setConversationPriority", PRIORITY,
          lambda v, s: {"c": v.g("conv", s), "p": "URGENT"},
          "input.conversationId", lambda p: p["conversation"] is not None and p["conversation"]["priority"] == "URGENT",
          "manage"),
    Write("labelConversation", "labelConversation", LABEL, lambda v, s: {"c": v.g("conv", s), "l": [v.g("label", s)]},
          "input.conversationId", lambda p: p["conversation"] is not None and len(p["conversation"]["labels"]) == 2,
          "manage"),
    Write("unlabelConversation", "unlabelConversation", UNLABEL,
          lambda v, s: {"c": v.g("conv", s), "l": [v.g("labelled", s)]},
          "input.conversationId", lambda p: p["conversation"] is not None and p["conversation"]["labels"] == [], "manage"),
    Write("markConversationRead", "markConversationRead", MARK_READ, lambda v, s: {"c": v.g("conv", s)},
          "input.conversationId", lambda p: p["conversation"] is not None and p["conversation"]["unreadCount"] == 0, "read",
          audit=0),
    Write("createConversationLabel", "createConversationLabel", CREATE_LABEL,
          lambda v, s: {"b": v.brand(s), "name": f"New {fresh_key()[:8]}"},
          "input.brandId", lambda p: p["label"] is not None, "label"),
    Write("createCannedResponse", "createCannedResponse", CREATE_CANNED,
          lambda v, s: {"i": {"brandId": v.brand(s), "shortcode": f"new{fresh_key()[:8]}", "title": "New", "body": "Hi"}},
          "input.brandId", lambda p: p["cannedResponse"] is not None, "canned"),
    Write("updateCannedResponse", "updateCannedResponse", UPDATE_CANNED,
          lambda v, s: {"i": {"id": v.g("canned", s), "title": "Renamed"}},
          "input.id", lambda p: p["cannedResponse"] is not None and p["cannedResponse"]["title"] == "Renamed",
          "canned"),
    Write("deleteCannedResponse", "deleteCannedResponse", DELETE_CANNED, lambda v, s: {"id": v.g("canned", s)},
          "input.id", lambda p: p["deletedId"] is not None, "canned"),
]


@dataclass(frozen=True)
class Home:
    """The caller's own brand, conversation, customer, label and canned response."""

    brand: str
    conv: str
    customer: str
    label: str
    canned: str


@dataclass(frozen=True)
class Refs:
    """What the caller tries to use: a customer, a member, a label."""

    customer: str
    member: str
    label: str


INBOX = """query($b: ID!, $labels: [ID!], $assignee: ID, $search: String) {
  conversations(brandId: $b, labelIds: $labels, assigneeId: $assignee, search: $search, first: 100) { edges { node {
    id subject customer { id email } labels { id name } assignee { id } lastMessage { body }
    messages(first: 10) { edges { node { body } } } } } } }"""


CONVERSATION = """query($id: ID!) { conversation(id: $id) { id subject customer { id email } labels { name }
  messages(first: 10) { edges { node { id body } } } } }"""


NODE = "query($id: ID!) { node(id: $id) { id ... on Conversation { subject customer { email } } } }"


COUNTS = "query($b: ID!) { conversationCounts(brandId: $b) { open pending snoozed resolved unread unassigned } }"


LABELS = "query($b: ID!) { conversationLabels(brandId: $b) { id name } }"


CANNED = "query($b: ID!) { cannedResponses(brandId: $b) { id shortcode title body } }"


RENDER = "query($r: ID!, $c: ID!) { renderCannedResponse(cannedResponseId: $r, conversationId: $c) }"


@dataclass(frozen=True)
class Read:
    """A query: A's owner's request and what it sees (``own``); the other tenant's owner's request
    (the same, or aimed from its own objects at A's) and what it gets instead (``foreign``)."""

    name: str
    doc: str
    own_vars: Callable[[World, Other], dict[str, Any]]
    own: Callable[[dict[str, Any], World], bool]
    foreign_vars: Callable[[World, Other], dict[str, Any]] | None
    foreign: Callable[[dict[str, Any]], bool]

    def __str__(self) -> str:
        return self.name


def _subject(w: World, side: str = "a") -> str:
    """The subject of the world's conversation in brand ``side`` (victims' differ)."""
    return f"{side} secret {w.tag} subject"


def conversation_gid(w: World, side: str = "a") -> str:
    return gid("Conversation", w.conv[side])


def inbox_ids(d: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in d["conversations"]["edges"]]


def _empty(key: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        if body.get("errors"):
            return False
        value = body["data"][key]
        return value in (None, [], "") or value == {"edges": []} or (
            isinstance(value, dict) and all(x == 0 for x in value.values()))

    return check


def _refused(code: str, field: str, key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: errs(body) == [(code, field)] and (body["data"] is None or body["data"].get(key) is None)


READS: list[Read] = [
    Read("conversations(brandId)", INBOX, lambda w, b: {"b": w.brand("a"), "search": _subject(w)},
         lambda d, w: inbox_ids(d) == [conversation_gid(w)], None, _empty("conversations")),
    Read("conversations(labelIds)", INBOX, lambda w, b: {"b": w.brand("a"), "labels": [gid("ConversationLabel",
                                                                                          w.label["a"])]},
         lambda d, w: inbox_ids(d) == [conversation_gid(w)],
         lambda w, b: {"b": b.t.brand_gid("a"), "labels": [gid("ConversationLabel", w.label["a"])]},
         _empty("conversations")),
    Read("conversation", CONVERSATION, lambda w, b: {"id": conversation_gid(w)},
         lambda d, w: d["conversation"]["id"] == conversation_gid(w) and len(d["conversation"]["messages"]["edges"]) >= 1,
         None, _empty("conversation")),
    Read("node(Conversation)", NODE, lambda w, b: {"id": conversation_gid(w, "b")},
         lambda d, w: d["node"]["customer"]["email"] == w.email["b"], None, _empty("node")),
    Read("conversationCounts", COUNTS, lambda w, b: {"b": w.brand("a")},
         lambda d, w: d["conversationCounts"]["open"] >= 1, None, _empty("conversationCounts")),
    Read("conversationLabels", LABELS, lambda w, b: {"b": w.brand("a")},
         lambda d, w: gid("ConversationLabel", w.label["a"]) in [x["id"] for x in d["conversationLabels"]],
         None, _empty("conversationLabels")),
    Read("cannedResponses", CANNED, lambda w, b: {"b": w.brand("a")},
         lambda d, w: gid("CannedResponse", w.canned["a"]) in [x["id"] for x in d["cannedResponses"]],
         None, _empty("cannedResponses")),
    Read("renderCannedResponse", RENDER,
         lambda w, b: {"r": gid("CannedResponse", w.canned["a"]), "c": conversation_gid(w)},
         lambda d, w: d["renderCannedResponse"] == "Hello Cust", None,
         _refused("NOT_FOUND", "conversationId", "renderCannedResponse")),
    Read("renderCannedResponse(A's canned, own conversation)", RENDER,
         lambda w, b: {"r": gid("CannedResponse", w.canned["a"]), "c": conversation_gid(w)},
         lambda d, w: d["renderCannedResponse"] == "Hello Cust",
         lambda w, b: {"r": gid("CannedResponse", w.canned["a"]), "c": gid("Conversation", b.conv)},
         _refused("NOT_FOUND", "cannedResponseId", "renderCannedResponse")),
    Read("renderCannedResponse(own canned, A's conversation)", RENDER,
         lambda w, b: {"r": gid("CannedResponse", w.canned["a"]), "c": conversation_gid(w)},
         lambda d, w: d["renderCannedResponse"] == "Hello Cust",
         lambda w, b: {"r": gid("CannedResponse", b.canned), "c": conversation_gid(w)},
         _refused("NOT_FOUND", "conversationId", "renderCannedResponse")),
]


SUBSCRIPTIONS = {"conversationEvents"}  # tested over graphql-transport-ws by the area's tests

