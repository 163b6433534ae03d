"""Conversation labels: a brand's labels, and the labels put on its conversations.
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from domain.audit import service as audit
from domain.conversations.events import announce
from domain.conversations.models import Conversation, ConversationLabel, Label
from domain.conversations.service import load
from domain.customers.tags import COLOR_RE
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.platform.db import tenant_session
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize


async def create_label(principal: Principal, brand_id: uuid.UUID, name: str, color: str | None) -> Label:
    authorize(principal, Action.CONVERSATION_LABEL_MANAGE, brand_id=brand_id)
    v = Validator()
    name = validation.text(v, "name", name, required=True, max_len=64)
    if color is not None and not COLOR_RE.match(color):
        v.add("color", "use a hex colour such as #10b981")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        taken = await s.scalar(select(Label.id).where(Label.tenant_id == principal.tenant_id, Label.brand_id == brand_id,
                                                      func.lower(Label.name) == name.lower()))
        if taken is not None:
            raise DomainError(f"this brand already has a label {name!r}", field="name", code=ErrorCode.DUPLICATE)
        label = Label(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id, name=name,
                      color=color or "#6b7280")
        s.add(label)
        await s.flush()
        await s.refresh(label)
        audit.record(s, principal, "conversation_label.create", "ConversationLabel", label.id, brand_id=brand_id,
                     summary={"name": name})
    return label


async def list_labels(principal: Principal, brand_id: uuid.UUID) -> list[Label]:
    authorize(principal, Action.CONVERSATION_READ, brand_id=brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(select(Label).where(Label.tenant_id == principal.tenant_id,
                                                         Label.brand_id == brand_id).order_by(Label.name))).all())


async def labels_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Label]:
    """Labels by id (``node``): those of the brands the principal may use."""
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await scoping.by_ids(s, principal, Label, ids)


async def change_labels(principal: Principal, conversation_id: uuid.UUID, add: list[uuid.UUID],
                        remove: list[uuid.UUID]) -> Conversation:
    authorize(principal, Action.CONVERSATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        conv = await load(s, principal, conversation_id, lock=True)
        wanted = set(add) | set(remove)
        known = set(await s.scalars(select(Label.id).where(Label.tenant_id == conv.tenant_id,
                                                           Label.brand_id == conv.brand_id, Label.id.in_(wanted))))
        for i, lid in enumerate(add + remove):
            if lid not in known:
                raise NotFound("not a label of this conversation's brand", field=f"labelIds[{i}]")
        changed = 0
        if add:
            changed += len((await s.execute(insert(ConversationLabel).values([
                dict(tenant_id=conv.tenant_id, conversation_id=conv.id, label_id=lid) for lid in dict.fromkeys(add)
            ]).on_conflict_do_nothing().returning(ConversationLabel.label_id))).all())
        if remove:
            changed += (await s.execute(delete(ConversationLabel).where(
                ConversationLabel.tenant_id == conv.tenant_id, ConversationLabel.conversation_id == conv.id,
                ConversationLabel.label_id.in_(remove)))).rowcount
        if changed:
            audit.record(s, principal, "conversation.labels", "Conversation", conv.id, brand_id=conv.brand_id,
                         summary={"added": [str(x) for x in add], "removed": [str(x) for x in remove]})
            announce(s, conv, "labels_changed")
    return conv


async def labels_of(principal: Principal, conversation_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Label]]:
    authorize(principal, Action.CONVERSATION_READ)
    stmt = (select(ConversationLabel.conversation_id, Label)
            .join(Label, and_(Label.tenant_id == ConversationLabel.tenant_id, Label.id == ConversationLabel.label_id))
            .where(ConversationLabel.tenant_id == principal.tenant_id,
                   ConversationLabel.conversation_id.in_(set(conversation_ids)))
            .order_by(Label.name))
    stmt = scoping.in_brands(stmt, principal, Label.brand_id)
    out: dict[uuid.UUID, list[Label]] = {}
    async with tenant_session(principal.tenant_id) as s:
        for cid, label in (await s.execute(stmt)).all():
            out.setdefault(cid, []).append(label)
    return out
