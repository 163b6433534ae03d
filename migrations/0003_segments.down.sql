DROP INDEX IF EXISTS ix_segment_memberships_exited;
ALTER TABLE tenants DROP COLUMN IF EXISTS webhook_secret_encrypted;
