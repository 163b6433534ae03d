-- Row-level security for the segment tables (same policy as 0001).
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['segments', 'segment_memberships', 'custom_attributes', 'segment_automations',
                'automation_executions', 'automation_runs']) AS t;

-- History reads of exits, newest first (entries are read along the primary key).
CREATE INDEX ix_segment_memberships_exited ON segment_memberships (tenant_id, segment_id, exited_at DESC)
  WHERE exited_at IS NOT NULL;

-- The tenant's webhook signing secret (automations), encrypted by the application.
ALTER TABLE tenants ADD COLUMN webhook_secret_encrypted text;
