//! `gpuhour demo`: seeds a realistic market through the service's own code —
//! each write the handler's effect with the handler's audit record — then
//! serves it. A 2026 KRW programme (80% for SMEs, 90% for universities),
//! a dozen grants, five providers with H100/H200/A100 listings, twenty tenants
//! with deposits, a few hundred orders over three simulated weeks with
//! cancellations and an outage, a claim settled from the programme's advance
//! (two tranches, 70% and 30%), and payouts. Then the programme office's
//! books: last fiscal year's pilot settled and its refund paid, a bank
//! statement imported and matched, and the ended months closed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use diesel_async::AsyncPgConnection;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::audit::WriteContext;
use crate::auth::model::{OrgKind, TenantCategory};
use crate::auth::store::CategorySource;
use crate::auth::{Principal, Role, password, store as auth_store};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::finance::bank::ImportResult;
use crate::finance::deposits::DepositView;
use crate::finance::payouts::PayoutView;
use crate::http::ApiError;
use crate::ledger::model::Actor;
use crate::ledger::periods::ClosedPeriod;
use crate::market::listings::{self, ListingInsert, ListingRow};
use crate::market::orders::{OrderRow, Request};
use crate::market::routes::{NewOutage, OutageView, place_order, record_outage};
use crate::market::settlement;
use crate::money::Currency;
use crate::subsidy::advances::AdvanceView;
use crate::subsidy::claims::ClaimRow;
use crate::subsidy::programmes::{self, GrantRow, NewGrant, NewProgramme, ProgrammeRow};
use crate::subsidy::rules::Eligibility;
use crate::subsidy::year_end::{RefundView, SettlementOutcome};

pub const FINANCE_EMAIL: &str = "finance@gpuhour.demo";
pub const TENANT_EMAIL: &str = "lab@snu.demo";
pub const PROVIDER_EMAIL: &str = "ops@hanriver-dc.demo";
pub const DEMO_PASSWORD: &str = "gpuhour-demo-2026";

pub struct Logins {
    pub finance: String,
    pub tenant: String,
    pub provider: String,
    pub password: String,
    pub seeded: bool,
}

type DemoError = Box<dyn std::error::Error + Send + Sync>;

fn api(e: impl Into<ApiError>) -> DemoError {
    let e: ApiError = e.into();
    format!("{e:?}").into()
}

/// The request id of the demo's audit records: what it seeded, and who "did" it.
pub const DEMO_REQUEST_ID: &str = "gpuhour-demo";

/// One seeded write, made as its handler makes it: the handler's effect and the
/// audit record that handler writes (its route, the path, the acting user), in
/// one transaction. So `GET /v1/audit-log` shows the demo like any other history.
async fn write<T>(
    conn: &mut AsyncPgConnection,
    route: &str,
    path: String,
    actor: Actor,
    status: u16,
    resource_id: impl FnOnce(&T) -> Option<Uuid>,
    effect: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let ctx = WriteContext::internal(route, path, actor, DEMO_REQUEST_ID);
    crate::audit::record_write(conn, &ctx, status, resource_id, effect).await
}

/// An organisation and its first user, as a sign-up makes them (no acting
/// user), but with the category confirmed: the operator made them.
async fn organisation(
    conn: &mut AsyncPgConnection,
    name: &str,
    kind: OrgKind,
    category: Option<TenantCategory>,
    email: &str,
    hash: &str,
    start: DateTime<Utc>,
) -> Result<(auth_store::OrgRow, auth_store::UserRow), ApiError> {
    let role = if kind == OrgKind::Tenant { Role::Tenant } else { Role::Provider };
    let user_id = |(_, user): &(auth_store::OrgRow, auth_store::UserRow)| Some(user.id);
    write(conn, "/v1/auth/signup", "/v1/auth/signup".into(), Actor::default(), 201, user_id, async |c| {
        let org = auth_store::create_org(c, name, kind, category, CategorySource::Operator, start).await?;
        let user = auth_store::create_user(c, org.id, email, hash, role, start).await?;
        Ok((org, user))
    })
    .await
}

