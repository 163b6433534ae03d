-- Row-level security for the customer and commerce tables (same policy as 0001).
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['customers', 'customer_brands', 'tags', 'customer_tags', 'customer_notes',
                'customer_consents', 'products', 'orders', 'order_items', 'tracked_events',
                'customer_profiles', 'timeline_events', 'jobs', 'job_files']) AS t;

-- Customer search: case-insensitive prefix matches, each index leading with the tenant.
CREATE INDEX ix_customers_search_email ON customers (tenant_id, lower(email) text_pattern_ops);
CREATE INDEX ix_customers_search_first ON customers (tenant_id, lower(first_name) text_pattern_ops);
CREATE INDEX ix_customers_search_last ON customers (tenant_id, lower(last_name) text_pattern_ops);
CREATE INDEX ix_customers_search_phone ON customers (tenant_id, phone text_pattern_ops);

-- Customer profiles, per brand and tenant-wide (brand_id = the nil UUID), recomputed from
-- orders and tracked events for the given customers (all when p_customers is NULL).
-- Formulas (docs/profiles.md): R = exp(-days since last order / 60); F = min(1, ln(1 + orders in
-- 365 days) / ln 13); M = min(1, log10(1 + value / 100) / 4); E = min(1, events in 30 days / 10).
-- engagement = 100 (0.35 R + 0.25 F + 0.15 M + 0.25 E); churn risk with orders =
-- 100 (1 - exp(-days since last order / expected gap)) (1 - 0.5 E), expected gap = 365 / orders in
-- 365 days clamped to [14, 365]; without orders = 100 - 50 E.
CREATE FUNCTION bg_refresh_profiles(p_tenant uuid, p_customers uuid[]) RETURNS integer
LANGUAGE sql VOLATILE
AS $$
  WITH activity AS (
    SELECT o.customer_id, o.brand_id, o.total_cents AS value, o.placed_at, NULL::timestamptz AS event_at
      FROM orders o
     WHERE o.tenant_id = p_tenant AND o.status NOT IN ('cancelled', 'refunded')
       AND (p_customers IS NULL OR o.customer_id = ANY (p_customers))
    UNION ALL
    SELECT e.customer_id, e.brand_id, 0, NULL, e.occurred_at
      FROM tracked_events e
     WHERE e.tenant_id = p_tenant
       AND (p_customers IS NULL OR e.customer_id = ANY (p_customers))
  ), grouped AS (
    SELECT a.customer_id,
           CASE WHEN GROUPING(a.brand_id) = 1 THEN '00000000-0000-0000-0000-000000000000'::uuid
                ELSE a.brand_id END AS brand_id,
           coalesce(sum(a.value) FILTER (WHERE a.placed_at IS NOT NULL), 0)::bigint AS value,
           count(*) FILTER (WHERE a.placed_at IS NOT NULL)::int AS orders,
           min(a.placed_at) AS first_at,
           max(a.placed_at) AS last_at,
           count(*) FILTER (WHERE a.placed_at >= now() - interval '365 days')::int AS orders_365,
           count(*) FILTER (WHERE a.event_at >= now() - interval '30 days')::int AS events_30,
           max(a.event_at) AS last_event_at
      FROM activity a
     GROUP BY GROUPING SETS ((a.customer_id, a.brand_id), (a.customer_id))
    HAVING GROUPING(a.brand_id) = 1 OR a.brand_id IS NOT NULL
  ), scored AS (
    SELECT g.*,
           CASE WHEN g.last_at IS NULL THEN NULL
                ELSE greatest(0, extract(epoch FROM now() - g.last_at) / 86400.0) END AS days_since,
           least(1.0, g.events_30 / 10.0) AS e
      FROM grouped g
  ), final AS (
    SELECT s.*,
           CASE WHEN s.days_since IS NULL THEN 0 ELSE exp(-s.days_since / 60.0) END AS r,
           least(1.0, ln(1 + s.orders_365) / ln(13)) AS f,
           least(1.0, log(1 + s.value / 100.0) / 4) AS m
      FROM scored s
  ), upserted AS (
    INSERT INTO customer_profiles AS p (
      tenant_id, brand_id, customer_id, total_order_value_cents, total_order_count, average_order_value_cents,
      first_order_at, last_order_at, orders_last_365d, events_last_30d, last_event_at, purchase_frequency,
      engagement_score, churn_risk, computed_at)
    SELECT p_tenant, f.brand_id, f.customer_id, f.value, f.orders,
           CASE WHEN f.orders > 0 THEN round(f.value::numeric / f.orders)::bigint ELSE 0 END,
           f.first_at, f.last_at, f.orders_365, f.events_30, f.last_event_at,
           CASE WHEN f.orders = 0 THEN 0
                ELSE round((f.orders / greatest(1.0, extract(epoch FROM now() - f.first_at) / (30.4375 * 86400)))::numeric, 3)
           END,
           round(100 * (0.35 * f.r + 0.25 * f.f + 0.15 * f.m + 0.25 * f.e))::smallint,
           CASE WHEN f.orders = 0 THEN round(100 - 50 * f.e)
                ELSE round(100 * (1 - exp(-f.days_since / least(365.0, greatest(14.0, 365.0 / greatest(1, f.orders_365)))))
                           * (1 - 0.5 * f.e))
           END::smallint,
           now()
      FROM final f
    ON CONFLICT (tenant_id, brand_id, customer_id) DO UPDATE SET
      total_order_value_cents = excluded.total_order_value_cents,
      total_order_count = excluded.total_order_count,
      average_order_value_cents = excluded.average_order_value_cents,
      first_order_at = excluded.first_order_at,
      last_order_at = excluded.last_order_at,
      orders_last_365d = excluded.orders_last_365d,
      events_last_30d = excluded.events_last_30d,
      last_event_at = excluded.last_event_at,
      purchase_frequency = excluded.purchase_frequency,
      engagement_score = excluded.engagement_score,
      churn_risk = excluded.churn_risk,
      computed_at = excluded.computed_at
    RETURNING 1
  )
  SELECT count(*)::int FROM upserted
$$;
GRANT EXECUTE ON FUNCTION bg_refresh_profiles(uuid, uuid[]) TO brandgraph_app;
