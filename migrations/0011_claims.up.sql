-- frequency_cap_locks: one row per customer and brand, locked (never rewritten) by each claim of
-- a recipient under the brand's frequency cap, so that two campaigns' claims of one customer take
-- turns. Tenant-owned like every other table.
SELECT bg_enable_tenant_rls('frequency_cap_locks'::regclass);

-- jobs.lease_token, lease_expires_at, attempts: the delivery of a job's message that runs it
-- holds a lease, a token of its own and an expiry it renews while it works. Another delivery
-- runs the job only when the job is queued or its lease has expired (the holder died or stopped
-- renewing); attempts counts the claims. Running jobs of before this revision have no lease and
-- may be claimed at once.
