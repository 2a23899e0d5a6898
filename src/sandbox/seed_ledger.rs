//! `gpuhour seed-ledger --orders N` (sandbox mode only): a large ledger for
//! the `reports` benchmark (../shared/BENCH.md), seeded in-process through
//! the service's own code — organisations, deposits, a programme, grants and
//! listings as the API makes them, and the orders through the one order path
//! (`market::batch::place_many`), a thousand per transaction; then the
//! month's elapsed hours settled by the settler's own code.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use diesel_async::AsyncPgConnection;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::model::{OrgKind, TenantCategory};
use crate::auth::store::{self as auth_store, CategorySource};
use crate::auth::{Principal, Role};
use crate::clock::Clock;
use crate::config::Settings;
use crate::http::ApiError;
use crate::ledger::model::Actor;
use crate::market::batch::{OrderAsk, place_many};
use crate::market::listings::{self, ListingInsert};
use crate::market::orders::Request;
use crate::money::Currency;
use crate::subsidy::programmes::{self, NewGrant, NewProgramme};
use crate::subsidy::rules::Eligibility;

/// What the seeding made: what the benchmark asks reports about.
#[derive(Debug, Serialize)]
pub struct Seeded {
    pub programme_id: Uuid,
    /// The tenant whose month statement is timed (the busiest by construction:
    /// every tenant has the same share of the orders).
    pub tenant_org_id: Uuid,
    pub month_from: DateTime<Utc>,
    pub month_to: DateTime<Utc>,
    pub orders_placed: usize,
    pub orders_refused: usize,
    /// Orders with at least one hour settled by the month's end.
    pub orders_settled: usize,
    pub seconds: f64,
}

const ORDERS_PER_TRANSACTION: usize = 1_000;

fn fail(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(std::io::Error::other(e.to_string()))
}

