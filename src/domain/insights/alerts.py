"""Alerts (docs/insights.md "Alerts"): per-brand rules, and the alerts recorded when a customer
crosses one, once per crossing.

Threshold rules (lifetime value reaches X cents, churn risk reaches Y) are checked set-based,
in the transaction that recomputes profiles (:func:`check_profiles`, called by
``domain.profiles.service.refresh``: after each order and tracked event, per import chunk, by
the nightly rebuild), against the effective value: the customer's override when one is set, else
the brand profile's. ``alert_states`` holds who is over each rule: a customer who gets over it
gets a state row and an alert keyed (rule, customer, crossing time); one who falls below loses
the row, so crossing again records a new alert. Segment rules are checked after each membership
change commits (:func:`record_segment_entries`, by the job that follows a refresh or a live
evaluation): an alert per entry, keyed on the entry time, so a retried job records nothing twice.
Each new batch is published to the tenant's ``alerts`` topic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import service as audit
from domain.errors import DomainError, ErrorCode, NotFound, Validator
from domain.insights.models import Alert, AlertKind, AlertRule
from domain.pagination import Page, PageRequest, encode_cursor
from domain.platform import outbox
from domain.platform.db import tenant_session
from domain.segments.models import Segment
from domain.tenancy import scoping, validation
from domain.tenancy.policies import Action, Principal, authorize

TOPIC = "alerts"
MAX_RULES_PER_BRAND = 50
PUBLISH_IDS = 100  # an event names at most this many new alerts; more: a subscriber reloads

# One statement: who is over each threshold rule of the tenant now (among the customers
# refreshed), who left (their state goes), who arrived (a state and an alert, published).
_CHECK = text("""
WITH rules AS (
  SELECT id, brand_id, kind, threshold FROM alert_rules
   WHERE tenant_id = :t AND kind IN ('lifetime_value', 'churn_risk')),
over AS (
  SELECT r.id AS rule_id, r.brand_id, r.kind, p.customer_id,
         CASE WHEN r.kind = 'lifetime_value' THEN coalesce(c.value_override_cents, p.total_order_value_cents)
              ELSE coalesce(c.risk_override, p.churn_risk) END AS value
    FROM rules r
    JOIN customer_profiles p ON p.tenant_id = :t AND p.brand_id = r.brand_id
    JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
   WHERE (CAST(:ids AS uuid[]) IS NULL OR p.customer_id = ANY(CAST(:ids AS uuid[])))
     AND CASE WHEN r.kind = 'lifetime_value' THEN coalesce(c.value_override_cents, p.total_order_value_cents)
              ELSE coalesce(c.risk_override, p.churn_risk) END >= r.threshold),
gone AS (
  DELETE FROM alert_states s USING rules r
   WHERE s.tenant_id = :t AND s.rule_id = r.id
     AND (CAST(:ids AS uuid[]) IS NULL OR s.customer_id = ANY(CAST(:ids AS uuid[])))
     AND NOT EXISTS (SELECT 1 FROM over o WHERE o.rule_id = s.rule_id AND o.customer_id = s.customer_id)),
arrived AS (
  INSERT INTO alert_states (tenant_id, rule_id, customer_id, since)
  SELECT :t, rule_id, customer_id, clock_timestamp() FROM over
  ON CONFLICT DO NOTHING
  RETURNING rule_id, customer_id, since)
INSERT INTO alerts (tenant_id, id, brand_id, rule_id, customer_id, kind, value, crossed_at)
SELECT :t, gen_random_uuid(), o.brand_id, a.rule_id, a.customer_id, o.kind, o.value, a.since
  FROM arrived a JOIN over o ON o.rule_id = a.rule_id AND o.customer_id = a.customer_id
ON CONFLICT DO NOTHING
RETURNING id, brand_id
""")

_ENTRIES = text("""
INSERT INTO alerts (tenant_id, id, brand_id, rule_id, customer_id, kind, value, crossed_at)
SELECT r.tenant_id, gen_random_uuid(), r.brand_id, r.id, m.customer_id, 'segment_entered', NULL, m.entered_at
  FROM alert_rules r
  JOIN segment_memberships m ON m.tenant_id = r.tenant_id AND m.segment_id = r.segment_id AND m.entered_at = :at
 WHERE r.tenant_id = :t AND r.kind = 'segment_entered' AND r.segment_id = :s