/// Seeds the market unless a demo already lives in this database.
pub async fn seed(settings: &Settings, pool: &DbPool) -> Result<Logins, DemoError> {
    let logins = Logins {
        finance: FINANCE_EMAIL.into(),
        tenant: TENANT_EMAIL.into(),
        provider: PROVIDER_EMAIL.into(),
        password: DEMO_PASSWORD.into(),
        seeded: false,
    };
    let mut conn = pool.get().await?;
    if auth_store::active_user_by_email(&mut conn, FINANCE_EMAIL).await?.is_some() {
        return Ok(logins);
    }
    let clock = Clock::for_mode(settings.sandbox);
    let start = clock.now(&mut conn).await?.duration_trunc(Duration::hours(1))? + Duration::hours(1);
    let hash = password::hash(DEMO_PASSWORD.into()).await?;
    let mut rng = StdRng::seed_from_u64(2026);

    // People. The finance user is made as an administrator would make one.
    let user_id = |(_, user): &(auth_store::OrgRow, auth_store::UserRow)| Some(user.id);
    let (operator, finance) =
        write(&mut conn, "/v1/users", "/v1/users".into(), Actor::default(), 201, user_id, async |c| {
            let operator = auth_store::operator_org(c, start).await?;
            let finance = auth_store::create_user(c, operator.id, FINANCE_EMAIL, &hash, Role::Finance, start).await?;
            Ok((operator, finance))
        })
        .await
        .map_err(api)?;
    let finance_actor = Actor { user_id: Some(finance.id), org_id: Some(operator.id) };
    let provider_names =
        ["Han River DC", "Busan Compute", "Daejeon Research Cloud", "Incheon AI Center", "Gwangju GPU Farm"];
    let mut providers = Vec::new();
    for (i, name) in provider_names.iter().enumerate() {
        let email = if i == 0 { PROVIDER_EMAIL.to_string() } else { format!("ops{i}@provider.demo") };
        let (org, user) =
            organisation(&mut conn, name, OrgKind::Provider, None, &email, &hash, start).await.map_err(api)?;
        providers.push((org, user));
    }
    let tenant_specs: [(&str, TenantCategory); 20] = [
        ("SNU Vision Lab", TenantCategory::University),
        ("KAIST NLP Group", TenantCategory::University),
        ("POSTECH Robotics", TenantCategory::University),
        ("Yonsei Bio-AI", TenantCategory::University),
        ("Korea Univ. Speech", TenantCategory::University),
        ("Seoul Startup Alpha", TenantCategory::Sme),
        ("Pangyo Diffusion Co", TenantCategory::Sme),
        ("Busan Logistics AI", TenantCategory::Sme),
        ("Gangnam Legal LLM", TenantCategory::Sme),
        ("Daegu MedTech", TenantCategory::Sme),
        ("Jeju Climate Models", TenantCategory::Sme),
        ("Suwon Chip Design", TenantCategory::Midsize),
        ("Ulsan Shipyards AI", TenantCategory::Enterprise),
        ("ETRI Foundation Models", TenantCategory::Research),
        ("KISTI Weather", TenantCategory::Research),
        ("Seoul Metro Analytics", TenantCategory::Public),
        ("Incheon Airport Vision", TenantCategory::Public),
        ("Changwon Manufacturing", TenantCategory::Midsize),
        ("Gwangju Games", TenantCategory::Sme),
        ("Sejong Gov Translate", TenantCategory::Public),
    ];
    let mut tenants = Vec::new();
    for (i, (name, category)) in tenant_specs.iter().enumerate() {
        let email = if i == 0 { TENANT_EMAIL.to_string() } else { format!("team{i}@tenant.demo") };
        let (org, user) =
            organisation(&mut conn, name, OrgKind::Tenant, Some(*category), &email, &hash, start).await.map_err(api)?;
        let amount = Decimal::from(rng.random_range(20..60) * 1_000_000);
        write(
            &mut conn,
            "/v1/deposits",
            "/v1/deposits".into(),
            finance_actor,
            201,
            |d: &DepositView| Some(d.id),
            async |c| {
                let reference = format!("KB-{:06}", 100_000 + i);
                Ok(crate::finance::deposits::deposit(c, org.id, amount, Currency::Krw, reference, finance_actor, start)
                    .await?)
            },
        )
        .await
        .map_err(api)?;
        tenants.push((org, user, *category));
    }

    // The programme and a dozen grants.
    let new_programme = NewProgramme {
        name: "2026 National AI Compute Voucher".into(),
        sponsor: "Ministry of Science and ICT".into(),
        fiscal_year: 2026,
        currency: Currency::Krw,
        budget: Decimal::from(5_000_000_000_i64),
        starts_at: start - Duration::days(1),
        ends_at: start + Duration::days(365),
        default_rate: Decimal::new(7, 1),
        rates_by_category: BTreeMap::from([
            ("sme".to_string(), Decimal::new(8, 1)),
            ("university".to_string(), Decimal::new(9, 1)),
        ]),
        eligibility: Eligibility::default(),
    };
    let programme = write(
        &mut conn,
        "/v1/programmes",
        "/v1/programmes".into(),
        finance_actor,
        201,
        |p: &ProgrammeRow| Some(p.id),
        async |c| Ok(programmes::create_programme(c, new_programme, finance_actor, start).await?),
    )
    .await
    .map_err(api)?;
    // The ministry advances 70% of the budget as the programme starts.
    let first_tranche = Decimal::from(FIRST_TRANCHE);
    advance(&mut conn, programme.id, first_tranche, FIRST_TRANCHE_REFERENCE, start, finance_actor, start)
        .await
        .map_err(api)?;
    // Last fiscal year's pilot: 80% of its budget advanced when it began, its vouchers never used.
    let pilot = previous_year_programme(&mut conn, start, finance_actor).await.map_err(api)?;
    let received_at = pilot.starts_at + Duration::days(1);
    advance(
        &mut conn,
        pilot.id,
        Decimal::from(PILOT_ADVANCE),
        PILOT_ADVANCE_REFERENCE,
        received_at,
        finance_actor,
        start,
    )
    .await
    .map_err(api)?;
    let mut grants = BTreeMap::new();
    for (org, _, _) in tenants.iter().take(12) {
        let new_grant = NewGrant {
            programme_id: programme.id,
            tenant_org_id: org.id,
            amount: Decimal::from(rng.random_range(5..30) * 1_000_000),
            rate: None,
            valid_from: start - Duration::days(1),
            valid_until: start + Duration::days(180),
        };
        let path = format!("/v1/programmes/{}/grants", programme.id);
        let grant = write(
            &mut conn,
            "/v1/programmes/{id}/grants",
            path,
            finance_actor,
            201,
            |g: &GrantRow| Some(g.id),
            async |c| Ok(programmes::create_grant(c, new_grant, finance_actor, start).await?),
        )
        .await
        .map_err(api)?;
        grants.insert(org.id, grant.id);
    }

    // The grid's carbon intensity where the providers are (one national grid:
    // Korea's emission factor for electricity, about 0.4567 kgCO2e/kWh), as
    // finance sets it with `PUT /v1/grid-intensities/{region}`.
    let regions = ["kr-seoul-1", "kr-busan-1", "kr-daejeon-1", "kr-incheon-1", "kr-gwangju-1"];
    for region in regions {
        let mut ctx = WriteContext::internal(
            "/v1/grid-intensities/{region}",
            format!("/v1/grid-intensities/{region}"),
            finance_actor,
            DEMO_REQUEST_ID,
        );
        ctx.method = "PUT".into();
        let row = crate::market::energy::GridIntensityRow {
            region: region.into(),
            g_co2e_per_kwh: Decimal::new(4567, 1),
            updated_at: start,
        };
        crate::audit::record_write(
            &mut conn,
            &ctx,
            200,
            |_| None,
            async |c| crate::market::energy::set_intensity(c, &row).await,
        )
        .await
        .map_err(api)?;
    }

    // Listings: three per provider, each declaring its accelerators' board
    // power and the data centre's PUE (so orders carry energy and carbon).
    let models = [("H100-SXM5-80GB", 80, 3800), ("H200-SXM-141GB", 141, 5200), ("A100-SXM4-80GB", 80, 2100)];
    let declared = |model: &str| {
        let (vendor, name, watts, tflops) = match model {
            "H100-SXM5-80GB" => ("NVIDIA", "H100 SXM5", 700, 989),
            "H200-SXM-141GB" => ("NVIDIA", "H200 SXM", 700, 989),
            _ => ("NVIDIA", "A100 SXM4", 400, 312),
        };
        crate::market::energy::Declared {
            accelerator_kind: Some("gpu".into()),
            accelerator_vendor: Some(vendor.into()),
            accelerator_model: Some(name.into()),
            board_power_w: Some(watts),
            pue: Some(Decimal::new(13, 1)),
            performance_tflops: Some(Decimal::from(tflops)),
        }
    };
    let mut all_listings = Vec::new();
    for (i, (org, user)) in providers.iter().enumerate() {
        let actor = Actor { user_id: Some(user.id), org_id: Some(org.id) };
        for (model, memory, price) in models {
            let row = ListingInsert {
                id: Uuid::now_v7(),
                provider_org_id: org.id,
                gpu_model: model.into(),
                gpu_memory_gb: memory,
                gpus: [8, 16, 32][rng.random_range(0..3)],
                region: regions[i].into(),
                interconnect: Some(if model.starts_with('A') { "PCIe" } else { "NVLink" }.into()),
                price_per_gpu_hour: Decimal::from(price + rng.random_range(0..6) * 100),
                currency: crate::money::Currency::Krw,
                available_from: start,
                available_until: start + Duration::days(60),
                min_hours: 1,
                status: crate::market::listings::ListingStatus::Active,
                created_at: start,
                updated_at: start,
                energy: declared(model),
            };
            let listing = write(
                &mut conn,
                "/v1/listings",
                "/v1/listings".into(),
                actor,
                201,
                |l: &ListingRow| Some(l.id),
                async |c| Ok(listings::insert(c, &row).await?),
            )
            .await
            .map_err(api)?;
            all_listings.push(listing);
        }
    }

    // A few hundred orders over the next three weeks.
    let mut placed = Vec::new();
    for _ in 0..320 {
        let (org, user, _) = &tenants[rng.random_range(0..tenants.len())];
        let listing = &all_listings[rng.random_range(0..all_listings.len())];
        let principal = Principal { user_id: user.id, org_id: org.id, role: Role::Tenant, token_issued_at: None };
        let begin = start + Duration::hours(rng.random_range(0..24 * 20));
        let request = Request {
            listing_id: listing.id,
            gpus: rng.random_range(1..=8),
            start: begin,
            end: begin + Duration::hours(rng.random_range(2..=24)),
            grant_id: grants.get(&org.id).copied(),
        };
        let fee = settings.fee_rate;
        // Some find the capacity gone or the grant short: refused, like any order.
        let result = write(
            &mut conn,
            "/v1/orders",
            "/v1/orders".into(),
            principal.actor(),
            201,
            |o: &OrderRow| Some(o.id),
            async |c| place_order(c, &principal, &request, fee, start).await,
        )
        .await;
        if let Ok(order) = result {
            placed.push((order, principal));
        }
    }
    drop(conn);

    // Let three weeks pass, a day at a time: settle, cancel a few, one outage.
    for day in 1..=21 {
        let now = start + Duration::days(day);
        let mut conn = pool.get().await?;
        write(
            &mut conn,
            "/v1/sandbox/clock",
            "/v1/sandbox/clock".into(),
            finance_actor,
            200,
            |_: &DateTime<Utc>| None,
            async |c| Clock::advance(c, now).await.map_err(ApiError::internal),
        )
        .await
        .map_err(api)?;
        if day == 14 {
            // The second tranche, the remaining 30%.
            let amount = Decimal::from(SECOND_TRANCHE);
            advance(&mut conn, programme.id, amount, SECOND_TRANCHE_REFERENCE, now, finance_actor, now)
                .await
                .map_err(api)?;
        }
        // Each order settles in its own transaction; the run is audited once, as the handler does.
        settlement::settle_all(pool, clock).await.map_err(api)?;
        let run = "/v1/settlements/run";
        write(&mut conn, run, run.into(), finance_actor, 200, |_: &()| None, async |_| Ok(())).await.map_err(api)?;
        for (order, principal) in placed.iter().skip(day as usize * 7).take(1) {
            let path = format!("/v1/orders/{}/cancel", order.id);
            let _ = write(
                &mut conn,
                "/v1/orders/{id}/cancel",
                path,
                principal.actor(),
                200,
                |o: &OrderRow| Some(o.id),
                async |c| Ok(settlement::cancel(c, order.id, principal.org(), principal.actor(), now).await?),
            )
            .await;
        }
        if day == 6
            && let Some((hit, _)) = placed.iter().find(|(o, _)| o.start_at >= start + Duration::days(2) && o.hours >= 3)
        {
            // The provider of an order that ran on day 3 or later loses its GPUs for two hours.
            let provider = providers.iter().find(|(org, _)| org.id == hit.provider_org_id);
            if let Some((org, user)) = provider {
                let reporter =
                    Principal { user_id: user.id, org_id: org.id, role: Role::Provider, token_issued_at: None };
                let outage = NewOutage { start: hit.start_at, end: hit.start_at + Duration::hours(2), gpus: hit.gpus };
                let path = format!("/v1/listings/{}/outages", hit.listing_id);
                write(
                    &mut conn,
                    "/v1/listings/{id}/outages",
                    path,
                    reporter.actor(),
                    201,
                    |o: &OutageView| Some(o.id),
                    async |c| record_outage(c, &reporter, hit.listing_id, outage, now).await,
                )
                .await
                .map_err(api)?;
            }
        }
    }

    // The operator claims the first two weeks, the ministry pays 70%, providers are paid.
    let now = start + Duration::days(21);
    let mut conn = pool.get().await?;
    let claim = write(
        &mut conn,
        "/v1/claims",
        "/v1/claims".into(),
        finance_actor,
        201,
        |c: &ClaimRow| Some(c.id),
        async |c| {
            let period_end = start + Duration::days(14);
            Ok(crate::subsidy::claims::create_claim(c, programme.id, start, period_end, finance_actor, now).await?)
        },
    )
    .await
    .map_err(api)?;
    // Submitting it applies the advance received: nothing of it waits for cash.
    let path = format!("/v1/claims/{}/submit", claim.id);
    write(
        &mut conn,
        "/v1/claims/{id}/submit",
        path,
        finance_actor,
        200,
        |c: &ClaimRow| Some(c.id),
        async |c| Ok(crate::subsidy::claims::submit(c, claim.id, finance_actor, now).await?),
    )
    .await
    .map_err(api)?;
    for (org, _) in &providers {
        // Providers are paid from cash received: most of what they may be paid now.
        let payable_now = crate::finance::payouts::current_position(&mut conn, org.id, Currency::Krw, Decimal::ZERO)
            .await
            .map_err(api)?
            .map(|p| p.payable_now)
            .unwrap_or_default();
        let amount = (payable_now * Decimal::new(8, 1)).floor();
        if amount > Decimal::ZERO {
            write(
                &mut conn,
                "/v1/payouts",
                "/v1/payouts".into(),
                finance_actor,
                201,
                |p: &PayoutView| Some(p.id),
                async |c| {
                    let reference = format!("PAY-{}", org.id.simple());
                    Ok(crate::finance::payouts::pay_out(
                        c,
                        org.id,
                        amount,
                        Currency::Krw,
                        reference,
                        Decimal::ZERO,
                        finance_actor,
                        now,
                    )
                    .await?)
                },
            )
            .await
            .map_err(api)?;
        }
    }
    settle_the_pilot(&mut conn, pilot.id, finance_actor, now).await.map_err(api)?;
    import_the_bank_statement(&mut conn, settings, start, finance_actor, now).await.map_err(api)?;
    close_the_ended_months(&mut conn, settings, finance_actor, now).await.map_err(api)?;
    Ok(Logins { seeded: true, ..logins })
}

