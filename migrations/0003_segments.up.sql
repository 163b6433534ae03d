-- Row-level security for the segment tables (same policy as 0001).
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['segments', 'segment_memberships', 'custom_attributes', 'segment_automations',
                'automation_executions', 'automation_runs']) AS t;

-- History reads: who entered or left a segment, newest first.
CREATE INDEX ix_segment_memberships_entered ON segment_memberships (tenant_id, segment_id, entered_at DESC);
CREATE INDEX ix_segment_memberships_exited ON segment_memberships (tenant_id, segment_id, exited_at DESC)
  WHERE exited_at IS NOT NULL;

-- The tenant's webhook signing secret (automations), encrypted by the application.
ALTER TABLE tenants ADD COLUMN webhook_secret_encrypted text;
