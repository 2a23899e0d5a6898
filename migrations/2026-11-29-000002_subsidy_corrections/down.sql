DROP TABLE claim_write_offs;
DROP TABLE credit_notes;
DROP INDEX claim_items_posting;
ALTER TABLE claim_items DROP CONSTRAINT claim_items_pkey;
ALTER TABLE claim_items ADD PRIMARY KEY (posting_id);
ALTER TABLE claim_items ALTER COLUMN order_id SET NOT NULL;
ALTER TABLE claims DROP COLUMN voided_at, DROP COLUMN void_reason;
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('draft', 'submitted'));
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (
    'deposit', 'order', 'settlement', 'cancellation', 'outage_credit', 'payout',
    'claim_payment', 'programme_budget', 'grant', 'grant_release', 'adjustment', 'reversal'));
