DROP TRIGGER journal_entries_open_period ON journal_entries;
DROP FUNCTION gpuhour_refuse_closed_period();
DROP TABLE closed_periods;
