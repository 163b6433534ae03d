"""Conversations end to end: inbound webhooks, threading, replies through the provider layer."""

from __future__ import annotations

import json
import uuid

import httpx

from conftest import Api, TenantFixture
from campaign_helpers import identity, use_provider

TOKEN = "inbound-token-123"


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
    import asyncio

    for _ in range(100):
        got = [m for m in fakes.brevo.messages if m.to == "ann@example.test"]
        if got:
            break
        await asyncio.sleep(0.05)
    assert len(got) == 1 and got[0].subject == "Re: Where is my order?"
    assert got[0].headers.get("In-Reply-To") == "<m1@mail.example>"
