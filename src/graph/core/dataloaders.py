"""Every per-request dataloader, made fresh for each request (and each subscription event)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader

from domain.tenancy.members import Member
from domain.tenancy.models import Brand
from domain.tenancy.policies import Principal
from graph.automations import dataloaders as automations
from graph.campaigns import dataloaders as campaigns
from graph.conversations import dataloaders as conversations
from graph.customers import dataloaders as customers
from graph.segments import dataloaders as segments
from graph.tenancy.dataloaders import brand_loader, member_loader


@dataclass(frozen=True)
class Loaders:
    brand: DataLoader[uuid.UUID, Brand | None]
    member: DataLoader[uuid.UUID, Member | None]
    customer: DataLoader[uuid.UUID, Any]
    customer_tags: DataLoader[uuid.UUID, list]
    customer_consents: DataLoader[uuid.UUID, list]
    customer_notes: DataLoader[tuple, Any]
    customer_brands: DataLoader[uuid.UUID, list]
    profile: DataLoader[tuple[uuid.UUID, uuid.UUID | None], Any]
    last_order: DataLoader[tuple[uuid.UUID, uuid.UUID | None], Any]
    order_items: DataLoader[uuid.UUID, list]
    segment: DataLoader[uuid.UUID, Any]
    segment_members: DataLoader[tuple, Any]
    segment_history: DataLoader[tuple, Any]
    segment_usage: DataLoader[uuid.UUID, Any]
    automation_executions: DataLoader[tuple, Any]
    automation_runs: DataLoader[tuple, Any]
    timeline: DataLoader[tuple, Any]
    customer_orders: DataLoader[tuple, Any]
    campaign: DataLoader[uuid.UUID, Any]
    campaign_stats: DataLoader[uuid.UUID, Any]
    brand_campaigns: DataLoader[tuple, Any]
    conversation: DataLoader[uuid.UUID, Any]
    conversation_last_message: DataLoader[uuid.UUID, Any]
    conversation_unread: DataLoader[uuid.UUID, int]
    conversation_labels: DataLoader[uuid.UUID, list]
    conversation_assignee: DataLoader[uuid.UUID, Any]
    conversation_messages: DataLoader[tuple, Any]

    @classmethod
    def for_principal(cls, p: Principal) -> Loaders:
        segment = segments.segment_loader(p)
        customer = customers.customer_loader(p)
        order_items = customers.order_items_loader(p)
        campaign_stats = campaigns.stats_loader(p)
        return cls(
            brand=brand_loader(p),
            member=member_loader(p),
            customer=customer,
            customer_tags=customers.tags_loader(p),
            customer_consents=customers.consents_loader(p),
            customer_notes=customers.notes_loader(p),
            customer_brands=customers.brand_links_loader(p),
            profile=customers.profile_loader(p),
            last_order=customers.last_order_loader(p),
            order_items=order_items,
            segment=segment,
            segment_members=segments.members_loader(p),
            segment_history=segments.history_loader(p, customers=customer),
            segment_usage=segments.usage_loader(p),
            automation_executions=automations.executions_loader(p, customers=customer),
            automation_runs=automations.runs_loader(p),
            timeline=customers.timeline_loader(p),
            customer_orders=customers.orders_loader(p, items=order_items),
            campaign=campaigns.campaign_loader(p),
            campaign_stats=campaign_stats,
            brand_campaigns=campaigns.brand_campaigns_loader(p, stats=campaign_stats, segments=segment),
            conversation=conversations.conversation_loader(p),
            conversation_last_message=conversations.last_message_loader(p),
            conversation_unread=conversations.unread_loader(p),
            conversation_labels=conversations.labels_loader(p),
            conversation_assignee=conversations.assignee_loader(p),
            conversation_messages=conversations.messages_loader(p),
        )
