-- Transactional outbox: the live events and job messages a transaction produces are rows
-- written in that transaction; a relay publishes them to Redis and deletes them (sent).
-- See domain/platform/outbox.py.
CREATE TABLE outbox (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id         uuid NOT NULL,             -- also the Dramatiq message id of a job message
  seq        bigint GENERATED ALWAYS AS IDENTITY,
  kind       text NOT NULL CHECK (kind IN ('event', 'job')),
  topic      text NOT NULL,             -- event: its topic; job: the actor name
  queue      text,                      -- job: the Dramatiq queue
  payload    jsonb NOT NULL,            -- event: the payload; job: {"args": [...], "kwargs": {...}}
  delay_ms   integer,                   -- job: Dramatiq delay, if any
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT pk_outbox PRIMARY KEY (tenant_id, id),
  CONSTRAINT ck_outbox_job_queue CHECK (kind = 'event' OR queue IS NOT NULL)
);
CREATE INDEX ix_outbox_tenant_id_seq ON outbox (tenant_id, seq);
-- The relay's claim reads the oldest rows of all tenants (ORDER BY seq LIMIT n, across the
-- tenant boundary): the tenant-leading index cannot give that order without reading and sorting
-- every pending row, which a backlog (rows held through a Redis outage) makes slow on each batch.
-- This global index serves the claim only; tenant reads keep the tenant-leading one.
CREATE INDEX ix_outbox_seq ON outbox (seq);

SELECT bg_enable_tenant_rls('outbox'::regclass);

-- The schema owner runs the relay's security-definer functions; this policy lets those
-- functions, and nothing the app role runs, see every tenant's pending rows.
DO $$
BEGIN
  EXECUTE format('CREATE POLICY schema_owner ON outbox TO %I USING (true) WITH CHECK (true)', current_user);
END $$;

-- No NOTIFY trigger wakes the relay: PostgreSQL serialises the commits of transactions that
-- queued a notification on one global lock, which cost concurrent writers about 30 % of their
-- rate; the application wakes the relay after the commit instead (outbox.wake).

-- One relay at a time drains the outbox, so each tenant's rows go out in order: the relay that
-- holds this session-level advisory lock (on its own connection; released when that connection
-- ends, so another relay takes over). Returns whether this session leads.
CREATE FUNCTION bg_outbox_lead() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF bg_current_tenant() IS NOT NULL THEN
    RAISE EXCEPTION 'bg_outbox_lead runs outside tenant transactions' USING ERRCODE = '42501';
  END IF;
  RETURN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 25191 AND objid = 1
                   AND objsubid = 2 AND pid = pg_backend_pid() AND granted)
      OR pg_try_advisory_lock(25191, 1);
END $$;

-- The relay's read: up to p_limit pending rows of every tenant, oldest first. Only the leading
-- session gets rows, and only outside a tenant transaction (the relay's own connection).
CREATE FUNCTION bg_outbox_claim(p_limit integer)
RETURNS TABLE (tenant_id uuid, id uuid, seq bigint, kind text, topic text, queue text, payload jsonb,
               delay_ms integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  IF bg_current_tenant() IS NOT NULL THEN
    RAISE EXCEPTION 'bg_outbox_claim runs outside tenant transactions' USING ERRCODE = '42501';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 25191 AND objid = 1
                   AND objsubid = 2 AND pid = pg_backend_pid() AND granted) THEN
    RETURN;  -- not the leading relay
  END IF;
  RETURN QUERY
    SELECT o.tenant_id, o.id, o.seq, o.kind, o.topic, o.queue, o.payload, o.delay_ms
      FROM outbox o ORDER BY o.seq LIMIT p_limit;
END $$;

-- Marks rows sent: they are deleted.
CREATE FUNCTION bg_outbox_sent(p_tenants uuid[], p_ids uuid[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE n integer;
BEGIN
  IF bg_current_tenant() IS NOT NULL THEN
    RAISE EXCEPTION 'bg_outbox_sent runs outside tenant transactions' USING ERRCODE = '42501';
  END IF;
  DELETE FROM outbox o USING unnest(p_tenants, p_ids) AS s(tenant_id, id)
   WHERE o.tenant_id = s.tenant_id AND o.id = s.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- How many rows wait, across tenants (readiness and the tests' figures).
CREATE FUNCTION bg_outbox_pending() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT count(*) FROM outbox $$;

REVOKE ALL ON FUNCTION bg_outbox_lead(), bg_outbox_claim(integer), bg_outbox_sent(uuid[], uuid[]),
  bg_outbox_pending() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bg_outbox_lead(), bg_outbox_claim(integer), bg_outbox_sent(uuid[], uuid[]),
  bg_outbox_pending() TO brandgraph_app;
