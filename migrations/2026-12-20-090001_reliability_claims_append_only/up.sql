-- A claim's items and the programme's payments on it are records of what was
-- claimed and paid, like the journal they point at: never rewritten. (A claim's
-- status lives on `claims`, which its workflow updates.)
CREATE TRIGGER claim_items_append_only BEFORE UPDATE OR DELETE ON claim_items
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER claim_items_no_truncate BEFORE TRUNCATE ON claim_items
    FOR EACH STATEMENT EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER claim_payments_append_only BEFORE UPDATE OR DELETE ON claim_payments
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER claim_payments_no_truncate BEFORE TRUNCATE ON claim_payments
    FOR EACH STATEMENT EXECUTE FUNCTION gpuhour_refuse_change();