/// The current programme's tranches: 70% as it starts, 30% two weeks later.
pub const FIRST_TRANCHE: i64 = 3_500_000_000;
pub const FIRST_TRANCHE_REFERENCE: &str = "MSIT-2026-ADV-1";
pub const SECOND_TRANCHE: i64 = 1_500_000_000;
pub const SECOND_TRANCHE_REFERENCE: &str = "MSIT-2026-ADV-2";
/// Last fiscal year's pilot: its budget, the advance it received, and its refund.
pub const PILOT_NAME: &str = "2025 AI Compute Voucher (pilot)";
pub const PILOT_BUDGET: i64 = 300_000_000;
pub const PILOT_ADVANCE: i64 = 240_000_000;
pub const PILOT_ADVANCE_REFERENCE: &str = "MSIT-2025-ADV-1";
pub const PILOT_REFUND_REFERENCE: &str = "MSIT-2025-REFUND";

/// The bank statement of the demo's weeks (docs/examples/bank-statement.csv).
/// It was written for a demo starting on [`STATEMENT_FIRST_DAY`]; the demo
/// moves every date by whole days onto its own calendar, so that each line
/// falls on the day its money moved (the sandbox clock starts at the hour the
/// demo is first run).
pub const BANK_STATEMENT: &[u8] = include_bytes!("../docs/examples/bank-statement.csv");
pub const STATEMENT_FIRST_DAY: chrono::NaiveDate = match chrono::NaiveDate::from_ymd_opt(2026, 12, 1) {
    Some(day) => day,
    None => panic!("a valid date"),
};

