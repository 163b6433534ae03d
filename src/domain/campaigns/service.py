"""Campaigns: definitions, the status machine, schedules and previews.

Every campaign belongs to one brand; a principal must hold that brand to see or touch it. Status:

    draft ─schedule→ scheduled ─(due)→ sending ─(all sent)→ sent
      │  ←unschedule─┘   │               │  ↑
      └────launch────────┴──────────────→│  pause/resume (paused)
    draft|scheduled|sending|paused ─cancel→ cancelled;  sending ─(provider refuses)→ failed

Only these transitions succeed; anything else is an INVALID_STATE error naming the status.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ARRAY, and_, cast, func, select, true, update
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.audit import service as audit
from domain.campaigns import audience, sending, stats, templates
from domain.campaigns.models import Campaign, CampaignStats, Recipient, Status
from domain.commerce.models import Product
from domain.customers.service import load_visible
from domain.delivery import service as delivery
from domain.errors import (
    DomainError,
    ErrorCode,
    InvalidState,
    NotFound,
    Validator,
)
from domain.pagination import Page, PageRequest, encode_cursor, pages_by
from domain.platform.db import tenant_session
from domain.segments.models import Segment
from domain.segments.service import dsl_context
from domain.tenancy import scoping, validation
from domain.tenancy.models import Brand
from domain.tenancy.policies import Action, Principal, authorize


class ScheduleMode(str, Enum):
    NOW = "now"
    AT = "at"  # a wall-clock time in the brand's timezone
    LOCAL = "local"  # a wall-clock time in each recipient's timezone (the brand's when unknown)


CHANNELS = ("email", "sms", "push")
EDITABLE = {Status.DRAFT.value, Status.SCHEDULED.value}
MAX_SEGMENTS = 20
# the earliest and latest UTC offsets in use: a local-time campaign starts when the first zone
# reaches the time and ends when the last one does
EARLIEST_OFFSET = timedelta(hours=14)
LATEST_OFFSET = timedelta(hours=12)


def topic(campaign_id: uuid.UUID) -> str:
    return f"campaign:{campaign_id}"


# --- loading -----------------------------------------------------------------------------


async def load(s: AsyncSession, principal: Principal, campaign_id: uuid.UUID, *, lock: bool = False,
               field: str = "id") -> Campaign:
    return await scoping.load_brand_owned(s, principal, Campaign, campaign_id, what="campaign", field=field, lock=lock)


async def get_campaign(principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    authorize(principal, Action.CAMPAIGN_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await load(s, principal, campaign_id)


async def campaigns_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Campaign]:
    authorize(principal, Action.CAMPAIGN_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await scoping.by_ids(s, principal, Campaign, ids)


async def stats_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, CampaignStats]:
    """Stats rows by campaign id, one query (dataloaders). Campaigns the principal cannot see
    are left out."""
    authorize(principal, Action.CAMPAIGN_READ)
    stmt = (select(CampaignStats).join(Campaign, and_(Campaign.tenant_id == CampaignStats.tenant_id,
                                                      Campaign.id == CampaignStats.campaign_id))
            .where(CampaignStats.tenant_id == principal.tenant_id, CampaignStats.campaign_id.in_(set(ids))))
    async with tenant_session(principal.tenant_id) as s:
        return {x.campaign_id: x for x in await s.scalars(scoping.in_brands(stmt, principal, Campaign.brand_id))}


async def list_campaigns(principal: Principal, brand_id: uuid.UUID | None, *, statuses: list[Status] | None,
                         page: PageRequest) -> Page[Campaign]:
    authorize(principal, Action.CAMPAIGN_READ)
    conditions = _campaign_conditions(principal, brand_id, statuses)
    after, order = page.keyset(_newest(), datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        rows = list((await s.scalars(select(Campaign).where(*conditions, *after)
                                     .order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, lambda c: encode_cursor(c.created_at, c.id))


async def count_campaigns(principal: Principal, brand_id: uuid.UUID | None, *, statuses: list[Status] | None) -> int:
    """How many campaigns ``list_campaigns`` lists (its brand and status indexes)."""
    authorize(principal, Action.CAMPAIGN_READ)
    async with tenant_session(principal.tenant_id) as s:
        return await s.scalar(select(func.count()).select_from(Campaign)
                              .where(*_campaign_conditions(principal, brand_id, statuses)))


def _campaign_conditions(principal: Principal, brand_id: uuid.UUID | None, statuses: list[Status] | None) -> list:
    conditions = [Campaign.tenant_id == principal.tenant_id, Campaign.automation_id.is_(None)]
    conditions += scoping.brand_filter(principal, Campaign.brand_id, brand_id)
    if statuses:
        conditions.append(Campaign.status.in_([s.value for s in statuses]))
    return conditions


def _newest(campaign=Campaign) -> list:
    return [(campaign.created_at, True), (campaign.id, True)]


async def campaigns_of_brands(principal: Principal, brand_ids: list[uuid.UUID], *, statuses: list[Status] | None,
                              page: PageRequest, counted: bool = False) -> dict[uuid.UUID, Page[Campaign]]:
    """The same page of several brands' campaigns, newest first, in one query (LATERAL). A brand
    the principal may not use holds no campaign here (a field of a brand it sees)."""
    authorize(principal, Action.CAMPAIGN_READ)
    usable = scoping.usable_brands(principal, brand_ids)
    rows: list[Campaign] = []
    totals: dict[uuid.UUID, int] | None = {} if counted else None
    if usable:
        ids = select(func.unnest(cast(usable, ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery("b")
        conditions = [Campaign.tenant_id == principal.tenant_id, Campaign.brand_id == ids.c.id,
                      Campaign.automation_id.is_(None)]
        if statuses:
            conditions.append(Campaign.status.in_([s.value for s in statuses]))
        after, order = page.keyset(_newest(), datetime, uuid.UUID)
        each = select(Campaign).where(*conditions, *after).order_by(*order).limit(page.size + 1).lateral("c")
        campaign = aliased(Campaign, each)
        async with tenant_session(principal.tenant_id) as s:
            rows = list((await s.scalars(select(campaign).select_from(ids).join(each, true()).order_by(
                campaign.brand_id, *page.ordering(_newest(campaign))))).all())
            if counted:  # every brand's count, one query on the brand index
                totals = dict((await s.execute(select(Campaign.brand_id, func.count()).select_from(ids)
                                               .join(Campaign, and_(*conditions)).group_by(Campaign.brand_id))).all())
    return pages_by(brand_ids, rows, lambda c: c.brand_id, page, lambda c: encode_cursor(c.created_at, c.id), totals)


# --- definitions -------------------------------------------------------------------------


async def _check_segments(s: AsyncSession, principal: Principal, brand_id: uuid.UUID, ids: list[uuid.UUID],
                          field: str) -> list[uuid.UUID]:
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_SEGMENTS:
        raise DomainError(f"at most {MAX_SEGMENTS} segments", field=field, code=ErrorCode.LIMIT_EXCEEDED)
    if not ids:
        return []
    found = {x.id: x for x in await s.scalars(select(Segment).where(
        Segment.tenant_id == principal.tenant_id, Segment.id.in_(ids)))}
    for i, sid in enumerate(ids):
        seg = found.get(sid)
        if seg is None or seg.brand_id != brand_id:
            raise NotFound("not a segment of this campaign's brand", field=f"{field}[{i}]")
        if seg.archived_at is not None:
            raise InvalidState(f"segment {seg.name!r} is archived", field=f"{field}[{i}]")
    return ids


def _clean(data: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    v = Validator()
    out: dict[str, Any] = {}
    if creating or "name" in data:
        out["name"] = validation.text(v, "name", data.get("name"), required=True, max_len=200)
    if creating:
        channel = data.get("channel")
        if channel not in CHANNELS:
            v.add("channel", f"channel is one of {', '.join(CHANNELS)}")
        out["channel"] = channel
    if "priority" in data and data["priority"] is not None:
        if not isinstance(data["priority"], int) or not 1 <= data["priority"] <= 10:
            v.add("priority", "priority runs from 1 (low) to 10 (urgent)")
        out["priority"] = data["priority"]
    if "event_ref" in data:
        out["event_ref"] = validation.text(v, "eventRef", data["event_ref"], required=False, max_len=200)
    if "cost_cents" in data and data["cost_cents"] is not None:
        if data["cost_cents"] < 0:
            v.add("costCents", "cost cannot be negative")
        out["cost_cents"] = data["cost_cents"]
    if "send_window_hours" in data and data["send_window_hours"] is not None:
        if not 1 <= data["send_window_hours"] <= 168:
            v.add("sendWindowHours", "the send window runs from 1 to 168 hours")
        out["send_window_hours"] = data["send_window_hours"]
    v.check()
    return out


async def _apply_references(s: AsyncSession, principal: Principal, campaign: Campaign, data: dict[str, Any]) -> None:
    if "segment_ids" in data:
        campaign.segment_ids = await _check_segments(s, principal, campaign.brand_id, data["segment_ids"] or [],
                                                     "segmentIds")
    if "exclusion_segment_ids" in data:
        campaign.exclusion_segment_ids = await _check_segments(
            s, principal, campaign.brand_id, data["exclusion_segment_ids"] or [], "exclusionSegmentIds")
    if "product_id" in data:
        pid = data["product_id"]
        if pid is not None:
            product = await s.scalar(select(Product).where(Product.tenant_id == principal.tenant_id, Product.id == pid))
            if product is None or (product.brand_id is not None and product.brand_id != campaign.brand_id):
                raise NotFound("product not found", field="productId")
        campaign.product_id = pid
    if "content" in data:
        attrs = (await dsl_context(s, principal.tenant_id)).custom_attributes
        campaign.content = templates.check(campaign.channel, data["content"] or {}, attrs)


async def create_campaign(principal: Principal, brand_id: uuid.UUID, data: dict[str, Any]) -> Campaign:
    authorize(principal, Action.CAMPAIGN_WRITE)
    values = _clean(data, creating=True)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        campaign = Campaign(id=uuid.uuid4(), tenant_id=principal.tenant_id, brand_id=brand_id,
                            status=Status.DRAFT.value, created_by=principal.label, content={}, segment_ids=[],
                            exclusion_segment_ids=[], **values)
        await _apply_references(s, principal, campaign, data)
        s.add(campaign)
        s.add(CampaignStats(tenant_id=principal.tenant_id, campaign_id=campaign.id))
        await s.flush()
        await s.refresh(campaign)
        audit.record(s, principal, "campaign.create", "Campaign", campaign.id, brand_id=brand_id,
                     summary={"name": campaign.name, "channel": campaign.channel})
    return campaign


async def update_campaign(principal: Principal, campaign_id: uuid.UUID, data: dict[str, Any]) -> Campaign:
    authorize(principal, Action.CAMPAIGN_WRITE)
    values = _clean(data, creating=False)
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, lock=True)
        if campaign.status not in EDITABLE:
            raise InvalidState(f"a {campaign.status} campaign cannot be edited", field="id")
        before = {k: getattr(campaign, k) for k in values}
        for k, v in values.items():
            setattr(campaign, k, v)
        await _apply_references(s, principal, campaign, data)
        await s.flush()
        await s.refresh(campaign)
        summary = audit.diff(before, values)
        for key in ("content", "segment_ids", "exclusion_segment_ids", "product_id"):
            if key in data:
                summary[key] = "changed"
        audit.record(s, principal, "campaign.update", "Campaign", campaign.id, brand_id=campaign.brand_id,
                     summary=summary)
    return campaign


async def delete_campaign(principal: Principal, campaign_id: uuid.UUID) -> uuid.UUID:
    """Only drafts are deleted; anything that sent stays for its history and stats."""
    authorize(principal, Action.CAMPAIGN_WRITE)
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, lock=True)
        if campaign.status != Status.DRAFT.value:
            raise InvalidState(f"only drafts are deleted; this campaign is {campaign.status} (cancel it instead)",
                               field="id")
        await s.delete(campaign)
        audit.record(s, principal, "campaign.delete", "Campaign", campaign.id, brand_id=campaign.brand_id,
                     summary={"name": campaign.name})
    return campaign_id


# --- schedules ---------------------------------------------------------------------------


def parse_local(value: str, field: str) -> datetime:
    """A wall-clock time without offset: 2026-12-01T09:00."""
    try:
        at = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise DomainError("use a local date and time such as 2026-12-01T09:00", field=field) from None
    if at.tzinfo is not None:
        raise DomainError("give the wall-clock time without an offset; the timezone comes from the brand "
                          "or the recipient", field=field)
    return at


def schedule_start(mode: ScheduleMode, local: datetime, brand_tz: str) -> datetime:
    """When sending starts: the time in the brand's zone, or (recipient-local) when the first
    zone on Earth reaches it."""
    if mode is ScheduleMode.AT:
        return local.replace(tzinfo=ZoneInfo(brand_tz)).astimezone(UTC)
    return local.replace(tzinfo=UTC) - EARLIEST_OFFSET


def _check_ready(campaign: Campaign) -> None:
    """A campaign must be complete before it is scheduled or launched."""
    v = Validator()
    if not campaign.segment_ids:
        v.add("segmentIds", "choose at least one target segment", ErrorCode.REQUIRED)
    v.errors.extend(templates.missing(campaign.channel, campaign.content or {}))
    v.check()


async def schedule_campaign(principal: Principal, campaign_id: uuid.UUID, mode: ScheduleMode,
                            local_time: str) -> Campaign:
    authorize(principal, Action.CAMPAIGN_SEND)
    if mode is ScheduleMode.NOW:
        raise DomainError("to send now, launch the campaign", field="mode")
    local = parse_local(local_time, "localTime")
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, lock=True)
        if campaign.status not in EDITABLE:
            raise InvalidState(f"a {campaign.status} campaign cannot be scheduled", field="id")
        _check_ready(campaign)
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == campaign.tenant_id, Brand.id == campaign.brand_id))
        start = schedule_start(mode, local, brand.timezone)
        latest = local.replace(tzinfo=UTC) + LATEST_OFFSET if mode is ScheduleMode.LOCAL else start
        if latest <= datetime.now(UTC):
            raise DomainError("this time has passed", field="localTime")
        campaign.status = Status.SCHEDULED.value
        campaign.schedule_mode = mode.value
        campaign.scheduled_at = max(start, datetime.now(UTC))
        campaign.local_send_at = local
        audit.record(s, principal, "campaign.schedule", "Campaign", campaign.id, brand_id=campaign.brand_id,
                     summary={"mode": mode.value, "local_time": local.isoformat(),
                              "starts_at": campaign.scheduled_at.isoformat()})
    return campaign


@asynccontextmanager
async def _locked_in(principal: Principal, campaign_id: uuid.UUID, status: Status,
                     refusal: str) -> AsyncIterator[tuple[AsyncSession, Campaign]]:
    """A session with the campaign locked, for a change the principal may make to a campaign in
    ``status`` (else InvalidState: "a <status> campaign <refusal>")."""
    authorize(principal, Action.CAMPAIGN_SEND)
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, lock=True)
        if campaign.status != status.value:
            raise InvalidState(f"a {campaign.status} campaign {refusal}", field="id")
        yield s, campaign


async def unschedule_campaign(principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    async with _locked_in(principal, campaign_id, Status.SCHEDULED, "is not scheduled") as (s, campaign):
        campaign.status = Status.DRAFT.value
        campaign.schedule_mode = ScheduleMode.NOW.value
        campaign.scheduled_at = campaign.local_send_at = None
        audit.record(s, principal, "campaign.unschedule", "Campaign", campaign.id, brand_id=campaign.brand_id)
    return campaign


# --- launching and the running states ----------------------------------------------------


async def launch_campaign(principal: Principal, campaign_id: uuid.UUID, idempotency_key: str) -> Campaign:
    """Start sending now. The same key twice launches once (the second call returns the campaign
    as it is). A scheduled recipient-local campaign keeps its local time per recipient."""
    authorize(principal, Action.CAMPAIGN_SEND)
    v = Validator()
    key = validation.text(v, "idempotencyKey", idempotency_key, required=True, max_len=200)
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, lock=True)
        if campaign.launch_key == key:
            return campaign
        if campaign.status not in EDITABLE:
            raise InvalidState(f"a {campaign.status} campaign cannot be launched", field="id")
        _check_ready(campaign)
        await delivery.require_provider(s, campaign.tenant_id, campaign.brand_id, campaign.channel)
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == campaign.tenant_id, Brand.id == campaign.brand_id))
        if campaign.channel == "email" and not brand.from_email:
            raise InvalidState("the brand has no sending address; set its fromEmail (updateBrand)", field="id")
        if campaign.schedule_mode == ScheduleMode.AT.value:
            campaign.schedule_mode = ScheduleMode.NOW.value
        start(s, campaign, key)
        audit.record(s, principal, "campaign.launch", "Campaign", campaign.id, brand_id=campaign.brand_id,
                     summary={"idempotency_key": key})
        sending.prepare_later(s, campaign.tenant_id, campaign.id)
    return campaign


def start(s: AsyncSession, campaign: Campaign, key: str) -> None:
    now = datetime.now(UTC)
    campaign.status = Status.SENDING.value
    campaign.launch_key = key
    campaign.launched_at = now
    if campaign.schedule_mode == ScheduleMode.NOW.value:
        campaign.scheduled_at = now


async def launch_due(tenant_id: uuid.UUID) -> int:
    """The scheduler's pass: scheduled campaigns whose time has come start sending."""
    async with tenant_session(tenant_id) as s:
        due = list((await s.scalars(select(Campaign).where(
            Campaign.tenant_id == tenant_id, Campaign.status == Status.SCHEDULED.value,
            Campaign.scheduled_at <= datetime.now(UTC),
        ).order_by(Campaign.priority.desc(), Campaign.scheduled_at).with_for_update(skip_locked=True))).all())
        for campaign in due:
            start(s, campaign, f"schedule:{campaign.scheduled_at.isoformat()}")
            audit.record(s, None, "campaign.launch", "Campaign", campaign.id, tenant_id=tenant_id,
                         brand_id=campaign.brand_id, summary={"trigger": "schedule"})
            sending.prepare_later(s, tenant_id, campaign.id)
    return len(due)


