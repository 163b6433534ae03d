"""One object of every Node type in a brand of a tenant, for the node(id) / nodes(ids) tests:
``make_nodes(t, "a")`` returns {type name: global id}. Brand-owned objects belong to that brand
(and its customer is known to that brand alone); tenant-wide ones (tenant, members, keys, tags)
are listed in ``TENANT_WIDE``."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from conftest import TenantFixture, gid

TENANT_WIDE = {"Tenant", "Member", "Principal", "ApiKey", "Tag", "Brand", "ClientApp"}

# timeline kinds whose events are written directly (those no service call below writes)
_DIRECT_KINDS = ("consent_changed", "message_opened", "campaign_conversion", "segment_entered")


def event_gid(type_name: str, customer_id: uuid.UUID, event_id: uuid.UUID) -> str:
    """A timeline event's global id: the node id is ``<customer id>.<event id>``."""
    return base64.b64encode(f"{type_name}:{customer_id}.{event_id}".encode()).decode()


async def make_nodes(t: TenantFixture, brand: str) -> dict[str, str]:
    from domain.audit.models import AuditEntry
    from domain.automations import service as automations
    from domain.automations.models import AutomationRun
    from domain.campaigns import service as campaigns
    from domain.clients import service as clients
    from domain.commerce import service as commerce
    from domain.conversations import canned, inbound, labels, replies
    from domain.conversations import service as conversations
    from domain.customers import consent, notes, tags
    from domain.customers.service import upsert_customer
    from domain.delivery.inbound import InboundMessage
    from domain.insights import alerts
    from domain.insights.models import Alert, AlertKind
    from domain.jobs.models import Job
    from domain.jobs.service import principal_ref
    from domain.platform.db import tenant_session
    from domain.segments.models import Segment
    from domain.timeline import service as timeline
    from domain.timeline.models import TimelineEntry

    owner, b = t.owner, t.brands[brand]
    tag = uuid.uuid4().hex[:6]
    customer, _ = await upsert_customer(owner, {"email": f"node-{tag}@cust.example"}, brand_id=b)
    made = await tags.create_tag(owner, {"name": f"tag {tag}"})
    await tags.tag_customers(owner, [customer.id], [made.id])
    await tags.untag_customers(owner, [customer.id], [made.id])
    note = await notes.add_note(owner, customer.id, "a note", brand_id=b)
    await consent.set_consent(owner, customer.id, b, consent.Channel.EMAIL, True)
    product = await commerce.upsert_product(owner, f"sku-{tag}", "Thing", brand_id=b)
    order, _ = await commerce.record_order(owner, commerce.OrderInput(
        brand_id=b, external_order_id=f"o-{tag}", total_cents=1200, currency="USD", placed_at=datetime.now(UTC),
        customer_id=customer.id, items=[commerce.OrderLine(sku=product.sku, quantity=1, unit_price_cents=1200)]))
    event, _ = await commerce.track_event(owner, commerce.EventInput(
        event_id=f"e-{tag}", name="viewed", brand_id=b, customer_id=customer.id))
    async with tenant_session(t.id) as s:
        segment = Segment(id=uuid.uuid4(), tenant_id=t.id, brand_id=b, name=f"seg {tag}", kind="static")
        s.add(segment)
    automation = await automations.create_automation(owner, segment.id, f"auto {tag}", "enter", "add_tag",
                                                     {"tag_id": str(made.id)})
    campaign = await campaigns.create_campaign(owner, b, {"name": f"camp {tag}", "channel": "email",
                                                          "segment_ids": [segment.id]})
    conv, _, _ = await inbound.store(t.id, b, InboundMessage(
        channel="email", provider="brevo", provider_message_id=uuid.uuid4().hex, from_address=customer.email,
        to_address=None, received_at=datetime.now(UTC), subject=f"S {tag}", text="hello",
        message_id=f"<{uuid.uuid4().hex}@cust.example>"))
    await conversations.assign(owner, conv.id, t.owner_member_id)
    _, message = await replies.add_note(owner, conv.id, "private")
    label = await labels.create_label(owner, b, f"label {tag}", None)
    reply = await canned.create_canned(owner, b, {"shortcode": f"s{tag}", "title": "Hi", "body": "Hello"})
    key_id, _ = await t.api_key("analyst")
    app = await clients.create_client_app(owner, f"app {tag}")
    rule = await alerts.create_rule(owner, b, f"rule {tag}", AlertKind.LIFETIME_VALUE, 10_000, None)
    async with tenant_session(t.id) as s:
        run = AutomationRun(id=uuid.uuid4(), tenant_id=t.id, automation_id=automation.id, status="succeeded")
        job = Job(id=uuid.uuid4(), tenant_id=t.id, kind="export_timeline", status="queued", brand_id=b,
                  created_by=owner.label, created_by_id=principal_ref(owner), params={})
        alert = Alert(id=uuid.uuid4(), tenant_id=t.id, brand_id=b, rule_id=rule.id, customer_id=customer.id,
                      kind=AlertKind.LIFETIME_VALUE.value, value=12_000, crossed_at=datetime.now(UTC))
        s.add_all([run, job, alert])
        for kind in _DIRECT_KINDS:
            timeline.write(s, t.id, customer.id, timeline.Kind(kind), datetime.now(UTC), brand_id=b,
                           data={"channel": "email"})
        timeline.write(s, t.id, customer.id, timeline.Kind.CONVERSATION_MESSAGE, datetime.now(UTC), brand_id=b,
                       data={"direction": "inbound", "conversation_id": str(conv.id)})
    async with tenant_session(t.id) as s:
        entry = await s.scalar(select(AuditEntry.id).where(AuditEntry.tenant_id == t.id, AuditEntry.brand_id == b)
                               .limit(1))
        events = (await s.execute(select(TimelineEntry.kind, TimelineEntry.id)
                                  .where(TimelineEntry.tenant_id == t.id,
                                         TimelineEntry.customer_id == customer.id))).all()
    out = {
        "Tenant": gid("Tenant", t.id), "Brand": t.brand_gid(brand), "Member": gid("Member", t.owner_member_id),
        "Principal": gid("Principal", t.owner_member_id), "ApiKey": gid("ApiKey", key_id), "Tag": gid("Tag", made.id),
        "Customer": gid("Customer", customer.id), "Note": gid("Note", note.id), "Product": gid("Product", product.id),
        "Order": gid("Order", order.id), "TrackedEvent": gid("TrackedEvent", event.id),
        "Segment": gid("Segment", segment.id), "SegmentAutomation": gid("SegmentAutomation", automation.id),
        "AutomationRun": gid("AutomationRun", run.id), "Campaign": gid("Campaign", campaign.id),
        "Conversation": gid("Conversation", conv.id), "ConversationMessage": gid("ConversationMessage", message.id),
        "ConversationAssignee": gid("ConversationAssignee", t.owner_member_id),
        "ConversationLabel": gid("ConversationLabel", label.id), "CannedResponse": gid("CannedResponse", reply.id),
        "Job": gid("Job", job.id), "AuditEntry": gid("AuditEntry", entry), "ClientApp": gid("ClientApp", app.app.id),
        "AlertRule": gid("AlertRule", rule.id), "Alert": gid("Alert", alert.id),
    }
    typed = {"order_placed": "OrderPlacedEvent", "event_tracked": "EventTrackedEvent", "note_added": "NoteAddedEvent",
             "tag_added": "TagAddedEvent", "tag_removed": "TagRemovedEvent", "consent_changed": "ConsentChangedEvent",
             "customer_created": "CustomerCreatedEvent", "message_opened": "CampaignMessageEvent",
             "campaign_conversion": "CampaignConversionEvent", "conversation_message": "ConversationMessageEvent",
             "segment_entered": "OtherTimelineEvent"}
    for kind, event_id in events:
        if kind in typed:
            out[typed[kind]] = event_gid(typed[kind], customer.id, event_id)
    return out
