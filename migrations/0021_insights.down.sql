-- the policies go with the tables, dropped by the revision itself.
SELECT 1;
