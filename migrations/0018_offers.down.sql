DROP FUNCTION IF EXISTS bg_recommendations(uuid, uuid);
DROP FUNCTION IF EXISTS bg_refresh_customer_profiles(uuid, uuid[]);
DROP FUNCTION IF EXISTS bg_refresh_preferences(uuid, uuid[]);
DROP INDEX IF EXISTS ix_customer_profiles_creators;
DROP INDEX IF EXISTS ix_customer_profiles_types;
DROP INDEX IF EXISTS ix_customer_profiles_genres;
DROP INDEX IF EXISTS ix_products_type;
DROP INDEX IF EXISTS ix_products_creators;
DROP INDEX IF EXISTS ix_products_genres;
