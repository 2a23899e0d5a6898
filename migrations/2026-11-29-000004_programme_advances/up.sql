-- Advances (issue 11, item 1): the agency pays the operator tranches before
-- the claims; a submitted claim is settled first against what is unapplied.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check CHECK (kind IN (
    'deposit', 'order', 'settlement', 'cancellation', 'outage_credit', 'payout',
    'claim_payment', 'programme_budget', 'grant', 'grant_release', 'adjustment', 'reversal',
    'credit_note', 'subsidy_write_off', 'advance', 'advance_application'));

-- Every existing programme gets its advance account (new ones get it at creation).
INSERT INTO accounts (id, code, currency, account_type, normal_side, floor, org_id, created_at)
SELECT gen_random_uuid(), 'liabilities:programme:' || p.id::text || ':advance', p.currency,
       'liability', 'credit', 'no_overdraft', NULL, now()
FROM programmes p
ON CONFLICT (code, currency) DO NOTHING;

CREATE TABLE programme_advances (
    id               uuid PRIMARY KEY,
    programme_id     uuid NOT NULL REFERENCES programmes (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    reference        text NOT NULL,
    received_at      timestamptz NOT NULL,
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_by       uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL,
    UNIQUE (programme_id, reference)
);

CREATE TABLE claim_advance_applications (
    id               uuid PRIMARY KEY,
    claim_id         uuid NOT NULL REFERENCES claims (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX claim_advance_applications_claim ON claim_advance_applications (claim_id);

CREATE TRIGGER programme_advances_append_only BEFORE UPDATE OR DELETE ON programme_advances
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER claim_advance_applications_append_only BEFORE UPDATE OR DELETE ON claim_advance_applications
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
