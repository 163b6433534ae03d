ALTER TABLE segments NO FORCE ROW LEVEL SECURITY;
UPDATE segments SET stale_since = coalesce(stale_since, now()) WHERE change_seq > refreshed_seq;
ALTER TABLE segments FORCE ROW LEVEL SECURITY;
REVOKE USAGE, SELECT ON SEQUENCE segment_change_seq FROM brandgraph_app;
