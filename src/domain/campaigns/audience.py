"""A campaign's audience: who gets it, who is excluded and why, and when each one is sent to.

One SQL statement decides for every customer of the target segments (union, deduplicated),
in this order:

1. ``excluded_segment`` — a member of an exclusion segment;
2. ``no_address``       — no e-mail address / phone number / device token for the channel;
3. ``suppressed``       — the address bounced, complained or unsubscribed with this brand;
4. ``no_consent``       — the brand holds no consent for the channel (the rule of
   :mod:`domain.customers.consent`: no row, or a revoked one, means no);
5. ``frequency_cap``    — the customer already has N messages from this brand within the
   window; a *scheduled* campaign instead defers them to when the cap allows, if that is within
   the campaign's send window.

Everyone else gets a send time: now (or the campaign's local time in the customer's timezone),
moved past the frequency cap when deferred, then out of the brand's quiet hours in the
customer's timezone (the brand's when unknown). The same statement previews (counts per
reason) and, at launch, writes one recipient row per customer (unique per campaign).

The frequency cap is decided again when recipients are claimed for sending
(:func:`claim_within_cap`): launches that ran at the same moment did not see each other's rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.campaigns.models import Campaign
from domain.config import get_settings
from domain.delivery.models import MessagingSettings
from domain.segments.models import Segment
from domain.tenancy.models import Brand

ADDRESS = {"email": "c.email", "sms": "c.phone", "push": "c.push_token"}
REASONS = ("excluded_segment", "no_address", "suppressed", "no_consent", "frequency_cap")


async def _settings(s: AsyncSession, campaign: Campaign) -> MessagingSettings:
    found = await s.scalar(select(MessagingSettings).where(MessagingSettings.tenant_id == campaign.tenant_id,
                                                           MessagingSettings.brand_id == campaign.brand_id))
    return found or MessagingSettings(tenant_id=campaign.tenant_id, brand_id=campaign.brand_id,
                                      send_rate_per_second=500, attribution_days=5)


def _out_of_quiet(rules: MessagingSettings, at: str, lt: str, tz: str) -> str:
    """SQL for the time ``at`` moved out of the brand's quiet hours to their end, in the zone
    ``tz``; ``lt`` is ``at`` as wall-clock time there (``at AT TIME ZONE tz``). Each argument is
    an SQL expression chosen by the caller (never input); bind parameters ``:qs`` and ``:qe``."""
    if rules.quiet_hours_start is None or rules.quiet_hours_end is None \
            or rules.quiet_hours_start == rules.quiet_hours_end:
        return at
    op = "AND" if rules.quiet_hours_start < rules.quiet_hours_end else "OR"
    return f"""CASE WHEN ({lt}::time >= CAST(:qs AS time) {op} {lt}::time < CAST(:qe AS time))
             THEN (CASE WHEN {lt}::time < CAST(:qe AS time) THEN {lt}::date + CAST(:qe AS time) ELSE ({lt}::date + 1) + CAST(:qe AS time) END) AT TIME ZONE {tz}
             ELSE {at} END"""


def _decision_sql(campaign: Campaign, rules: MessagingSettings) -> str:
    """The SELECT of (customer_id, address, reason, send_after). Only identifiers chosen here
    (never input) are formatted in; every value is a bind parameter."""
    capped = bool(rules.frequency_cap_count and rules.frequency_cap_hours)
    cap_join = """
      LEFT JOIN LATERAL (
        SELECT count(*) AS n,
               (array_agg(coalesce(r.sent_at, r.send_after) ORDER BY coalesce(r.sent_at, r.send_after) DESC))[:cap]
                 + make_interval(hours => :cap_hours) AS next_allowed
          FROM campaign_recipients r
         WHERE r.tenant_id = :tenant AND r.brand_id = :brand AND r.customer_id = t.customer_id
           AND r.campaign_id <> :campaign AND r.status IN ('queued', 'sending', 'sent', 'delivered')
           AND coalesce(r.sent_at, r.send_after) > t.t0 - make_interval(hours => :cap_hours)
      ) fc ON true""" if capped else ""
    cap_reason = """
          WHEN fc.n >= :cap AND NOT (CAST(:scheduled AS boolean) AND fc.next_allowed <= t.t0 + make_interval(hours => :window))
            THEN 'frequency_cap'""" if capped else ""
    cap_time = "CASE WHEN fc.n >= :cap THEN greatest(t.t0, fc.next_allowed) ELSE t.t0 END" if capped else "t.t0"
    send_after = _out_of_quiet(rules, "j.t1", "j.lt", "j.tz")
    # an automation's run (whose campaign id is the run's) sends to the customers it claimed
    targets = """
      SELECT e.customer_id FROM automation_executions e
       WHERE e.tenant_id = :tenant AND e.automation_id = :automation AND e.run_id = :campaign""" \
        if campaign.automation_id is not None else """
      SELECT DISTINCT m.customer_id FROM segment_memberships m
       WHERE m.tenant_id = :tenant AND m.segment_id = ANY(CAST(:segments AS uuid[])) AND m.exited_at IS NULL"""
    return f"""
    WITH targets AS ({targets}), excl AS (
      SELECT DISTINCT m.customer_id FROM segment_memberships m
       WHERE m.tenant_id = :tenant AND m.segment_id = ANY(CAST(:exclusions AS uuid[])) AND m.exited_at IS NULL
    ), t AS (
      SELECT c.id AS customer_id, nullif({ADDRESS[campaign.channel]}, '') AS address,
             coalesce(c.timezone, CAST(:brand_tz AS text)) AS tz, x.customer_id IS NOT NULL AS in_excl,
             CASE WHEN CAST(:local AS boolean) THEN greatest(CAST(:now AS timestamptz), CAST(:local_at AS timestamp) AT TIME ZONE coalesce(c.timezone, CAST(:brand_tz AS text)))
                  ELSE CAST(:start AS timestamptz) END AS t0
        FROM targets g
        JOIN customers c ON c.tenant_id = :tenant AND c.id = g.customer_id
        LEFT JOIN excl x ON x.customer_id = g.customer_id
    ), j AS (
      SELECT t.customer_id, t.address, t.tz,
        CASE
          WHEN t.in_excl THEN 'excluded_segment'
          WHEN t.address IS NULL THEN 'no_address'
          WHEN EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = :tenant AND s.brand_id = :brand
                         AND s.channel = :channel AND s.address = t.address) THEN 'suppressed'
          WHEN NOT EXISTS (SELECT 1 FROM customer_consents k WHERE k.tenant_id = :tenant
                             AND k.customer_id = t.customer_id AND k.brand_id = :brand
                             AND k.channel = :channel AND k.granted) THEN 'no_consent'{cap_reason}
          ELSE NULL END AS reason,
        {cap_time} AS t1,
        ({cap_time}) AT TIME ZONE t.tz AS lt
      FROM t{cap_join}
    )
    SELECT j.customer_id, j.address, j.reason,
           CASE WHEN j.reason IS NULL THEN {send_after} END AS send_after
      FROM j
    """


def _params(campaign: Campaign, brand: Brand, rules: MessagingSettings, now: datetime) -> dict[str, Any]:
    local = campaign.schedule_mode == "local" and campaign.local_send_at is not None
    start = max(campaign.scheduled_at or now, now) if campaign.schedule_mode != "now" else now
    return {
        "tenant": campaign.tenant_id, "brand": campaign.brand_id, "campaign": campaign.id,
        "automation": campaign.automation_id, "channel": campaign.channel, "segments": list(campaign.segment_ids or []),
        "exclusions": list(campaign.exclusion_segment_ids or []), "brand_tz": brand.timezone,
        "local": local, "local_at": campaign.local_send_at if local else None, "now": now,
        "start": start, "scheduled": campaign.schedule_mode != "now", "window": campaign.send_window_hours,
        "cap": rules.frequency_cap_count or 0, "cap_hours": rules.frequency_cap_hours or 0,
        "qs": rules.quiet_hours_start, "qe": rules.quiet_hours_end,
    }


async def _brand(s: AsyncSession, campaign: Campaign) -> Brand:
    return await s.scalar(select(Brand).where(Brand.tenant_id == campaign.tenant_id, Brand.id == campaign.brand_id))


async def preview(s: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    """Counts: audience (would be sent), excluded per reason, deferred (sent later than now)."""
    rules = await _settings(s, campaign)
    now = datetime.now(UTC)
    decided = _decision_sql(campaign, rules)
    rows = (await s.execute(text(f"""
        SELECT d.reason, count(*) AS n,
               count(*) FILTER (WHERE d.reason IS NULL AND d.send_after > CAST(:soon AS timestamptz)) AS deferred
          FROM ({decided}) d GROUP BY d.reason"""),
        {**_params(campaign, await _brand(s, campaign), rules, now), "soon": now + timedelta(minutes=1)})).all()
    excluded = {r: 0 for r in REASONS}
    count = deferred = 0
    for reason, n, late in rows:
        if reason is None:
            count, deferred = n, late
        else:
            excluded[reason] = n
    return {"count": count, "deferred": deferred, "excluded": excluded, "total": count + sum(excluded.values())}


async def materialize(s: AsyncSession, campaign: Campaign) -> dict[str, int]:
    """Write the recipient rows (idempotent: unique per campaign and customer); returns counts
    per status and exclusion reason of the rows written."""
    rules = await _settings(s, campaign)
    now = datetime.now(UTC)
    decided = _decision_sql(campaign, rules)
    rows = (await s.execute(text(f"""
        WITH d AS ({decided}),
        ins AS (
          INSERT INTO campaign_recipients (tenant_id, campaign_id, customer_id, brand_id, status, exclusion_reason,
                                           address, batch_no, send_after)
          SELECT CAST(:tenant AS uuid), CAST(:campaign AS uuid), d.customer_id, CAST(:brand AS uuid),
                 CASE WHEN d.reason IS NULL THEN 'queued' ELSE 'excluded' END, d.reason, d.address,
                 CASE WHEN d.reason IS NULL THEN
                   (row_number() OVER (PARTITION BY d.reason IS NULL ORDER BY d.send_after, d.customer_id) - 1) / :batch
                 END,
                 d.send_after
            FROM d
          ON CONFLICT DO NOTHING
          RETURNING status, exclusion_reason
        )
        SELECT coalesce(exclusion_reason, status), count(*) FROM ins GROUP BY 1"""),
        {**_params(campaign, await _brand(s, campaign), rules, now),
         "batch": get_settings().campaign_batch_size})).all()
    return {k: n for k, n in rows}


async def segment_snapshot(s: AsyncSession, campaign: Campaign) -> list[dict[str, Any]]:
    """The segments' definitions and counts as the launch used them."""
    ids = list(campaign.segment_ids or []) + list(campaign.exclusion_segment_ids or [])
    rows = {x.id: x for x in await s.scalars(select(Segment).where(Segment.tenant_id == campaign.tenant_id,
                                                                   Segment.id.in_(ids)))}
    out = []
    for sid in ids:
        seg = rows.get(sid)
        if seg is None:
            continue
        out.append({"id": str(seg.id), "name": seg.name, "kind": seg.kind,
                    "role": "target" if sid in (campaign.segment_ids or []) else "exclusion",
                    "definition": seg.definition, "definition_version": seg.definition_version,
                    "member_count": seg.member_count,
                    "refreshed_at": seg.last_refreshed_at.isoformat() if seg.last_refreshed_at else None})
    return out


