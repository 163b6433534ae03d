"""Lookalike segments: the brand's customers most similar to a source segment's members.

Method (docs/segments.md): each of the brand's customers gets seven profile features for that
brand (log order value, log order count, log average order value, orders per month, engagement,
churn risk, days since last order capped at 730). Each feature is standardised over the brand's
customers (z = (x − mean) / standard deviation; 0 where the deviation is 0). The source members'
mean z-vector is the centroid; a candidate's similarity is 1 / (1 + Euclidean distance to the
centroid), in (0, 1]. The N most similar customers who are not in the source become the members,
each keeping its score. One SQL statement, bound parameters only.
"""

from __future__ import annotations

from sqlalchemy import Float, text
from sqlalchemy.dialects.postgresql import UUID

from domain.segments.compiler import Scope
from domain.segments.models import Segment

FEATURES = """
  ln(1 + coalesce(p.total_order_value_cents, 0) / 100.0) AS f1,
  ln(1 + coalesce(p.total_order_count, 0)) AS f2,
  ln(1 + coalesce(p.average_order_value_cents, 0) / 100.0) AS f3,
  coalesce(p.purchase_frequency, 0)::float8 AS f4,
  coalesce(p.engagement_score, 0)::float8 AS f5,
  coalesce(p.churn_risk, 100)::float8 AS f6,
  least(730, coalesce(extract(epoch FROM :now - p.last_order_at) / 86400, 730))::float8 AS f7
"""
COLS = [f"f{i}" for i in range(1, 8)]

SQL = f"""
WITH feats AS (
  SELECT cb.customer_id, {FEATURES}
    FROM customer_brands cb
    LEFT JOIN customer_profiles p
      ON p.tenant_id = cb.tenant_id AND p.customer_id = cb.customer_id AND p.brand_id = cb.brand_id
   WHERE cb.tenant_id = :tenant AND cb.brand_id = :brand
), stats AS (
  SELECT {", ".join(f"avg({c}) AS m{c}, stddev_pop({c}) AS s{c}" for c in COLS)} FROM feats
), z AS (
  SELECT f.customer_id, {", ".join(f"coalesce((f.{c} - st.m{c}) / nullif(st.s{c}, 0), 0) AS {c}" for c in COLS)}
    FROM feats f CROSS JOIN stats st
), source AS (
  SELECT customer_id FROM segment_memberships
   WHERE tenant_id = :tenant AND segment_id = :source AND exited_at IS NULL
), centroid AS (
  SELECT {", ".join(f"avg(z.{c}) AS {c}" for c in COLS)} FROM z JOIN source USING (customer_id)
)
SELECT z.customer_id, 1.0 / (1.0 + sqrt({" + ".join(f"power(z.{c} - c.{c}, 2)" for c in COLS)})) AS score
  FROM z CROSS JOIN centroid c
 WHERE c.f1 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM source WHERE source.customer_id = z.customer_id)
 ORDER BY score DESC, z.customer_id
 LIMIT :size
"""


def lookalike_select(seg: Segment, scope: Scope):
    return text(SQL).bindparams(tenant=seg.tenant_id, brand=seg.brand_id, source=seg.lookalike_source_id,
                                size=seg.lookalike_size or 0, now=scope.now).columns(
        customer_id=UUID(as_uuid=True), score=Float)
