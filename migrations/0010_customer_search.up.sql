-- Customer search (customers(search:), domain/customers/service.search_conditions) matches each
-- word as the start of the lower-cased e-mail, first name or last name, or of the phone number.
-- Under row-level security PostgreSQL puts a condition in an index scan only when it is
-- leakproof. lower() and LIKE are not, so 0002's indexes on lower(email), lower(first_name) and
-- lower(last_name) never served the app role, and a search read every customer of the tenant.
-- The lower-cased values are now stored (generated columns: every write keeps them, imports
-- included) and searched with starts_with (^@), which is leakproof and which the planner turns
-- into a range on text_pattern_ops indexes leading with the tenant; 0002's phone index serves
-- the phone prefix the same way. pg_trgm is not used: the embedded PostgreSQL does not ship it,
-- and prefixes need no trigrams. Adding the columns rewrites the table (bench/README.md).
DROP INDEX ix_customers_search_email;
DROP INDEX ix_customers_search_first;
DROP INDEX ix_customers_search_last;

ALTER TABLE customers
  ADD COLUMN search_email text GENERATED ALWAYS AS (lower(email)) STORED,
  ADD COLUMN search_first_name text GENERATED ALWAYS AS (lower(first_name)) STORED,
  ADD COLUMN search_last_name text GENERATED ALWAYS AS (lower(last_name)) STORED;

CREATE INDEX ix_customers_search_email ON customers (tenant_id, search_email text_pattern_ops);
CREATE INDEX ix_customers_search_first ON customers (tenant_id, search_first_name text_pattern_ops);
CREATE INDEX ix_customers_search_last ON customers (tenant_id, search_last_name text_pattern_ops);
