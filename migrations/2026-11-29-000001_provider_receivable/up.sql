-- A provider's receivable (what it owes the operator: outage credits for hours
-- already paid out), for every provider that already has a payable. New
-- providers get it with their other accounts.
INSERT INTO accounts (id, code, currency, account_type, normal_side, floor, org_id, created_at)
SELECT gen_random_uuid(),
       'assets:provider:' || a.org_id::text || ':receivable',
       a.currency, 'asset', 'debit', NULL, a.org_id, now()
FROM accounts a
WHERE a.code LIKE 'liabilities:provider:%:payable' AND a.org_id IS NOT NULL
ON CONFLICT (code, currency) DO NOTHING;
