-- The delivery of a job's message that runs it holds a lease: a token of its own and an expiry
-- it renews while it works. Another delivery of the message runs the job only when the job is
-- queued or its lease has expired (the holder died or stopped renewing); attempts counts the
-- claims. Running jobs of before this revision have no lease and may be claimed at once.
ALTER TABLE jobs
  ADD COLUMN lease_token uuid,
  ADD COLUMN lease_expires_at timestamptz,
  ADD COLUMN attempts integer NOT NULL DEFAULT 0;
