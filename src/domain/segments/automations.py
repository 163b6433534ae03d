"""Segment automations: when customers enter or leave a segment (or every N hours for its
members), add or remove a tag, or call the tenant's webhook.

Every execution is claimed before it runs: one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
into ``automation_executions``, whose key is (automation, customer, occurrence). The occurrence
is the membership stay (its ``entered_at``), the exit (``exit:<exited_at>``) or the period
(``periodic:<period start>``), so running the same refresh twice, or a retried job, never runs an
automation twice for the same entry, exit or period. Tag actions run in the claiming transaction,
set-based. Webhooks go out after it commits, 500 customers per signed POST; 429, 5xx, timeouts and
connection errors are retried with exponential backoff by :func:`retry_webhooks`, which re-sends the
run's pending executions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import httpx
from dramatiq.middleware import CurrentMessage
from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.config import get_settings
from domain.customers.models import Customer, CustomerTag, Tag
from domain.errors import (
    ErrorCode,
    InvalidState,
    LimitExceeded,
    NotFound,
    Validator,
)
from domain.pagination import Page, decode_cursor, encode_cursor
from domain.platform import crypto
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.segments import service
from domain.segments.models import (
    AutomationExecution,
    AutomationRun,
    Segment,
    SegmentAutomation,
    SegmentMembership,
)
from domain.tenancy import scoping, validation
from domain.tenancy.models import Tenant
from domain.tenancy.policies import Action, Principal, authorize
from domain.timeline.models import TimelineEntry
from domain.timeline.service import Kind

log = logging.getLogger(__name__)

MAX_PER_SEGMENT = 20
BATCH_SIZE = 500  # customers per webhook POST
MAX_URL_BYTES = 2048
MAX_EVERY_HOURS = 168
SIGNATURE_HEADER = "X-Brandgraph-Signature"
CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 10.0
MAX_RETRIES = 8
MIN_BACKOFF_MS = 5_000
MAX_BACKOFF_MS = 600_000
_ERROR_CHARS = 500


class Trigger(str, Enum):
    ENTER = "enter"
    EXIT = "exit"
    PERIODIC = "periodic"


class ActionKind(str, Enum):
    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    WEBHOOK = "webhook"
    CAMPAIGN = "campaign"  # reserved for the campaigns capability: refused for now


class ExecutionStatus(str, Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunStatus(str, Enum):
    RUNNING = "running"  # webhook deliveries still pending (being retried)
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some executions failed
    FAILED = "failed"


EVENTS = {Trigger.ENTER: "segment.entered", Trigger.EXIT: "segment.exited", Trigger.PERIODIC: "segment.periodic"}


# --- validation -------------------------------------------------------------------------


def url_problem(url: Any) -> tuple[str, ErrorCode] | None:
    """Why ``url`` may not receive webhooks, or None. https only; plain http only to
    127.0.0.1/localhost outside production (tests, local development); no credentials."""
    if not isinstance(url, str) or not url.strip():
        return "a webhook needs a url", ErrorCode.REQUIRED
    if len(url.encode()) > MAX_URL_BYTES:
        return f"the url is longer than {MAX_URL_BYTES} bytes", ErrorCode.TOO_LONG
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "the url must not contain spaces or control characters", ErrorCode.INVALID
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "not a URL", ErrorCode.INVALID
    host = (parts.hostname or "").lower()
    if not host:
        return "the url has no host", ErrorCode.INVALID
    if "@" in parts.netloc:
        return "credentials in the url are refused: deliveries are signed instead", ErrorCode.INVALID
    production = get_settings().production
    scheme = parts.scheme.lower()
    if scheme == "http" and host in ("127.0.0.1", "localhost") and not production:
        return None
    if scheme != "https":
        return "use an https:// url", ErrorCode.INVALID
    if production:
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            ip = None
        if host == "localhost" or host.endswith(".localhost") or (ip is not None and not ip.is_global):
            return "loopback, private and link-local addresses are refused", ErrorCode.INVALID
    return None


def _clean_config(v: Validator, trigger: Trigger | None, action: ActionKind | None, config: Any,
                  *, strict: bool) -> dict[str, Any]:
    """The stored config for this trigger and action. ``strict``: keys that do not belong are
    refused (the caller's input); otherwise dropped (a kept config after a change of action)."""
    if not isinstance(config, dict):
        v.add("config", "config is an object")
        return {}
    wanted: set[str] = set()
    out: dict[str, Any] = {}
    if trigger is Trigger.PERIODIC:
        wanted.add("every_hours")
        hours = config.get("every_hours")
        if hours is None:
            v.add("config.every_hours", "a periodic automation needs every_hours", ErrorCode.REQUIRED)
        elif isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_EVERY_HOURS:
            v.add("config.every_hours", f"every_hours is a whole number from 1 to {MAX_EVERY_HOURS}")
        else:
            out["every_hours"] = hours
    if action in (ActionKind.ADD_TAG, ActionKind.REMOVE_TAG):
        wanted.add("tag_id")
        tag_id = config.get("tag_id")
        if tag_id is None:
            v.add("config.tag_id", "a tag action needs tag_id", ErrorCode.REQUIRED)
        else:
            try:
                out["tag_id"] = str(uuid.UUID(str(tag_id)))
            except ValueError:
                v.add("config.tag_id", f"{tag_id!r} is not a tag id")
    elif action is ActionKind.WEBHOOK:
        wanted.add("url")
        problem = url_problem(config.get("url"))
        if problem:
            v.add("config.url", *problem)
        else:
            out["url"] = config["url"]
    if strict:
        for key in sorted(set(config) - wanted):
            v.add(f"config.{key}", f"{key} is not a setting of this trigger and action")
    return out


def _parse(v: Validator, field: str, enum: type[Enum], value: Any) -> Any:
    if value is None:
        v.add(field, f"{field} is required", ErrorCode.REQUIRED)
        return None
    try:
        return enum(getattr(value, "value", value))
    except ValueError:
        v.add(field, f"{field} is one of {', '.join(e.value for e in enum if e.value != 'campaign')}")
        return None


def _clean(data: dict[str, Any], current: SegmentAutomation | None) -> dict[str, Any]:
    v = Validator()
    out: dict[str, Any] = {}
    if current is None or "name" in data:
        out["name"] = validation.text(v, "name", data.get("name"), required=True, max_len=200)
    trigger = _parse(v, "trigger", Trigger, data["trigger"]) if "trigger" in data else Trigger(current.trigger)
    action = _parse(v, "action", ActionKind, data["action"]) if "action" in data else ActionKind(current.action)
    if action is ActionKind.CAMPAIGN:
        v.add("action", "the campaign action comes with campaigns and is not available yet; "
                        "use add_tag, remove_tag or webhook")
        action = None
    if "config" in data:
        out["config"] = _clean_config(v, trigger, action, data["config"], strict=True)
    elif current is None:
        out["config"] = _clean_config(v, trigger, action, {}, strict=True)
    elif "trigger" in data or "action" in data:
        out["config"] = _clean_config(v, trigger, action, current.config or {}, strict=False)
    if "trigger" in data and trigger is not None:
        out["trigger"] = trigger.value
    if "action" in data and action is not None:
        out["action"] = action.value
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            v.add("is_active", "is_active is true or false")
        else:
            out["is_active"] = data["is_active"]
    v.check()
    return out


async def _check_tag(s: AsyncSession, tenant_id: uuid.UUID, config: dict[str, Any]) -> None:
    if "tag_id" in config:
        found = await s.scalar(select(Tag.id).where(Tag.tenant_id == tenant_id, Tag.id == uuid.UUID(config["tag_id"])))
        if found is None:
            raise NotFound("tag not found", field="config.tag_id")


# --- CRUD -------------------------------------------------------------------------------


async def _load(s: AsyncSession, principal: Principal, automation_id: uuid.UUID, *, lock: bool = False,
                field_name: str = "id") -> tuple[SegmentAutomation, Segment]:
    stmt = select(SegmentAutomation).where(SegmentAutomation.tenant_id == principal.tenant_id,
                                           SegmentAutomation.id == automation_id)
    if lock:
        stmt = stmt.with_for_update()
    found = await s.scalar(stmt)
    if found is None:
        raise NotFound("automation not found", field=field_name)
    seg = await service.load(s, principal, found.segment_id, field_name=field_name)  # its brand, or NOT_FOUND
    return found, seg


async def create_automation(principal: Principal, segment_id: uuid.UUID, name: str, trigger: Any, action: Any,
                            config: dict[str, Any] | None, *, is_active: bool = True) -> SegmentAutomation:
    authorize(principal, Action.AUTOMATION_MANAGE)
    values = _clean({"name": name, "trigger": trigger, "action": action, "config": config if config is not None else {},
                     "is_active": is_active}, None)
    async with tenant_session(principal.tenant_id) as s:
        seg = await service.load(s, principal, segment_id, lock=True, field_name="segmentId")
        if seg.archived_at is not None:
            raise InvalidState("segment is archived", field="segmentId")
        count = await s.scalar(select(func.count()).select_from(SegmentAutomation).where(
            SegmentAutomation.tenant_id == seg.tenant_id, SegmentAutomation.segment_id == seg.id))
        if count >= MAX_PER_SEGMENT:
            raise LimitExceeded(f"a segment has at most {MAX_PER_SEGMENT} automations", field="segmentId")
        await _check_tag(s, seg.tenant_id, values["config"])
        found = SegmentAutomation(id=uuid.uuid4(), tenant_id=seg.tenant_id, segment_id=seg.id, **values)
        s.add(found)
        await s.flush()
        await s.refresh(found)
        audit.record(s, principal, "segment_automation.create", "SegmentAutomation", found.id, brand_id=seg.brand_id,
                     summary={"segment_id": seg.id, "name": found.name, "trigger": found.trigger,
                              "action": found.action, "config": found.config})
    return found


async def update_automation(principal: Principal, automation_id: uuid.UUID, data: dict[str, Any]) -> SegmentAutomation:
    """Change name, trigger, action, config or isActive. A new trigger or action keeps the
    settings of the old config that still apply, and asks for the missing ones."""
    authorize(principal, Action.AUTOMATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        found, seg = await _load(s, principal, automation_id, lock=True)
        values = _clean(data, found)
        if "config" in values:
            await _check_tag(s, found.tenant_id, values["config"])
        before = {k: getattr(found, k) for k in values}
        for k, value in values.items():
            setattr(found, k, value)
        await s.flush()
        await s.refresh(found)
        audit.record(s, principal, "segment_automation.update", "SegmentAutomation", found.id, brand_id=seg.brand_id,
                     summary=audit.diff(before, values))
    return found


async def delete_automation(principal: Principal, automation_id: uuid.UUID) -> SegmentAutomation:
    """Delete the automation with its executions (cascade) and runs."""
    authorize(principal, Action.AUTOMATION_MANAGE)
    async with tenant_session(principal.tenant_id) as s:
        found, seg = await _load(s, principal, automation_id, lock=True)
        await s.execute(delete(AutomationRun).where(AutomationRun.tenant_id == found.tenant_id,
                                                    AutomationRun.automation_id == found.id))
        await s.delete(found)
        audit.record(s, principal, "segment_automation.delete", "SegmentAutomation", found.id, brand_id=seg.brand_id,
                     summary={"segment_id": seg.id, "name": found.name, "trigger": found.trigger, "action": found.action})
    return found


async def list_automations(principal: Principal, segment_id: uuid.UUID) -> list[SegmentAutomation]:
    authorize(principal, Action.SEGMENT_READ)
    async with tenant_session(principal.tenant_id) as s:
        seg = await service.load(s, principal, segment_id, field_name="segmentId")
        return list((await s.scalars(select(SegmentAutomation).where(
            SegmentAutomation.tenant_id == seg.tenant_id, SegmentAutomation.segment_id == seg.id)
            .order_by(SegmentAutomation.created_at, SegmentAutomation.id))).all())


async def automations_by_ids(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, SegmentAutomation]:
    """For node lookups: only automations of segments of the principal's brands."""
    authorize(principal, Action.SEGMENT_READ)
    stmt = select(SegmentAutomation).join(Segment, and_(
        Segment.tenant_id == SegmentAutomation.tenant_id, Segment.id == SegmentAutomation.segment_id)).where(
        SegmentAutomation.tenant_id == principal.tenant_id, SegmentAutomation.id.in_(set(ids)))
    stmt = scoping.in_brands(stmt, principal, Segment.brand_id)
    async with tenant_session(principal.tenant_id) as s:
        return {x.id: x for x in await s.scalars(stmt)}


async def executions(principal: Principal, automation_id: uuid.UUID, *, first: int, after: str | None
                     ) -> Page[tuple[AutomationExecution, datetime]]:
    """The automation's executions, newest run first (then by customer), with their run's start."""
    authorize(principal, Action.SEGMENT_READ)
    e, r = AutomationExecution, AutomationRun
    conditions = [e.tenant_id == principal.tenant_id, e.automation_id == automation_id]
    if after:
        started, run_id, customer_id = decode_cursor(after, datetime, uuid.UUID, uuid.UUID)
        conditions.append(or_(r.started_at < started,
                              and_(r.started_at == started, e.run_id < run_id),
                              and_(r.started_at == started, e.run_id == run_id, e.customer_id < customer_id)))
    async with tenant_session(principal.tenant_id) as s:
        await _load(s, principal, automation_id)
        rows = (await s.execute(
            select(e, r.started_at).join(r, and_(r.tenant_id == e.tenant_id, r.id == e.run_id)).where(*conditions)
            .order_by(r.started_at.desc(), e.run_id.desc(), e.customer_id.desc()).limit(first + 1))).all()
    return Page.of([(row[0], row[1]) for row in rows], first,
                   lambda x: encode_cursor(x[1], x[0].run_id, x[0].customer_id))


async def runs(principal: Principal, automation_id: uuid.UUID, *, first: int, after: str | None = None
               ) -> Page[AutomationRun]:
    """The automation's runs, newest first."""
    authorize(principal, Action.SEGMENT_READ)
    r = AutomationRun
    conditions = [r.tenant_id == principal.tenant_id, r.automation_id == automation_id]
    if after:
        started, last = decode_cursor(after, datetime, uuid.UUID)
        conditions.append(or_(r.started_at < started, and_(r.started_at == started, r.id < last)))
    async with tenant_session(principal.tenant_id) as s:
        await _load(s, principal, automation_id)
        rows = list((await s.scalars(select(r).where(*conditions).order_by(r.started_at.desc(), r.id.desc())
                                     .limit(first + 1))).all())
    return Page.of(rows, first, lambda x: encode_cursor(x.started_at, x.id))


# --- the webhook secret -----------------------------------------------------------------


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def webhook_secret(tenant_id: uuid.UUID) -> str:
    """The tenant's signing secret, created (and stored encrypted) on first use."""
    async with tenant_session(tenant_id) as s:
        stored = await s.scalar(select(Tenant.webhook_secret_encrypted).where(Tenant.id == tenant_id))
        if stored:
            return crypto.decrypt(stored)
        tenant = await s.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
        if tenant is None:
            raise NotFound("tenant not found")
        if tenant.webhook_secret_encrypted:  # created meanwhile
            return crypto.decrypt(tenant.webhook_secret_encrypted)
        secret = _new_secret()
        tenant.webhook_secret_encrypted = crypto.encrypt(secret)
    return secret


async def rotate_webhook_secret(principal: Principal) -> str:
    """A new signing secret, returned this once. Owners and admins of every brand only: the
    secret signs every brand's deliveries."""
    authorize(principal, Action.WEBHOOK_SECRET_ROTATE)
    secret = _new_secret()
    async with tenant_session(principal.tenant_id) as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.id == principal.tenant_id).with_for_update())
        if tenant is None:
            raise NotFound("tenant not found")
        rotated = tenant.webhook_secret_encrypted is not None
        tenant.webhook_secret_encrypted = crypto.encrypt(secret)
        audit.record(s, principal, "tenant.rotate_webhook_secret", "Tenant", tenant.id,
                     summary={"replaced_previous": rotated})
    return secret


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# --- running ----------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def period_start(now: datetime, every_hours: int) -> datetime:
    """Periods are every_hours long, counted from the Unix epoch (UTC)."""
    length = every_hours * 3600
    return datetime.fromtimestamp(int(now.timestamp()) // length * length, UTC)


def _event_of(occurrence: str) -> str:
    if occurrence.startswith("exit:"):
        return EVENTS[Trigger.EXIT]
    if occurrence.startswith("periodic:"):
        return EVENTS[Trigger.PERIODIC]
    return EVENTS[Trigger.ENTER]


async def run_for_changes(tenant_id: uuid.UUID, segment_id: uuid.UUID, at: datetime) -> None:
    """Run the segment's enter/exit automations for the membership changes made at ``at``."""
    async with tenant_session(tenant_id) as s:
        seg = await s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == segment_id))
        if seg is None:
            return
        autos = list((await s.scalars(select(SegmentAutomation).where(
            SegmentAutomation.tenant_id == tenant_id, SegmentAutomation.segment_id == segment_id,
            SegmentAutomation.is_active.is_(True),
            SegmentAutomation.trigger.in_([Trigger.ENTER.value, Trigger.EXIT.value]))
            .order_by(SegmentAutomation.created_at, SegmentAutomation.id))).all())
    m = SegmentMembership
    for auto in autos:
        if auto.trigger == Trigger.ENTER.value:
            occurrence, changed = _iso(at), m.entered_at == at
        else:
            occurrence, changed = "exit:" + _iso(at), m.exited_at == at
        await _run(tenant_id, seg, auto, occurrence, changed, now=None)


