"""Sending a campaign through Dramatiq: prepare the audience, then batches, exactly once each.

``prepare_campaign`` (the orchestrator) refreshes stale segments, writes the audience snapshot
and one recipient row per customer, numbered into batches, then sends one ``send_batch`` message
per batch with recipients due now. Recipients deferred to later (quiet hours, frequency cap,
local time) are dispatched by the scheduler's ``dispatch_due`` pass when their time comes.

Exactly once per recipient:

* A batch runs under a PostgreSQL advisory lock held on its own connection for the whole run:
  a second delivery of the same message (Dramatiq redelivers what a dead worker held; the
  scheduler re-dispatches) finds the lock taken and leaves. A worker killed with SIGKILL drops
  its connection, and PostgreSQL frees the lock at once.
* Each provider call is one *chunk*: rows are claimed ``queued → sending`` with a chunk key in a
  committed transaction, sent, then marked ``sent`` (with the provider's message id) in the next.
  Rows found in ``sending`` when a batch starts were claimed by an attempt that died in between:
  they are sent again as the *same* chunk with the *same* key, which a provider with idempotency
  keys (Brevo) processes once. Providers without such keys (SMTP, Twilio, FCM, SendGrid) send in
  small chunks, so at most one small chunk per crash is in doubt (docs/campaigns.md).
* A row never goes back from ``sent``: marking is conditional on the chunk key and an empty
  ``sent_at``.
* Under a brand's frequency cap, the claim re-decides the cap per recipient, holding a lock per
  customer and brand across campaigns (:func:`domain.campaigns.audience.claim_within_cap`).

Pausing: each chunk starts by reading the campaign's status, so a pause stops new sends within
one provider call; resuming re-dispatches the batches that still have queued recipients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend
from redis import exceptions as redis_errors
from sqlalchemy import ARRAY, String, any_, cast, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import UUID as PGUUID
from sqlalchemy.ext.asyncio import AsyncSession

from domain.automations import runs as automation_runs
from domain.campaigns import audience, stats, templates, tracking
from domain.campaigns.models import Campaign, Recipient, Status
from domain.customers.models import Customer
from domain.delivery import service as delivery
from domain.delivery.base import (
    OutboundMessage,
    Outcome,
    ProviderRejected,
    ProviderUnavailable,
    Sender,
    SendResult,
)
from domain.delivery.models import MessagingSettings
from domain.platform import outbox
from domain.platform import redis as redis_mod
from domain.platform.broker import tenant_actor
from domain.platform.db import engine, tenant_session
from domain.profiles.models import CustomerProfile
from domain.segments.models import Segment
from domain.segments.refresh import refresh
from domain.tenancy.models import Brand
from domain.timeline.service import Kind, write_select

log = logging.getLogger(__name__)
RETRY_DELAY = timedelta(seconds=30)


def prepare_later(s: AsyncSession, tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> None:
    """Queue the campaign's preparation with the transaction that started its sending."""
    outbox.send(s, prepare_campaign, tenant_id, str(campaign_id))


# --- the orchestrator --------------------------------------------------------------------


@tenant_actor(queue_name="campaigns", max_retries=20, time_limit=3_600_000)
async def prepare_campaign(tenant_id: uuid.UUID, campaign_id: str) -> None:
    cid = uuid.UUID(campaign_id)
    async with tenant_session(tenant_id) as s:
        campaign = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id == cid))
        if campaign is None or campaign.status != Status.SENDING.value:
            return
        ready = campaign.audience_ready_at is not None
        stale = [] if ready else list((await s.scalars(select(Segment.id).where(
            Segment.tenant_id == tenant_id,
            Segment.id.in_(list(campaign.segment_ids) + list(campaign.exclusion_segment_ids)),
            Segment.kind != "static", Segment.archived_at.is_(None),
            (Segment.stale_since.is_not(None)) | (Segment.last_refreshed_at.is_(None)),
        ))).all())
    if not ready:
        for segment_id in stale:  # each refresh is its own transaction (and its own lock)
            await refresh(tenant_id, segment_id)
        async with tenant_session(tenant_id) as s:
            campaign = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id == cid)
                                      .with_for_update())
            if campaign.status != Status.SENDING.value or campaign.audience_ready_at is not None:
                return
            counts = await audience.materialize(s, campaign)
            queued = counts.get("queued", 0)
            excluded = {k: v for k, v in counts.items() if k != "queued"}
            now = datetime.now(UTC)
            campaign.audience_ready_at = now
            campaign.audience_snapshot = {
                "at": now.isoformat(), "segments": await audience.segment_snapshot(s, campaign),
                "audience": queued, "excluded": excluded,
            }
            figures = await stats.bump(s, tenant_id, cid, cost_cents=campaign.cost_cents, audience=queued,
                                       queued=queued, excluded=sum(excluded.values()))
            if not queued:
                _finish(campaign, figures)
    await dispatch(tenant_id, cid)


