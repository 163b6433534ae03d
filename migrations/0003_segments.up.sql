-- Row-level security for the segment tables (same policy as 0001).
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['segments', 'segment_memberships', 'custom_attributes', 'segment_automations',
                           'automation_executions', 'automation_runs'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON %I USING (tenant_id = bg_current_tenant()) '
      'WITH CHECK (tenant_id = bg_current_tenant())', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO brandgraph_app', t);
  END LOOP;
END $$;

-- History reads: who entered or left a segment, newest first.
CREATE INDEX ix_segment_memberships_entered ON segment_memberships (tenant_id, segment_id, entered_at DESC);
CREATE INDEX ix_segment_memberships_exited ON segment_memberships (tenant_id, segment_id, exited_at DESC)
  WHERE exited_at IS NOT NULL;

-- The tenant's webhook signing secret (automations), encrypted by the application.
ALTER TABLE tenants ADD COLUMN webhook_secret_encrypted text;
