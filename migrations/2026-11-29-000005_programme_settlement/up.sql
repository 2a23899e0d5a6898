-- Year-end settlement (issue 11, item 2): after the fiscal year, grants are
-- released, what is unclaimed is claimed, and what the programme gave beyond
-- what its subsidy earned becomes a refund due to it.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (
    'deposit', 'order', 'settlement', 'cancellation', 'outage_credit', 'payout',
    'claim_payment', 'programme_budget', 'grant', 'grant_release', 'adjustment', 'reversal',
    'credit_note', 'subsidy_write_off', 'advance', 'advance_application',
    'programme_settlement', 'programme_refund'));

ALTER TABLE programmes ADD COLUMN settled_at timestamptz, ADD COLUMN settlement_entry_id uuid REFERENCES journal_entries (id);

INSERT INTO accounts (id, code, currency, account_type, normal_side, floor, org_id, created_at)
SELECT gen_random_uuid(), 'liabilities:programme:' || p.id::text || ':refund-due', p.currency,
       'liability', 'credit', 'no_overdraft', NULL, now()
FROM programmes p
ON CONFLICT (code, currency) DO NOTHING;

CREATE TABLE programme_refunds (
    id               uuid PRIMARY KEY,
    programme_id     uuid NOT NULL REFERENCES programmes (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    reference        text NOT NULL,
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL,
    UNIQUE (programme_id, reference)
);
CREATE TRIGGER programme_refunds_append_only BEFORE UPDATE OR DELETE ON programme_refunds
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