ON CONFLICT DO NOTHING
RETURNING id, brand_id
""")


def _publish(s: AsyncSession, tenant_id: uuid.UUID, rows) -> int:
    by_brand: dict[uuid.UUID, list[str]] = {}
    for alert_id, brand_id in rows:
        by_brand.setdefault(brand_id, []).append(str(alert_id))
    for brand_id, found in by_brand.items():
        outbox.publish(s, tenant_id, TOPIC, {"brand_id": str(brand_id), "count": len(found), "ids": found[:PUBLISH_IDS]})
    return sum(len(x) for x in by_brand.values())


async def check_profiles(s: AsyncSession, tenant_id: uuid.UUID, customer_ids: list[str] | None) -> int:
    """Threshold crossings of the customers whose profiles were just recomputed (all when None),
    in the caller's transaction; returns how many alerts were recorded."""
    has_rules = await s.scalar(select(func.count()).select_from(select(AlertRule.id).where(
        AlertRule.tenant_id == tenant_id, AlertRule.kind != AlertKind.SEGMENT_ENTERED.value).limit(1).subquery()))
    if not has_rules:
        return 0
    rows = (await s.execute(_CHECK, {"t": tenant_id, "ids": customer_ids})).all()
    return _publish(s, tenant_id, rows)


async def record_segment_entries(tenant_id: uuid.UUID, segment_id: uuid.UUID, at: datetime) -> int:
    """An alert per customer who entered ``segment_id`` at ``at``, for each rule on it."""
    async with tenant_session(tenant_id) as s:
        rows = (await s.execute(_ENTRIES, {"t": tenant_id, "s": segment_id, "at": at})).all()
        return _publish(s, tenant_id, rows)


# --- rules ------------------------------------------------------------------------------------


def _require(brand_id: uuid.UUID | None) -> uuid.UUID:
    if brand_id is None:
        raise DomainError("brandId is required (or X-Brand-Id)", field="brandId", code=ErrorCode.REQUIRED)
    return brand_id


async def create_rule(principal: Principal, brand_id: uuid.UUID | None, name: str, kind: AlertKind,
                      threshold: int | None, segment_id: uuid.UUID | None) -> AlertRule:
    authorize(principal, Action.SEGMENT_WRITE)
    brand_id = _require(brand_id)
    v = Validator()
    name = validation.text(v, "name", name, required=True, max_len=200)
    if kind is AlertKind.SEGMENT_ENTERED:
        if segment_id is None:
            v.add("segmentId", "an entered-a-segment rule names the segment", ErrorCode.REQUIRED)
        if threshold is not None:
            v.add("threshold", "an entered-a-segment rule takes no threshold")
    else:
        if segment_id is not None:
            v.add("segmentId", "a threshold rule takes no segment")
        if threshold is None:
            v.add("threshold", "a threshold rule needs a threshold", ErrorCode.REQUIRED)
        elif kind is AlertKind.CHURN_RISK and not 0 <= threshold <= 100:
            v.add("threshold", "churn risk is from 0 to 100")
        elif kind is AlertKind.LIFETIME_VALUE and not 0 < threshold <= 10**15:
            v.add("threshold", "a lifetime value in cents, more than 0")
    v.check()
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        if segment_id is not None:
            seg = await s.scalar(select(Segment).where(Segment.tenant_id == principal.tenant_id,
                                                       Segment.id == segment_id, Segment.brand_id == brand_id,
                                                       Segment.archived_at.is_(None)))
            if seg is None:
                raise NotFound("segment not found", field="segmentId")
        count = await s.scalar(select(func.count()).where(AlertRule.tenant_id == principal.tenant_id,
                                                          AlertRule.brand_id == brand_id))
        if count >= MAX_RULES_PER_BRAND:
            raise DomainError(f"a brand has at most {MAX_RULES_PER_BRAND} alert rules", field="brandId",
                              code=ErrorCode.LIMIT_EXCEEDED)
        rule = AlertRule(tenant_id=principal.tenant_id, id=uuid.uuid4(), brand_id=brand_id, name=name,
                         kind=kind.value, threshold=threshold, segment_id=segment_id,
                         created_by=principal.label)
        s.add(rule)
        await s.flush()
        audit.record(s, principal, "alert_rule.create", "AlertRule", rule.id, brand_id=brand_id,
                     summary={"kind": kind.value, "threshold": threshold})
    return rule


async def delete_rule(principal: Principal, rule_id: uuid.UUID) -> uuid.UUID:
    """Deleting a rule deletes its alerts and states."""
    authorize(principal, Action.SEGMENT_WRITE)
    async with tenant_session(principal.tenant_id) as s:
        rule = await s.scalar(select(AlertRule).where(AlertRule.tenant_id == principal.tenant_id,
                                                      AlertRule.id == rule_id))
        if rule is None or not scoping.may_use_brand(principal, rule.brand_id):
            raise NotFound("alert rule not found", field="id")
        await s.execute(delete(AlertRule).where(AlertRule.tenant_id == principal.tenant_id, AlertRule.id == rule_id))
        audit.record(s, principal, "alert_rule.delete", "AlertRule", rule_id, brand_id=rule.brand_id, summary={})
    return rule_id