@tenant_actor(queue_name="jobs", max_retries=5, time_limit=1_800_000)
async def run_periodic_automations(tenant_id: uuid.UUID) -> None:
    """The scheduler's hourly message: run the tenant's due periodic automations."""
    await run_periodic(tenant_id)


async def run_periodic(tenant_id: uuid.UUID, now: datetime | None = None) -> int:
    """The scheduler's pass: each active periodic automation whose last run is at least
    every_hours old runs for the segment's current members, once per member and period.
    Returns how many automations ran."""
    now = now or datetime.now(UTC)
    async with tenant_session(tenant_id) as s:
        rows = (await s.execute(select(SegmentAutomation, Segment).join(Segment, and_(
            Segment.tenant_id == SegmentAutomation.tenant_id, Segment.id == SegmentAutomation.segment_id)).where(
            SegmentAutomation.tenant_id == tenant_id, SegmentAutomation.trigger == Trigger.PERIODIC.value,
            SegmentAutomation.is_active.is_(True), Segment.archived_at.is_(None), Segment.is_active.is_(True))
            .order_by(SegmentAutomation.created_at, SegmentAutomation.id))).all()
    ran = 0
    for auto, seg in rows:
        hours = int((auto.config or {}).get("every_hours") or 24)
        if auto.last_run_at is not None and auto.last_run_at > now - timedelta(hours=hours):
            continue
        occurrence = "periodic:" + _iso(period_start(now, hours))
        try:
            await _run(tenant_id, seg, auto, occurrence, SegmentMembership.exited_at.is_(None), now=now)
        except Exception:  # one broken automation does not hold up the others; next pass tries again
            log.exception("periodic automation failed", extra={"automation_id": str(auto.id)})
            continue
        ran += 1
    return ran


