-- Subsidy programmes, grants, claims and payouts (SPEC sections 5 and 6).

CREATE TABLE programmes (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    sponsor               text NOT NULL CHECK (length(sponsor) BETWEEN 1 AND 200),
    fiscal_year           integer NOT NULL CHECK (fiscal_year BETWEEN 2000 AND 2200),
    currency              text NOT NULL,
    budget                numeric(28, 4) NOT NULL CHECK (budget > 0),
    starts_at             timestamptz NOT NULL,
    ends_at               timestamptz NOT NULL,
    default_rate          numeric(10, 6) NOT NULL CHECK (default_rate > 0 AND default_rate <= 1),
    -- {"sme": "0.8", ...}: decimal strings by tenant category.
    rates_by_category     jsonb NOT NULL DEFAULT '{}'::jsonb,
    eligible_gpu_models   text[],
    eligible_regions      text[],
    eligible_provider_ids uuid[],
    journal_entry_id      uuid NOT NULL REFERENCES journal_entries (id),
    created_by            uuid REFERENCES users (id),
    created_at            timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);

CREATE TABLE grants (
    id               uuid PRIMARY KEY,
    programme_id     uuid NOT NULL REFERENCES programmes (id),
    tenant_org_id    uuid NOT NULL REFERENCES organisations (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    rate             numeric(10, 6) CHECK (rate > 0 AND rate <= 1),
    valid_from       timestamptz NOT NULL,
    valid_until      timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('active', 'closed')),
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    release_entry_id uuid REFERENCES journal_entries (id),
    released         numeric(28, 4) NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    closed_at        timestamptz,
    CHECK (valid_until > valid_from)
);
CREATE INDEX grants_programme ON grants (programme_id);
CREATE INDEX grants_tenant ON grants (tenant_org_id);

CREATE TABLE claims (
    id           uuid PRIMARY KEY,
    programme_id uuid NOT NULL REFERENCES programmes (id),
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    amount       numeric(28, 4) NOT NULL,
    status       text NOT NULL CHECK (status IN ('draft', 'submitted')),
    created_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL,
    submitted_at timestamptz,
    CHECK (period_end > period_start)
);
CREATE INDEX claims_programme ON claims (programme_id);

-- Every settled subsidy posting (and every outage refund of one) belongs to at
-- most one claim: the primary key is the posting.
CREATE TABLE claim_items (
    posting_id      uuid PRIMARY KEY REFERENCES postings (id),
    claim_id        uuid NOT NULL REFERENCES claims (id),
    order_id        uuid NOT NULL REFERENCES orders (id),
    tenant_org_id   uuid NOT NULL,
    provider_org_id uuid NOT NULL,
    -- Negative for a refund.
    amount          numeric(28, 4) NOT NULL
);
CREATE INDEX claim_items_claim ON claim_items (claim_id);

CREATE TABLE claim_payments (
    id               uuid PRIMARY KEY,
    claim_id         uuid NOT NULL REFERENCES claims (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    reference        text NOT NULL,
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX claim_payments_claim ON claim_payments (claim_id);

CREATE TABLE payouts (
    id               uuid PRIMARY KEY,
    provider_org_id  uuid NOT NULL REFERENCES organisations (id),
    amount           numeric(28, 4) NOT NULL CHECK (amount > 0),
    currency         text NOT NULL,
    reference        text NOT NULL,
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX payouts_provider ON payouts (provider_org_id);

-- Reports find an entry's order through its metadata.
CREATE INDEX journal_entries_order ON journal_entries (((metadata ->> 'order_id')::uuid)) WHERE metadata ? 'order_id';
