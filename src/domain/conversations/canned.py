"""Canned responses: a brand's saved replies, templates over the same variables as campaigns
(customer, brand, profile), rendered for one conversation's customer when an agent uses one."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from domain.audit import service as audit
from domain.campaigns import templates
from domain.conversations.models import CannedResponse, Conversation
from domain.conversations.service import load as load_conversation
from domain.customers.models import Customer
from domain.errors import DomainError, ErrorCode, NotFound, ValidationFailed, Validator
from domain.platform.db import tenant_session
from domain.profiles.models import CustomerProfile
from domain.segments.service import dsl_context
from domain.tenancy import scoping, validation
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal, authorize


async def _check_template(s, tenant_id: uuid.UUID, body: str) -> None:
    attrs = (await dsl_context(s, tenant_id)).custom_attributes
    try:
        templates.check("sms", {"text": body}, attrs, prefix="x")
    except ValidationFailed as exc:
        raise ValidationFailed([DomainError(e.message.replace("text template", "body template"), field="body",
                                            code=e.code) for e in exc.errors]) from None


def _clean(data: dict[str, Any], creating: bool) -> dict[str, Any]:
    v = Validator()
    out: dict[str, Any] = {}
    if creating or "shortcode" in data:
        code = validation.text(v, "shortcode", data.get("shortcode"), required=True, max_len=64)
        if code and not code.replace("-", "").replace("_", "").isalnum():
            v.add("shortcode", "use letters, digits, - and _")
        out["shortcode"] = code
    if creating or "title" in data:
        out["title"] = validation.text(v, "title", data.get("title"), required=True, max_len=200)
    if creating or "body" in data:
        out["body"] = validation.text(v, "body", data.get("body"), required=True, max_len=20_000)
    v.check()
    return out


async def _unique(s, tenant_id: uuid.UUID, brand_id: uuid.UUID, shortcode: str, not_id: uuid.UUID | None) -> None:
    stmt = select(CannedResponse.id).where(CannedResponse.tenant_id == tenant_id, CannedResponse.brand_id == brand_id,
                                           func.lower(CannedResponse.shortcode) == shortcode.lower())
    if not_id is not None:
        stmt = stmt.where(CannedResponse.id != not_id)
    if await s.scalar(stmt) is not None:
        raise DomainError(f"this brand already has a canned response {shortcode!r}", field="shortcode",
                          code=ErrorCode.DUPLICATE)


async def list_canned(principal: Principal, brand_id: uuid.UUID, search: str | None = None) -> list[CannedResponse]:
    authorize(principal, Action.CONVERSATION_READ, brand_id=brand_id)
    stmt = select(CannedResponse).where(CannedResponse.tenant_id == principal.tenant_id,
                                        CannedResponse.brand_id == brand_id)
    if search:
        like = "%" + search.strip().lower().replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(func.lower(CannedResponse.shortcode).like(like) | func.lower(CannedResponse.title).like(like))
    async with tenant_session(principal.tenant_id) as s:
        return list((await s.scalars(stmt.order_by(CannedResponse.shortcode))).all())


async def canned_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, CannedResponse]:
    """Canned responses by id (``node``): those of the brands the principal may use."""
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await scoping.by_ids(s, principal, CannedResponse, ids)


async def create_canned(principal: Principal, brand_id: uuid.UUID, data: dict[str, Any]) -> CannedResponse:
    authorize(principal, Action.CANNED_RESPONSE_MANAGE, brand_id=brand_id)
    values = _clean(data, creating=True)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        await _check_template(s, principal.tenant_id, values["body"])
        await _unique(s, principal.tenant_id, brand_id, values["shortcode"], None)
        row = CannedResponse(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id,
                             created_by=principal.label, **values)
        s.add(row)
        await s.flush()
        await s.refresh(row)
        audit.record(s, principal, "canned_response.create", "CannedResponse", row.id, brand_id=brand_id,
                     summary={"shortcode": row.shortcode})
    return row


async def _load(s, principal: Principal, canned_id: uuid.UUID) -> CannedResponse:
    return await scoping.load_brand_owned(s, principal, CannedResponse, canned_id,
                                          what="canned response", lock=True)


async def update_canned(principal: Principal, canned_id: uuid.UUID, data: dict[str, Any]) -> CannedResponse:
    authorize(principal, Action.CANNED_RESPONSE_MANAGE)
    values = _clean(data, creating=False)
    async with tenant_session(principal.tenant_id) as s:
        row = await _load(s, principal, canned_id)
        if "body" in values:
            await _check_template(s, principal.tenant_id, values["body"])
        if "shortcode" in values:
            await _unique(s, principal.tenant_id, row.brand_id, values["shortcode"], row.id)
        for k, v in values.items():
            setattr(row, k, v)
        await s.flush()
        await s.refresh(row)
        audit.record(s, principal, "canned_response.update", "CannedResponse", row.id, brand_id=row.brand_id,
                     summary={"changed": sorted(values)})
    return row


async def delete_canned(principal: Principal, canned_id: uuid.UUID) -> uuid.UUID:
    authorize(principal, Action.CANNED_RESPONSE_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        row = await _load(s, principal, canned_id)
        await s.delete(row)
        audit.record(s, principal, "canned_response.delete", "CannedResponse", row.id, brand_id=row.brand_id,
                     summary={"shortcode": row.shortcode})
    return canned_id


async def render_canned(principal: Principal, canned_id: uuid.UUID, conversation_id: uuid.UUID) -> str:
    """The canned response filled in for this conversation's customer (the agent edits, then
    sends it with replyToConversation)."""
    authorize(principal, Action.CONVERSATION_READ)
    async with tenant_session(principal.tenant_id) as s:
        conv: Conversation = await load_conversation(s, principal, conversation_id)
        row = await s.scalar(select(CannedResponse).where(CannedResponse.tenant_id == principal.tenant_id,
                                                          CannedResponse.id == canned_id))
        if row is None or row.brand_id != conv.brand_id:
            raise NotFound("canned response not found", field="cannedResponseId")
        customer = await s.scalar(select(Customer).where(Customer.tenant_id == conv.tenant_id,
                                                         Customer.id == conv.customer_id))
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == conv.tenant_id, Brand.id == conv.brand_id))
        profile = await s.scalar(select(CustomerProfile).where(
            CustomerProfile.tenant_id == conv.tenant_id, CustomerProfile.brand_id == conv.brand_id,
            CustomerProfile.customer_id == conv.customer_id))
    context = {"customer": templates.customer_vars(customer), "brand": templates.brand_vars(brand),
               "profile": templates.profile_vars(profile), "campaign": {"name": ""}}
    return templates.Compiled.of({"text": row.body}).render(context)["text"]