/// A tranche received, as `POST /v1/programmes/{id}/advances` records it.
async fn advance(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    amount: Decimal,
    reference: &str,
    received_at: DateTime<Utc>,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<AdvanceView, ApiError> {
    let path = format!("/v1/programmes/{programme_id}/advances");
    write(
        conn,
        "/v1/programmes/{id}/advances",
        path,
        actor,
        201,
        |a: &AdvanceView| Some(a.id),
        async |c| {
            Ok(crate::subsidy::advances::record(c, programme_id, amount, reference.into(), received_at, actor, now)
                .await?)
        },
    )
    .await
}

/// Last fiscal year's programme: it ran the year before the demo and ended the day before it.
async fn previous_year_programme(
    conn: &mut AsyncPgConnection,
    start: DateTime<Utc>,
    actor: Actor,
) -> Result<ProgrammeRow, ApiError> {
    let pilot = NewProgramme {
        name: PILOT_NAME.into(),
        sponsor: "Ministry of Science and ICT".into(),
        fiscal_year: 2025,
        currency: Currency::Krw,
        budget: Decimal::from(PILOT_BUDGET),
        starts_at: start - Duration::days(366),
        ends_at: start - Duration::days(1),
        default_rate: Decimal::new(7, 1),
        rates_by_category: BTreeMap::new(),
        eligibility: Eligibility::default(),
    };
    write(
        conn,
        "/v1/programmes",
        "/v1/programmes".into(),
        actor,
        201,
        |p: &ProgrammeRow| Some(p.id),
        async |c| Ok(programmes::create_programme(c, pilot, actor, start).await?),
    )
    .await
}

/// The pilot is settled (정산): its unused advance becomes a refund due, which
/// the operator then pays back to the ministry.
async fn settle_the_pilot(
    conn: &mut AsyncPgConnection,
    pilot: Uuid,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<RefundView, ApiError> {
    let path = format!("/v1/programmes/{pilot}/settle");
    write(
        conn,
        "/v1/programmes/{id}/settle",
        path,
        actor,
        200,
        |_: &SettlementOutcome| Some(pilot),
        async |c| Ok(crate::subsidy::year_end::settle(c, pilot, actor, now).await?),
    )
    .await?;
    let path = format!("/v1/programmes/{pilot}/refunds");
    write(
        conn,
        "/v1/programmes/{id}/refunds",
        path,
        actor,
        201,
        |r: &RefundView| Some(r.id),
        async |c| {
            let amount = Decimal::from(PILOT_ADVANCE);
            Ok(crate::subsidy::year_end::refund(c, pilot, amount, PILOT_REFUND_REFERENCE.into(), actor, now).await?)
        },
    )
    .await
}

/// The day `at` falls on in the programme office's zone.
async fn local_day(conn: &mut AsyncPgConnection, at: DateTime<Utc>, zone: &str) -> Result<chrono::NaiveDate, ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Day {
        #[diesel(sql_type = diesel::sql_types::Date)]
        day: chrono::NaiveDate,
    }
    let row: Day = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT ($1::timestamptz AT TIME ZONE $2)::date AS day")
            .bind::<diesel::sql_types::Timestamptz, _>(at)
            .bind::<diesel::sql_types::Text, _>(zone),
        conn,
    )
    .await?;
    Ok(row.day)
}

