ALTER TABLE jobs
  DROP COLUMN attempts,
  DROP COLUMN lease_expires_at,
  DROP COLUMN lease_token;
