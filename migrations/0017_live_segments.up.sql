-- segment_pending_evaluations: one row per customer whose segment inputs changed and who waits
-- for live evaluation (coalesced: a burst of changes is one row, its inputs the union). Written
-- in the change's transaction, claimed and deleted by the evaluation in the worker's.
SELECT bg_enable_tenant_rls('segment_pending_evaluations'::regclass);

-- segment_change_seq orders changes: each pending row takes a new value, and so does a
-- segment's change_seq when something it reads changed without live evaluation (a scheduled
-- segment, a lookalike, a definition change, a bulk change). A refresh records the change_seq it
-- started from in refreshed_seq: the segment is stale while change_seq > refreshed_seq.
GRANT USAGE, SELECT ON SEQUENCE segment_change_seq TO brandgraph_app;

-- Segments of before this revision that were stale stay stale; the others are in line.
ALTER TABLE segments NO FORCE ROW LEVEL SECURITY;
UPDATE segments SET change_seq = nextval('segment_change_seq') WHERE stale_since IS NOT NULL;
ALTER TABLE segments FORCE ROW LEVEL SECURITY;