/// Seeds `tenants` tenants, 50 providers with 4 listings each, one programme,
/// and `orders` orders placed over 30 days of the sandbox clock (which moves
/// forward as they are placed, so the month's entries are spread over it).
pub async fn seed(settings: &Settings, orders: usize, tenants: usize) -> Result<Seeded, ApiError> {
    if !settings.sandbox {
        return Err(fail("seed-ledger makes a synthetic market: it runs only in sandbox mode (GPUHOUR_SANDBOX=1)"));
    }
    crate::startup::prepare_database(settings).await.map_err(fail)?;
    let pool = crate::db::build_pool(&settings.database_url, 2).map_err(fail)?;
    let mut conn = pool.get().await?;
    let conn: &mut AsyncPgConnection = &mut conn;
    let began = std::time::Instant::now();
    let clock = Clock::for_mode(settings.sandbox);
    let start = clock.now(conn).await?.duration_trunc(Duration::hours(1)).map_err(fail)? + Duration::hours(1);
    let mut rng = StdRng::seed_from_u64(1_000_000);
    let operator = auth_store::operator_org(conn, start).await?;
    let finance = Actor { user_id: None, org_id: Some(operator.id) };

    let programme = crate::db::transaction(conn, async |c: &mut AsyncPgConnection| {
        let new = NewProgramme {
            name: "Reports benchmark programme".into(),
            sponsor: "Benchmark".into(),
            fiscal_year: 2026,
            currency: Currency::Krw,
            budget: Decimal::from(tenants as i64 * 20_000_000),
            starts_at: start - Duration::days(1),
            ends_at: start + Duration::days(365),
            default_rate: Decimal::new(7, 1),
            rates_by_category: BTreeMap::from([("sme".to_string(), Decimal::new(8, 1))]),
            eligibility: Eligibility::default(),
        };
        programmes::create_programme(c, new, finance, start).await
    })
    .await?;

    let mut listing_ids = Vec::new();
    for p in 0..50 {
        let ids = crate::db::transaction(conn, async |c: &mut AsyncPgConnection| {
            let org = auth_store::create_org(
                c,
                &format!("Provider {p}"),
                OrgKind::Provider,
                None,
                CategorySource::Operator,
                start,
            )
            .await?;
            let mut ids = Vec::new();
            for model in ["H100-SXM5-80GB", "H200-SXM-141GB", "A100-SXM4-80GB", "B200-192GB"] {
                let row = ListingInsert {
                    id: Uuid::now_v7(),
                    provider_org_id: org.id,
                    gpu_model: model.into(),
                    gpu_memory_gb: 80,
                    gpus: 512,
                    region: "kr-seoul-1".into(),
                    interconnect: None,
                    price_per_gpu_hour: Decimal::from(1_000 + p * 10),
                    currency: crate::money::Currency::Krw,
                    available_from: start,
                    available_until: start + Duration::days(60),
                    min_hours: 1,
                    status: crate::market::listings::ListingStatus::Active,
                    created_at: start,
                    updated_at: start,
                    energy: Default::default(),
                };
                ids.push(listings::insert(c, &row).await?.id);
            }
            Ok::<_, ApiError>(ids)
        })
        .await?;
        listing_ids.extend(ids);
    }

    let mut tenant_rows = Vec::with_capacity(tenants);
    for t in 0..tenants {
        let row = crate::db::transaction(conn, async |c: &mut AsyncPgConnection| {
            let org = auth_store::create_org(
                c,
                &format!("Tenant {t}"),
                OrgKind::Tenant,
                Some(TenantCategory::Sme),
                CategorySource::Operator,
                start,
            )
            .await?;
            let email = format!("tenant{t}@reports.bench");
            let user = auth_store::create_user(c, org.id, &email, "no-login", Role::Tenant, start).await?;
            crate::finance::deposits::deposit(
                c,
                org.id,
                Decimal::from(20_000_000),
                Currency::Krw,
                format!("bench-{t}"),
                finance,
                start,
            )
            .await?;
            let grant = NewGrant {
                programme_id: programme.id,
                tenant_org_id: org.id,
                amount: Decimal::from(15_000_000),
                rate: None,
                valid_from: start - Duration::days(1),
                valid_until: start + Duration::days(60),
            };
            let grant = programmes::create_grant(c, grant, finance, start).await?;
            Ok::<_, ApiError>((
                Principal { user_id: user.id, org_id: org.id, role: Role::Tenant, token_issued_at: None },
                grant.id,
            ))
        })
        .await?;
        tenant_rows.push(row);
    }

    let (mut placed, mut refused) = (0, 0);
    let month = Duration::days(30);
    while placed + refused < orders {
        let n = ORDERS_PER_TRANSACTION.min(orders - placed - refused);
        let now = start + month * ((placed + refused) as i32) / (orders.max(1) as i32);
        let now = Clock::advance(conn, now).await.map_err(fail)?;
        let first_hour = now.duration_trunc(Duration::hours(1)).map_err(fail)? + Duration::hours(1);
        let asks: Vec<OrderAsk> = (0..n)
            .map(|_| {
                let (principal, grant_id) = tenant_rows[rng.random_range(0..tenant_rows.len())];
                let begin = first_hour + Duration::hours(rng.random_range(0..24 * 29));
                OrderAsk {
                    principal,
                    request: Request {
                        listing_id: listing_ids[rng.random_range(0..listing_ids.len())],
                        gpus: rng.random_range(1..=2),
                        start: begin,
                        end: begin + Duration::hours(rng.random_range(1..=4)),
                        grant_id: Some(grant_id),
                    },
                }
            })
            .collect();
        let answers = crate::db::transaction(conn, async |c: &mut AsyncPgConnection| {
            place_many(c, &asks, settings.fee_rate, now).await
        })
        .await?;
        let ok = answers.iter().filter(|a| a.is_ok()).count();
        placed += ok;
        refused += n - ok;
        if (placed + refused) % 50_000 < ORDERS_PER_TRANSACTION {
            eprintln!("seed-ledger: {} of {orders} orders ({:.0} s)", placed + refused, began.elapsed().as_secs_f64());
        }
    }
    // A million orders were just written in minutes. Autovacuum would analyze
    // the tables before long (and may be off where the benchmark runs):
    // without statistics, the planner guesses thousands of rows for a
    // three-row lookup and runs the settler's lookups with parallel
    // workers, twenty times slower.
    diesel_async::RunQueryDsl::execute(diesel::sql_query("ANALYZE"), conn).await.map_err(fail)?;
    // A month of the clock has passed: settle every hour that elapsed in it, as
    // the background settler would have, so statements and reports carry
    // settlements beside the orders.
    Clock::advance(conn, start + month).await.map_err(fail)?;
    let settled = crate::market::settlement::settle_all(&pool, clock).await.map_err(fail)?;
    eprintln!("seed-ledger: settled {} orders ({:.0} s)", settled.len(), began.elapsed().as_secs_f64());
    let month_from = start;
    Ok(Seeded {
        programme_id: programme.id,
        tenant_org_id: tenant_rows.first().map(|(p, _)| p.org_id).unwrap_or_default(),
        month_from,
        month_to: month_from + month,
        orders_placed: placed,
        orders_refused: refused,
        orders_settled: settled.len(),
        seconds: began.elapsed().as_secs_f64(),
    })
}
