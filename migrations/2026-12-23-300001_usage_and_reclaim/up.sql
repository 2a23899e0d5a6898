-- Usage metering (issue 12 item 3): what the provider's agent reports per
-- order and interval. Built to grow: partitioned by month of the interval's
-- start, so old months can be detached or archived whole. The migration makes
-- the months of 2026 and 2027 and a DEFAULT partition (anything outside them);
-- `gpuhour_usage_partitions_ahead` makes the coming months' partitions and is
-- called by the usage job of `gpuhour serve` on each tick, so a month's
-- partition exists long before a report for it can arrive (an interval must
-- have ended by the time it is reported).
CREATE TABLE order_usage (
    order_id uuid NOT NULL REFERENCES orders (id),
    start timestamptz NOT NULL,
    "end" timestamptz NOT NULL,
    gpus_in_use integer NOT NULL,
    utilisation numeric NOT NULL,
    memory_used_gb numeric NOT NULL,
    energy_wh numeric NOT NULL,
    reported_by uuid,
    reported_at timestamptz NOT NULL,
    PRIMARY KEY (order_id, start),
    CONSTRAINT order_usage_interval CHECK (start < "end"),
    CONSTRAINT order_usage_gpus CHECK (gpus_in_use >= 0),
    CONSTRAINT order_usage_utilisation CHECK (utilisation >= 0 AND utilisation <= 1),
    CONSTRAINT order_usage_memory CHECK (memory_used_gb >= 0),
    CONSTRAINT order_usage_energy CHECK (energy_wh >= 0)
) PARTITION BY RANGE (start);

CREATE TABLE order_usage_default PARTITION OF order_usage DEFAULT;

-- Makes the monthly partitions from the month of `from_day` for `months`
-- months (those that exist are left alone). Names: order_usage_yYYYYmMM.
CREATE FUNCTION gpuhour_usage_partitions_ahead(from_day date, months integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', from_day)::date;
    made integer := 0;
    month_start date;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        month_start := (first + make_interval(months => i))::date;
        name := format('order_usage_y%sm%s', to_char(month_start, 'YYYY'), to_char(month_start, 'MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF order_usage FOR VALUES FROM (%L) TO (%L)',
                name,
                month_start::timestamp AT TIME ZONE 'UTC',
                (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$;

SELECT gpuhour_usage_partitions_ahead(DATE '2026-01-01', 24);

-- Reclaim (issue 12 item 4): a programme's rule, both or neither.
ALTER TABLE programmes
    ADD COLUMN reclaim_below_utilisation numeric,
    ADD COLUMN reclaim_window_hours integer,
    ADD CONSTRAINT programmes_reclaim_rule CHECK (
        (reclaim_below_utilisation IS NULL) = (reclaim_window_hours IS NULL)
        AND (reclaim_below_utilisation IS NULL OR (reclaim_below_utilisation > 0 AND reclaim_below_utilisation <= 1))
        AND (reclaim_window_hours IS NULL OR reclaim_window_hours BETWEEN 1 AND 720));

ALTER TABLE grants
    ADD COLUMN flagged_at timestamptz,
    ADD COLUMN flag_reason text,
    ADD COLUMN reclaimed_at timestamptz,
    ADD COLUMN reclaim_reason text;

CREATE INDEX grants_flagged ON grants (id) WHERE flagged_at IS NOT NULL;
