ALTER TABLE organisations DROP COLUMN category_confirmed;
DROP INDEX claim_payments_reference;
