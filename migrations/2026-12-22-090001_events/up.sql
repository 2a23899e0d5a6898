-- The outbox (issue 12): every state change another system must act on
-- writes one row here in the change's own transaction, so there is no event
-- without its change and no change without its event. Readers (GET
-- /v1/events, the webhook dispatcher) walk it in (txid, seq) order and only
-- see rows whose writing transaction id is below the oldest transaction still
-- running (pg_snapshot_xmin): every row below that line has committed or
-- rolled back, so a cursor never skips an event that commits late.
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    txid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    subject_id uuid NOT NULL,
    -- The organisations that see this event (a provider: orders on its
    -- listings; a tenant: its orders and grants). Finance sees every event.
    org_ids uuid[] NOT NULL,
    data jsonb NOT NULL
);

CREATE INDEX events_in_order ON events (txid, seq);
CREATE INDEX events_by_org ON events USING gin (org_ids);
