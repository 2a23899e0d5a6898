-- Bank reconciliation (issue 11, item 4): imported statement lines, never
-- changed, and their matches to ledger entries (made by the matcher or a
-- person; a removed match is kept with who removed it and when).
CREATE TABLE bank_statements (
    id          uuid PRIMARY KEY,
    imported_by uuid REFERENCES users (id),
    imported_at timestamptz NOT NULL,
    lines       integer NOT NULL,
    refused     integer NOT NULL
);

CREATE TABLE bank_lines (
    id           uuid PRIMARY KEY,
    statement_id uuid NOT NULL REFERENCES bank_statements (id),
    row_number   integer NOT NULL,
    value_date   date NOT NULL,
    amount       numeric(28, 4) NOT NULL CHECK (amount <> 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    counterparty text NOT NULL,
    reference    text NOT NULL,
    bank_ref     text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL
);
CREATE INDEX bank_lines_date ON bank_lines (value_date);
CREATE TRIGGER bank_lines_append_only BEFORE UPDATE OR DELETE ON bank_lines
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER bank_statements_append_only BEFORE UPDATE OR DELETE ON bank_statements
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();

CREATE TABLE bank_matches (
    id               uuid PRIMARY KEY,
    bank_line_id     uuid NOT NULL REFERENCES bank_lines (id),
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    state            text NOT NULL CHECK (state IN ('suggested', 'confirmed')),
    method           text NOT NULL CHECK (method IN ('reference', 'amount_date', 'manual', 'deposit')),
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL,
    removed_at       timestamptz,
    removed_by       uuid REFERENCES users (id)
);
CREATE INDEX bank_matches_line ON bank_matches (bank_line_id) WHERE removed_at IS NULL;
CREATE INDEX bank_matches_entry ON bank_matches (journal_entry_id) WHERE removed_at IS NULL;
