"""Running segment automations: after a refresh for those who entered or left, and every N
hours for the current members (the scheduler's hourly actor).

Every execution is claimed before it runs: one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
into ``automation_executions``, whose key is (automation, customer, occurrence). The occurrence
is the membership stay (its ``entered_at``), the exit (``exit:<exited_at>``) or the period
(``periodic:<period start>``), so running the same refresh twice, or a retried job, never runs an
automation twice for the same entry, exit or period. Tag actions run in the claiming transaction,
set-based; webhooks go out after it commits (:mod:`domain.automations.webhooks`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, and_, case, cast, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.automations.models import (
    ActionKind,
    AutomationExecution,
    AutomationRun,
    ExecutionStatus,
    RunStatus,
    SegmentAutomation,
    Trigger,
)
from domain.automations.runs import fail_pending, finish, settle_messages
from domain.automations.webhooks import deliver, schedule_retry
from domain.audit import service as audit
from domain.commerce.models import TrackedEvent
from domain.customers.models import Customer, CustomerTag, Tag
from domain.platform import outbox
from domain.platform.broker import tenant_actor
from domain.platform.db import tenant_session
from domain.profiles import service as profiles
from domain.segments import changes
from domain.segments.compiler import ATTRIBUTE, PROFILE, event_input
from domain.segments.models import Segment, SegmentMembership
from domain.timeline.models import TimelineEntry
from domain.timeline.service import Kind

log = logging.getLogger(__name__)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def period_start(now: datetime, every_hours: int) -> datetime:
    """Periods are every_hours long, counted from the Unix epoch (UTC)."""
    length = every_hours * 3600
    return datetime.fromtimestamp(int(now.timestamp()) // length * length, UTC)


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


# its name from before automations were an area of their own: queued messages carry it
@tenant_actor(queue_name="jobs", max_retries=5, time_limit=1_800_000,
              actor_name="segments.automations.run_periodic_automations")
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
            await finish(s, tenant_id, auto.id, run_id)
            return run_id
        if action is ActionKind.EVENT:
            await _event_action(s, tenant_id, seg, auto, run_id)
            await finish(s, tenant_id, auto.id, run_id)
            return run_id
        if action is ActionKind.UPDATE_CUSTOMER:
            await _update_action(s, tenant_id, seg, auto, run_id)
            await finish(s, tenant_id, auto.id, run_id)
            return run_id
        if action is ActionKind.MESSAGE:
            await _message_action(s, tenant_id, seg, auto, run_id)
            await finish(s, tenant_id, auto.id, run_id)
            return run_id
        if action is not ActionKind.WEBHOOK:  # an action this version cannot perform
            await fail_pending(s, tenant_id, auto.id, run_id, f"the {action.value} action is not available")
            await finish(s, tenant_id, auto.id, run_id)
            return run_id
    try:
        pending = await deliver(tenant_id, run_id)
    except Exception:  # the claim is committed: leave the rest to the retry actor, never lose it
        log.exception("webhook delivery failed", extra={"run_id": str(run_id)})
        pending = 1
    if pending:
        await schedule_retry(tenant_id, run_id)
    return run_id


async def _event_action(s: AsyncSession, tenant_id: uuid.UUID, seg: Segment, auto: SegmentAutomation,
                        run_id: uuid.UUID) -> None:
    """Record the tracked event on the run's customers, in the segment's brand: one statement for
    the events and their timeline rows. Each event's idempotency key names the automation, the
    customer and the occurrence, so a retried run records nothing twice. Segments that read the
    event evaluate those customers (a loop was refused when the automation was saved)."""
    e, te = AutomationExecution, TrackedEvent
    of_run = [e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id]
    name = auto.config["event_name"]
    properties = {**(auto.config.get("properties") or {}), "automation_id": str(auto.id), "segment_id": str(seg.id)}
    now = await s.scalar(select(func.now()))
    key = literal(f"automation:{auto.id}:") + cast(e.customer_id, String) + literal(":") + e.occurrence
    made = pg_insert(te).from_select(
        ["id", "tenant_id", "customer_id", "brand_id", "name", "properties", "occurred_at", "idempotency_key"],
        select(func.gen_random_uuid(), e.tenant_id, e.customer_id, literal(seg.brand_id, UUID(as_uuid=True)),
               literal(name), literal(properties, JSONB), literal(now), key).where(*of_run),
    ).on_conflict_do_nothing().returning(te.id, te.customer_id).cte("made")
    data = {"name": name, "properties": properties, "by": f"automation:{auto.name}"[:320]}
    await s.execute(insert(TimelineEntry).from_select(
        ["tenant_id", "customer_id", "occurred_at", "id", "brand_id", "kind", "data", "ref_type", "ref_id"],
        select(literal(tenant_id, UUID(as_uuid=True)), made.c.customer_id, literal(now), func.gen_random_uuid(),
               literal(seg.brand_id, UUID(as_uuid=True)), literal(Kind.EVENT_TRACKED.value), literal(data, JSONB),
               literal("TrackedEvent"), cast(made.c.id, String)),
    ).add_cte(made))
    customers = list(await s.scalars(select(e.customer_id).where(*of_run)))
    await profiles.refresh(s, tenant_id, customers)
    await changes.customers_changed(s, tenant_id, customers, [event_input(name), PROFILE])
    await _succeed(s, of_run)


MESSAGE_SEND_WINDOW_HOURS = 72  # how far the frequency cap may defer an automation's message


async def _message_action(s: AsyncSession, tenant_id: uuid.UUID, seg: Segment, auto: SegmentAutomation,
                          run_id: uuid.UUID) -> None:
    """Send the message to the run's customers through the campaign pipeline: the run's messages
    are the recipients of a campaign of its own (its id is the run's, ``automation_id`` names the
    automation), written in the claiming transaction. So the audience rules decide each one as
    for a scheduled campaign (no address, suppressed, no consent: not sent, and the execution
    fails with that reason; the frequency cap and quiet hours defer it), a configured wait moves
    its send time (a row the scheduler's pass dispatches when due, surviving restarts), the
    batches deliver each message exactly once, and the campaign's stats (sent, delivered,
    opens, clicks, conversions) are the run's. A recipient is unique per campaign, and the
    executions per stay: a retried run sends nothing twice."""
    from domain.campaigns import audience, sending  # noqa: PLC0415  (campaigns import segments, which import us)
    from domain.campaigns.models import Campaign, CampaignStats, Recipient, Status  # noqa: PLC0415
    from domain.campaigns.stats import bump  # noqa: PLC0415

    e, r = AutomationExecution, Recipient
    of_run = [e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id]
    config = auto.config or {}
    now = await s.scalar(select(func.now()))
    start = now + timedelta(minutes=int(config.get("delay_minutes") or 0))
    campaign = Campaign(id=run_id, tenant_id=tenant_id, brand_id=seg.brand_id, name=auto.name[:200],
                        channel=config["channel"], status=Status.SENDING.value, content=config.get("content") or {},
                        segment_ids=[], exclusion_segment_ids=[], schedule_mode="at", scheduled_at=start,
                        send_window_hours=MESSAGE_SEND_WINDOW_HOURS, launch_key=f"automation-run:{run_id}",
                        launched_at=now, audience_ready_at=now, automation_id=auto.id,
                        created_by=f"automation:{auto.name}"[:320])
    s.add(campaign)
    s.add(CampaignStats(tenant_id=tenant_id, campaign_id=run_id))
    await s.flush()
    counts = await audience.materialize(s, campaign)
    queued = counts.get("queued", 0)
    excluded = sum(n for k, n in counts.items() if k != "queued")
    figures = await bump(s, tenant_id, run_id, cost_cents=0, audience=queued, queued=queued, excluded=excluded)
    sending._finish(campaign, figures)  # nobody to send to: the run's campaign is done
    # each execution's result follows its message: pending while queued (a wait, quiet hours, the
    # cap), then succeeded once sent, or failed with the reason it is not sent
    await settle_messages(s, tenant_id, auto.id, run_id)
    gone = select(r.customer_id).where(r.tenant_id == tenant_id, r.campaign_id == run_id,
                                       r.customer_id == e.customer_id).exists()
    await s.execute(update(e).where(*of_run, e.status == ExecutionStatus.PENDING.value, ~gone).values(
        status=ExecutionStatus.FAILED.value, error="not sent: the customer no longer exists", updated_at=func.now()))
    batches = list(await s.scalars(select(r.batch_no).where(
        r.tenant_id == tenant_id, r.campaign_id == run_id, r.status == "queued",
        r.send_after <= func.now() + timedelta(seconds=5)).distinct().order_by(r.batch_no)))
    for batch_no in batches:  # later ones: the scheduler's dispatch pass, when due
        outbox.send(s, sending.send_batch, tenant_id, str(run_id), batch_no)


async def _update_action(s: AsyncSession, tenant_id: uuid.UUID, seg: Segment, auto: SegmentAutomation,
                         run_id: uuid.UUID) -> None:
    """Set or clear a custom attribute of the run's customers: one statement for the customers
    whose value changes and their timeline rows, one audit entry for the run."""
    e, c = AutomationExecution, Customer
    of_run = [e.tenant_id == tenant_id, e.automation_id == auto.id, e.run_id == run_id]
    name = auto.config["attribute"]
    now = await s.scalar(select(func.now()))
    current = c.attributes[name]
    if auto.config.get("clear"):
        stmt = update(c).where(c.tenant_id == tenant_id, c.id.in_(select(e.customer_id).where(*of_run)),
                               c.attributes.has_key(name)).values(attributes=c.attributes.op("-")(name))
        value = None
    else:
        value = auto.config["value"]
        stmt = update(c).where(c.tenant_id == tenant_id, c.id.in_(select(e.customer_id).where(*of_run)),
                               or_(~c.attributes.has_key(name), current != literal(value, JSONB))).values(
            attributes=func.coalesce(c.attributes, literal({}, JSONB)).op("||")(
                func.jsonb_build_object(name, literal(value, JSONB))))
    changed = stmt.returning(c.id).cte("changed")
    data = {"attribute": name, "value": value, "cleared": value is None, "by": f"automation:{auto.name}"[:320]}
    updated = list(await s.scalars(insert(TimelineEntry).from_select(
        ["tenant_id", "customer_id", "occurred_at", "id", "brand_id", "kind", "data", "ref_type", "ref_id"],
        select(literal(tenant_id, UUID(as_uuid=True)), changed.c.id, literal(now), func.gen_random_uuid(),
               literal(seg.brand_id, UUID(as_uuid=True)), literal(Kind.ATTRIBUTE_CHANGED.value), literal(data, JSONB),
               literal("SegmentAutomation"), literal(str(auto.id))),
    ).add_cte(changed).returning(TimelineEntry.customer_id)))
    if updated:
        await changes.customers_changed(s, tenant_id, updated, [ATTRIBUTE])
    audit.record(s, None, "customer.update", "SegmentAutomation", auto.id, tenant_id=tenant_id, brand_id=seg.brand_id,
                 summary={"automation": auto.name, "attribute": name, "value": value, "customers": len(updated)})
    await _succeed(s, of_run)


async def _succeed(s: AsyncSession, of_run: list) -> None:
    e = AutomationExecution
    await s.execute(update(e).where(*of_run, e.status == ExecutionStatus.PENDING.value).values(
        status=ExecutionStatus.SUCCEEDED.value, attempts=e.attempts + 1, error=None, updated_at=func.now()))


async def _tag_action(s: AsyncSession, tenant_id: uuid.UUID, auto: SegmentAutomation, action: ActionKind,
                      run_id: uuid.UUID) -> None:
    """Add or remove the tag for the run's customers: one statement for the assignments and
    their timeline rows, one to mark the executions."""
    e, ct = AutomationExecution, CustomerTag
    tag = await s.scalar(select(Tag).where(Tag.tenant_id == tenant_id, Tag.id == uuid.UUID(auto.config["tag_id"])))
    if tag is None:
        await fail_pending(s, tenant_id, auto.id, run_id, "the tag no longer exists")
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
