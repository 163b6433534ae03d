-- dropping the columns drops their indexes; 0002's expression indexes come back
ALTER TABLE customers
  DROP COLUMN search_last_name,
  DROP COLUMN search_first_name,
  DROP COLUMN search_email;

CREATE INDEX ix_customers_search_email ON customers (tenant_id, lower(email) text_pattern_ops);
CREATE INDEX ix_customers_search_first ON customers (tenant_id, lower(first_name) text_pattern_ops);
CREATE INDEX ix_customers_search_last ON customers (tenant_id, lower(last_name) text_pattern_ops);
