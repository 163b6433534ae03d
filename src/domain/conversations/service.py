"""Conversations: one thread and what agents do to it.

Every conversation belongs to one brand; a principal must hold that brand to see or touch it.
Statuses: open, pending (waiting on the customer), snoozed (until a time; the scheduler reopens
it), resolved. A new inbound message reopens a pending, snoozed or resolved conversation.

This module owns loading one conversation the principal may see and managing a thread
(assignment, status and snoozing, priority, read markers). The inbox and its lookups are in
:mod:`domain.conversations.inbox`, writing in a thread in :mod:`domain.conversations.replies`,
labels in :mod:`domain.conversations.labels`, the inbox's live events in
:mod:`domain.conversations.events`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.conversations.events import announce
from domain.conversations.models import Conversation, Priority, ReadMarker, Status
from domain.errors import DomainError, InvalidState, NotFound
from domain.platform.db import tenant_session
from domain.tenancy import scoping
from domain.tenancy.models import BrandGrant, Membership
from domain.tenancy.policies import Action, Principal, Role, authorize

# --- loading -----------------------------------------------------------------------------


async def load(s: AsyncSession, principal: Principal, conversation_id: uuid.UUID, *, lock: bool = False,
               field: str = "conversationId") -> Conversation:
    return await scoping.load_brand_owned(s, principal, Conversation, conversation_id, what="conversation",
                                          field=field, lock=lock)


# --- managing a thread -------------------------------------------------------------------


async def _assignable_user(s: AsyncSession, tenant_id: uuid.UUID, brand_id: uuid.UUID,
                           member_id: uuid.UUID) -> uuid.UUID | None:
    """The user id behind an active member who may use the brand; None otherwise."""
    m = await s.scalar(select(Membership).where(Membership.tenant_id == tenant_id, Membership.id == member_id,
                                                Membership.status == "active"))
    if m is None:
        return None
    if Role(m.role).sees_every_brand or m.all_brands:
        return m.user_id
    granted = await s.scalar(select(exists().where(BrandGrant.tenant_id == tenant_id, BrandGrant.user_id == m.user_id,
                                                   BrandGrant.brand_id == brand_id)))
    return m.user_id if granted else None


async def assign(principal: Principal, conversation_id: uuid.UUID, member_id: uuid.UUID | None) -> Conversation:
    """Assign to a member (by member id), or unassign with None."""
    authorize(principal, Action.CONVERSATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        assignee_id = None
        if member_id is not None:
            assignee_id = await _assignable_user(s, conv.tenant_id, conv.brand_id, member_id)
            if assignee_id is None:
                raise NotFound("no member with access to this brand has this id", field="assigneeId")
        if conv.assignee_id != assignee_id:
            conv.assignee_id = assignee_id
            audit.record(s, principal, "conversation.assign", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"assignee_id": str(member_id) if assignee_id else None})  # the member id
            announce(s, conv, "assigned", assignee_id=assignee_id)
        await s.flush()
    return conv


def _set_status(s: AsyncSession, conv: Conversation, status: Status, until: datetime | None = None) -> bool:
    if conv.status == status.value and conv.snoozed_until == until:
        return False
    conv.status = status.value
    conv.snoozed_until = until
    conv.resolved_at = datetime.now(UTC) if status is Status.RESOLVED else None
    announce(s, conv, "status_changed", status=status.value)
    return True


async def set_status(principal: Principal, conversation_id: uuid.UUID, status: Status) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    if status is Status.SNOOZED:
        raise DomainError("snooze with snoozeConversation(until:)", field="status")
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        if _set_status(s, conv, status):
            audit.record(s, principal, "conversation.status", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"status": status.value})
        await s.flush()
    return conv


async def snooze(principal: Principal, conversation_id: uuid.UUID, until: datetime) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    if until.tzinfo is None:
        raise DomainError("give the time with its offset", field="until")
    if until <= datetime.now(UTC):
        raise DomainError("snooze until a time in the future", field="until")
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        if conv.status == Status.RESOLVED.value:
            raise InvalidState("a resolved conversation cannot be snoozed", field="conversationId")
        _set_status(s, conv, Status.SNOOZED, until)
        audit.record(s, principal, "conversation.snooze", "Conversation", conv.id, brand_id=conv.brand_id,
                     summary={"until": until.isoformat()})
        await s.flush()
    return conv


async def wake_snoozed(tenant_id: uuid.UUID) -> int:
    """The scheduler's pass: snoozed conversations whose time has come are open again."""
    async with tenant_session(tenant_id) as s:
        due = list((await s.scalars(select(Conversation).where(
            Conversation.tenant_id == tenant_id, Conversation.status == Status.SNOOZED.value,
            Conversation.snoozed_until <= datetime.now(UTC)).with_for_update(skip_locked=True))).all())
        for conv in due:
            _set_status(s, conv, Status.OPEN)
            audit.record(s, None, "conversation.wake", "Conversation", conv.id, tenant_id=tenant_id,
                         brand_id=conv.brand_id)
    return len(due)


async def set_priority(principal: Principal, conversation_id: uuid.UUID, priority: Priority) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        if conv.priority != priority.value:
            conv.priority = priority.value
            audit.record(s, principal, "conversation.priority", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"priority": priority.value})
            announce(s, conv, "priority_changed", priority=priority.value)
        await s.flush()
    return conv


async def mark_read(principal: Principal, conversation_id: uuid.UUID) -> Conversation:
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id)
        now = await s.scalar(select(func.clock_timestamp()))
        await s.execute(insert(ReadMarker).values(tenant_id=conv.tenant_id, conversation_id=conv.id,
                                                  user_id=principal.id, read_at=now)
                        .on_conflict_do_update(index_elements=["tenant_id", "conversation_id", "user_id"],
                                               set_={"read_at": now}))
    return conv
