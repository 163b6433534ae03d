-- client_apps, trusted_documents, trusted_manifests: tenant-owned like every other table (row-level
-- security bound to the transaction's tenant, and the app role's grants).
SELECT bg_enable_tenant_rls(t::regclass)
  FROM unnest(ARRAY['client_apps', 'trusted_documents', 'trusted_manifests']) AS t;
