DROP INDEX IF EXISTS ix_customers_search_email;
DROP INDEX IF EXISTS ix_customers_search_first;
DROP INDEX IF EXISTS ix_customers_search_last;
DROP INDEX IF EXISTS ix_customers_search_phone;
DROP FUNCTION IF EXISTS bg_refresh_profiles(uuid, uuid[]);
