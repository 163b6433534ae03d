-- AI settings and the copilot: every table is tenant-owned, bound to row-level security.
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['ai_connections', 'ai_settings', 'ai_usage', 'copilot_runs']) AS t;