async def dispatch(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> int:
    """One batch message per batch with recipients due now (a batch already running ignores the
    extra message)."""
    r = Recipient
    async with tenant_session(tenant_id) as s:
        status = await s.scalar(select(Campaign.status).where(Campaign.tenant_id == tenant_id, Campaign.id == campaign_id))
        if status != Status.SENDING.value:
            return 0
        batches = list((await s.scalars(select(r.batch_no).where(
            r.tenant_id == tenant_id, r.campaign_id == campaign_id, r.status.in_(("queued", "sending")),
            r.send_after <= func.now() + timedelta(seconds=5)).distinct().order_by(r.batch_no))).all())
        for batch_no in batches:
            outbox.send(s, send_batch, tenant_id, str(campaign_id), batch_no)
    return len(batches)


async def dispatch_due(tenant_id: uuid.UUID) -> int:
    """The scheduler's pass: campaigns still sending get their due batches dispatched (deferred
    recipients whose time came, and batches whose worker died)."""
    async with tenant_session(tenant_id) as s:
        sending = list((await s.scalars(select(Campaign.id).where(
            Campaign.tenant_id == tenant_id, Campaign.status == Status.SENDING.value))).all())
    total = 0
    for campaign_id in sending:
        total += await dispatch(tenant_id, campaign_id)
    return total


def _finish(campaign: Campaign, figures: stats.Figures | None) -> None:
    if figures is not None and figures.queued <= 0 and campaign.status == Status.SENDING.value:
        campaign.status = Status.SENT.value
        campaign.completed_at = datetime.now(UTC)


# --- one batch ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def batch_lock(campaign_id: uuid.UUID, batch_no: int) -> AsyncIterator[bool]:
    """Hold a session advisory lock for this batch on a dedicated autocommit connection."""
    key = f"campaign-batch:{campaign_id}:{batch_no}"
    async with engine().connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        held = bool(await conn.scalar(text("select pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": key}))
        try:
            yield held
        finally:
            if held:
                with contextlib.suppress(Exception):
                    await conn.execute(text("select pg_advisory_unlock(hashtextextended(:k, 0))"), {"k": key})


@tenant_actor(queue_name="campaigns", max_retries=50, min_backoff=2_000, max_backoff=120_000, time_limit=1_800_000)
async def send_batch(tenant_id: uuid.UUID, campaign_id: str, batch_no: int) -> None:
    cid = uuid.UUID(campaign_id)
    async with batch_lock(cid, batch_no) as held:
        if not held:
            return
        while await _send_chunk(tenant_id, cid, batch_no):
            pass


async def _claim(s: AsyncSession, campaign: Campaign, brand: Brand, rules: MessagingSettings, batch_no: int,
                 size: int) -> tuple[uuid.UUID, list[tuple[uuid.UUID, str]]] | None:
    """In-doubt rows first (claimed by an attempt that died: same chunk, same key), else claim
    the next due rows: under a frequency cap, only those the cap still allows (the others are
    deferred or excluded, :func:`audience.claim_within_cap`), so the rows may be none while
    more are due."""
    r = Recipient
    tenant_id, campaign_id = campaign.tenant_id, campaign.id
    doubt = (await s.execute(select(r.chunk_key).where(
        r.tenant_id == tenant_id, r.campaign_id == campaign_id, r.batch_no == batch_no, r.status == "sending",
        r.sent_at.is_(None)).limit(1))).scalar()
    if doubt is not None:
        rows = (await s.execute(select(r.customer_id, r.address).where(
            r.tenant_id == tenant_id, r.campaign_id == campaign_id, r.batch_no == batch_no, r.status == "sending",
            r.chunk_key == doubt, r.sent_at.is_(None)).order_by(r.customer_id))).all()
        return doubt, [tuple(x) for x in rows]
    chunk = uuid.uuid4()
    if audience.capped(rules):
        claimed = await audience.claim_within_cap(s, campaign, brand, rules, batch_no, size, chunk)
        if claimed is None:
            return None
        rows, excluded = claimed
        if excluded:  # from the audience to the excluded, as if launch had excluded them
            figures = await stats.bump(s, tenant_id, campaign_id, cost_cents=campaign.cost_cents,
                                       audience=-excluded, excluded=excluded, queued=-excluded)
            if figures is not None and figures.queued <= 0:
                locked = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id,
                                                               Campaign.id == campaign_id).with_for_update()
                                        .execution_options(populate_existing=True))
                _finish(locked, figures)
        return chunk, rows
    due = (select(r.customer_id).where(
        r.tenant_id == tenant_id, r.campaign_id == campaign_id, r.batch_no == batch_no, r.status == "queued",
        r.send_after <= func.now()).order_by(r.customer_id).limit(size).with_for_update(skip_locked=True)).scalar_subquery()
    # ``= ANY(ARRAY(<due>))``: the due rows are locked by one sub-plan run once (an InitPlan), and
    # the update looks only within the batch. As ``IN (<due>)`` the planner may make it the inner
    # side of a nested loop over the campaign's rows, re-running it (and its locking) per row: on a
    # fresh ``campaign_recipients`` (statistics say empty) a 100k campaign took seconds per chunk.
    rows = (await s.execute(update(r).where(
        r.tenant_id == tenant_id, r.campaign_id == campaign_id, r.batch_no == batch_no,
        r.customer_id == any_(func.array(due)),
    ).values(status="sending", chunk_key=chunk, attempts=r.attempts + 1).returning(r.customer_id, r.address)
        .execution_options(synchronize_session=False))).all()
    if not rows:
        return None
    return chunk, sorted(tuple(x) for x in rows)


