-- quota_usage: a monthly quota's use per tenant and month; api_usage: the API's requests, cost
-- spent and throttled requests per consumer (client app, API key or user) and hour. Both
-- tenant-owned, bound to row-level security like every other table.
SELECT bg_enable_tenant_rls(t::regclass) FROM unnest(ARRAY['quota_usage', 'api_usage']) AS t;