async def list_rules(principal: Principal, brand_id: uuid.UUID | None, page: PageRequest) -> Page[AlertRule]:
    """Oldest first; keyset on (created_at, id), both ways."""
    authorize(principal, Action.CUSTOMER_READ)
    brand_id = _require(brand_id)
    after, order = page.keyset([(AlertRule.created_at, False), (AlertRule.id, False)], datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        rows = list((await s.scalars(select(AlertRule).where(
            AlertRule.tenant_id == principal.tenant_id, AlertRule.brand_id == brand_id, *after)
            .order_by(*order).limit(page.size + 1))).all())
    return page.page(rows, lambda r: encode_cursor(r.created_at, r.id))


# --- alerts -----------------------------------------------------------------------------------


@dataclass
class AlertPage:
    page: Page[Alert]
    total_count: int
    unread_count: int


async def list_alerts(principal: Principal, brand_id: uuid.UUID | None, unread_only: bool,
                      page: PageRequest) -> AlertPage:
    """Newest first; keyset on (crossed_at, id), both ways."""
    authorize(principal, Action.CUSTOMER_READ)
    brand_id = _require(brand_id)
    base = [Alert.tenant_id == principal.tenant_id, Alert.brand_id == brand_id]
    if unread_only:
        base.append(Alert.read_at.is_(None))
    after, order = page.keyset([(Alert.crossed_at, True), (Alert.id, True)], datetime, uuid.UUID)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        rows = list((await s.scalars(select(Alert).where(*base, *after).order_by(*order)
                                     .limit(page.size + 1))).all())
        total, unread = (await s.execute(select(
            func.count(), func.count().filter(Alert.read_at.is_(None))).where(*base))).one()
    return AlertPage(page.page(rows, lambda a: encode_cursor(a.crossed_at, a.id), total), total, unread)


async def mark_read(principal: Principal, brand_id: uuid.UUID | None, alert_ids: list[uuid.UUID] | None
                    ) -> tuple[int, int]:
    """Marks the given alerts of the brand (every unread one when None) read; returns (marked,
    unread left). Read state is the brand's, shared by its members."""
    authorize(principal, Action.CUSTOMER_READ)
    brand_id = _require(brand_id)
    if alert_ids is not None and len(alert_ids) > 500:
        raise DomainError("at most 500 alerts at once", field="alertIds", code=ErrorCode.LIMIT_EXCEEDED)
    where = [Alert.tenant_id == principal.tenant_id, Alert.brand_id == brand_id, Alert.read_at.is_(None)]
    if alert_ids is not None:
        where.append(Alert.id.in_(alert_ids))
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
        marked = (await s.execute(update(Alert).where(*where).values(read_at=func.now(), read_by=principal.label)
                                  .returning(Alert.id))).all()
        unread = await s.scalar(select(func.count()).where(Alert.tenant_id == principal.tenant_id,
                                                           Alert.brand_id == brand_id, Alert.read_at.is_(None)))
    return len(marked), unread


async def alerts_by_id(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, Alert]:
    """The alerts among ``ids`` the principal may see (dataloaders, the subscription)."""
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        rows = await s.scalars(select(Alert).where(Alert.tenant_id == principal.tenant_id, Alert.id.in_(ids),
                                                   *scoping.brand_filter(principal, Alert.brand_id)))
        return {a.id: a for a in rows}


async def rules_by_id(principal: Principal, ids: list[uuid.UUID]) -> dict[uuid.UUID, AlertRule]:
    authorize(principal, Action.CUSTOMER_READ)
    async with tenant_session(principal.tenant_id) as s:
        rows = await s.scalars(select(AlertRule).where(AlertRule.tenant_id == principal.tenant_id,
                                                       AlertRule.id.in_(ids),
                                                       *scoping.brand_filter(principal, AlertRule.brand_id)))
        return {r.id: r for r in rows}


async def subscription_brand(principal: Principal, brand_id: uuid.UUID | None) -> uuid.UUID:
    """The brand the alerts subscription follows: given (or X-Brand-Id) and visible."""
    authorize(principal, Action.CUSTOMER_READ)
    brand_id = _require(brand_id)
    async with tenant_session(principal.tenant_id) as s:
        await scoping.check_brand(s, principal, brand_id)
    return brand_id