/// The statement file imported as `POST /v1/bank-statements` imports it, its
/// dates moved onto the demo's calendar.
async fn import_the_bank_statement(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    start: DateTime<Utc>,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ImportResult, ApiError> {
    let columns = crate::finance::bank::Columns {
        date_column: None,
        amount_column: None,
        currency_column: None,
        counterparty_column: None,
        reference_column: None,
        bank_ref_column: None,
    };
    let mut lines = crate::finance::bank::parse_statement(BANK_STATEMENT, &columns)?;
    let shift = local_day(conn, start, &settings.time_zone).await? - STATEMENT_FIRST_DAY;
    for line in &mut lines {
        line.date += shift;
    }
    let (zone, days) = (settings.time_zone.clone(), settings.bank_match_days);
    let route = "/v1/bank-statements";
    write(
        conn,
        route,
        route.into(),
        actor,
        201,
        |r: &ImportResult| Some(r.statement_id),
        async |c| Ok(crate::finance::bank::import(c, lines, &zone, days, actor, now).await?),
    )
    .await
}

/// Closes, in order, every month that has ended since the ledger's first entry
/// (the pilot's advance, a year back), as `POST /v1/periods/{period}/close` does.
async fn close_the_ended_months(
    conn: &mut AsyncPgConnection,
    settings: &Settings,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ApiError> {
    use crate::subsidy::routes::{month_bounds, month_days};
    #[derive(diesel::QueryableByName)]
    struct First {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Date>)]
        day: Option<chrono::NaiveDate>,
    }
    let zone = settings.time_zone.as_str();
    let first: First = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT (min(effective_at) AT TIME ZONE $1)::date AS day FROM postings")
            .bind::<diesel::sql_types::Text, _>(zone),
        conn,
    )
    .await?;
    let mut closed = Vec::new();
    let Some(first) = first.day else { return Ok(closed) };
    let mut month = first.format("%Y-%m").to_string();
    while let Some(days) = month_days(&month) {
        let bounds = month_bounds(conn, days, zone).await?;
        if bounds.1 > now {
            break;
        }
        let path = format!("/v1/periods/{month}/close");
        let period = month.clone();
        write(
            conn,
            "/v1/periods/{period}/close",
            path,
            actor,
            201,
            |_: &ClosedPeriod| None,
            async |c| Ok(crate::ledger::periods::close(c, &period, bounds, zone, actor.user_id, now).await?),
        )
        .await?;
        closed.push(month);
        month = days.1.format("%Y-%m").to_string();
    }
    Ok(closed)
}

