-- the tables go with their policies, dropped by the revision itself.
SELECT 1;
