-- Automation messages add a column to campaigns (already bound to row-level security); the
-- automation's runs' campaigns go with it. No new table, so no new policy.
SELECT 1;
