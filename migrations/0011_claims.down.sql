-- frequency_cap_locks goes with its policy, and the jobs columns with the table's, both dropped
-- by the revision itself.
SELECT 1;