/// The demo market's funding mix in one line, from the funding report itself
/// (every KRW hour bought, settled and committed).
pub async fn funding_summary(pool: &DbPool) -> Result<String, DemoError> {
    use crate::finance::funding::routes::{FundingRequest, compute};
    use crate::finance::funding::store::Scope;
    let mut conn = pool.get().await?;
    let request = FundingRequest {
        scope: Scope { currency: Some(Currency::Krw), ..Scope::default() },
        group_by: Vec::new(),
        zone: None,
    };
    let computed = compute(&mut conn, &request).await.map_err(api)?;
    let tally = computed.into_iter().find(|(c, _)| *c == Currency::Krw).map(|(_, node)| node.tally).unwrap_or_default();
    Ok(crate::finance::funding::summary_line(Currency::Krw, &tally)?)
}

/// `gpuhour demo`: sandbox mode, the seeded market, and the server.
pub async fn run(mut settings: Settings) -> Result<(), DemoError> {
    settings.sandbox = true;
    crate::startup::prepare_database(&settings).await?;
    let pool = db::build_pool_with(
        &settings.database_url,
        settings.pool_size,
        settings.session_limits,
        std::time::Duration::from_secs(10),
    )?;
    let logins = seed(&settings, &pool).await?;
    let app = crate::startup::Application::build(settings.clone()).await?;
    let url = format!("http://{}", settings.bind.replace("0.0.0.0", "127.0.0.1"));
    let seeded = if logins.seeded { "seeded a new market" } else { "found the market seeded before" };
    let funding = funding_summary(&pool).await?;
    println!(
        "\ngpuhour demo: {seeded}.\n\n  Console      {url}/  (open it in a browser and sign in)\n  finance      {} / {}\n  tenant       {} / {}\n  provider     {} / {}\n\n  Funding      {funding}\n  API docs     {url}/docs/\n\n\
         Get a token:  curl -s {url}/v1/auth/token -H 'content-type: application/json' \\\n                 -d '{{\"email\": \"{}\", \"password\": \"{}\"}}'\n\
         Then try:     /v1/reports/trial-balance, /v1/ledger/verify, /v1/reports/programmes/<id>?group_by=tenant,\n\
                       /v1/reports/funding?group_by=month,tenant_category, /v1/exports/journal?format=hledger\n\
                       (finance); /v1/me, /v1/orders (tenant).\n",
        logins.finance,
        logins.password,
        logins.tenant,
        logins.password,
        logins.provider,
        logins.password,
        logins.finance,
        logins.password,
    );
    app.run_until_stopped().await?;
    Ok(())
}
