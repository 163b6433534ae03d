"""The demo's conversations: per brand, four live-looking threads with replies, notes, labels,
priorities and an assignment, and two canned responses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from domain.tenancy.policies import Principal

# per brand: (channel, customer index, subject, the customer's messages, the team's reply, status,
# priority, labels, a note)
THREADS = [
    ("email", 0, "Where is my order?", ["Hi, I ordered last week and have not received anything yet. Any news?"],
     "Hello {first}, your parcel left our warehouse yesterday; you will get the tracking link today.", "pending",
     "high", ["Order"], "Carrier confirmed pick-up at 16:40."),
    ("sms", 1, None, ["Do you have the rain jacket in size M?"], "Yes {first}, size M is back in stock since Monday.",
     "resolved", "medium", ["Product question"], None),
    ("email", 2, "Re: our newsletter", ["Love the new collection! Will there be a discount for members?"],
     None, "open", "medium", ["VIP"], "Loyal customer: offer the member preview."),
    ("chat", 3, None, ["Hello, can I change the delivery address of my order?", "It is order #1042"],
     None, "open", "urgent", ["Order"], None),
]
LABELS = [("Order", "#2563eb"), ("Product question", "#16a34a"), ("VIP", "#d97706")]
CANNED = [("shipping", "Shipping times", "Hello {{ customer.first_name }}, orders ship within 2 working days and "
           "arrive in 3 to 5."), ("thanks", "Thank you", "Thank you {{ customer.first_name }}! The {{ brand.name }} team")]


async def seed_conversations(owner: Principal, by_slug: dict[str, uuid.UUID]) -> int:
    """A few live-looking conversations per brand (inbound e-mail, SMS and chat, replies, notes,
    labels, an assignment) and two canned responses. Skips a brand that has conversations."""
    from sqlalchemy import select

    from domain.conversations import canned, inbound, models, replies
    from domain.conversations import labels as conversation_labels
    from domain.conversations import service as conversations
    from domain.conversations.models import Conversation
    from domain.customers.models import Customer, CustomerBrand
    from domain.delivery.inbound import InboundMessage
    from domain.platform.db import tenant_session
    from domain.tenancy.models import Brand

    made = 0
    for slug, brand_id in by_slug.items():
        async with tenant_session(owner.tenant_id) as s:
            if await s.scalar(select(Conversation.id).where(Conversation.tenant_id == owner.tenant_id,
                                                            Conversation.brand_id == brand_id).limit(1)):
                continue
            people = list((await s.scalars(select(Customer).join(CustomerBrand, (CustomerBrand.tenant_id == Customer.tenant_id)
                                                                 & (CustomerBrand.customer_id == Customer.id))
                                            .where(Customer.tenant_id == owner.tenant_id, CustomerBrand.brand_id == brand_id,
                                                   Customer.email.is_not(None), Customer.phone.is_not(None))
                                            .order_by(Customer.created_at, Customer.id).limit(len(THREADS)))).all())
            brand = await s.get(Brand, (owner.tenant_id, brand_id))
        if len(people) < len(THREADS):
            continue
        labels = {name: await conversation_labels.create_label(owner, brand_id, name, color) for name, color in LABELS}
        for code, title, body in CANNED:
            await canned.create_canned(owner, brand_id, {"shortcode": code, "title": title, "body": body})
        for i, (channel, who, subject, texts, answer, status, priority, tags, note) in enumerate(THREADS):
            person = people[who]
            conv = None
            for k, text_ in enumerate(texts):
                if channel == "chat":
                    conv, _ = await inbound.receive_chat(owner, brand_id, person.id, text_, f"demo-{slug}-{i}-{k}")
                    continue
                address = person.email if channel == "email" else person.phone
                conv, _, _ = await inbound.store(owner.tenant_id, brand_id, InboundMessage(
                    channel=channel, provider="demo", provider_message_id=f"demo-{slug}-{i}-{k}",
                    from_address=address, to_address=brand.from_email if channel == "email" else brand.sms_sender,
                    received_at=datetime.now(UTC), from_name=f"{person.first_name or ''} {person.last_name or ''}".strip(),
                    subject=subject, text=text_,
                    message_id=f"<demo-{slug}-{i}-{k}@mail.example>" if channel == "email" else None))
            if answer:
                await replies.reply(owner, conv.id, answer.format(first=person.first_name or "there"), None,
                                   f"demo-{slug}-{i}")
            if note:
                await replies.add_note(owner, conv.id, note)
            await conversation_labels.change_labels(owner, conv.id, [labels[t].id for t in tags], [])
            await conversations.set_priority(owner, conv.id, models.Priority(priority))
            if status != "open":
                await conversations.set_status(owner, conv.id, models.Status(status))
            if i == 0:
                await conversations.assign(owner, conv.id, owner.member_id)
            made += 1
    return made


