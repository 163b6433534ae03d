-- Without brand-private records the addresses must be unique again. Private records hold a
-- brand's customers (orders, consents, messages hang off them): the downgrade refuses rather
-- than delete them; merge or delete them first.
ALTER TABLE customers NO FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM customers WHERE private_to_brand_id IS NOT NULL) THEN
    RAISE EXCEPTION 'customers private to a brand exist: merge or delete them before this downgrade'
      USING ERRCODE = '55000';
  END IF;
END $$;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
DROP INDEX uq_customers_email;
DROP INDEX uq_customers_external_id;
CREATE UNIQUE INDEX uq_customers_email ON customers (tenant_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX uq_customers_external_id ON customers (tenant_id, external_id) WHERE external_id IS NOT NULL;
ALTER TABLE customers DROP CONSTRAINT fk_customers_private_to_brand, DROP COLUMN private_to_brand_id;

DROP FUNCTION IF EXISTS bg_ensure_user(text);
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
REVOKE ALL ON FUNCTION bg_ensure_user(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bg_ensure_user(text, text) TO brandgraph_app;

DROP POLICY member_of_current_tenant ON users;
CREATE POLICY member_of_current_tenant ON users FOR SELECT
  USING (EXISTS (SELECT 1 FROM memberships m
                 WHERE m.user_id = users.id AND m.tenant_id = (SELECT bg_current_tenant())));

ALTER TABLE users ADD COLUMN name varchar(200);

-- Without member ids the audit log names a member by its user id again.
ALTER TABLE audit_log NO FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
UPDATE audit_log a SET principal_id = m.user_id::text
  FROM memberships m WHERE a.principal_type = 'user' AND m.tenant_id = a.tenant_id AND a.principal_id = m.id::text;
UPDATE audit_log a SET target_id = m.user_id::text
  FROM memberships m WHERE a.target_type = 'Member' AND m.tenant_id = a.tenant_id AND a.target_id = m.id::text;
UPDATE audit_log a SET summary = jsonb_set(a.summary, '{assignee_id}', to_jsonb(m.user_id::text))
  FROM memberships m WHERE a.action = 'conversation.assign' AND m.tenant_id = a.tenant_id
                       AND a.summary->>'assignee_id' = m.id::text;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;

-- Without invitations, a pending one would be a membership: drop them. Names stay with the
-- memberships and go with them: a user's name would be one tenant's name shown to the others.
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
DELETE FROM memberships WHERE status = 'invited';
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;

DROP INDEX uq_memberships_email;
ALTER TABLE memberships
  DROP CONSTRAINT uq_memberships_tenant_id_id,
  DROP CONSTRAINT ck_memberships_status,
  DROP COLUMN accepted_at,
  DROP COLUMN status,
  DROP COLUMN name,
  DROP COLUMN email,
  DROP COLUMN id;
