DROP INDEX grants_flagged;
ALTER TABLE grants DROP COLUMN flagged_at, DROP COLUMN flag_reason, DROP COLUMN reclaimed_at, DROP COLUMN reclaim_reason;
ALTER TABLE programmes DROP CONSTRAINT programmes_reclaim_rule,
    DROP COLUMN reclaim_below_utilisation, DROP COLUMN reclaim_window_hours;
DROP FUNCTION gpuhour_usage_partitions_ahead(date, integer);
DROP TABLE order_usage;
