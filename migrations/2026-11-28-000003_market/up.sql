-- The marketplace (SPEC section 4): listings, per-hour capacity, orders, outages.

CREATE TABLE listings (
    id                 uuid PRIMARY KEY,
    provider_org_id    uuid NOT NULL REFERENCES organisations (id),
    gpu_model          text NOT NULL CHECK (length(gpu_model) BETWEEN 1 AND 100),
    gpu_memory_gb      integer NOT NULL CHECK (gpu_memory_gb > 0),
    gpus               integer NOT NULL CHECK (gpus > 0),
    region             text NOT NULL CHECK (length(region) BETWEEN 1 AND 100),
    interconnect       text,
    -- Up to four fraction digits beyond the currency's own.
    price_per_gpu_hour numeric(28, 8) NOT NULL CHECK (price_per_gpu_hour > 0),
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    available_from     timestamptz NOT NULL,
    available_until    timestamptz NOT NULL,
    min_hours          integer NOT NULL CHECK (min_hours >= 1),
    status             text NOT NULL CHECK (status IN ('active', 'paused', 'closed')),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CHECK (available_until > available_from),
    CHECK (date_trunc('hour', available_from) = available_from AND date_trunc('hour', available_until) = available_until)
);
CREATE INDEX listings_provider ON listings (provider_org_id);
CREATE INDEX listings_search ON listings (status, gpu_model, region, price_per_gpu_hour);

-- Capacity, one row per listing and hour that has anything reserved. The CHECK
-- is what makes overselling impossible: an order adds its GPUs to each hour's
-- row inside its own transaction (INSERT … ON CONFLICT DO UPDATE locks the
-- row), and a row that would go over capacity fails the statement.
CREATE TABLE listing_hours (
    listing_id uuid NOT NULL REFERENCES listings (id),
    hour       timestamptz NOT NULL,
    capacity   integer NOT NULL CHECK (capacity > 0),
    reserved   integer NOT NULL CHECK (reserved >= 0),
    PRIMARY KEY (listing_id, hour),
    CONSTRAINT listing_hours_within_capacity CHECK (reserved <= capacity)
);

CREATE TABLE orders (
    id               uuid PRIMARY KEY,
    tenant_org_id    uuid NOT NULL REFERENCES organisations (id),
    placed_by        uuid NOT NULL REFERENCES users (id),
    listing_id       uuid NOT NULL REFERENCES listings (id),
    provider_org_id  uuid NOT NULL REFERENCES organisations (id),
    -- What was bought, as it was when bought: a later price change changes nothing.
    gpu_model        text NOT NULL,
    region           text NOT NULL,
    gpus             integer NOT NULL CHECK (gpus > 0),
    start_at         timestamptz NOT NULL,
    end_at           timestamptz NOT NULL,
    hours            integer NOT NULL CHECK (hours > 0),
    currency         text NOT NULL,
    unit_price       numeric(28, 8) NOT NULL,
    gpu_hours        integer NOT NULL,
    subtotal         numeric(28, 4) NOT NULL CHECK (subtotal >= 0),
    subsidy          numeric(28, 4) NOT NULL CHECK (subsidy >= 0),
    subsidy_rate     numeric(10, 6) NOT NULL,
    tenant_amount    numeric(28, 4) NOT NULL CHECK (tenant_amount >= 0),
    platform_fee     numeric(28, 4) NOT NULL CHECK (platform_fee >= 0),
    fee_rate         numeric(10, 6) NOT NULL,
    grant_id         uuid,
    status           text NOT NULL CHECK (status IN ('reserved', 'active', 'completed', 'cancelled')),
    -- Hours whose share has been posted, and hours charged in all (fewer than
    -- `hours` once cancelled after the start).
    settled_hours    integer NOT NULL DEFAULT 0 CHECK (settled_hours >= 0),
    charged_hours    integer NOT NULL CHECK (charged_hours >= 0),
    credited_gpu_hours integer NOT NULL DEFAULT 0 CHECK (credited_gpu_hours >= 0),
    journal_entry_id uuid NOT NULL REFERENCES journal_entries (id),
    created_at       timestamptz NOT NULL,
    cancelled_at     timestamptz,
    CHECK (subtotal = subsidy + tenant_amount),
    CHECK (settled_hours <= charged_hours AND charged_hours <= hours),
    CHECK (end_at > start_at)
);
CREATE INDEX orders_tenant ON orders (tenant_org_id, created_at);
CREATE INDEX orders_provider ON orders (provider_org_id, created_at);
CREATE INDEX orders_listing ON orders (listing_id, start_at);
-- The settler's worklist: orders with hours still to settle.
CREATE INDEX orders_to_settle ON orders (start_at) WHERE status IN ('reserved', 'active');

CREATE TABLE outages (
    id          uuid PRIMARY KEY,
    listing_id  uuid NOT NULL REFERENCES listings (id),
    reported_by uuid NOT NULL REFERENCES users (id),
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    gpus        integer NOT NULL CHECK (gpus > 0),
    journal_entry_id uuid REFERENCES journal_entries (id),
    created_at  timestamptz NOT NULL,
    CHECK (end_at > start_at)
);

-- GPU-hours credited per order and hour, so overlapping outage reports never
-- credit the same GPU-hour twice.
CREATE TABLE order_hour_credits (
    order_id uuid NOT NULL REFERENCES orders (id),
    hour     timestamptz NOT NULL,
    gpus     integer NOT NULL CHECK (gpus > 0),
    PRIMARY KEY (order_id, hour)
);
