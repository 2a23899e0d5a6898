DROP TABLE programme_refunds;
DELETE FROM accounts a WHERE a.code LIKE 'liabilities:programme:%:refund-due'
  AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.debit_account_id = a.id OR p.credit_account_id = a.id);
ALTER TABLE programmes DROP COLUMN settlement_entry_id, DROP COLUMN settled_at;
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (
    'deposit', 'order', 'settlement', 'cancellation', 'outage_credit', 'payout',
    'claim_payment', 'programme_budget', 'grant', 'grant_release', 'adjustment', 'reversal',
    'credit_note', 'subsidy_write_off', 'advance', 'advance_application'));
