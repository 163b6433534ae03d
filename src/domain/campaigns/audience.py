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
"""

from __future__ import annotations

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


def _decision_sql(campaign: Campaign, rules: MessagingSettings) -> str:
    """The SELECT of (customer_id, address, reason, send_after). Only identifiers chosen here
    (never input) are formatted in; every value is a bind parameter."""
    capped = bool(rules.frequency_cap_count and rules.frequency_cap_hours)
    quiet = rules.quiet_hours_start is not None and rules.quiet_hours_end is not None \
        and rules.quiet_hours_start != rules.quiet_hours_end
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
    if quiet:
        in_quiet = ("(j.lt::time >= CAST(:qs AS time) AND j.lt::time < CAST(:qe AS time))" if rules.quiet_hours_start < rules.quiet_hours_end
                    else "(j.lt::time >= CAST(:qs AS time) OR j.lt::time < CAST(:qe AS time))")
        send_after = f"""CASE WHEN j.reason IS NULL AND {in_quiet}
             THEN (CASE WHEN j.lt::time < CAST(:qe AS time) THEN j.lt::date + CAST(:qe AS time) ELSE (j.lt::date + 1) + CAST(:qe AS time) END) AT TIME ZONE j.tz
             ELSE j.t1 END"""
    else:
        send_after = "j.t1"
    return f"""
    WITH targets AS (
      SELECT DISTINCT m.customer_id FROM segment_memberships m
       WHERE m.tenant_id = :tenant AND m.segment_id = ANY(CAST(:segments AS uuid[])) AND m.exited_at IS NULL
    ), excl AS (
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
        "channel": campaign.channel, "segments": list(campaign.segment_ids or []),
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
