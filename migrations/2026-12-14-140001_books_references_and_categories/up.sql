-- Issue 14, item 7.

-- A bank reference already recorded for a claim payment is refused unless the
-- caller overrides it: the check looks references up, case-insensitively.
CREATE INDEX claim_payments_reference ON claim_payments (lower(reference));

-- A tenant declares its category at sign-up, and programmes set their rate by
-- it: until finance confirms (or sets) the category, a tenant gets a
-- programme's default rate. Existing organisations start unconfirmed.
ALTER TABLE organisations ADD COLUMN category_confirmed boolean NOT NULL DEFAULT false;