async def _send_chunk(tenant_id: uuid.UUID, campaign_id: uuid.UUID, batch_no: int) -> bool:
    """Claim, send and mark one provider call's worth of recipients; False when the batch is done
    (or the campaign is no longer sending)."""
    async with tenant_session(tenant_id) as s:
        campaign = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id == campaign_id))
        if campaign is None or campaign.status != Status.SENDING.value:
            return False
        brand = await s.scalar(select(Brand).where(Brand.tenant_id == tenant_id, Brand.id == campaign.brand_id))
        loaded = await delivery.load_provider(s, tenant_id, campaign.brand_id, campaign.channel)
        if loaded is None:
            await _fail(s, campaign, f"the brand has no {campaign.channel} provider")
            return False
        row, provider = loaded
        rules = await delivery.rules_of(s, tenant_id, campaign.brand_id)
        size = max(1, min(provider.max_batch, rules.send_rate_per_second))
        claimed = await _claim(s, campaign, brand, rules, batch_no, size)
        if claimed is None:
            return False
        chunk, rows = claimed
        if not rows:  # the frequency cap deferred or excluded every due row of this chunk
            return True
        messages = await _render(s, campaign, brand, rows)
    await _acquire_rate(campaign.brand_id, rules.send_rate_per_second, size)
    try:
        results = await provider.send(_sender(brand), messages, chunk)
    except ProviderRejected as exc:
        async with tenant_session(tenant_id) as s:
            campaign = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id == campaign_id)
                                      .with_for_update())
            await _fail(s, campaign, f"{row.provider} refused the request: {exc.message}")
        return False
    except ProviderUnavailable as exc:
        # nothing of this call was sent: the rows stay claimed under the same chunk key and
        # Dramatiq retries the batch with backoff
        log.warning("provider unavailable; batch will be retried",
                    extra={"provider": row.provider, "status": exc.status, "campaign_id": str(campaign_id)})
        if campaign.automation_id is not None and await _automation_gives_up(tenant_id, campaign, rows, row.provider,
                                                                             exc):
            return False
        raise
    await _mark(tenant_id, campaign, batch_no, chunk, row.provider, results)
    return True


