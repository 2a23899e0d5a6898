-- Login throttling counts attempts, reserved before the password is checked
-- (so concurrent attempts see each other), not failures recorded afterwards.
ALTER TABLE login_throttle RENAME COLUMN failures TO attempts;
ALTER TABLE login_throttle RENAME COLUMN last_failure TO last_attempt;

-- Where each user has logged in from: a known (email, address) pair is not
-- refused because of other addresses' failures or its address's, so neither a
-- spray at someone's email nor a noisy neighbour behind one address locks them out.
CREATE TABLE login_known_addresses (
    email         text NOT NULL,
    address       text NOT NULL,
    last_login_at timestamptz NOT NULL,
    PRIMARY KEY (email, address)
);