async def _run(tenant_id: uuid.UUID, seg: Segment, auto: SegmentAutomation, occurrence: str, members_where,
               *, now: datetime | None) -> uuid.UUID | None:
    """Claim the executions of ``auto`` for the members selected by ``members_where`` and this
    occurrence, then act for the newly claimed ones. ``now`` (periodic runs) is recorded as
    last_run_at even when nothing new was claimed."""
    m, e = SegmentMembership, AutomationExecution
    run_id = uuid.uuid4()
    action = ActionKind(auto.action)
    async with tenant_session(tenant_id) as s:
        claim = pg_insert(e).from_select(
            ["tenant_id", "automation_id", "customer_id", "occurrence", "run_id", "status", "attempts"],
            select(m.tenant_id, literal(auto.id, UUID(as_uuid=True)), m.customer_id, literal(occurrence),
                   literal(run_id, UUID(as_uuid=True)), literal(ExecutionStatus.PENDING.value), literal(0))
            .where(m.tenant_id == tenant_id, m.segment_id == seg.id, members_where),
        ).on_conflict_do_nothing().returning(e.customer_id).cte("claimed")
        claimed = await s.scalar(select(func.count()).select_from(claim))
        stamp = now or await s.scalar(select(func.now()))
        if claimed or now is not None:
            await s.execute(update(SegmentAutomation).where(
                SegmentAutomation.tenant_id == tenant_id, SegmentAutomation.id == auto.id).values(last_run_at=stamp))
        if not claimed:
            return None
        s.add(AutomationRun(id=run_id, tenant_id=tenant_id, automation_id=auto.id, status=RunStatus.RUNNING.value,
                            customers=claimed))
        await s.flush()
        if action in (ActionKind.ADD_TAG, ActionKind.REMOVE_TAG):
            await _tag_action(s, tenant_id, auto, action, run_id)
            await _finish(s, tenant_id, auto.id, run_id)
            return run_id
        if action is not ActionKind.WEBHOOK:  # an action this version cannot perform
            await _fail_pending(s, tenant_id, auto.id, run_id, f"the {action.value} action is not available")
            await _finish(s, tenant_id, auto.id, run_id)
            return run_id
    try:
        pending = await deliver(tenant_id, run_id)
    except Exception:  # the claim is committed: leave the rest to the retry actor, never lose it
        log.exception("webhook delivery failed", extra={"run_id": str(run_id)})
        pending = 1
    if pending:
        await schedule_retry(tenant_id, run_id)
    return run_id


