DROP TRIGGER claim_payments_no_truncate ON claim_payments;
DROP TRIGGER claim_payments_append_only ON claim_payments;
DROP TRIGGER claim_items_no_truncate ON claim_items;
DROP TRIGGER claim_items_append_only ON claim_items;
