-- Re-enabling a user must not bring their old tokens back: a token whose `iat`
-- (whole seconds) is before this instant is refused. Disabling sets it to the
-- next whole second, so every token issued up to the disable stays dead.
ALTER TABLE users ADD COLUMN tokens_not_before timestamptz
    CHECK (tokens_not_before = date_trunc('second', tokens_not_before));

-- Users disabled before this column existed keep their tokens dead too.
UPDATE users
   SET tokens_not_before = date_trunc('second', disabled_at) + interval '1 second'
 WHERE disabled_at IS NOT NULL;