async def _automation_gives_up(tenant_id: uuid.UUID, campaign: Campaign, rows: list[tuple[uuid.UUID, str]],
                               provider: str, exc: ProviderUnavailable) -> bool:
    """An automation's messages (a MESSAGE run's campaign) show each failed provider call in the
    run's log, and stop after :data:`automation_runs.MESSAGE_MAX_ATTEMPTS`: then the run's
    messages not sent are cancelled and their executions fail, saying why. True when it gave up."""
    reason = f"{provider} unavailable ({exc.status or 'no answer'})"
    async with tenant_session(tenant_id) as s:
        attempts = await automation_runs.message_attempt_failed(s, tenant_id, campaign.automation_id, campaign.id,
                                                                [c for c, _ in rows], reason)
        if attempts < automation_runs.MESSAGE_MAX_ATTEMPTS:
            return False
        locked = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id == campaign.id)
                                .with_for_update())
        await _fail(s, locked, f"gave up after {attempts} attempts: {reason}")
    return True


def _sender(brand: Brand) -> Sender:
    return Sender(from_email=brand.from_email, from_name=brand.from_name or brand.name, reply_to=brand.reply_to,
                  sms_sender=brand.sms_sender)


_limiter_backend = None


async def _acquire_rate(brand_id: uuid.UUID, per_second: int, chunk: int) -> None:
    """The brand's send rate (messages per second), enforced with Dramatiq's window rate limiter
    on Redis, one permit per provider call of up to ``chunk`` messages."""
    global _limiter_backend
    if _limiter_backend is None:
        _limiter_backend = RedisBackend(url=redis_mod.redis_url())
    limiter = WindowRateLimiter(_limiter_backend, f"send-rate:{brand_id}", limit=max(1, per_second // chunk), window=1)

    def take() -> bool:
        with limiter.acquire(raise_on_failure=False) as acquired:
            return bool(acquired)

    waiting_for_redis = False
    while True:
        try:
            if await asyncio.to_thread(take):
                return
        except redis_errors.ConnectionError:  # Redis away: the batch waits for it rather than fail, as
            # a failure now could not be retried either (Dramatiq's retry needs Redis too)
            if not waiting_for_redis:
                log.warning("send rate limiter waiting for Redis", extra={"brand_id": str(brand_id)})
                waiting_for_redis = True
            await asyncio.sleep(0.2)
            continue
        await asyncio.sleep(0.05)


async def _render(s: AsyncSession, campaign: Campaign, brand: Brand,
                  rows: list[tuple[uuid.UUID, str]]) -> list[OutboundMessage]:
    ids = [c for c, _ in rows]
    customers = {c.id: c for c in await s.scalars(select(Customer).where(
        Customer.tenant_id == campaign.tenant_id, Customer.id.in_(ids)))}
    profiles = {p.customer_id: p for p in await s.scalars(select(CustomerProfile).where(
        CustomerProfile.tenant_id == campaign.tenant_id, CustomerProfile.brand_id == campaign.brand_id,
        CustomerProfile.customer_id.in_(ids)))}
    compiled = templates.Compiled.of(campaign.content or {})
    out = []
    for customer_id, address in rows:
        customer = customers.get(customer_id)
        out.append(_message(campaign, brand, compiled, customer_id, address, customer, profiles.get(customer_id)))
    return out


def _message(campaign: Campaign, brand: Brand, compiled: templates.Compiled, customer_id: uuid.UUID,
             address: str, customer: Customer | None, profile: CustomerProfile | None, *,
             preview: bool = False) -> OutboundMessage:
    key = tracking.message_key(campaign.id, customer_id)
    context: dict[str, Any] = {"customer": templates.customer_vars(customer), "brand": templates.brand_vars(brand),
                               "profile": templates.profile_vars(profile), "campaign": {"name": campaign.name}}
    if campaign.channel == "email":
        links = tracking.links(campaign.tenant_id, campaign.id, customer_id, preview=preview)
        context["unsubscribe_url"] = links["unsubscribe"]
        parts = compiled.render(context)
        html = parts.get("html")
        if html:
            html = tracking.instrument_html(html, campaign.tenant_id, campaign.id, customer_id, links["open"],
                                            preview=preview)
        domain = (brand.from_email or "brandgraph.local").rsplit("@", 1)[-1]
        headers = {**tracking.unsubscribe_headers(links["unsubscribe"]), "Message-ID": f"<{key}@{domain}>"}
        name = templates.customer_vars(customer)["full_name"] or None
        return OutboundMessage(key=key, to=address, to_name=name, subject=parts.get("subject"),
                               preheader=parts.get("preheader"), html=html, text=parts.get("text"), headers=headers)
    parts = compiled.render(context)
    if campaign.channel == "sms":
        return OutboundMessage(key=key, to=address, text=parts.get("text"))
    return OutboundMessage(key=key, to=address, title=parts.get("title"), body=parts.get("body"),
                           data={**(parts.get("data") or {}), "bg_key": key})


async def render_one(s: AsyncSession, campaign: Campaign, brand: Brand, customer: Customer) -> dict[str, Any]:
    """The message one customer would get (previews), with the address it would go to. Its
    links work but are preview links: opening or clicking them records nothing."""
    profile = await s.scalar(select(CustomerProfile).where(
        CustomerProfile.tenant_id == campaign.tenant_id, CustomerProfile.brand_id == campaign.brand_id,
        CustomerProfile.customer_id == customer.id))
    address = {"email": customer.email, "sms": customer.phone, "push": customer.push_token}[campaign.channel]
    m = _message(campaign, brand, templates.Compiled.of(campaign.content or {}), customer.id, address or "",
                 customer, profile, preview=True)
    return {"to": address if campaign.channel != "push" else ("device" if address else None), "subject": m.subject,
            "preheader": m.preheader, "html": m.html, "text": m.text, "title": m.title, "body": m.body,
            "data": {k: v for k, v in m.data.items() if k != "bg_key"}, "headers": m.headers}


async def _mark(tenant_id: uuid.UUID, campaign: Campaign, batch_no: int, chunk: uuid.UUID, provider: str,
                results: list[SendResult]) -> None:
    """Record one provider call's results: sent (with ids), failed for good, or back to queued.

    Each update names the batch and the customers (``= ANY(:ids)``) besides joining the per-row
    values: whatever the statistics, the rows read are those of one batch, never the campaign's
    (a join on the campaign's rows alone was planned as a nested loop over all of them)."""
    r = Recipient
    parsed = [(tracking.parse_message_key(x.key), x) for x in results]
    sent = [(k[1], x.provider_message_id) for k, x in parsed if k and x.outcome is Outcome.ACCEPTED]
    rejected = [(k[1], x.error or "rejected") for k, x in parsed if k and x.outcome is Outcome.REJECTED]
    retry = [k[1] for k, x in parsed if k and x.outcome is Outcome.RETRY]
    async with tenant_session(tenant_id) as s:
        now = await s.scalar(select(func.clock_timestamp()))
        n_sent = n_failed = 0
        if sent:
            ids = cast([c for c, _ in sent], ARRAY(PGUUID(as_uuid=True)))
            data = select(func.unnest(ids).label("customer_id"),
                          func.unnest(cast([m for _, m in sent], ARRAY(String))).label("message_id")).subquery("d")
            done = (await s.execute(update(r).where(
                r.tenant_id == tenant_id, r.campaign_id == campaign.id, r.batch_no == batch_no,
                r.customer_id == any_(ids), r.customer_id == data.c.customer_id,
                r.chunk_key == chunk, r.sent_at.is_(None),
            ).values(status=func.coalesce(func.nullif(r.status, "sending"), "sent"), sent_at=now, provider=provider,
                     provider_message_id=data.c.message_id).returning(r.customer_id)
                .execution_options(synchronize_session=False))).scalars().all()
            n_sent = len(done)
            if done:
                await _timeline_sent(s, campaign, list(done), now)
        if rejected:
            ids = cast([c for c, _ in rejected], ARRAY(PGUUID(as_uuid=True)))
            data = select(func.unnest(ids).label("customer_id"),
                          func.unnest(cast([e[:1000] for _, e in rejected], ARRAY(String))).label("error")).subquery("d")
            n_failed = len((await s.execute(update(r).where(
                r.tenant_id == tenant_id, r.campaign_id == campaign.id, r.batch_no == batch_no,
                r.customer_id == any_(ids), r.customer_id == data.c.customer_id,
                r.chunk_key == chunk, r.status == "sending",
            ).values(status="failed", failed_at=now, provider=provider, error=data.c.error).returning(r.customer_id)
                .execution_options(synchronize_session=False))).all())
        if retry:
            await s.execute(update(r).where(
                r.tenant_id == tenant_id, r.campaign_id == campaign.id, r.batch_no == batch_no,
                r.customer_id.in_(retry), r.chunk_key == chunk,
                r.status == "sending").values(status="queued", chunk_key=None, send_after=now + RETRY_DELAY)
                .execution_options(synchronize_session=False))
        figures = await stats.bump(s, tenant_id, campaign.id, cost_cents=campaign.cost_cents, sent=n_sent,
                                   failed=n_failed, queued=-(n_sent + n_failed), sent_now=bool(n_sent))
        if figures is not None and figures.queued <= 0:
            locked = await s.scalar(select(Campaign).where(Campaign.tenant_id == tenant_id, Campaign.id == campaign.id)
                                    .with_for_update())
            _finish(locked, figures)
        if campaign.automation_id is not None:  # a MESSAGE run: its log follows its messages
            await automation_runs.settle_messages(s, tenant_id, campaign.automation_id, campaign.id)


async def _timeline_sent(s: AsyncSession, campaign: Campaign, customer_ids: list[uuid.UUID], at: datetime) -> None:
    ids = select(func.unnest(cast(customer_ids, ARRAY(PGUUID(as_uuid=True)))).label("id")).subquery("c")
    data = func.jsonb_build_object("campaign_id", str(campaign.id), "campaign", campaign.name,
                                   "channel", campaign.channel)
    await write_select(s, select(
        literal(campaign.tenant_id, PGUUID(as_uuid=True)), ids.c.id, literal(at),
        literal(campaign.brand_id, PGUUID(as_uuid=True)), literal(Kind.MESSAGE_SENT.value), data,
        literal("Campaign"), literal(str(campaign.id))))


async def _fail(s: AsyncSession, campaign: Campaign, reason: str) -> None:
    """The provider refuses this brand's configuration: stop, and say why. Rows not sent are
    marked cancelled so the counters settle."""
    if campaign.status != Status.SENDING.value:
        return
    campaign.status = Status.FAILED.value
    campaign.failure_reason = reason[:1000]
    r = Recipient
    dropped = (await s.execute(update(r).where(
        r.tenant_id == campaign.tenant_id, r.campaign_id == campaign.id, r.status.in_(("queued", "sending")),
        r.sent_at.is_(None)).values(status="cancelled").execution_options(synchronize_session=False))).rowcount
    await stats.bump(s, campaign.tenant_id, campaign.id, cost_cents=campaign.cost_cents, queued=-dropped)
    if campaign.automation_id is not None:
        await automation_runs.settle_messages(s, campaign.tenant_id, campaign.automation_id, campaign.id, reason)
    log.warning("campaign failed", extra={"campaign_id": str(campaign.id), "reason": reason})

