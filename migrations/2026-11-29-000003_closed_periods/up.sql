-- Period close (issue 11, item 3). A closed month keeps its trial balance and
-- a hash of its postings chained to the previous closed month's, so any later
-- change to its postings — even by a superuser with triggers disabled — is
-- found by `verify`. No entry may take an effective_at in a closed period.
CREATE TABLE closed_periods (
    period        text PRIMARY KEY CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL UNIQUE,
    time_zone     text NOT NULL,
    postings      bigint NOT NULL,
    previous_hash text,
    hash          text NOT NULL,
    trial_balance jsonb NOT NULL,
    closed_by     uuid REFERENCES users (id),
    closed_at     timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);

CREATE TRIGGER closed_periods_append_only BEFORE UPDATE OR DELETE ON closed_periods
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();

CREATE FUNCTION gpuhour_refuse_closed_period() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    closed_until timestamptz;
BEGIN
    SELECT max(ends_at) INTO closed_until FROM closed_periods;
    IF closed_until IS NOT NULL AND NEW.effective_at < closed_until THEN
        RAISE EXCEPTION 'gpuhour: period_closed: % falls in a closed period (closed until %)',
            NEW.effective_at, closed_until
            USING ERRCODE = 'check_violation', CONSTRAINT = 'period_closed';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER journal_entries_open_period BEFORE INSERT ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_closed_period();
