-- Row-level security for the campaign and delivery tables (same policy as 0001).
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['campaigns', 'campaign_stats', 'campaign_recipients', 'campaign_conversions',
                'delivery_providers', 'brand_messaging_settings', 'suppressions']) AS t;
