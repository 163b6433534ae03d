-- Nothing beyond the column, its key and its index (dropped by the revision).
SELECT 1;
