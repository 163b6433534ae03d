"""Conversations end to end: inbound webhooks, threading, replies through the provider layer.

Inbound e-mail (Brevo inbound parsing, bearer token) and SMS (Twilio, signed form) are posted to
the API server over HTTP; replies go out through the session's real worker to the loopback fakes
and come back as signed delivery events. Each test makes its own tenant.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from strawberry.relay import GlobalID

from conftest import Api, TenantFixture, gid, start_api
from support.campaigns import audience, create, identity, launch, use_provider, wait_status
from support.conversations import (
    TOKEN,
    email_item,
    inbound_path,
    phone,
    post_email,
    post_event,
    post_sms,
    sms_params,
    until,
)
from support.graphql import warm

ERRORS = "errors { field code message }"

CONV_FIELDS = """id channel status priority subject snoozedUntil startedBy resolvedAt messageCount unreadCount
  customer { id email phone firstName lastName brands { source brand { id } } }
  campaign { id } assignee { id memberId email } labels { id name color }
  lastMessage { id body direction kind }"""
CONVERSATION = f"""query($id: ID!) {{ conversation(id: $id) {{ {CONV_FIELDS}
  messages(first: 50) {{ edges {{ node {{ id direction kind authorType body fromAddress toAddress messageIdHeader
    inReplyTo references deliveryStatus deliveredAt }} }} }} }} }}"""
INBOX = f"""query($b: ID!, $status: [ConversationStatus!], $assignee: ID, $unassigned: Boolean! = false,
  $labels: [ID!], $unread: Boolean! = false, $search: String, $first: Int! = 25, $after: String) {{
  conversations(brandId: $b, status: $status, assigneeId: $assignee, unassigned: $unassigned, labelIds: $labels,
                unreadOnly: $unread, search: $search, first: $first, after: $after) {{
    edges {{ cursor node {{ {CONV_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
COUNTS = "query($b: ID!) { conversationCounts(brandId: $b) { open pending snoozed resolved unread unassigned } }"
REPLY = f"""mutation($i: ReplyToConversationInput!) {{ replyToConversation(input: $i) {{
  conversation {{ id messageCount status }} message {{ id direction kind deliveryStatus body }} {ERRORS} }} }}"""
NOTE = f"""mutation($c: ID!, $body: String!) {{ addConversationNote(input: {{conversationId: $c, body: $body}}) {{
  conversation {{ id messageCount }} message {{ id direction kind authorType deliveryStatus body }} {ERRORS} }} }}"""
START = f"""mutation($i: StartConversationInput!) {{ startConversation(input: $i) {{
  conversation {{ id channel startedBy status subject messageCount }} message {{ id deliveryStatus }} {ERRORS} }} }}"""
CHAT = f"""mutation($i: ReceiveChatMessageInput!) {{ receiveChatMessage(input: $i) {{
  conversation {{ id channel startedBy messageCount }} message {{ id direction authorType body }} {ERRORS} }} }}"""
ASSIGN = f"""mutation($c: ID!, $a: ID) {{ assignConversation(input: {{conversationId: $c, assigneeId: $a}}) {{
  conversation {{ id assignee {{ id memberId email }} }} {ERRORS} }} }}"""
STATUS = f"""mutation($c: ID!, $s: ConversationStatus!) {{ setConversationStatus(input: {{conversationId: $c, status: $s}}) {{
  conversation {{ id status resolvedAt snoozedUntil }} {ERRORS} }} }}"""
SNOOZE = f"""mutation($c: ID!, $until: DateTime!) {{ snoozeConversation(input: {{conversationId: $c, until: $until}}) {{
  conversation {{ id status snoozedUntil }} {ERRORS} }} }}"""
PRIORITY = f"""mutation($c: ID!, $p: ConversationPriority!) {{ setConversationPriority(input: {{conversationId: $c, priority: $p}}) {{
  conversation {{ id priority }} {ERRORS} }} }}"""
LABEL = f"""mutation($c: ID!, $l: [ID!]!) {{ labelConversation(input: {{conversationId: $c, labelIds: $l}}) {{
  conversation {{ id labels {{ id name }} }} {ERRORS} }} }}"""
UNLABEL = f"""mutation($c: ID!, $l: [ID!]!) {{ unlabelConversation(input: {{conversationId: $c, labelIds: $l}}) {{
  conversation {{ id labels {{ id name }} }} {ERRORS} }} }}"""
MARK_READ = f"""mutation($c: ID!) {{ markConversationRead(input: {{conversationId: $c}}) {{ conversation {{ id unreadCount }} {ERRORS} }} }}"""
CREATE_LABEL = f"""mutation($b: ID!, $name: String!, $color: String) {{
  createConversationLabel(input: {{brandId: $b, name: $name, color: $color}}) {{ label {{ id name color }} {ERRORS} }} }}"""
LABELS = "query($b: ID!) { conversationLabels(brandId: $b) { id name color } }"
CANNED_FIELDS = "id shortcode title body createdBy updatedAt"
CREATE_CANNED = f"""mutation($i: CannedResponseInput!) {{ createCannedResponse(input: $i) {{
  cannedResponse {{ {CANNED_FIELDS} }} {ERRORS} }} }}"""
UPDATE_CANNED = f"""mutation($i: UpdateCannedResponseInput!) {{ updateCannedResponse(input: $i) {{
  cannedResponse {{ {CANNED_FIELDS} }} {ERRORS} }} }}"""
DELETE_CANNED = f"""mutation($id: ID!) {{ deleteCannedResponse(input: {{id: $id}}) {{ deletedId {ERRORS} }} }}"""
CANNED = f"query($b: ID!, $q: String) {{ cannedResponses(brandId: $b, search: $q) {{ {CANNED_FIELDS} }} }}"
RENDER = "query($r: ID!, $c: ID!) { renderCannedResponse(cannedResponseId: $r, conversationId: $c) }"
SET_CONSENT = """mutation($i: SetConsentInput!) { setConsent(input: $i) { errors { field code message } } }"""


# --- helpers -------------------------------------------------------------------------------


def uid(global_id: str) -> uuid.UUID:
    """The UUID inside a global id."""
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


async def email_brand(t: TenantFixture, fakes: Any, brand: str = "a", token: str = TOKEN) -> None:
    """The brand's identity (news@<brand>.example.test) and Brevo (the session fake) for e-mail."""
    await identity(t, brand)
    await use_provider(t, brand, "email", "brevo", credentials={"apiKey": fakes.brevo.api_key, "webhookToken": token})


async def sms_brand(t: TenantFixture, fakes: Any, brand: str = "a", auth_token: str | None = None) -> None:
    await identity(t, brand)
    await use_provider(t, brand, "sms", "twilio", credentials={"accountSid": fakes.twilio.account_sid,
                                                               "authToken": auth_token or fakes.twilio.auth_token})


async def inbox(api: Api, t: TenantFixture, brand: str = "a", token: str | None = None, **filters: Any) -> list[dict]:
    data = await api.data(INBOX, {"b": t.brand_gid(brand), **filters}, token=token or t.owner_token)
    return [e["node"] for e in data["conversations"]["edges"]]


async def conversation(api: Api, t: TenantFixture, conv_id: str, token: str | None = None) -> dict[str, Any]:
    return (await api.data(CONVERSATION, {"id": conv_id}, token=token or t.owner_token))["conversation"]


async def counts(api: Api, t: TenantFixture, brand: str = "a", token: str | None = None) -> dict[str, int]:
    return (await api.data(COUNTS, {"b": t.brand_gid(brand)}, token=token or t.owner_token))["conversationCounts"]


async def mutate(api: Api, doc: str, variables: dict[str, Any], token: str, ok: bool = True) -> dict[str, Any]:
    data = await api.data(doc, variables, token=token)
    [result] = data.values()
    if ok:
        assert result["errors"] == [], result
    return result


async def reply(api: Api, t: TenantFixture, conv_id: str, body: str, key: str | None = None,
                token: str | None = None) -> dict[str, Any]:
    return await mutate(api, REPLY, {"i": {"conversationId": conv_id, "body": body,
                                           "idempotencyKey": key or uuid.uuid4().hex}}, token or t.owner_token)


def sent_to(fake: Any, address: str) -> list[Any]:
    return [m for m in list(fake.messages) if m.to == address]


async def new_email_conversation(api: Api, t: TenantFixture, sender: str | None = None, **item: Any) -> dict[str, Any]:
    """An inbound e-mail starting a conversation; returns the conversation (GraphQL)."""
    sender = sender or f"c-{uuid.uuid4().hex[:8]}@cust.example"
    subject = item.pop("subject", f"Subject {uuid.uuid4().hex[:6]}")
    r = await post_email(api.base_url, t, email_item(sender, subject=subject, **item))
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    found = [c for c in await inbox(api, t, search=subject) if c["subject"] == subject]
    assert len(found) == 1, found
    return found[0]


# --- the first test: one inbound e-mail, dedupe, a bad token, a reply ----------------------------


async def test_inbound_email_thread_and_reply(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": fakes.brevo.api_key, "webhookToken": TOKEN})
    url = f"{api.base_url}/webhooks/brevo/inbound/{tenant.id}/{tenant.brands['a']}"
    first = {"items": [{"Uuid": [str(uuid.uuid4())], "MessageId": "<m1@mail.example>", "From": {"Name": "Ann Lee",
             "Address": "Ann@Example.test"}, "To": [{"Address": "support@a.example.test"}], "Subject": "Where is my order?",
             "RawTextBody": "Hello, where is it?", "Headers": {}}]}
    async with httpx.AsyncClient() as http:
        r = await http.post(url, content=json.dumps(first), headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["created"] == 1, r.text
        again = await http.post(url, content=json.dumps(first), headers={"Authorization": f"Bearer {TOKEN}"})
        assert again.json()["created"] == 0
        bad = await http.post(url, content=json.dumps(first), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
    inbox = await api.data("""query($b: ID!) { conversations(brandId: $b) { edges { node { id status subject messageCount
        unreadCount customer { email } lastMessage { body } } } } conversationCounts(brandId: $b) { open unread } }""",
                           {"b": tenant.brand_gid("a")}, token=tenant.owner_token)
    [edge] = inbox["conversations"]["edges"]
    conv = edge["node"]
    assert conv["customer"]["email"] == "ann@example.test" and conv["unreadCount"] == 1 and conv["messageCount"] == 1
    reply = await api.data("""mutation($i: ReplyToConversationInput!) { replyToConversation(input: $i) {
        message { id deliveryStatus } errors { field code message } } }""",
                           {"i": {"conversationId": conv["id"], "body": "It ships today", "idempotencyKey": "r1"}},
                           token=tenant.owner_token)
    assert reply["replyToConversation"]["errors"] == []

    for _ in range(100):
        got = [m for m in fakes.brevo.messages if m.to == "ann@example.test"]
        if got:
            break
        await asyncio.sleep(0.05)
    assert len(got) == 1 and got[0].subject == "Re: Where is my order?"
    assert got[0].headers.get("In-Reply-To") == "<m1@mail.example>"


# --- e-mail threads -----------------------------------------------------------------------------


async def test_three_message_email_thread_with_our_reply_in_the_middle(
    api: Api, tenant: TenantFixture, worker, fakes
) -> None:
    """The customer writes; we answer (Message-ID <m.<id>@a.example.test>, In-Reply-To and
    References the customer's); the customer answers our reply, then their own message: one
    conversation of four messages. A message naming no known Message-ID starts another one."""
    await email_brand(tenant, fakes)
    address = f"thread-{uuid.uuid4().hex[:8]}@cust.example"
    m1, m2, m3 = (f"<{n}.{uuid.uuid4().hex}@cust.example>" for n in ("one", "two", "three"))
    r = await post_email(api.base_url, tenant, email_item(address, subject="Broken zipper", text="first", message_id=m1,
                                                          name="Zoe Quinn"))
    assert r.json()["created"] == 1, r.text
    [conv] = await inbox(api, tenant)
    cid = conv["id"]
    assert (conv["customer"]["email"], conv["customer"]["firstName"], conv["customer"]["lastName"]) == (
        address, "Zoe", "Quinn")

    # our reply, sent by the worker through Brevo
    sent = await reply(api, tenant, cid, "Send it back to us")
    mid = uuid.UUID(GlobalID.from_id(sent["message"]["id"]).node_id)
    assert sent["message"]["deliveryStatus"] == "QUEUED"
    [out] = await until(lambda: sent_to(fakes.brevo, address), "the reply at Brevo")
    assert out.subject == "Re: Broken zipper" and out.text == "Send it back to us"
    assert out.headers["In-Reply-To"] == m1 and out.headers["References"] == m1
    assert out.key == f"m.{mid.hex}"
    ours = f"<m.{mid.hex}@a.example.test>"

    async def stored_header() -> bool:
        found = await conversation(api, tenant, cid)
        return any(e["node"]["messageIdHeader"] == ours and e["node"]["deliveryStatus"] == "SENT"
                   for e in found["messages"]["edges"])

    await until(stored_header, "the reply marked sent with its Message-ID")

    # the customer answers our reply, naming our Message-ID
    r = await post_email(api.base_url, tenant, email_item(address, subject="Re: Broken zipper", text="second",
                                                          message_id=m2, in_reply_to=ours, references=[m1, ours]))
    assert r.json()["created"] == 1, r.text
    # and then their own second message (In-Reply-To their own, References the whole chain)
    r = await post_email(api.base_url, tenant, email_item(address, subject="Re: Broken zipper", text="third",
                                                          message_id=m3, in_reply_to=m2, references=[m1, ours, m2]))
    assert r.json()["created"] == 1, r.text

    [only] = await inbox(api, tenant)
    assert only["id"] == cid and only["messageCount"] == 4 and only["unreadCount"] == 3, only
    found = await conversation(api, tenant, cid)
    messages = [e["node"] for e in found["messages"]["edges"]]
    assert [(m["direction"], m["body"]) for m in messages] == [
        ("INBOUND", "first"), ("OUTBOUND", "Send it back to us"), ("INBOUND", "second"), ("INBOUND", "third")]
    assert [m["messageIdHeader"] for m in messages] == [m1, ours, m2, m3]
    assert [m["inReplyTo"] for m in messages] == [None, None, ours, m2]
    assert messages[3]["references"] == [m1, ours, m2]
    assert found["lastMessage"]["body"] == "third"

    # a reply now answers the customer's latest message, with the whole chain
    await reply(api, tenant, cid, "Got it")
    second = await until(lambda: [m for m in sent_to(fakes.brevo, address) if m.text == "Got it"], "the second reply")
    assert second[0].headers["In-Reply-To"] == m3
    assert second[0].headers["References"].split() == [m1, ours, m2, m3]

    # control: the same customer writing without naming a known message starts a new conversation
    r = await post_email(api.base_url, tenant, email_item(address, subject="Another question", text="new topic",
                                                          in_reply_to="<unknown@cust.example>"))
    assert r.json()["created"] == 1
    both = await inbox(api, tenant)
    assert len(both) == 2 and both[0]["subject"] == "Another question" and both[0]["id"] != cid
    assert both[0]["customer"]["id"] == only["customer"]["id"]


async def test_new_customer_is_created_and_an_existing_one_matched(api: Api, tenant: TenantFixture) -> None:
    from sqlalchemy import text

    from domain.customers.service import upsert_customer
    from domain.platform.db import tenant_session

    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    known, _ = await upsert_customer(tenant.owner, {"email": "known@cust.example", "first_name": "Kim"},
                                     brand_id=tenant.brands["b"])

    async def customer_count() -> int:
        async with tenant_session(tenant.id) as s:
            return await s.scalar(text("SELECT count(*) FROM customers WHERE tenant_id = :t"), {"t": tenant.id})

    assert await customer_count() == 1
    r = await post_email(api.base_url, tenant, email_item("New.Person@Cust.Example", name="Nia Obi", subject="New"),
                         email_item("KNOWN@cust.example", name="Someone Else", subject="Known"))
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    assert await customer_count() == 2  # one new, one matched

    convs = {c["subject"]: c for c in await inbox(api, tenant)}
    new = convs["New"]["customer"]
    assert (new["email"], new["firstName"], new["lastName"]) == ("new.person@cust.example", "Nia", "Obi")
    assert [(b["source"], b["brand"]["id"]) for b in new["brands"]] == [("message", tenant.brand_gid("a"))]
    matched = convs["Known"]["customer"]
    assert matched["id"] == gid("Customer", known.id)
    assert matched["firstName"] == "Kim"  # the sender's display name does not overwrite the profile
    assert sorted((b["source"], b["brand"]["id"]) for b in matched["brands"]) == sorted(
        [("api", tenant.brand_gid("b")), ("message", tenant.brand_gid("a"))])

    # the timeline: the new customer was created from a message, and both wrote one
    async with tenant_session(tenant.id) as s:
        rows = (await s.execute(text("SELECT customer_id, kind FROM timeline_events WHERE tenant_id = :t"),
                                {"t": tenant.id})).all()
    kinds = {(str(c), k) for c, k in rows}
    assert (str(uid(new["id"])), "customer_created") in kinds, kinds
    assert (str(uid(new["id"])), "conversation_message") in kinds and (str(known.id), "conversation_message") in kinds


# --- SMS through Twilio -------------------------------------------------------------------------


async def test_inbound_sms_twiml_signature_dedupe_reply_and_delivery(
    api: Api, tenant: TenantFixture, worker, fakes
) -> None:
    await sms_brand(tenant, fakes)
    token = fakes.twilio.auth_token
    number = phone()
    first = sms_params(number, "Is my order shipped?")

    bad = await post_sms(api.base_url, tenant, first, "not-the-auth-token-0123")
    assert bad.status_code == 401
    unsigned = await post_sms(api.base_url, tenant, first, None)
    assert unsigned.status_code == 401
    other_url = await post_sms(api.base_url, tenant, first, token,
                               signed_url=api.base_url + inbound_path("twilio", tenant, "b"))
    assert other_url.status_code == 401
    assert await inbox(api, tenant) == []

    ok = await post_sms(api.base_url, tenant, first, token)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/xml"), ok.text
    assert ok.text.startswith("<?xml") and "<Response></Response>" in ok.text
    again = await post_sms(api.base_url, tenant, first, token)  # Twilio retried
    assert again.status_code == 200 and "<Response>" in again.text
    [conv] = await inbox(api, tenant)
    assert conv["channel"] == "SMS" and conv["messageCount"] == 1 and conv["customer"]["phone"] == number
    assert conv["startedBy"] == "CUSTOMER" and conv["lastMessage"]["body"] == "Is my order shipped?"

    # a second SMS from the same number joins the conversation
    await post_sms(api.base_url, tenant, sms_params(number, "Hello?"), token)
    [conv] = await inbox(api, tenant)
    assert conv["messageCount"] == 2

    # the reply goes out through Twilio, then Twilio's status callback says delivered
    sent = await reply(api, tenant, conv["id"], "Yes, yesterday")
    [out] = await until(lambda: sent_to(fakes.twilio, number), "the reply at Twilio")
    assert out.text == "Yes, yesterday" and out.sender == "+15550000000"
    assert out.headers["StatusCallback"] == f"{api.base_url}/webhooks/twilio/{tenant.id}/{tenant.brands['a']}"

    async def status() -> str | None:
        found = await conversation(api, tenant, conv["id"])
        return next(e["node"]["deliveryStatus"] for e in found["messages"]["edges"]
                    if e["node"]["id"] == sent["message"]["id"])

    await until(lambda: _is(status(), "SENT"), "the reply marked sent")
    callback = {"AccountSid": fakes.twilio.account_sid, "ApiVersion": "2010-04-01", "From": "+15550000000",
                "MessageSid": out.provider_message_id, "SmsSid": out.provider_message_id, "To": number}
    bad_event = await post_event(api, "twilio", tenant, "a", form={**callback, "MessageStatus": "delivered"},
                                 token="not-the-auth-token-0123")
    assert bad_event.status_code == 401 and await status() == "SENT"
    r = await post_event(api, "twilio", tenant, "a", form={**callback, "MessageStatus": "delivered"}, token=token)
    assert r.status_code == 200 and r.json()["changed"] == 1, r.text
    assert await status() == "DELIVERED"
    again = await post_event(api, "twilio", tenant, "a", form={**callback, "MessageStatus": "delivered"}, token=token)
    assert again.json()["changed"] == 0


async def _is(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def test_email_reply_delivered_through_a_brevo_event(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await email_brand(tenant, fakes)
    conv = await new_email_conversation(api, tenant)
    address = conv["customer"]["email"]
    sent = await reply(api, tenant, conv["id"], "On its way")
    mid = sent["message"]["id"]
    [out] = await until(lambda: sent_to(fakes.brevo, address), "the reply at Brevo")

    async def status() -> str | None:
        found = await conversation(api, tenant, conv["id"])
        return next(e["node"] for e in found["messages"]["edges"] if e["node"]["id"] == mid)

    await until(lambda: _field(status(), "deliveryStatus", "SENT"), "SENT")
    event = {"event": "delivered", "email": address, "id": 1, "date": "2024-05-01 10:00:00",
             "ts_event": int(time.time()), "message-id": out.provider_message_id,
             "X-Mailin-custom": out.headers["X-Mailin-custom"], "tags": []}
    assert json.loads(out.headers["X-Mailin-custom"])["bg_key"] == f"m.{uuid.UUID(GlobalID.from_id(mid).node_id).hex}"
    refused = await post_event(api, "brevo", tenant, "a", json_body=event, token="wrong-token-wrong-token")
    assert refused.status_code == 401
    wrong_brand = await post_event(api, "brevo", tenant, "a", json_body=event, token=TOKEN,
                                   brand_id=tenant.brands["b"])
    assert wrong_brand.status_code == 401  # brand b has no Brevo configuration
    assert (await status())["deliveryStatus"] == "SENT"
    r = await post_event(api, "brevo", tenant, "a", json_body=event, token=TOKEN)
    assert r.status_code == 200 and r.json()["changed"] == 1, r.text
    found = await status()
    assert found["deliveryStatus"] == "DELIVERED" and found["deliveredAt"] is not None


async def _field(value: Any, key: str, expected: Any) -> bool:
    return (await value)[key] == expected


# --- replies: idempotency, notes, starting a conversation ----------------------------------------


async def test_reply_idempotency_key_sends_once(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await email_brand(tenant, fakes)
    conv = await new_email_conversation(api, tenant)
    address = conv["customer"]["email"]
    first = await reply(api, tenant, conv["id"], "Once only", key="same-key")
    again = await reply(api, tenant, conv["id"], "Once only", key="same-key")
    assert again["message"]["id"] == first["message"]["id"]
    assert again["conversation"]["messageCount"] == 2  # the inbound message and one reply
    other = await reply(api, tenant, conv["id"], "A second answer", key="other-key")
    assert other["message"]["id"] != first["message"]["id"]
    await until(lambda: len(sent_to(fakes.brevo, address)) >= 2, "both replies at Brevo")
    await asyncio.sleep(0.5)
    assert sorted(m.text for m in sent_to(fakes.brevo, address)) == ["A second answer", "Once only"]
    found = await conversation(api, tenant, conv["id"])
    assert found["messageCount"] == 3 and len(found["messages"]["edges"]) == 3


async def test_private_note_is_never_sent(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await email_brand(tenant, fakes)
    conv = await new_email_conversation(api, tenant)
    address = conv["customer"]["email"]
    _, agent = await tenant.member("agent")
    note = await mutate(api, NOTE, {"c": conv["id"], "body": "VIP, be nice"}, agent)
    assert note["message"]["kind"] == "NOTE" and note["message"]["direction"] == "OUTBOUND"
    assert note["message"]["authorType"] == "USER" and note["message"]["deliveryStatus"] is None
    # control: a reply after the note goes out; the note never does
    await reply(api, tenant, conv["id"], "Hello from support", token=agent)
    await until(lambda: sent_to(fakes.brevo, address), "the reply at Brevo")
    await asyncio.sleep(0.5)
    assert [m.text for m in sent_to(fakes.brevo, address)] == ["Hello from support"]
    assert not any("VIP, be nice" in (m.text or "") + (m.html or "") for m in list(fakes.brevo.messages))
    found = await conversation(api, tenant, conv["id"])
    kinds = [(e["node"]["kind"], e["node"]["body"]) for e in found["messages"]["edges"]]
    assert kinds == [("MESSAGE", conv["lastMessage"]["body"]), ("NOTE", "VIP, be nice"),
                     ("MESSAGE", "Hello from support")]
    assert found["lastMessage"]["body"] == "Hello from support"
    assert found["messageCount"] == 2  # notes are not messages to the customer
    # a note is not a message the customer wrote: nobody has more to read because of it
    await mutate(api, MARK_READ, {"c": conv["id"]}, agent)
    await mutate(api, NOTE, {"c": conv["id"], "body": "second note"}, tenant.owner_token)
    assert (await conversation(api, tenant, conv["id"], token=agent))["unreadCount"] == 0


async def test_start_conversation_needs_consent(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    from domain.customers.service import upsert_customer

    await email_brand(tenant, fakes)
    address = f"start-{uuid.uuid4().hex[:8]}@cust.example"
    customer, _ = await upsert_customer(tenant.owner, {"email": address, "first_name": "Sam"},
                                        brand_id=tenant.brands["a"])
    start = {"brandId": tenant.brand_gid("a"), "customerId": gid("Customer", customer.id), "channel": "EMAIL",
             "subject": "Your order", "body": "We have news", "idempotencyKey": "start-1"}
    refused = await mutate(api, START, {"i": start}, tenant.owner_token, ok=False)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("input.customerId", "FORBIDDEN")], refused
    assert refused["conversation"] is None and await inbox(api, tenant) == []
    # consent for SMS is not consent for e-mail
    for channel in ("SMS", "EMAIL"):
        r = await api.data(SET_CONSENT, {"i": {"customerId": gid("Customer", customer.id),
                                               "brandId": tenant.brand_gid("a"), "channel": channel, "granted": True}},
                           token=tenant.owner_token)
        assert r["setConsent"]["errors"] == []
        if channel == "SMS":
            again = await mutate(api, START, {"i": start}, tenant.owner_token, ok=False)
            assert [e["code"] for e in again["errors"]] == ["FORBIDDEN"]
    ok = await mutate(api, START, {"i": start}, tenant.owner_token)
    assert ok["conversation"]["startedBy"] == "USER" and ok["conversation"]["channel"] == "EMAIL"
    assert ok["message"]["deliveryStatus"] == "QUEUED"
    same = await mutate(api, START, {"i": start}, tenant.owner_token)
    assert same["conversation"]["id"] == ok["conversation"]["id"] and same["message"]["id"] == ok["message"]["id"]
    [out] = await until(lambda: sent_to(fakes.brevo, address), "the first message at Brevo")
    assert out.subject == "Your order" and out.text == "We have news"
    await asyncio.sleep(0.3)
    assert len(sent_to(fakes.brevo, address)) == 1
    cid = ok["conversation"]["id"]
    assert [c["id"] for c in await inbox(api, tenant)] == [cid]

    # consent withdrawn: no further message until the customer writes back
    r = await api.data(SET_CONSENT, {"i": {"customerId": gid("Customer", customer.id), "brandId": tenant.brand_gid("a"),
                                           "channel": "EMAIL", "granted": False}}, token=tenant.owner_token)
    assert r["setConsent"]["errors"] == []
    refused = await mutate(api, REPLY, {"i": {"conversationId": cid, "body": "More news", "idempotencyKey": "r-1"}},
                           tenant.owner_token, ok=False)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("input.conversationId", "FORBIDDEN")], refused
    ours = f"<m.{uuid.UUID(GlobalID.from_id(ok['message']['id']).node_id).hex}@a.example.test>"

    async def header_stored() -> bool:
        found = await conversation(api, tenant, cid)
        return found["messages"]["edges"][0]["node"]["messageIdHeader"] == ours

    await until(header_stored, "the first message's Message-ID")
    r = await post_email(api.base_url, tenant, email_item(address, subject="Re: Your order", text="Tell me more",
                                                          in_reply_to=ours, references=[ours]))
    assert r.json()["created"] == 1
    [conv] = await inbox(api, tenant)
    assert conv["id"] == cid and conv["messageCount"] == 2 and conv["lastMessage"]["body"] == "Tell me more"
    await reply(api, tenant, cid, "More news", key="r-1")  # the customer wrote back: answering is allowed
    await until(lambda: len(sent_to(fakes.brevo, address)) == 2, "the answer at Brevo")


# --- status: snooze, wake, reopen ----------------------------------------------------------------


async def test_snooze_wake_and_reopen_on_new_inbound(api: Api, tenant: TenantFixture) -> None:
    from domain.conversations.service import wake_snoozed

    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    first_id = "<snooze-1@cust.example>"
    conv = await new_email_conversation(api, tenant, sender="snoozer@cust.example", message_id=first_id)
    cid, token = conv["id"], tenant.owner_token

    past = await mutate(api, SNOOZE, {"c": cid, "until": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()},
                        token, ok=False)
    assert [(e["field"], e["code"]) for e in past["errors"]] == [("input.until", "INVALID")], past
    assert (await conversation(api, tenant, cid))["status"] == "OPEN"

    until_at = datetime.now(UTC) + timedelta(seconds=1.5)
    snoozed = await mutate(api, SNOOZE, {"c": cid, "until": until_at.isoformat()}, token)
    assert snoozed["conversation"]["status"] == "SNOOZED"
    assert datetime.fromisoformat(snoozed["conversation"]["snoozedUntil"]) == until_at
    assert (await counts(api, tenant))["snoozed"] == 1
    assert await wake_snoozed(tenant.id) == 0  # not yet
    assert (await conversation(api, tenant, cid))["status"] == "SNOOZED"
    await asyncio.sleep(max(0.0, (until_at - datetime.now(UTC)).total_seconds()) + 0.1)
    assert await wake_snoozed(tenant.id) == 1
    woken = await conversation(api, tenant, cid)
    assert woken["status"] == "OPEN" and woken["snoozedUntil"] is None
    assert await wake_snoozed(tenant.id) == 0

    # snoozed for an hour, the customer writes again: open at once
    await mutate(api, SNOOZE, {"c": cid, "until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, token)
    await post_email(api.base_url, tenant, email_item("snoozer@cust.example", text="any news?", in_reply_to=first_id))
    found = await conversation(api, tenant, cid)
    assert (found["status"], found["snoozedUntil"], found["messageCount"]) == ("OPEN", None, 2)

    # resolved, the customer writes again: open again
    resolved = await mutate(api, STATUS, {"c": cid, "s": "RESOLVED"}, token)
    assert resolved["conversation"]["status"] == "RESOLVED" and resolved["conversation"]["resolvedAt"] is not None
    refused = await mutate(api, SNOOZE, {"c": cid, "until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
                           token, ok=False)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("input.conversationId", "INVALID_STATE")]
    await post_email(api.base_url, tenant, email_item("snoozer@cust.example", text="hello again",
                                                      references=[first_id]))
    found = await conversation(api, tenant, cid)
    assert (found["status"], found["resolvedAt"], found["messageCount"]) == ("OPEN", None, 3)
    assert len(await inbox(api, tenant)) == 1


# --- campaign attribution -----------------------------------------------------------------------


def _campaign_uuid(campaign_gid: str) -> uuid.UUID:
    return uid(campaign_gid)


async def test_email_reply_to_a_campaign_is_attributed(api: Api, tenant: TenantFixture, worker) -> None:
    await identity(tenant)
    segment, (customer_id, other_id) = await audience(tenant, 2)
    await use_provider(tenant, "a", "email", "log")
    campaign = await create(api, tenant, segment)
    await launch(api, tenant, campaign)
    await wait_status(api, tenant, campaign)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    from sqlalchemy import select

    from domain.customers.models import Customer
    from domain.platform.db import tenant_session

    async with tenant_session(tenant.id) as s:
        emails = dict((await s.execute(select(Customer.id, Customer.email).where(
            Customer.tenant_id == tenant.id, Customer.id.in_([customer_id, other_id])))).all())
    chex = _campaign_uuid(campaign).hex
    ref = f"<c.{chex}.{customer_id.hex}@a.example.test>"
    r = await post_email(api.base_url, tenant, email_item(emails[customer_id], subject="Re: Hello P0", in_reply_to=ref,
                                                          references=[ref]))
    assert r.json()["created"] == 1
    # controls: a campaign id that was never sent, and this campaign with a customer who never got it
    fake = f"<c.{uuid.uuid4().hex}.{other_id.hex}@a.example.test>"
    forged = f"<c.{chex}.{uuid.uuid4().hex}@a.example.test>"
    await post_email(api.base_url, tenant, email_item(emails[other_id], subject="Re: forged", in_reply_to=fake,
                                                      references=[forged]))
    convs = {c["subject"]: c for c in await inbox(api, tenant)}
    assert convs["Re: Hello P0"]["campaign"] == {"id": campaign}
    assert convs["Re: Hello P0"]["customer"]["id"] == gid("Customer", customer_id)
    assert convs["Re: forged"]["campaign"] is None


async def test_sms_reply_after_an_sms_campaign_is_attributed(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    await sms_brand(tenant, fakes)
    prefix = uuid.uuid4().hex[:6]
    segment, (customer_id,) = await audience(tenant, 1, channel="sms", prefix=prefix)
    campaign = await create(api, tenant, segment, channel="SMS")
    await launch(api, tenant, campaign)
    await wait_status(api, tenant, campaign)
    number = "+15550000000"  # the audience's first customer
    r = await post_sms(api.base_url, tenant, sms_params(number, "STOPP? no, tell me more"), fakes.twilio.auth_token)
    assert r.status_code == 200
    stranger = phone()
    await post_sms(api.base_url, tenant, sms_params(stranger, "who is this"), fakes.twilio.auth_token)
    convs = {c["customer"]["phone"]: c for c in await inbox(api, tenant)}
    assert convs[number]["campaign"] == {"id": campaign}
    assert convs[number]["customer"]["id"] == gid("Customer", customer_id)
    assert convs[stranger]["campaign"] is None


# --- unread state per user ------------------------------------------------------------------------


async def test_unread_counts_are_per_user(api: Api, tenant: TenantFixture) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    _, ann = await tenant.member("agent")
    _, bob = await tenant.member("agent", brands=["a"])
    first_id = "<unread-1@cust.example>"
    conv = await new_email_conversation(api, tenant, sender="reader@cust.example", message_id=first_id)
    cid = conv["id"]
    quiet = await new_email_conversation(api, tenant)
    await mutate(api, MARK_READ, {"c": quiet["id"]}, ann)
    await mutate(api, MARK_READ, {"c": quiet["id"]}, bob)

    for token in (ann, bob):
        assert (await conversation(api, tenant, cid, token))["unreadCount"] == 1
        assert [c["id"] for c in await inbox(api, tenant, token=token, unread=True)] == [cid]
        assert (await counts(api, tenant, token=token))["unread"] == 1

    read = await mutate(api, MARK_READ, {"c": cid}, ann)
    assert read["conversation"]["unreadCount"] == 0
    assert (await conversation(api, tenant, cid, ann))["unreadCount"] == 0
    assert await inbox(api, tenant, token=ann, unread=True) == []
    assert (await counts(api, tenant, token=ann))["unread"] == 0
    assert (await conversation(api, tenant, cid, bob))["unreadCount"] == 1
    assert [c["id"] for c in await inbox(api, tenant, token=bob, unread=True)] == [cid]
    assert (await counts(api, tenant, token=bob))["unread"] == 1

    # our reply does not make anything unread; the customer's next message does
    await reply(api, tenant, cid, "Thanks", token=bob)
    assert (await conversation(api, tenant, cid, ann))["unreadCount"] == 0
    await post_email(api.base_url, tenant, email_item("reader@cust.example", text="more", in_reply_to=first_id))
    assert (await conversation(api, tenant, cid, ann))["unreadCount"] == 1
    assert (await conversation(api, tenant, cid, bob))["unreadCount"] == 2
    assert [c["id"] for c in await inbox(api, tenant, token=ann, unread=True)] == [cid]
    # a resolved conversation is not counted unread in the tabs, though its messages are
    await mutate(api, STATUS, {"c": cid, "s": "RESOLVED"}, tenant.owner_token)
    assert (await counts(api, tenant, token=bob))["unread"] == 0


# --- assignment, labels, priority, status filters, search, pagination ------------------------------


async def test_assignment_to_members_with_access_to_the_brand(api: Api, tenant: TenantFixture) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    conv = await new_email_conversation(api, tenant)
    other = await new_email_conversation(api, tenant)
    cid = conv["id"]
    a_agent, a_token = await tenant.member("agent", brands=["a"])
    b_agent, _ = await tenant.member("agent", brands=["b"])
    admin, _ = await tenant.member("admin")

    refused = await mutate(api, ASSIGN, {"c": cid, "a": gid("Member", b_agent)}, tenant.owner_token, ok=False)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("input.assigneeId", "NOT_FOUND")], refused
    nobody = await mutate(api, ASSIGN, {"c": cid, "a": gid("Member", uuid.uuid4())}, tenant.owner_token, ok=False)
    assert [(e["field"], e["code"]) for e in nobody["errors"]] == [("input.assigneeId", "NOT_FOUND")]
    assert (await conversation(api, tenant, cid))["assignee"] is None

    done = await mutate(api, ASSIGN, {"c": cid, "a": gid("Member", a_agent)}, a_token)  # an agent takes it
    assert done["conversation"]["assignee"]["memberId"] == gid("Member", a_agent)
    assert done["conversation"]["assignee"]["id"] == gid("ConversationAssignee", a_agent)
    assert done["conversation"]["assignee"]["email"].startswith("agent-")
    assert [c["id"] for c in await inbox(api, tenant, assignee=gid("Member", a_agent))] == [cid]
    assert [c["id"] for c in await inbox(api, tenant, unassigned=True)] == [other["id"]]
    assert (await counts(api, tenant))["unassigned"] == 1
    await mutate(api, ASSIGN, {"c": other["id"], "a": gid("Member", admin)}, tenant.owner_token)  # every brand
    assert (await counts(api, tenant))["unassigned"] == 0
    cleared = await mutate(api, ASSIGN, {"c": cid, "a": None}, tenant.owner_token)
    assert cleared["conversation"]["assignee"] is None
    assert [c["id"] for c in await inbox(api, tenant, unassigned=True)] == [cid]


async def test_labels_priority_status_filters_search_and_pagination(api: Api, tenant: TenantFixture) -> None:
    from domain.customers.service import upsert_customer

    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    await upsert_customer(tenant.owner, {"email": "ola@cust.example", "first_name": "Ola", "last_name": "Nordmann"})
    convs = []
    for sender, subject in [("ola@cust.example", "Refund please"), (None, "Size question"),
                            (None, "Broken zipper"), (None, "Invoice 100%_off"), (None, "Hello")]:
        convs.append(await new_email_conversation(api, tenant, sender=sender, subject=subject))
    ids = [c["id"] for c in convs]
    token = tenant.owner_token

    # labels
    vip = (await mutate(api, CREATE_LABEL, {"b": tenant.brand_gid("a"), "name": "VIP", "color": "#10b981"},
                        token))["label"]
    late = (await mutate(api, CREATE_LABEL, {"b": tenant.brand_gid("a"), "name": "Late"}, token))["label"]
    assert vip["color"] == "#10b981" and late["color"] == "#6b7280"
    dup = await mutate(api, CREATE_LABEL, {"b": tenant.brand_gid("a"), "name": "vip"}, token, ok=False)
    assert [(e["field"], e["code"]) for e in dup["errors"]] == [("input.name", "DUPLICATE")]
    bad = await mutate(api, CREATE_LABEL, {"b": tenant.brand_gid("a"), "name": "x", "color": "green"}, token, ok=False)
    assert [e["field"] for e in bad["errors"]] == ["input.color"]
    b_label = (await mutate(api, CREATE_LABEL, {"b": tenant.brand_gid("b"), "name": "VIP"}, token))["label"]
    assert [x["name"] for x in (await api.data(LABELS, {"b": tenant.brand_gid("a")}, token=token))[
        "conversationLabels"]] == ["Late", "VIP"]
    labelled = await mutate(api, LABEL, {"c": ids[0], "l": [vip["id"], late["id"]]}, token)
    assert [x["name"] for x in labelled["conversation"]["labels"]] == ["Late", "VIP"]
    await mutate(api, LABEL, {"c": ids[1], "l": [late["id"]]}, token)
    wrong = await mutate(api, LABEL, {"c": ids[0], "l": [b_label["id"]]}, token, ok=False)  # brand b's label
    assert [(e["field"], e["code"]) for e in wrong["errors"]] == [("input.labelIds[0]", "NOT_FOUND")]
    assert {c["id"] for c in await inbox(api, tenant, labels=[vip["id"]])} == {ids[0]}
    assert {c["id"] for c in await inbox(api, tenant, labels=[late["id"]])} == {ids[0], ids[1]}
    unlabelled = await mutate(api, UNLABEL, {"c": ids[0], "l": [vip["id"]]}, token)
    assert [x["name"] for x in unlabelled["conversation"]["labels"]] == ["Late"]
    assert await inbox(api, tenant, labels=[vip["id"]]) == []

    # priority
    high = await mutate(api, PRIORITY, {"c": ids[2], "p": "HIGH"}, token)
    assert high["conversation"]["priority"] == "HIGH"
    assert (await conversation(api, tenant, ids[2]))["priority"] == "HIGH"
    assert (await conversation(api, tenant, ids[3]))["priority"] == "MEDIUM"

    # status filters and counts
    await mutate(api, STATUS, {"c": ids[1], "s": "PENDING"}, token)
    await mutate(api, STATUS, {"c": ids[2], "s": "RESOLVED"}, token)
    snoozing = await mutate(api, STATUS, {"c": ids[3], "s": "SNOOZED"}, token, ok=False)
    assert [e["field"] for e in snoozing["errors"]] == ["input.status"]
    assert [c["id"] for c in await inbox(api, tenant, status=["PENDING"])] == [ids[1]]
    assert {c["id"] for c in await inbox(api, tenant, status=["OPEN"])} == {ids[0], ids[3], ids[4]}
    assert {c["id"] for c in await inbox(api, tenant, status=["PENDING", "RESOLVED"])} == {ids[1], ids[2]}
    c = await counts(api, tenant)
    assert (c["open"], c["pending"], c["snoozed"], c["resolved"]) == (3, 1, 0, 1)

    # search: subject, customer name, e-mail; LIKE wildcards are literal
    assert [c["id"] for c in await inbox(api, tenant, search="zipper")] == [ids[2]]
    assert [c["id"] for c in await inbox(api, tenant, search="ola nord")] == [ids[0]]
    assert [c["id"] for c in await inbox(api, tenant, search="OLA@cust")] == [ids[0]]
    assert [c["id"] for c in await inbox(api, tenant, search="100%_")] == [ids[3]]
    assert await inbox(api, tenant, search="e%f") == []  # as a LIKE pattern it would match two
    assert await inbox(api, tenant, search="nothing like it") == []

    # keyset pagination, newest activity first, stable while activity moves a thread to the top
    seen, after, pages = [], None, 0
    while True:
        data = await api.data(INBOX, {"b": tenant.brand_gid("a"), "first": 2, "after": after}, token=token)
        page = data["conversations"]
        seen += [e["node"]["id"] for e in page["edges"]]
        pages += 1
        assert len(page["edges"]) <= 2
        if pages == 1:  # activity on a thread already seen does not shift the next pages
            top = await conversation(api, tenant, seen[0])
            await post_email(api.base_url, tenant, email_item(top["customer"]["email"], text="bump", references=[
                top["messages"]["edges"][0]["node"]["messageIdHeader"]]))
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3 and seen == list(reversed(ids)), (seen, ids)
    assert len(await inbox(api, tenant, first=50)) == 5


# --- canned responses ---------------------------------------------------------------------------


async def test_canned_responses_crud_validation_and_rendering(api: Api, tenant: TenantFixture) -> None:
    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    conv = await new_email_conversation(api, tenant, name="Ann Lee")
    _, agent = await tenant.member("agent")
    brand = tenant.brand_gid("a")
    body = "Hi {{ customer.first_name }},\nthanks for writing to {{ brand.name }}."
    made = (await mutate(api, CREATE_CANNED, {"i": {"brandId": brand, "shortcode": "thanks", "title": "Thank you",
                                                     "body": body}}, agent))["cannedResponse"]
    assert (made["shortcode"], made["title"], made["body"]) == ("thanks", "Thank you", body)
    assert made["createdBy"].startswith("agent-")

    unknown = await mutate(api, CREATE_CANNED, {"i": {"brandId": brand, "shortcode": "oops", "title": "Oops",
                                                       "body": "Hello\n{{ customer.nickname }}"}}, agent, ok=False)
    [err] = unknown["errors"]
    assert err["field"] == "input.body" and "line 2" in err["message"] and "nickname" in err["message"], err
    syntax = await mutate(api, CREATE_CANNED, {"i": {"brandId": brand, "shortcode": "oops", "title": "Oops",
                                                      "body": "{% if %}"}}, agent, ok=False)
    assert [e["field"] for e in syntax["errors"]] == ["input.body"]
    dup = await mutate(api, CREATE_CANNED, {"i": {"brandId": brand, "shortcode": "THANKS", "title": "x",
                                                   "body": "x"}}, agent, ok=False)
    assert [(e["field"], e["code"]) for e in dup["errors"]] == [("input.shortcode", "DUPLICATE")]
    blank = await mutate(api, CREATE_CANNED, {"i": {"brandId": brand, "shortcode": "bad code!", "title": "",
                                                     "body": "x"}}, agent, ok=False)
    assert {e["field"] for e in blank["errors"]} == {"input.shortcode", "input.title"}
    other = (await mutate(api, CREATE_CANNED, {"i": {"brandId": brand, "shortcode": "bye", "title": "Goodbye",
                                                      "body": "Bye {{ customer.last_name }}"}}, agent))["cannedResponse"]
    listed = (await api.data(CANNED, {"b": brand}, token=agent))["cannedResponses"]
    assert [x["shortcode"] for x in listed] == ["bye", "thanks"]
    assert [x["shortcode"] for x in (await api.data(CANNED, {"b": brand, "q": "THANK"}, token=agent))[
        "cannedResponses"]] == ["thanks"]
    assert (await api.data(CANNED, {"b": tenant.brand_gid("b")}, token=agent))["cannedResponses"] == []

    rendered = (await api.data(RENDER, {"r": made["id"], "c": conv["id"]}, token=agent))["renderCannedResponse"]
    assert rendered == "Hi Ann,\nthanks for writing to Brand A."
    assert (await api.data(RENDER, {"r": other["id"], "c": conv["id"]}, token=agent))["renderCannedResponse"] == "Bye Lee"

    updated = (await mutate(api, UPDATE_CANNED, {"i": {"id": made["id"], "title": "Thanks!",
                                                        "body": "Dear {{ customer.first_name }}"}}, agent))["cannedResponse"]
    assert (updated["shortcode"], updated["title"], updated["body"]) == ("thanks", "Thanks!", "Dear {{ customer.first_name }}")
    bad_update = await mutate(api, UPDATE_CANNED, {"i": {"id": made["id"], "body": "x\ny\n{{ nope.at_all }}"}}, agent,
                              ok=False)
    assert [e["field"] for e in bad_update["errors"]] == ["input.body"] and "line 3" in bad_update["errors"][0]["message"]
    clash = await mutate(api, UPDATE_CANNED, {"i": {"id": made["id"], "shortcode": "bye"}}, agent, ok=False)
    assert [(e["field"], e["code"]) for e in clash["errors"]] == [("input.shortcode", "DUPLICATE")]
    assert (await api.data(RENDER, {"r": made["id"], "c": conv["id"]}, token=agent))["renderCannedResponse"] == "Dear Ann"

    deleted = await mutate(api, DELETE_CANNED, {"id": made["id"]}, agent)
    assert deleted["deletedId"] == made["id"]
    gone = await mutate(api, DELETE_CANNED, {"id": made["id"]}, agent, ok=False)
    assert [(e["field"], e["code"]) for e in gone["errors"]] == [("input.id", "NOT_FOUND")]
    assert [x["id"] for x in (await api.data(CANNED, {"b": brand}, token=agent))["cannedResponses"]] == [other["id"]]
    body = await api.gql(RENDER, {"r": made["id"], "c": conv["id"]}, token=agent)
    assert [(e["extensions"]["code"], e["extensions"].get("field")) for e in body["errors"]] == [
        ("NOT_FOUND", "cannedResponseId")]


# --- chat -----------------------------------------------------------------------------------------


async def test_receive_chat_message_through_an_api_key_is_idempotent(api: Api, tenant: TenantFixture, fakes) -> None:
    from domain.customers.service import upsert_customer

    customer, _ = await upsert_customer(tenant.owner, {"email": f"chat-{uuid.uuid4().hex[:6]}@cust.example",
                                                       "first_name": "Chad", "last_name": "Chat"},
                                        brand_id=tenant.brands["a"])
    _, key = await tenant.api_key("agent", brands=["a"])
    _, analyst_key = await tenant.api_key("analyst")
    message = {"brandId": tenant.brand_gid("a"), "customerId": gid("Customer", customer.id), "body": "Hi there",
               "idempotencyKey": "chat-1"}
    first = await mutate(api, CHAT, {"i": message}, key)
    assert first["conversation"]["channel"] == "CHAT" and first["conversation"]["startedBy"] == "CUSTOMER"
    assert (first["message"]["direction"], first["message"]["authorType"], first["message"]["body"]) == (
        "INBOUND", "CUSTOMER", "Hi there")
    again = await mutate(api, CHAT, {"i": message}, key)
    assert (again["conversation"]["id"], again["message"]["id"]) == (first["conversation"]["id"], first["message"]["id"])
    assert again["conversation"]["messageCount"] == 1
    second = await mutate(api, CHAT, {"i": {**message, "body": "Anyone?", "idempotencyKey": "chat-2"}}, key)
    assert second["conversation"]["id"] == first["conversation"]["id"] and second["conversation"]["messageCount"] == 2
    refused = await mutate(api, CHAT, {"i": {**message, "idempotencyKey": "chat-3"}}, analyst_key, ok=False)
    assert [e["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    [conv] = await inbox(api, tenant)
    assert conv["id"] == first["conversation"]["id"] and conv["messageCount"] == 2 and conv["unreadCount"] == 2
    assert conv["customer"]["id"] == gid("Customer", customer.id)
    # a chat answer is delivered in the chat: sent at once, nothing goes to a provider
    before = len(fakes.brevo.messages) + len(fakes.twilio.messages)
    answered = await reply(api, tenant, conv["id"], "Hello Chad")
    assert answered["message"]["deliveryStatus"] == "SENT"
    await asyncio.sleep(0.3)
    assert len(fakes.brevo.messages) + len(fakes.twilio.messages) == before


# --- the inbox has no N+1 -------------------------------------------------------------------------

INBOX_PAGE = """query($b: ID!, $n: Int!) { conversations(brandId: $b, first: $n) { edges { node {
  id subject status priority messageCount unreadCount brand { id }
  customer { id email firstName } lastMessage { id body direction } assignee { id email } labels { id name }
} } } }"""


async def test_inbox_page_uses_the_same_statements_for_5_and_50_conversations(api: Api, tenant: TenantFixture) -> None:
    from domain.conversations import inbound, service
    from domain.conversations.labels import change_labels, create_label
    from domain.conversations.replies import add_note
    from domain.delivery.inbound import InboundMessage

    await identity(tenant)
    agents = [(await tenant.member("agent"))[0] for _ in range(3)]
    labels = {side: [await create_label(tenant.owner, tenant.brands[side], f"L{i}", None) for i in range(3)]
              for side in ("a", "b")}
    for side, n in (("a", 5), ("b", 50)):
        for i in range(n):
            m = InboundMessage(channel="email", provider="brevo", provider_message_id=uuid.uuid4().hex,
                               from_address=f"p{i}-{side}-{uuid.uuid4().hex[:4]}@cust.example", to_address=None,
                               received_at=datetime.now(UTC), from_name=f"Person {i}", subject=f"S{i}",
                               text=f"body {i}", message_id=f"<{uuid.uuid4().hex}@cust.example>")
            conv, _, _ = await inbound.store(tenant.id, tenant.brands[side], m)
            await service.assign(tenant.owner, conv.id, agents[i % 3])
            await change_labels(tenant.owner, conv.id, [x.id for x in labels[side][: 1 + i % 3]], [])
            if i % 2:
                await add_note(tenant.owner, conv.id, "a note")

    async def run(side: str) -> tuple[int, list[dict]]:
        body = await api.gql(INBOX_PAGE, {"b": tenant.brand_gid(side), "n": 50}, token=tenant.owner_token)
        assert not body.get("errors"), body
        return body["extensions"]["sqlStatements"], [e["node"] for e in body["data"]["conversations"]["edges"]]

    await warm(api, tenant.owner_token)  # both requests then count their operation's statements alone
    n_small, small = await run("a")
    n_large, large = await run("b")
    assert len(small) == 5 and len(large) == 50
    for node in large:
        assert node["customer"]["email"] and node["lastMessage"]["body"].startswith("body ")
        assert node["assignee"] is not None and node["labels"] and node["unreadCount"] == 1
        assert node["brand"]["id"] == tenant.brand_gid("b")
    assert n_small >= 6  # conversations, customers, last messages, assignees, labels, unread
    assert n_small == n_large, (n_small, n_large)


# --- the live inbox --------------------------------------------------------------------------------

EVENTS = """subscription($b: ID!) { conversationEvents(brandId: $b) { type
  conversation { id status priority assignee { memberId } labels { name } messageCount }
  message { id direction kind body } } }"""


async def test_conversation_events_reach_the_brand_inbox_across_processes(
    api: Api, api_url: str, tenant: TenantFixture, worker, fakes
) -> None:
    from support.ws import Client, bearer

    await email_brand(tenant, fakes)
    proc, api2_url = await asyncio.to_thread(start_api, "api2")
    conns: list[Client] = []
    try:
        probe = await new_email_conversation(api, tenant)
        inbox_a = await Client.open(api_url, bearer(tenant.owner_token))
        inbox_b = await Client.open(api_url, bearer(tenant.owner_token))
        conns = [inbox_a, inbox_b]
        op_a = await inbox_a.subscribe(EVENTS, {"b": tenant.brand_gid("a")})
        op_b = await inbox_b.subscribe(EVENTS, {"b": tenant.brand_gid("b")})

        def events(conn: Client, op: str) -> list[dict[str, Any]]:
            out = []
            for m in conn.messages:
                if m.get("id") == op and m.get("type") == "next":
                    assert not m["payload"].get("errors"), m
                    out.append(m["payload"]["data"]["conversationEvents"])
            return out

        # no acknowledgement for a subscription: change the probe's priority until an event arrives
        deadline = time.monotonic() + 10
        for p in ["HIGH", "LOW"] * 100:
            await mutate(api, PRIORITY, {"c": probe["id"], "p": p}, tenant.owner_token)
            try:
                await until(lambda: [e for e in events(inbox_a, op_a) if e["type"] == "PRIORITY_CHANGED"], "a probe event",
                            within=0.5)
                break
            except AssertionError:
                assert time.monotonic() < deadline, inbox_a.messages
        assert "PRIORITY_CHANGED" in [e["type"] for e in events(inbox_a, op_a)]
        seen = len(events(inbox_a, op_a))

        # a customer's e-mail handled by the SECOND API process
        r = await post_email(api2_url, tenant, email_item("live@cust.example", subject="Live", text="live marker"))
        assert r.status_code == 200 and r.json()["created"] == 1
        created = await until(lambda: [e for e in events(inbox_a, op_a)[seen:] if e["type"] == "MESSAGE_CREATED"],
                              "message_created from the second process")
        assert created[0]["message"]["body"] == "live marker" and created[0]["message"]["direction"] == "INBOUND"
        cid = created[0]["conversation"]["id"]
        assert "CONVERSATION_CREATED" in [e["type"] for e in events(inbox_a, op_a)[seen:]]

        async def next_event(kind: str, action: Callable[[], Any]) -> dict[str, Any]:
            start = len(events(inbox_a, op_a))
            await action()
            found = await until(lambda: [e for e in events(inbox_a, op_a)[start:]
                                         if e["type"] == kind and e["conversation"]["id"] == cid], kind)
            return found[0]

        e = await next_event("MESSAGE_CREATED", lambda: reply(api, tenant, cid, "live answer"))
        assert (e["message"]["direction"], e["message"]["body"]) == ("OUTBOUND", "live answer")
        e = await next_event("STATUS_CHANGED", lambda: mutate(api, STATUS, {"c": cid, "s": "PENDING"},
                                                               tenant.owner_token))
        assert e["conversation"]["status"] == "PENDING"
        member, _ = await tenant.member("agent")
        e = await next_event("ASSIGNED", lambda: mutate(api, ASSIGN, {"c": cid, "a": gid("Member", member)},
                                                         tenant.owner_token))
        assert e["conversation"]["assignee"] == {"memberId": gid("Member", member)}
        label = (await mutate(api, CREATE_LABEL, {"b": tenant.brand_gid("a"), "name": "Live"},
                              tenant.owner_token))["label"]
        e = await next_event("LABELS_CHANGED", lambda: mutate(api, LABEL, {"c": cid, "l": [label["id"]]},
                                                               tenant.owner_token))
        assert e["conversation"]["labels"] == [{"name": "Live"}]

        # brand b's inbox heard none of brand a's events
        await asyncio.sleep(0.3)
        assert events(inbox_b, op_b) == [], inbox_b.messages
    finally:
        for c in conns:
            await c.close()
        await asyncio.to_thread(proc.stop)


async def test_messages_land_on_the_timeline_as_typed_events(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    """A campaign message and a conversation message read as their own timeline types, with
    their campaign and conversation one field away."""
    from support.campaigns import audience, create, launch, wait_status

    await identity(tenant)
    await use_provider(tenant, "a", "email", "log")
    seg, [customer_id] = await audience(tenant, 1)
    campaign = await create(api, tenant, seg)
    await launch(api, tenant, campaign)
    await wait_status(api, tenant, campaign)
    await api.data("""mutation($i: ReceiveChatMessageInput!) { receiveChatMessage(input: $i) { errors { message } } }""",
                   {"i": {"brandId": tenant.brand_gid("a"), "customerId": gid("Customer", customer_id),
                          "body": "Hello there", "idempotencyKey": "chat-1"}}, token=tenant.owner_token)
    body = await api.data("""query($id: ID!) { customer(id: $id) { timeline(first: 20) { edges { node { kind
        ... on CampaignMessageEvent { channel campaign { id name } }
        ... on ConversationMessageEvent { direction conversationChannel: channel excerpt conversation { id channel } }
        } } } } }""",
                          {"id": gid("Customer", customer_id)}, token=tenant.owner_token)
    nodes = [e["node"] for e in body["customer"]["timeline"]["edges"]]
    sent = [n for n in nodes if n["kind"] == "MESSAGE_SENT"]
    chat = [n for n in nodes if n["kind"] == "CONVERSATION_MESSAGE"]
    assert len(sent) == 1 and sent[0]["campaign"]["id"] == campaign and sent[0]["channel"] == "EMAIL", nodes
    assert len(chat) == 1 and chat[0]["direction"] == "INBOUND" and chat[0]["excerpt"] == "Hello there", nodes
    assert chat[0]["conversationChannel"] == chat[0]["conversation"]["channel"] == "CHAT"


async def test_a_person_is_known_to_the_tenant_by_member_id(api: Api, tenant: TenantFixture) -> None:
    """Viewer, audit entries and the assignment audit show the member id, never the person's
    global user id (the same in every tenant the person belongs to)."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    await identity(tenant)
    await use_provider(tenant, "a", "email", "brevo", credentials={"apiKey": "brevo-key-123", "webhookToken": TOKEN})
    conv = await new_email_conversation(api, tenant)
    member_id, token = await tenant.member("agent", brands=["a"])
    async with tenant_session(tenant.id) as s:
        user_id = await s.scalar(text("SELECT user_id FROM memberships WHERE tenant_id = :t AND id = :m"),
                                 {"t": tenant.id, "m": member_id})
    assert user_id != member_id
    viewer = (await api.data("{ viewer { principal { id } memberId } }", token=token))["viewer"]
    assert viewer == {"principal": {"id": gid("Principal", member_id)}, "memberId": gid("Member", member_id)}
    # the agent assigns itself with the id the viewer gave it
    done = await mutate(api, ASSIGN, {"c": conv["id"], "a": viewer["memberId"]}, token)
    assert done["conversation"]["assignee"]["memberId"] == gid("Member", member_id)
    log = (await api.data('{ auditLog(action: "conversation.assign") { edges { node { principalId summary } } } }',
                          token=tenant.owner_token))["auditLog"]["edges"]
    assert [(e["node"]["principalId"], e["node"]["summary"]) for e in log] == [
        (str(member_id), {"assigneeId": str(member_id)})]


# --- a reply whose send was lost in Redis -------------------------------------------------------


async def test_a_reply_stuck_queued_is_sent_again_once(api: Api, tenant: TenantFixture, worker, fakes) -> None:
    """A reply still ``queued`` 15 minutes on (its send lost with Redis's last second) goes out
    again from the periodic sweep, once; a recent one is left alone; a re-send that finds the
    reply already ``sending`` (the first send was not lost) sends nothing."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from domain.conversations.models import Message
    from domain.conversations.sending import requeue_stalled_messages, send_message
    from domain.platform.db import tenant_session

    await email_brand(tenant, fakes)
    sender = f"c-{uuid.uuid4().hex[:8]}@cust.example"
    conv = await new_email_conversation(api, tenant, sender=sender)

    async def write(status: str, age_minutes: int, body: str) -> uuid.UUID:
        mid = uuid.uuid4()
        async with tenant_session(tenant.id) as s:  # the row a reply writes, its send never published
            s.add(Message(tenant_id=tenant.id, id=mid, conversation_id=uid(conv["id"]), direction="outbound",
                          kind="message", author_type="user", body_text=body, delivery_status=status,
                          created_at=datetime.now(UTC) - timedelta(minutes=age_minutes)))
        return mid

    async def status(mid: uuid.UUID) -> str:
        async with tenant_session(tenant.id) as s:
            return await s.scalar(select(Message.delivery_status).where(Message.tenant_id == tenant.id,
                                                                        Message.id == mid))

    lost = await write("queued", 20, "lost in Redis")
    recent = await write("queued", 1, "still on its way")
    under_way = await write("sending", 20, "already sending")

    assert await requeue_stalled_messages(tenant.id) == 1
    await until(lambda: [m for m in sent_to(fakes.brevo, sender) if m.text == "lost in Redis"], "the re-sent reply")
    for _ in range(50):
        if await status(lost) == "sent":
            break
        await asyncio.sleep(0.05)
    assert await status(lost) == "sent"
    assert await requeue_stalled_messages(tenant.id) == 0  # sent now; the recent one not yet due
    assert await status(recent) == "queued"

    from domain.platform import outbox

    probe = await write("queued", 0, "after the re-send")
    async with tenant_session(tenant.id) as s:  # the re-send of a reply already under way, then a probe
        outbox.send(s, send_message, tenant.id, str(under_way), resend=True)
        outbox.send(s, send_message, tenant.id, str(probe), resend=True)
    await until(lambda: [m for m in sent_to(fakes.brevo, sender) if m.text == "after the re-send"], "the probe")
    await asyncio.sleep(0.5)
    texts = [m.text for m in sent_to(fakes.brevo, sender)]
    assert texts.count("lost in Redis") == 1 and "already sending" not in texts and "still on its way" not in texts
    assert await status(under_way) == "sending"


async def test_a_reply_claimed_by_its_re_send_is_not_sent_again_by_its_first_message(
        api: Api, tenant: TenantFixture, fakes, monkeypatch: Any) -> None:
    """The first message of a reply and the sweep's re-send both reach workers; the re-send claims
    the reply first and is still at the provider when the first message arrives: the first gives
    up, and the provider is called once. The claiming message itself, delivered again with the
    reply still ``sending`` (its worker died before marking it), sends it again with the same
    key."""
    import dramatiq
    from dramatiq.middleware import CurrentMessage
    from sqlalchemy import select

    from domain.config import get_settings
    from domain.conversations.models import Message
    from domain.conversations.sending import send_message
    from domain.platform.db import tenant_session

    await email_brand(tenant, fakes)
    sender = f"c-{uuid.uuid4().hex[:8]}@cust.example"
    conv = await new_email_conversation(api, tenant, sender=sender)

    async def write(body: str) -> uuid.UUID:
        mid = uuid.uuid4()
        async with tenant_session(tenant.id) as s:  # the row a reply writes; its messages are run here
            s.add(Message(tenant_id=tenant.id, id=mid, conversation_id=uid(conv["id"]), direction="outbound",
                          kind="message", author_type="user", body_text=body, delivery_status="queued"))
        return mid

    async def status(mid: uuid.UUID) -> str:
        async with tenant_session(tenant.id) as s:
            return await s.scalar(select(Message.delivery_status).where(Message.tenant_id == tenant.id,
                                                                        Message.id == mid))

    async def deliver(message: dramatiq.Message) -> None:  # as a worker runs it
        CurrentMessage().before_process_message(send_message.broker, message)
        await send_message.fn.__wrapped__(*message.args, **message.kwargs)  # the actor's coroutine

    monkeypatch.setenv("BREVO_API_URL", fakes.brevo.url)  # this process sends, to the session's fake
    get_settings.cache_clear()
    monkeypatch.setattr(fakes.brevo, "latency", 1.0)  # a provider call takes a while
    try:
        mid = await write("claimed by the re-send")
        first = send_message.message(str(tenant.id), str(mid))
        resend = send_message.message(str(tenant.id), str(mid), resend=True)
        before = fakes.brevo.requests
        sending = asyncio.create_task(deliver(resend))
        while await status(mid) != "sending":  # claimed; its provider call takes a second
            assert not sending.done()
            await asyncio.sleep(0.01)
        await deliver(first)  # arrives while the re-send is under way
        await sending
        assert fakes.brevo.requests == before + 1
        assert [m.text for m in sent_to(fakes.brevo, sender)].count("claimed by the re-send") == 1
        assert await status(mid) == "sent"

        # the claiming message delivered again while the reply is still 'sending' sends it again
        mid = await write("its worker died")
        message = send_message.message(str(tenant.id), str(mid))
        async with tenant_session(tenant.id) as s:  # claimed by this message, never marked
            row = await s.get(Message, (tenant.id, mid))
            row.delivery_status, row.claimed_by = "sending", message.message_id
        before = fakes.brevo.requests
        await deliver(send_message.message(str(tenant.id), str(mid), resend=True))  # another message
        assert fakes.brevo.requests == before and await status(mid) == "sending"
        await deliver(message)
        assert fakes.brevo.requests == before + 1 and await status(mid) == "sent"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