async def pause_campaign(principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    """Batches check the status before each provider call, so sending stops within seconds."""
    async with _locked_in(principal, campaign_id, Status.SENDING, "cannot be paused") as (s, campaign):
        campaign.status = Status.PAUSED.value
        campaign.paused_at = datetime.now(UTC)
        audit.record(s, principal, "campaign.pause", "Campaign", campaign.id, brand_id=campaign.brand_id)
    return campaign


async def resume_campaign(principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    async with _locked_in(principal, campaign_id, Status.PAUSED, "cannot be resumed") as (s, campaign):
        campaign.status = Status.SENDING.value
        campaign.paused_at = None
        audit.record(s, principal, "campaign.resume", "Campaign", campaign.id, brand_id=campaign.brand_id)
        sending.prepare_later(s, campaign.tenant_id, campaign.id)
    return campaign


async def cancel_campaign(principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    """Nothing more is sent; recipients not yet sent to are marked cancelled."""
    authorize(principal, Action.CAMPAIGN_SEND)
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, lock=True)
        if campaign.status not in (Status.DRAFT.value, Status.SCHEDULED.value, Status.SENDING.value,
                                   Status.PAUSED.value):
            raise InvalidState(f"a {campaign.status} campaign cannot be cancelled", field="id")
        campaign.status = Status.CANCELLED.value
        campaign.cancelled_at = datetime.now(UTC)
        dropped = (await s.execute(update(Recipient).where(
            Recipient.tenant_id == campaign.tenant_id, Recipient.campaign_id == campaign.id,
            Recipient.status == "queued").values(status="cancelled"))).rowcount
        if dropped:
            await stats.bump(s, campaign.tenant_id, campaign.id, queued=-dropped)
        audit.record(s, principal, "campaign.cancel", "Campaign", campaign.id, brand_id=campaign.brand_id,
                     summary={"not_sent": dropped})
    return campaign


# --- previews ----------------------------------------------------------------------------


async def preview_message(principal: Principal, campaign_id: uuid.UUID, customer_id: uuid.UUID) -> dict[str, Any]:
    """The message as this customer would get it (rendered with their data), without sending."""
    authorize(principal, Action.CAMPAIGN_READ)
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, field="campaignId")
        customer = await load_visible(s, principal, customer_id)
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == campaign.tenant_id, Brand.id == campaign.brand_id))
        return await sending.render_one(s, campaign, brand, customer)


async def preview_audience(principal: Principal, campaign_id: uuid.UUID) -> dict[str, Any]:
    """Who a launch now would reach: the count, the count excluded per reason, and how many would
    wait (quiet hours, frequency cap, local time). Reads the segments as last refreshed."""
    authorize(principal, Action.CAMPAIGN_READ)
    async with tenant_session(principal.tenant_id) as s:
        campaign = await load(s, principal, campaign_id, field="campaignId")
        return await audience.preview(s, campaign)
