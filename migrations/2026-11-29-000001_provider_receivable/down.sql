-- Accounts with postings cannot go (the journal is append-only); empty ones can.
DELETE FROM accounts a
WHERE a.code LIKE 'assets:provider:%:receivable'
  AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.debit_account_id = a.id OR p.credit_account_id = a.id);
