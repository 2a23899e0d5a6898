-- The double-entry ledger (SPEC section 3).
--
-- Accounts carry four balance figures, TigerBeetle style. Journal entries and
-- postings are append-only: triggers below refuse UPDATE, DELETE and TRUNCATE.
-- Amounts are NUMERIC(28,4): exact, and always within rust_decimal's range.

CREATE FUNCTION gpuhour_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gpuhour: % on % is refused: the journal is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    -- COLLATE "C" makes the unique index serve prefix searches (code LIKE 'liabilities:%').
    code            text COLLATE "C" NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9:_.-]*$'),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    account_type    text NOT NULL CHECK (account_type IN ('asset', 'liability', 'equity', 'revenue', 'expense', 'memo')),
    normal_side     text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    floor           text CHECK (floor IN ('no_overdraft')),
    org_id          uuid,
    debits_posted   numeric(28, 4) NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_posted  numeric(28, 4) NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    debits_pending  numeric(28, 4) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending numeric(28, 4) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    created_at      timestamptz NOT NULL,
    UNIQUE (code, currency),
    -- Lets postings reference (account, currency) so the database itself refuses
    -- a posting whose currency differs from either account's.
    UNIQUE (id, currency),
    -- The floor is checked by the posting code (to answer with a typed error);
    -- this constraint is the database's own guarantee behind it.
    CONSTRAINT accounts_floor_respected CHECK (
        floor IS NULL
        OR (normal_side = 'credit' AND debits_posted + debits_pending <= credits_posted)
        OR (normal_side = 'debit' AND credits_posted + credits_pending <= debits_posted)
    )
);
CREATE INDEX accounts_org_id ON accounts (org_id) WHERE org_id IS NOT NULL;

CREATE TABLE journal_entries (
    id                uuid PRIMARY KEY,
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind              text NOT NULL CHECK (kind IN (
                          'deposit', 'order', 'settlement', 'cancellation', 'outage_credit', 'payout',
                          'claim_payment', 'programme_budget', 'grant', 'grant_release', 'adjustment', 'reversal')),
    effective_at      timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    actor_user_id     uuid,
    actor_org_id      uuid,
    memo              text NOT NULL DEFAULT '',
    reference         text,
    -- A mistake is corrected by a reversal that points at it; an entry is reversed at most once.
    reverses_entry_id uuid UNIQUE REFERENCES journal_entries (id),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK ((kind = 'reversal') = (reverses_entry_id IS NOT NULL))
);
CREATE INDEX journal_entries_effective_at ON journal_entries (effective_at);

CREATE TABLE postings (
    id                     uuid PRIMARY KEY,
    seq                    bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    entry_id               uuid NOT NULL REFERENCES journal_entries (id),
    -- posted: moves posted money; pending: a reservation; post_pending / void_pending:
    -- turn (part of) an earlier pending posting into posted money, or release it.
    kind                   text NOT NULL CHECK (kind IN ('posted', 'pending', 'post_pending', 'void_pending')),
    pending_posting_id     uuid REFERENCES postings (id),
    debit_account_id       uuid NOT NULL,
    credit_account_id      uuid NOT NULL,
    currency               text NOT NULL,
    amount                 numeric(28, 4) NOT NULL CHECK (amount > 0),
    -- Each account's posted balance (in its normal direction) right after this posting.
    -- Written while the account row is locked, so statements need no running sum.
    debit_account_balance  numeric(28, 4) NOT NULL,
    credit_account_balance numeric(28, 4) NOT NULL,
    effective_at           timestamptz NOT NULL,
    FOREIGN KEY (debit_account_id, currency) REFERENCES accounts (id, currency),
    FOREIGN KEY (credit_account_id, currency) REFERENCES accounts (id, currency),
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((kind IN ('posted', 'pending')) = (pending_posting_id IS NULL))
);
CREATE INDEX postings_debit_account ON postings (debit_account_id, seq);
CREATE INDEX postings_credit_account ON postings (credit_account_id, seq);
CREATE INDEX postings_entry ON postings (entry_id);
CREATE INDEX postings_pending ON postings (pending_posting_id) WHERE pending_posting_id IS NOT NULL;
CREATE INDEX postings_effective_at ON postings (effective_at);

-- What is left of each pending posting. Postings never change, so this is the one
-- mutable figure of a reservation; its row is locked while a later entry posts or voids it.
CREATE TABLE pending_remainders (
    posting_id uuid PRIMARY KEY REFERENCES postings (id),
    remaining  numeric(28, 4) NOT NULL CHECK (remaining >= 0)
);

CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION gpuhour_refuse_change();

-- Idempotency-Key (SPEC section 7): the stored first response, written in the same
-- transaction as the effect it describes.
CREATE TABLE idempotency_keys (
    scope           text NOT NULL,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    response_status smallint NOT NULL,
    response_body   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- The sandbox clock (SPEC section 4), shared by every process on this database.
CREATE TABLE sandbox_clock (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    now       timestamptz NOT NULL
);