async def _tag_action(s: AsyncSession, tenant_id: uuid.UUID, auto: SegmentAutomation, action: ActionKind,
                      run_id: uuid.UUID) -> None:
    """Add or remove the tag for the run's customers: one statement for the assignments and
    their timeline rows, one to mark the executions."""
    e, ct = AutomationExecution, CustomerTag
    tag = await s.scalar(select(Tag).where(Tag.tenant_id == tenant_id, Tag.id == uuid.UUID(auto.config["tag_id"])))
    if tag is None:
        await _fail_pending(s, tenant_id, auto.id, run_id, "the tag no longer exists")
        return
    of_run = [e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id]
    now = await s.scalar(select(func.now()))
    by = f"automation:{auto.name}"[:320]
    if action is ActionKind.ADD_TAG:
        changed = pg_insert(ct).from_select(
            ["tenant_id", "customer_id", "tag_id", "assigned_by", "assigned_at"],
            select(e.tenant_id, e.customer_id, literal(tag.id, UUID(as_uuid=True)), literal(by), literal(now))
            .where(*of_run),
        ).on_conflict_do_nothing().returning(ct.customer_id).cte("changed")
        kind = Kind.TAG_ADDED
    else:
        changed = delete(ct).where(ct.tenant_id == tenant_id, ct.tag_id == tag.id,
                                   ct.customer_id.in_(select(e.customer_id).where(*of_run))
                                   ).returning(ct.customer_id).cte("changed")
        kind = Kind.TAG_REMOVED
    data = {"tag_id": str(tag.id), "tag": tag.name, "by": by, "automation_id": str(auto.id)}
    brand_id = await s.scalar(select(Segment.brand_id).where(Segment.tenant_id == tenant_id,
                                                             Segment.id == auto.segment_id))
    await s.execute(insert(TimelineEntry).from_select(  # on the segment's brand: other brands never see it
        ["tenant_id", "customer_id", "occurred_at", "id", "brand_id", "kind", "data", "ref_type", "ref_id"],
        select(literal(tenant_id, UUID(as_uuid=True)), changed.c.customer_id, literal(now), func.gen_random_uuid(),
               literal(brand_id, UUID(as_uuid=True)), literal(kind.value), literal(data, JSONB), literal("Tag"),
               literal(str(tag.id))),
    ).add_cte(changed))
    await s.execute(update(e).where(*of_run, e.status == ExecutionStatus.PENDING.value).values(
        status=ExecutionStatus.SUCCEEDED.value, attempts=e.attempts + 1, error=None, updated_at=func.now()))


