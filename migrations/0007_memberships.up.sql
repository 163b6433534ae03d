-- Memberships hold what a tenant knows of a person (the e-mail it typed, the name it gave);
-- the global users row holds only the identity (id, e-mail). An invitation is a membership
-- with status 'invited': it grants nothing until the person accepts it.

ALTER TABLE memberships
  ADD COLUMN id uuid,
  ADD COLUMN email varchar(320),
  ADD COLUMN name varchar(200),
  ADD COLUMN status varchar(8) NOT NULL DEFAULT 'active',
  ADD COLUMN accepted_at timestamptz;

-- Existing memberships were granted without an invitation: they stay active and take the
-- e-mail from the user. Each gets a fresh random member id, never the user id the API showed
-- before: the same person would otherwise carry the same id in every tenant. A user's name was
-- set by the tenant that created the user, i.e. the person's first membership: only that
-- membership gets it. Row-level security is forced on memberships and the audit log, so these
-- owner-run updates lift it for the statements.
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
UPDATE memberships m SET id = gen_random_uuid(), email = u.email, accepted_at = m.created_at
  FROM users u WHERE u.id = m.user_id;
-- The audit log named a member by its user id (as who acted, as the target of a member.* entry,
-- as a conversation.assign entry's assignee): it names the member by its new id. Brand grants,
-- conversation assignees and read markers hold the user id and stay as they are.
ALTER TABLE audit_log NO FORCE ROW LEVEL SECURITY;
UPDATE audit_log a SET principal_id = m.id::text
  FROM memberships m WHERE a.principal_type = 'user' AND m.tenant_id = a.tenant_id AND a.principal_id = m.user_id::text;
UPDATE audit_log a SET target_id = m.id::text
  FROM memberships m WHERE a.target_type = 'Member' AND m.tenant_id = a.tenant_id AND a.target_id = m.user_id::text;
UPDATE audit_log a SET summary = jsonb_set(a.summary, '{assignee_id}', to_jsonb(m.id::text))
  FROM memberships m WHERE a.action = 'conversation.assign' AND m.tenant_id = a.tenant_id
                       AND a.summary->>'assignee_id' = m.user_id::text;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
UPDATE memberships m SET name = u.name
  FROM users u
 WHERE u.id = m.user_id AND u.name IS NOT NULL
   AND m.tenant_id = (SELECT f.tenant_id FROM memberships f WHERE f.user_id = m.user_id
                       ORDER BY f.created_at, f.tenant_id LIMIT 1);
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;

ALTER TABLE memberships
  ALTER COLUMN id SET DEFAULT gen_random_uuid(),
  ALTER COLUMN status SET DEFAULT 'invited',
  ALTER COLUMN id SET NOT NULL,
  ALTER COLUMN email SET NOT NULL,
  ADD CONSTRAINT ck_memberships_status CHECK (status IN ('invited', 'active')),
  ADD CONSTRAINT uq_memberships_tenant_id_id UNIQUE (tenant_id, id);
CREATE UNIQUE INDEX uq_memberships_email ON memberships (tenant_id, lower(email));

ALTER TABLE users DROP COLUMN name;

-- A tenant reads a user row only once the person has accepted its membership.
DROP POLICY member_of_current_tenant ON users;
CREATE POLICY member_of_current_tenant ON users FOR SELECT
  USING (EXISTS (SELECT 1 FROM memberships m
                 WHERE m.user_id = users.id AND m.tenant_id = (SELECT bg_current_tenant())
                   AND m.status = 'active'));

-- The identity for an e-mail address, created when new. Both cases run the same statements
-- (an insert that may do nothing, then a read), so an existing address costs what a new one
-- does. Holds no name: what a tenant knows of a person lives on its membership.
DROP FUNCTION bg_ensure_user(text, text);
CREATE FUNCTION bg_ensure_user(p_email text) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE uid uuid;
BEGIN
  IF bg_current_tenant() IS NULL THEN
    RAISE EXCEPTION 'bg_ensure_user needs a tenant transaction' USING ERRCODE = '42501';
  END IF;
  INSERT INTO users (id, email) VALUES (gen_random_uuid(), lower(p_email))
    ON CONFLICT ((lower(email))) DO NOTHING;
  SELECT id INTO uid FROM users WHERE lower(email) = lower(p_email);
  RETURN uid;
END $$;
REVOKE ALL ON FUNCTION bg_ensure_user(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bg_ensure_user(text) TO brandgraph_app;

-- Brand-private customer records. A principal limited to some brands that gives an e-mail
-- address or external id held only by customers it cannot see gets a record of its own, private
-- to the brand it writes through, instead of an answer that would tell it the address is taken
-- (and instead of the other brands' record). E-mail addresses and external ids are unique among
-- shared records (private_to_brand_id NULL) and, separately, among each brand's private ones.
ALTER TABLE customers ADD COLUMN private_to_brand_id uuid,
  ADD CONSTRAINT fk_customers_private_to_brand FOREIGN KEY (tenant_id, private_to_brand_id)
      REFERENCES brands (tenant_id, id) ON DELETE CASCADE;
DROP INDEX uq_customers_email;
DROP INDEX uq_customers_external_id;
-- (tenant_id, email) lead, so lookups by address alone still use the index
CREATE UNIQUE INDEX uq_customers_email ON customers
  (tenant_id, email, coalesce(private_to_brand_id, '00000000-0000-0000-0000-000000000000'::uuid))
  WHERE email IS NOT NULL;
CREATE UNIQUE INDEX uq_customers_external_id ON customers
  (tenant_id, external_id, coalesce(private_to_brand_id, '00000000-0000-0000-0000-000000000000'::uuid))
  WHERE external_id IS NOT NULL;
