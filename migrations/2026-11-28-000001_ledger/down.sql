DROP TABLE sandbox_clock;
DROP TABLE idempotency_keys;
DROP TABLE pending_remainders;
DROP TABLE postings;
DROP TABLE journal_entries;
DROP TABLE accounts;
DROP FUNCTION gpuhour_refuse_change();