async def _fail_pending(s: AsyncSession, tenant_id: uuid.UUID, automation_id: uuid.UUID, run_id: uuid.UUID,
                        error: str) -> None:
    e = AutomationExecution
    stmt = update(e).where(e.tenant_id == tenant_id, e.automation_id == automation_id, e.run_id == run_id,
                           e.status == ExecutionStatus.PENDING.value)
    await s.execute(stmt.values(status=ExecutionStatus.FAILED.value, error=error[:_ERROR_CHARS], updated_at=func.now()))


async def _finish(s: AsyncSession, tenant_id: uuid.UUID, automation_id: uuid.UUID, run_id: uuid.UUID) -> int:
    """Bring the run's counts and status in line with its executions; returns how many are
    still pending."""
    e = AutomationExecution
    row = (await s.execute(select(
        func.count(), func.count().filter(e.status == ExecutionStatus.SUCCEEDED.value),
        func.count().filter(e.status == ExecutionStatus.FAILED.value),
        func.count().filter(e.status == ExecutionStatus.PENDING.value),
    ).where(e.tenant_id == tenant_id, e.automation_id == automation_id, e.run_id == run_id))).one()
    total, ok, failed, pending = row
    if pending:
        status = RunStatus.RUNNING
    elif failed == 0:
        status = RunStatus.SUCCEEDED
    elif ok == 0:
        status = RunStatus.FAILED
    else:
        status = RunStatus.PARTIAL
    await s.execute(update(AutomationRun).where(AutomationRun.tenant_id == tenant_id, AutomationRun.id == run_id).values(
        customers=total, succeeded=ok, failed=failed, status=status.value,
        finished_at=None if pending else func.now()))
    return pending


