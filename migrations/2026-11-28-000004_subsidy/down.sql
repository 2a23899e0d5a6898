DROP INDEX journal_entries_order;
DROP TABLE payouts;
DROP TABLE claim_payments;
DROP TABLE claim_items;
DROP TABLE claims;
DROP TABLE grants;
DROP TABLE programmes;
