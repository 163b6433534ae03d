"""Conversions: an order counts for the campaign the customer last opened or clicked, from the
order's brand, within the brand's attribution window before the order (default 5 days).

One conversion row per order (recording the same order again attributes nothing twice); the
recipient's first attributed order counts as the conversion, every attributed order's total as
revenue.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.campaigns import stats
from domain.campaigns.models import Conversion, Recipient
from domain.commerce.models import Order
from domain.delivery.service import rules_of
from domain.timeline import service as timeline


async def attribute_order(s: AsyncSession, order: Order) -> bool:
    rules = await rules_of(s, order.tenant_id, order.brand_id)
    window = timedelta(days=rules.attribution_days)
    r = Recipient
    never = literal("-infinity").cast(r.opened_at.type)
    touch = func.greatest(func.coalesce(r.clicked_at, never), func.coalesce(r.opened_at, never))
    found = (await s.execute(select(r, touch.label("touched_at")).where(
        r.tenant_id == order.tenant_id, r.brand_id == order.brand_id, r.customer_id == order.customer_id,
        touch >= order.placed_at - window, touch <= order.placed_at,
    ).order_by(touch.desc()).limit(1).with_for_update(of=r))).first()
    if found is None:
        return False
    recipient, touched_at = found
    kind = "click" if recipient.clicked_at is not None and recipient.clicked_at == touched_at else "open"
    inserted = (await s.execute(insert(Conversion).values(
        tenant_id=order.tenant_id, order_id=order.id, campaign_id=recipient.campaign_id,
        customer_id=order.customer_id, revenue_cents=order.total_cents, touch=kind, touched_at=touched_at,
    ).on_conflict_do_nothing().returning(Conversion.order_id))).first()
    if inserted is None:
        return False
    first = recipient.converted_at is None
    if first:
        recipient.converted_at = order.placed_at
    recipient.revenue_cents += order.total_cents
    await stats.bump(s, order.tenant_id, recipient.campaign_id, conversions=1 if first else 0,
                     revenue_cents=order.total_cents)
    timeline.write(s, order.tenant_id, order.customer_id, timeline.Kind.CAMPAIGN_CONVERSION, order.placed_at,
                   brand_id=order.brand_id, ref=("Campaign", recipient.campaign_id),
                   data={"campaign_id": str(recipient.campaign_id), "order_id": str(order.id),
                         "revenue_cents": order.total_cents, "touch": kind})
    return True
