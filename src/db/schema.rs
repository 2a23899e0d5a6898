//! Diesel's view of the tables in `migrations/` (kept by hand, checked by the tests
//! that exercise every query against a migrated database).

diesel::table! {
    accounts (id) {
        id -> Uuid,
        code -> Text,
        currency -> Text,
        account_type -> Text,
        normal_side -> Text,
        floor -> Nullable<Text>,
        org_id -> Nullable<Uuid>,
        debits_posted -> Numeric,
        credits_posted -> Numeric,
        debits_pending -> Numeric,
        credits_pending -> Numeric,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    journal_entries (id) {
        id -> Uuid,
        seq -> Int8,
        kind -> Text,
        effective_at -> Timestamptz,
        recorded_at -> Timestamptz,
        actor_user_id -> Nullable<Uuid>,
        actor_org_id -> Nullable<Uuid>,
        memo -> Text,
        reference -> Nullable<Text>,
        reverses_entry_id -> Nullable<Uuid>,
        metadata -> Jsonb,
    }
}

diesel::table! {
    postings (id) {
        id -> Uuid,
        seq -> Int8,
        entry_id -> Uuid,
        kind -> Text,
        pending_posting_id -> Nullable<Uuid>,
        debit_account_id -> Uuid,
        credit_account_id -> Uuid,
        currency -> Text,
        amount -> Numeric,
        debit_account_balance -> Numeric,
        credit_account_balance -> Numeric,
        effective_at -> Timestamptz,
    }
}

diesel::table! {
    pending_remainders (posting_id) {
        posting_id -> Uuid,
        remaining -> Numeric,
    }
}

diesel::table! {
    idempotency_keys (scope, key) {
        scope -> Text,
        key -> Text,
        request_hash -> Bytea,
        response_status -> Int2,
        response_body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    sandbox_clock (singleton) {
        singleton -> Bool,
        now -> Timestamptz,
    }
}

diesel::joinable!(postings -> journal_entries (entry_id));
diesel::joinable!(pending_remainders -> postings (posting_id));

diesel::table! {
    organisations (id) {
        id -> Uuid,
        name -> Text,
        kind -> Text,
        category -> Nullable<Text>,
        created_at -> Timestamptz,
        category_confirmed -> Bool,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        org_id -> Uuid,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
        tokens_not_before -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_throttle (subject) {
        subject -> Text,
        attempts -> Int4,
        last_attempt -> Timestamptz,
        blocked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_known_addresses (email, address) {
        email -> Text,
        address -> Text,
        last_login_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Uuid,
        seq -> Int8,
        at -> Timestamptz,
        request_id -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        org_id -> Nullable<Uuid>,
        method -> Text,
        route -> Text,
        path -> Text,
        status -> Int2,
        resource_id -> Nullable<Uuid>,
        idempotency_key -> Nullable<Text>,
    }
}

diesel::joinable!(users -> organisations (org_id));

diesel::table! {
    events (seq) {
        seq -> Int8,
        id -> Uuid,
        txid -> Int8,
        #[sql_name = "type"]
        event_type -> Text,
        occurred_at -> Timestamptz,
        subject_id -> Uuid,
        org_ids -> Array<Uuid>,
        data -> Jsonb,
    }
}

diesel::table! {
    listings (id) {
        id -> Uuid,
        provider_org_id -> Uuid,
        gpu_model -> Text,
        gpu_memory_gb -> Int4,
        gpus -> Int4,
        region -> Text,
        interconnect -> Nullable<Text>,
        price_per_gpu_hour -> Numeric,
        currency -> Text,
        available_from -> Timestamptz,
        available_until -> Timestamptz,
        min_hours -> Int4,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        accelerator_kind -> Nullable<Text>,
        accelerator_vendor -> Nullable<Text>,
        accelerator_model -> Nullable<Text>,
        board_power_w -> Nullable<Int4>,
        pue -> Nullable<Numeric>,
        performance_tflops -> Nullable<Numeric>,
    }
}

diesel::table! {
    listing_hours (listing_id, hour) {
        listing_id -> Uuid,
        hour -> Timestamptz,
        capacity -> Int4,
        reserved -> Int4,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        tenant_org_id -> Uuid,
        placed_by -> Uuid,
        listing_id -> Uuid,
        provider_org_id -> Uuid,
        gpu_model -> Text,
        region -> Text,
        gpus -> Int4,
        start_at -> Timestamptz,
        end_at -> Timestamptz,
        hours -> Int4,
        currency -> Text,
        unit_price -> Numeric,
        gpu_hours -> Int4,
        subtotal -> Numeric,
        subsidy -> Numeric,
        subsidy_rate -> Numeric,
        tenant_amount -> Numeric,
        platform_fee -> Numeric,
        fee_rate -> Numeric,
        grant_id -> Nullable<Uuid>,
        status -> Text,
        settled_hours -> Int4,
        charged_hours -> Int4,
        credited_gpu_hours -> Int4,
        journal_entry_id -> Uuid,
        created_at -> Timestamptz,
        cancelled_at -> Nullable<Timestamptz>,
        estimated_energy_kwh -> Nullable<Numeric>,
        estimated_co2e_kg -> Nullable<Numeric>,
    }
}

diesel::table! {
    outages (id) {
        id -> Uuid,
        listing_id -> Uuid,
        reported_by -> Uuid,
        start_at -> Timestamptz,
        end_at -> Timestamptz,
        gpus -> Int4,
        journal_entry_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    order_hour_credits (order_id, hour) {
        order_id -> Uuid,
        hour -> Timestamptz,
        gpus -> Int4,
    }
}

diesel::joinable!(listing_hours -> listings (listing_id));
diesel::joinable!(orders -> listings (listing_id));

diesel::table! {
    programmes (id) {
        id -> Uuid,
        name -> Text,
        sponsor -> Text,
        fiscal_year -> Int4,
        currency -> Text,
        budget -> Numeric,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        default_rate -> Numeric,
        rates_by_category -> Jsonb,
        eligible_gpu_models -> Nullable<Array<Text>>,
        eligible_regions -> Nullable<Array<Text>>,
        eligible_provider_ids -> Nullable<Array<Uuid>>,
        journal_entry_id -> Uuid,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        settled_at -> Nullable<Timestamptz>,
        settlement_entry_id -> Nullable<Uuid>,
        reclaim_below_utilisation -> Nullable<Numeric>,
        reclaim_window_hours -> Nullable<Int4>,
    }
}

diesel::table! {
    grants (id) {
        id -> Uuid,
        programme_id -> Uuid,
        tenant_org_id -> Uuid,
        amount -> Numeric,
        rate -> Nullable<Numeric>,
        valid_from -> Timestamptz,
        valid_until -> Timestamptz,
        status -> Text,
        journal_entry_id -> Uuid,
        release_entry_id -> Nullable<Uuid>,
        released -> Numeric,
        created_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        flagged_at -> Nullable<Timestamptz>,
        flag_reason -> Nullable<Text>,
        reclaimed_at -> Nullable<Timestamptz>,
        reclaim_reason -> Nullable<Text>,
    }
}

diesel::table! {
    order_usage (order_id, start) {
        order_id -> Uuid,
        start -> Timestamptz,
        end -> Timestamptz,
        gpus_in_use -> Int4,
        utilisation -> Numeric,
        memory_used_gb -> Numeric,
        energy_wh -> Numeric,
        reported_by -> Nullable<Uuid>,
        reported_at -> Timestamptz,
    }
}

diesel::table! {
    claims (id) {
        id -> Uuid,
        programme_id -> Uuid,
        period_start -> Timestamptz,
        period_end -> Timestamptz,
        amount -> Numeric,
        status -> Text,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        submitted_at -> Nullable<Timestamptz>,
        voided_at -> Nullable<Timestamptz>,
        void_reason -> Nullable<Text>,
    }
}

diesel::table! {
    claim_items (claim_id, posting_id) {
        posting_id -> Uuid,
        claim_id -> Uuid,
        order_id -> Nullable<Uuid>,
        tenant_org_id -> Uuid,
        provider_org_id -> Uuid,
        amount -> Numeric,
    }
}

diesel::table! {
    claim_payments (id) {
        id -> Uuid,
        claim_id -> Uuid,
        amount -> Numeric,
        reference -> Text,
        journal_entry_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    payouts (id) {
        id -> Uuid,
        provider_org_id -> Uuid,
        amount -> Numeric,
        currency -> Text,
        reference -> Text,
        journal_entry_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_notes (id) {
        id -> Uuid,
        programme_id -> Uuid,
        grant_id -> Uuid,
        provider_org_id -> Uuid,
        tenant_org_id -> Uuid,
        order_id -> Nullable<Uuid>,
        amount -> Numeric,
        reason -> Text,
        journal_entry_id -> Uuid,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    claim_write_offs (id) {
        id -> Uuid,
        claim_id -> Uuid,
        amount -> Numeric,
        reason -> Text,
        journal_entry_id -> Uuid,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    closed_periods (period) {
        period -> Text,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        time_zone -> Text,
        postings -> Int8,
        previous_hash -> Nullable<Text>,
        hash -> Text,
        trial_balance -> Jsonb,
        closed_by -> Nullable<Uuid>,
        closed_at -> Timestamptz,
    }
}

diesel::table! {
    programme_advances (id) {
        id -> Uuid,
        programme_id -> Uuid,
        amount -> Numeric,
        reference -> Text,
        received_at -> Timestamptz,
        journal_entry_id -> Uuid,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    claim_advance_applications (id) {
        id -> Uuid,
        claim_id -> Uuid,
        amount -> Numeric,
        journal_entry_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    programme_refunds (id) {
        id -> Uuid,
        programme_id -> Uuid,
        amount -> Numeric,
        reference -> Text,
        journal_entry_id -> Uuid,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    bank_statements (id) {
        id -> Uuid,
        imported_by -> Nullable<Uuid>,
        imported_at -> Timestamptz,
        lines -> Int4,
        refused -> Int4,
    }
}

diesel::table! {
    bank_lines (id) {
        id -> Uuid,
        statement_id -> Uuid,
        row_number -> Int4,
        value_date -> Date,
        amount -> Numeric,
        currency -> Text,
        counterparty -> Text,
        reference -> Text,
        bank_ref -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    bank_matches (id) {
        id -> Uuid,
        bank_line_id -> Uuid,
        journal_entry_id -> Uuid,
        state -> Text,
        method -> Text,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        removed_at -> Nullable<Timestamptz>,
        removed_by -> Nullable<Uuid>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    journal_entries,
    postings,
    pending_remainders,
    idempotency_keys,
    sandbox_clock,
    organisations,
    users,
    login_throttle,
    login_known_addresses,
    audit_log,
    listings,
    listing_hours,
    orders,
    outages,
    order_hour_credits,
    programmes,
    grants,
    claims,
    claim_items,
    claim_payments,
    payouts,
    credit_notes,
    claim_write_offs,
    closed_periods,
    programme_advances,
    claim_advance_applications,
    programme_refunds,
    bank_statements,
    bank_lines,
    bank_matches,
    events,
    order_usage,
    projects,
    project_grants,
    grant_allocations,
    allocation_draws,
    programme_caps,
    grid_intensities,
);

diesel::table! {
    projects (id) {
        id -> Uuid,
        programme_id -> Uuid,
        tenant_org_id -> Uuid,
        title -> Text,
        principal_investigator -> Text,
        agreement_number -> Text,
        purpose -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    project_grants (grant_id) {
        grant_id -> Uuid,
        project_id -> Uuid,
    }
}

diesel::table! {
    grant_allocations (grant_id) {
        grant_id -> Uuid,
        gpu_model -> Text,
        gpu_hours -> Int8,
        used_gpu_hours -> Int8,
    }
}

diesel::table! {
    allocation_draws (order_id) {
        order_id -> Uuid,
        grant_id -> Uuid,
        gpu_hours -> Int8,
        returned_gpu_hours -> Int8,
    }
}

diesel::table! {
    programme_caps (programme_id) {
        programme_id -> Uuid,
        max_share_per_org -> Numeric,
    }
}

diesel::table! {
    grid_intensities (region) {
        region -> Text,
        g_co2e_per_kwh -> Numeric,
        updated_at -> Timestamptz,
    }
}