# --- the cap again, when a recipient is claimed for sending -----------------------------------

def capped(rules: MessagingSettings) -> bool:
    return bool(rules.frequency_cap_count and rules.frequency_cap_hours)


async def claim_within_cap(s: AsyncSession, campaign: Campaign, brand: Brand, rules: MessagingSettings,
                           batch_no: int, size: int, chunk: uuid.UUID) -> tuple[list[tuple[uuid.UUID, str]], int] | None:
    """Claim the batch's next ``size`` due recipients (``queued → sending`` under ``chunk``), each
    only if the brand's frequency cap still allows it now; None when none is due.

    Launch decides the cap from the rows committed at that moment, so two campaigns launched
    together can both queue a customer the cap allows once. Here the cap is decided again, against
    the messages other campaigns of the brand have claimed or sent (``sending``, ``sent``,
    ``delivered`` within the window): a recipient over the cap is treated as launch treats one,
    deferred to when the cap allows if the campaign is scheduled and that is within its send
    window (out of quiet hours, like at launch), else excluded with reason ``frequency_cap``.

    Two statements, whatever the chunk size. The first locks the due rows (``SKIP LOCKED``) and
    the customers' rows of ``frequency_cap_locks`` (:class:`CapLock`: an upsert in key order that
    writes nothing to an existing row, so two claims never deadlock), held until the claim
    commits; the second, whose snapshot starts once those locks are held, so it sees every claim
    committed by a transaction that held one of them before, counts and claims. It counts the
    other messages of all the chunk's customers in one grouped read (``customer_id = ANY``), and
    computes that read and the decisions once each (``MATERIALIZED``): on a
    ``campaign_recipients`` whose statistics are stale (a campaign just launched, its rows not yet
    analyzed) the planner otherwise ran them again per recipient, inside nested loops, a claim of
    500 taking ten to a hundred times as long. Returns the
    claimed (customer, address) rows, possibly none, and how many recipients the cap excluded."""
    params: dict[str, Any] = {"tenant": campaign.tenant_id, "brand": campaign.brand_id, "campaign": campaign.id,
                              "batch": batch_no}
    ids = list((await s.execute(text("""
        WITH due AS (
          SELECT r.customer_id FROM campaign_recipients r
           WHERE r.tenant_id = :tenant AND r.campaign_id = :campaign AND r.batch_no = :batch
             AND r.status = 'queued' AND r.send_after <= now()
           ORDER BY r.customer_id LIMIT :size FOR UPDATE SKIP LOCKED
        ), locked AS (
          INSERT INTO frequency_cap_locks (tenant_id, brand_id, customer_id)
          SELECT CAST(:tenant AS uuid), CAST(:brand AS uuid), due.customer_id FROM due ORDER BY due.customer_id
          ON CONFLICT (tenant_id, brand_id, customer_id) DO UPDATE SET customer_id = excluded.customer_id WHERE false
        )
        SELECT customer_id FROM due"""), {**params, "size": size})).scalars().all())
    if not ids:
        return None
    local = campaign.schedule_mode == "local" and campaign.local_send_at is not None
    launched = campaign.launched_at or datetime.now(UTC)
    t0 = ("greatest(CAST(:launched AS timestamptz), CAST(:local_at AS timestamp) AT TIME ZONE c.tz)" if local
          else "CAST(:start AS timestamptz)")
    later = _out_of_quiet(rules, "greatest(now(), c.next_allowed)", "(greatest(now(), c.next_allowed) AT TIME ZONE c.tz)",
                          "c.tz")
    rows = (await s.execute(text(f"""
        WITH fc AS MATERIALIZED (
          SELECT o.customer_id, count(*) AS n,
                 (array_agg(coalesce(o.sent_at, now()) ORDER BY coalesce(o.sent_at, now()) DESC))[:cap]
                   + make_interval(hours => :cap_hours) AS next_allowed
            FROM campaign_recipients o
           WHERE o.tenant_id = :tenant AND o.brand_id = :brand AND o.customer_id = ANY(CAST(:ids AS uuid[]))
             AND o.campaign_id <> :campaign AND o.status IN ('sending', 'sent', 'delivered')
             AND (o.sent_at IS NULL OR o.sent_at > now() - make_interval(hours => :cap_hours))
           GROUP BY o.customer_id
        ), c AS (
          SELECT r.customer_id, coalesce(cu.timezone, CAST(:brand_tz AS text)) AS tz, coalesce(fc.n, 0) AS n,
                 fc.next_allowed
            FROM campaign_recipients r
            LEFT JOIN customers cu ON cu.tenant_id = :tenant AND cu.id = r.customer_id
            LEFT JOIN fc ON fc.customer_id = r.customer_id
           WHERE r.tenant_id = :tenant AND r.campaign_id = :campaign AND r.batch_no = :batch
             AND r.customer_id = ANY(CAST(:ids AS uuid[])) AND r.status = 'queued'
        ), d AS MATERIALIZED (
          SELECT c.customer_id,
                 CASE WHEN c.n < :cap THEN 'send'
                      WHEN CAST(:scheduled AS boolean) AND c.next_allowed <= {t0} + make_interval(hours => :window)
                        THEN 'defer'
                      ELSE 'cap' END AS outcome,
                 {later} AS later
            FROM c
        )
        UPDATE campaign_recipients r
           SET status = CASE d.outcome WHEN 'send' THEN 'sending' WHEN 'defer' THEN 'queued' ELSE 'excluded' END,
               chunk_key = CASE WHEN d.outcome = 'send' THEN CAST(:chunk AS uuid) END,
               attempts = r.attempts + CASE WHEN d.outcome = 'send' THEN 1 ELSE 0 END,
               exclusion_reason = CASE WHEN d.outcome = 'cap' THEN 'frequency_cap' END,
               send_after = CASE d.outcome WHEN 'send' THEN r.send_after WHEN 'defer' THEN d.later END,
               batch_no = CASE WHEN d.outcome = 'cap' THEN NULL ELSE r.batch_no END
          FROM d
         WHERE r.tenant_id = :tenant AND r.campaign_id = :campaign AND r.batch_no = :batch
           AND r.customer_id = ANY(CAST(:ids AS uuid[])) AND r.customer_id = d.customer_id
        RETURNING r.customer_id, r.address, d.outcome"""),
        {**params, "ids": ids, "chunk": chunk, "brand_tz": brand.timezone, "cap": rules.frequency_cap_count,
         "cap_hours": rules.frequency_cap_hours, "scheduled": campaign.schedule_mode != "now",
         "window": campaign.send_window_hours, "launched": launched,
         "local_at": campaign.local_send_at if local else None,
         "start": max(campaign.scheduled_at or launched, launched),
         "qs": rules.quiet_hours_start, "qe": rules.quiet_hours_end})).all()
    claimed = sorted((c, address) for c, address, outcome in rows if outcome == "send")
    return claimed, sum(outcome == "cap" for _, _, outcome in rows)
