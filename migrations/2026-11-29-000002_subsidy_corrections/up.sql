-- Corrections a programme office needs (issue 14, item 3), each a workflow
-- with exact postings: credit notes to a programme, write-offs of disallowed
-- claim amounts, voids of draft claims (and grant withdrawals, which are
-- `grant_release` entries).

ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (
    'deposit', 'order', 'settlement', 'cancellation', 'outage_credit', 'payout',
    'claim_payment', 'programme_budget', 'grant', 'grant_release', 'adjustment', 'reversal',
    'credit_note', 'subsidy_write_off'));

-- A draft claim can be voided: its postings become claimable again. Its items
-- stay (they are the record of what it held), so an item's key is now the pair;
-- that a posting is in at most one live claim is kept by claims of a programme
-- being made one at a time (its row locked) and checked by `verify`.
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('draft', 'submitted', 'void'));
ALTER TABLE claims ADD COLUMN voided_at timestamptz, ADD COLUMN void_reason text;
ALTER TABLE claim_items DROP CONSTRAINT claim_items_pkey;
ALTER TABLE claim_items ADD PRIMARY KEY (claim_id, posting_id);
CREATE INDEX claim_items_posting ON claim_items (posting_id);
-- A credit note need not be for one order.
ALTER TABLE claim_items ALTER COLUMN order_id DROP NOT NULL;

CREATE TABLE credit_notes (
    id               uuid PRIMARY KEY,
    programme_id     uuid NOT NULL REFERENCES programmes (id),
    grant_id         uuid NOT NULL REFERENCES grants (id),
    provider_org_id  uuid NOT NULL REFERENCES organisations (id),
    tenant_org_id    uuid NOT NULL REFERENCES organisations (id),
    order_id         uuid REFERENCES orders (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    reason           text NOT NULL,
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX credit_notes_programme ON credit_notes (programme_id);

CREATE TABLE claim_write_offs (
    id               uuid PRIMARY KEY,
    claim_id         uuid NOT NULL REFERENCES claims (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    reason           text NOT NULL,
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX claim_write_offs_claim ON claim_write_offs (claim_id);

-- Records of money, like the journal: never changed.
CREATE TRIGGER credit_notes_append_only BEFORE UPDATE OR DELETE ON credit_notes
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER claim_write_offs_append_only BEFORE UPDATE OR DELETE ON claim_write_offs
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
