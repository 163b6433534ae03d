-- Alerts (docs/insights.md "Alerts") and stored recommendations (docs/offers.md "Stored
-- recommendations"): every table is tenant-owned, bound to row-level security.
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['alert_rules', 'alert_states', 'alerts', 'stored_recommendations']) AS t;
