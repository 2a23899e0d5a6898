-- Webhooks (issue 12): endpoints an organisation registers, one delivery row
-- per (endpoint, event) the dispatcher matched, and the dispatcher's place in
-- the events outbox. See docs/architecture.md, "Webhooks".
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL REFERENCES organisations (id),
    url text NOT NULL,
    -- Event types it receives (at least one).
    types text[] NOT NULL CHECK (cardinality(types) > 0),
    description text,
    -- Finance's endpoints receive every event; everyone else's, the events
    -- their organisation sees (events.org_ids), as GET /v1/events reads them.
    sees_every_event boolean NOT NULL,
    -- HMAC keys. Kept readable because every delivery is signed with them;
    -- the API shows one only in the answer that made it.
    secret text NOT NULL,
    -- The secret a rotation replaced, still signing beside the new one until
    -- previous_secret_expires_at.
    previous_secret text,
    previous_secret_expires_at timestamptz,
    secret_rotated_at timestamptz,
    status text NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at timestamptz NOT NULL,
    disabled_at timestamptz,
    CHECK ((status = 'disabled') = (disabled_at IS NOT NULL)),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, id);

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id),
    event_id uuid NOT NULL REFERENCES events (id),
    status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a worker may next take it; while one is sending it, the end of
    -- that worker's lease (so a worker that dies mid-send is replaced).
    next_attempt_at timestamptz,
    -- Set while a worker is sending it: the end of its lease.
    leased_until timestamptz,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error text,
    created_at timestamptz NOT NULL,
    succeeded_at timestamptz,
    UNIQUE (endpoint_id, event_id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'succeeded') = (succeeded_at IS NOT NULL))
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);

-- The dispatcher's place in the outbox: every event at or before it has its
-- deliveries. Locked FOR UPDATE by the dispatching transaction, which moves
-- it together with the deliveries it inserts.
CREATE TABLE webhook_dispatch_position (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    txid bigint NOT NULL,
    seq bigint NOT NULL
);

INSERT INTO webhook_dispatch_position (singleton, txid, seq) VALUES (true, 0, 0);
