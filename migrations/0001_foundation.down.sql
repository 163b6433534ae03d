DROP FUNCTION IF EXISTS bg_ensure_user(text, text);
DROP FUNCTION IF EXISTS bg_tenant_id_for_slug(text);
DROP FUNCTION IF EXISTS bg_tenant_ids();
DROP POLICY IF EXISTS schema_owner ON users;
DROP POLICY IF EXISTS schema_owner ON tenants;
DROP POLICY IF EXISTS member_of_current_tenant ON users;
DROP POLICY IF EXISTS tenant_isolation ON tenants;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['brands', 'memberships', 'brand_grants', 'api_keys', 'audit_log'] LOOP
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %I', t);
  END LOOP;
END $$;
DROP FUNCTION IF EXISTS bg_enable_tenant_rls(regclass);
DROP FUNCTION IF EXISTS bg_current_tenant();