# --- webhook delivery -------------------------------------------------------------------


@dataclass
class Outcome:
    status: ExecutionStatus  # SUCCEEDED, FAILED, or PENDING (retry later)
    error: str | None = None


async def resolves_privately(url: str) -> bool:
    """True when the url's host resolves to a loopback, private or link-local address (checked
    at delivery in production, so a public name pointed at an internal address is refused)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return False  # unresolvable: the delivery itself fails and is retried
    return any(not ipaddress.ip_address(info[4][0].split("%")[0]).is_global for info in infos)


async def _post(client: httpx.AsyncClient, url: str, secret: str, body: bytes, event: str, delivery: str) -> Outcome:
    if get_settings().production and await resolves_privately(url):
        return Outcome(ExecutionStatus.FAILED, "the url resolves to a loopback, private or link-local address")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Brandgraph-Webhooks/1",
        "X-Brandgraph-Event": event,
        "X-Brandgraph-Delivery": delivery,
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
    }
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT):
            async with client.stream("POST", url, content=body, headers=headers) as resp:
                code = resp.status_code
                snippet = b""
                if not 200 <= code < 300:
                    async for chunk in resp.aiter_bytes():
                        snippet += chunk
                        if len(snippet) >= _ERROR_CHARS:
                            break
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(ExecutionStatus.PENDING, f"timed out (connect {CONNECT_TIMEOUT:g} s, total {TOTAL_TIMEOUT:g} s)")
    except httpx.HTTPError as exc:
        return Outcome(ExecutionStatus.PENDING, f"could not deliver: {type(exc).__name__}: {exc}"[:_ERROR_CHARS])
    if 200 <= code < 300:
        return Outcome(ExecutionStatus.SUCCEEDED)
    error = f"HTTP {code}"
    text = snippet.decode(errors="replace").strip()
    if text:
        error += f": {text}"
    error = error[:_ERROR_CHARS]
    if code == 429 or code >= 500:
        return Outcome(ExecutionStatus.PENDING, error)
    if 300 <= code < 400:
        error += " (redirects are not followed)"
    return Outcome(ExecutionStatus.FAILED, error)


async def deliver(tenant_id: uuid.UUID, run_id: uuid.UUID, *, give_up: bool = False) -> int:
    """Send the run's pending executions, 500 customers per POST. A 2xx marks a batch
    succeeded, a 4xx (not 429) failed; on 429, 5xx, a timeout or a connection error the pass stops
    and the rest stays pending for a retry. ``give_up``: what is still pending afterwards fails.
    Returns how many executions are still pending."""
    e = AutomationExecution
    async with tenant_session(tenant_id) as s:
        run = await s.scalar(select(AutomationRun).where(AutomationRun.tenant_id == tenant_id, AutomationRun.id == run_id))
        auto = None if run is None else await s.scalar(select(SegmentAutomation).where(
            SegmentAutomation.tenant_id == tenant_id, SegmentAutomation.id == run.automation_id))
        if auto is None:  # deleted meanwhile (its executions went with it)
            return 0
        seg = await s.scalar(select(Segment).where(Segment.tenant_id == tenant_id, Segment.id == auto.segment_id))
        await s.execute(update(e).where(
            e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id,
            e.status == ExecutionStatus.PENDING.value,
            ~exists(select(Customer.id).where(Customer.tenant_id == e.tenant_id, Customer.id == e.customer_id)),
        ).values(status=ExecutionStatus.FAILED.value, error="the customer no longer exists", updated_at=func.now()))
        url = (auto.config or {}).get("url")
        problem = url_problem(url)
        if auto.action != ActionKind.WEBHOOK.value or problem:
            await _fail_pending(s, tenant_id, auto.id, run_id,
                                problem[0] if problem else "the automation is no longer a webhook")
            return await _finish(s, tenant_id, auto.id, run_id)
    secret = await webhook_secret(tenant_id)
    last_error: str | None = None
    after: uuid.UUID | None = None
    timeout = httpx.Timeout(TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        while True:
            conditions = [e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id,
                          e.status == ExecutionStatus.PENDING.value]
            if after is not None:
                conditions.append(e.customer_id > after)
            async with tenant_session(tenant_id) as s:
                rows = (await s.execute(
                    select(e.customer_id, e.occurrence, Customer.email, Customer.external_id)
                    .join(Customer, and_(Customer.tenant_id == e.tenant_id, Customer.id == e.customer_id))
                    .where(*conditions).order_by(e.customer_id).limit(BATCH_SIZE))).all()
            if not rows:
                break
            after = rows[-1].customer_id
            event = _event_of(rows[0].occurrence)
            body = json.dumps({
                "event": event,
                "segment": {"id": str(seg.id), "name": seg.name},
                "automation": {"id": str(auto.id), "name": auto.name},
                "customers": [{"id": str(r.customer_id), "email": r.email, "external_id": r.external_id} for r in rows],
                "sent_at": datetime.now(UTC).isoformat(),
            }, separators=(",", ":")).encode()
            ids = [r.customer_id for r in rows]
            delivery = str(uuid.uuid5(run_id, ",".join(str(i) for i in ids)))
            outcome = await _post(client, url, secret, body, event, delivery)
            async with tenant_session(tenant_id) as s:
                await s.execute(update(e).where(
                    e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id,
                    e.status == ExecutionStatus.PENDING.value, e.customer_id.in_(ids)).values(status=outcome.status.value, attempts=e.attempts + 1,
                                                   error=outcome.error, updated_at=func.now()))
            if outcome.status is ExecutionStatus.PENDING:  # the endpoint is unwell: retry later
                last_error = outcome.error
                break
    async with tenant_session(tenant_id) as s:
        if give_up:
            await _fail_pending(s, tenant_id, auto.id, run_id, f"gave up after {MAX_RETRIES + 2} attempts"
                                + (f"; last: {last_error}" if last_error else ""))
        return await _finish(s, tenant_id, auto.id, run_id)


async def requeue_stalled_runs(tenant_id: uuid.UUID, older_than: timedelta = timedelta(minutes=15)) -> int:
    """Runs still running long after they started, with deliveries pending: their worker died
    between claiming the executions and queueing the retry. Queue it again (deliveries are
    idempotent per execution), so no claimed delivery is ever lost. Returns how many."""
    async with tenant_session(tenant_id) as s:
        stalled = list((await s.scalars(select(AutomationRun.id).where(
            AutomationRun.tenant_id == tenant_id, AutomationRun.status == RunStatus.RUNNING.value,
            AutomationRun.started_at < func.now() - older_than,
            exists(select(AutomationExecution.customer_id).where(
                AutomationExecution.tenant_id == tenant_id, AutomationExecution.run_id == AutomationRun.id,
                AutomationExecution.status == ExecutionStatus.PENDING.value))))).all())
    for run_id in stalled:
        await schedule_retry(tenant_id, run_id)
    return len(stalled)


async def schedule_retry(tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """Queue the first retry of a run's pending deliveries, MIN_BACKOFF_MS from now."""
    try:
        await asyncio.to_thread(retry_webhooks.send_with_options, args=(str(tenant_id), str(run_id)),
                                delay=MIN_BACKOFF_MS)
    except Exception:  # the executions stay pending; the failure is logged with the run
        log.exception("could not queue a webhook retry", extra={"run_id": str(run_id)})


@tenant_actor(queue_name="jobs", max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS,
              time_limit=1_800_000)
async def retry_webhooks(tenant_id: uuid.UUID, run_id: str) -> None:
    """Re-send a run's pending executions; while some stay pending, Dramatiq retries this
    message with exponential backoff (5 s doubling, at most 10 min, 8 retries). The last retry
    marks what is still pending as failed."""
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    pending = await deliver(tenant_id, uuid.UUID(run_id), give_up=retries >= MAX_RETRIES)
    if pending and message is not None:
        raise dramatiq.Retry(f"{pending} webhook deliveries of run {run_id} still pending")
