-- Row-level security for the foundation tables, the runtime role, and the few
-- security-definer functions that work across tenants.
--
-- Policy: a tenant-owned row is visible and writable only while the transaction's
-- app.tenant_id names its tenant (set per transaction with set_config(..., true)).
-- A missing setting reads as NULL and matches nothing.

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'brandgraph_app') THEN
    -- NOLOGIN here: `brandgraph migrate` or the operator gives it LOGIN and a password.
    CREATE ROLE brandgraph_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$;

GRANT USAGE ON SCHEMA public TO brandgraph_app;

CREATE FUNCTION bg_current_tenant() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('app.tenant_id', true), '')::uuid $$;

-- tenants: a tenant sees itself
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
  USING (id = (SELECT bg_current_tenant())) WITH CHECK (id = (SELECT bg_current_tenant()));
GRANT SELECT, INSERT, UPDATE ON tenants TO brandgraph_app;

-- Makes a table tenant-owned: row-level security enabled and forced, the tenant policy, and
-- the app role's privileges. Every revision calls it for the tables it creates.
CREATE FUNCTION bg_enable_tenant_rls(p_table regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
  -- (SELECT ...) makes the setting an InitPlan: read once per statement, not once per row
  EXECUTE format('CREATE POLICY tenant_isolation ON %s USING (tenant_id = (SELECT bg_current_tenant())) '
                 'WITH CHECK (tenant_id = (SELECT bg_current_tenant()))', p_table);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO brandgraph_app', p_table);
END $$;
REVOKE ALL ON FUNCTION bg_enable_tenant_rls(regclass) FROM PUBLIC;

SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['brands', 'memberships', 'brand_grants', 'api_keys', 'audit_log']) AS t;

-- users: global identities; a tenant sees only its members. Rows are written only
-- through bg_ensure_user below.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY member_of_current_tenant ON users FOR SELECT
  USING (EXISTS (SELECT 1 FROM memberships m
                 WHERE m.user_id = users.id AND m.tenant_id = (SELECT bg_current_tenant())));
GRANT SELECT ON users TO brandgraph_app;

-- The schema owner (this migration's role) runs the security-definer functions;
-- these policies let those functions, and nothing the app role runs, reach across tenants.
DO $$
BEGIN
  EXECUTE format('CREATE POLICY schema_owner ON users TO %I USING (true) WITH CHECK (true)', current_user);
  EXECUTE format('CREATE POLICY schema_owner ON tenants FOR SELECT TO %I USING (true)', current_user);
END $$;

-- Finds or creates the user with this e-mail address; callable only inside a tenant
-- transaction (adding a member, minting a development token).
CREATE FUNCTION bg_ensure_user(p_email text, p_name text) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE uid uuid;
BEGIN
  IF bg_current_tenant() IS NULL THEN
    RAISE EXCEPTION 'bg_ensure_user needs a tenant transaction' USING ERRCODE = '42501';
  END IF;
  SELECT id INTO uid FROM users WHERE lower(email) = lower(p_email);
  IF uid IS NULL THEN
    INSERT INTO users (id, email, name) VALUES (gen_random_uuid(), p_email, p_name)
      ON CONFLICT ((lower(email))) DO NOTHING
      RETURNING id INTO uid;
    IF uid IS NULL THEN
      SELECT id INTO uid FROM users WHERE lower(email) = lower(p_email);
    END IF;
  END IF;
  RETURN uid;
END $$;

-- Tenant id for a slug (operator commands); NULL when there is none.
CREATE FUNCTION bg_tenant_id_for_slug(p_slug text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT id FROM tenants WHERE slug = p_slug $$;

-- Every tenant id, for the scheduler's per-tenant periodic jobs.
CREATE FUNCTION bg_tenant_ids() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT id FROM tenants ORDER BY id $$;

REVOKE ALL ON FUNCTION bg_ensure_user(text, text), bg_tenant_id_for_slug(text), bg_tenant_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bg_ensure_user(text, text), bg_tenant_id_for_slug(text), bg_tenant_ids(),
  bg_current_tenant() TO brandgraph_app;
