-- Issue 12 items 5 and 6: projects (과제) and GPU-hour allocations on grants,
-- the per-organisation cap of a programme, and what a listing declares about
-- its energy. Every table is new or gains nullable columns, so rows written
-- before stay valid and mean "not declared".

-- A project under an agreement: one per (programme, agreement number). Several
-- grants of the same tenant may belong to it (a second tranche, say).
CREATE TABLE projects (
    id uuid PRIMARY KEY,
    programme_id uuid NOT NULL REFERENCES programmes (id),
    tenant_org_id uuid NOT NULL REFERENCES organisations (id),
    title text NOT NULL,
    principal_investigator text NOT NULL,
    agreement_number text NOT NULL,
    purpose text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT projects_one_per_agreement UNIQUE (programme_id, agreement_number)
);

CREATE TABLE project_grants (
    grant_id uuid PRIMARY KEY REFERENCES grants (id),
    project_id uuid NOT NULL REFERENCES projects (id)
);
CREATE INDEX project_grants_by_project ON project_grants (project_id);

-- A grant's allocation of GPU-hours of one model, beside its money cap. The
-- order batch locks these rows (ascending grant id, after the hours, before
-- the accounts) and judges each order against what is left; the CHECK is the
-- last word, as the accounts' floors are for money.
CREATE TABLE grant_allocations (
    grant_id uuid PRIMARY KEY REFERENCES grants (id),
    gpu_model text NOT NULL,
    gpu_hours bigint NOT NULL CHECK (gpu_hours > 0),
    used_gpu_hours bigint NOT NULL DEFAULT 0,
    CONSTRAINT grant_allocations_within CHECK (used_gpu_hours >= 0 AND used_gpu_hours <= gpu_hours)
) WITH (fillfactor = 70);

-- What each order drew from an allocation, and what came back (cancelled hours).
CREATE TABLE allocation_draws (
    order_id uuid PRIMARY KEY REFERENCES orders (id),
    grant_id uuid NOT NULL REFERENCES grant_allocations (grant_id),
    gpu_hours bigint NOT NULL CHECK (gpu_hours > 0),
    returned_gpu_hours bigint NOT NULL DEFAULT 0,
    CONSTRAINT allocation_draws_returned_within CHECK (returned_gpu_hours >= 0 AND returned_gpu_hours <= gpu_hours)
);
CREATE INDEX allocation_draws_by_grant ON allocation_draws (grant_id);

-- The anti-concentration rule: what one tenant organisation may hold of a
-- programme's budget. Grant creation locks this row, so two grants for one
-- programme cannot both pass the check.
CREATE TABLE programme_caps (
    programme_id uuid PRIMARY KEY REFERENCES programmes (id),
    max_share_per_org numeric NOT NULL CHECK (max_share_per_org > 0 AND max_share_per_org <= 1)
);

-- What a listing declares about its accelerators and power (all optional).
ALTER TABLE listings
    ADD COLUMN accelerator_kind text CHECK (accelerator_kind IN ('gpu', 'npu')),
    ADD COLUMN accelerator_vendor text,
    ADD COLUMN accelerator_model text,
    ADD COLUMN board_power_w int4 CHECK (board_power_w > 0),
    ADD COLUMN pue numeric CHECK (pue >= 1),
    ADD COLUMN performance_tflops numeric CHECK (performance_tflops > 0);

-- An order's energy and carbon, estimated when it is placed from the listing's
-- declaration and its region's grid intensity (NULL when not declared).
ALTER TABLE orders
    ADD COLUMN estimated_energy_kwh numeric,
    ADD COLUMN estimated_co2e_kg numeric;

-- Grid carbon intensity per region, set by finance.
CREATE TABLE grid_intensities (
    region text PRIMARY KEY,
    g_co2e_per_kwh numeric NOT NULL CHECK (g_co2e_per_kwh >= 0),
    updated_at timestamptz NOT NULL
);
