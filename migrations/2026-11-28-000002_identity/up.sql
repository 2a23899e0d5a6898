-- Organisations, users, login throttling and the audit log (SPEC sections 1 and 7).

CREATE TABLE organisations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind       text NOT NULL CHECK (kind IN ('tenant', 'provider', 'operator')),
    -- Programmes set the co-payment rate by a tenant's category.
    category   text CHECK (category IN ('sme', 'midsize', 'enterprise', 'university', 'research', 'public')),
    created_at timestamptz NOT NULL,
    CHECK ((kind = 'tenant') = (category IS NOT NULL))
);
-- The operator is one organisation.
CREATE UNIQUE INDEX organisations_one_operator ON organisations (kind) WHERE kind = 'operator';

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organisations (id),
    -- Stored lower-cased and trimmed; unique among users that are not disabled.
    email         text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('tenant', 'provider', 'finance', 'admin')),
    created_at    timestamptz NOT NULL,
    disabled_at   timestamptz
);
CREATE UNIQUE INDEX users_email_active ON users (email) WHERE disabled_at IS NULL;
CREATE INDEX users_org ON users (org_id);

-- Failed logins per subject (an email, or a client address), kept in the
-- database so every process sees the same count.
CREATE TABLE login_throttle (
    subject       text PRIMARY KEY,
    failures      integer NOT NULL CHECK (failures >= 0),
    last_failure  timestamptz NOT NULL,
    blocked_until timestamptz
);

-- Who wrote what: one row per successful write, in the write's own transaction.
CREATE TABLE audit_log (
    id              uuid PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    at              timestamptz NOT NULL DEFAULT now(),
    request_id      text,
    user_id         uuid,
    org_id          uuid,
    method          text NOT NULL,
    route           text NOT NULL,
    path            text NOT NULL,
    status          smallint NOT NULL,
    resource_id     uuid,
    idempotency_key text
);
CREATE INDEX audit_log_user ON audit_log (user_id, seq);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION gpuhour_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gpuhour_refuse_change();
