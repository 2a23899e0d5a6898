//! `gpuhour demo`: seeds a realistic market through the service's own code,
//! then serves it. A 2026 KRW programme (80% for SMEs, 90% for universities),
//! a dozen grants, five providers with H100/H200/A100 listings, twenty tenants
//! with deposits, a few hundred orders over three simulated weeks with
//! cancellations and an outage, a claim with a partial payment, and payouts.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::auth::model::{OrgKind, TenantCategory};
use crate::auth::{Principal, Role, password, store as auth_store};
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{self, DbPool, transaction};
use crate::http::ApiError;
use crate::ledger::model::Actor;
use crate::market::listings::{self, ListingInsert};
use crate::market::orders::{self, Request};
use crate::market::settlement::{self, Outage};
use crate::money::Currency;
use crate::subsidy::programmes::{self, NewGrant, NewProgramme};
use crate::subsidy::rules::Eligibility;

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

fn api(e: ApiError) -> DemoError {
    format!("{e:?}").into()
}

async fn advance(pool: &DbPool, to: DateTime<Utc>) -> Result<(), DemoError> {
    let mut conn = pool.get().await?;
    Clock::advance(&mut conn, to).await?;
    Ok(())
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

    // People.
    let operator = auth_store::operator_org(&mut conn, start).await?;
    let finance = auth_store::create_user(&mut conn, operator.id, FINANCE_EMAIL, &hash, Role::Finance, start).await?;
    let finance_actor = Actor { user_id: Some(finance.id), org_id: Some(operator.id) };
    let provider_names =
        ["Han River DC", "Busan Compute", "Daejeon Research Cloud", "Incheon AI Center", "Gwangju GPU Farm"];
    let mut providers = Vec::new();
    for (i, name) in provider_names.iter().enumerate() {
        let org = auth_store::create_org(&mut conn, name, OrgKind::Provider, None, start).await?;
        let email = if i == 0 { PROVIDER_EMAIL.to_string() } else { format!("ops{i}@provider.demo") };
        let user = auth_store::create_user(&mut conn, org.id, &email, &hash, Role::Provider, start).await?;
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
        let org = auth_store::create_org(&mut conn, name, OrgKind::Tenant, Some(*category), start).await?;
        let email = if i == 0 { TENANT_EMAIL.to_string() } else { format!("team{i}@tenant.demo") };
        let user = auth_store::create_user(&mut conn, org.id, &email, &hash, Role::Tenant, start).await?;
        crate::finance::deposits::deposit(
            &mut conn,
            org.id,
            Decimal::from(rng.random_range(20..60) * 1_000_000),
            Currency::Krw,
            format!("KB-{:06}", 100_000 + i),
            finance_actor,
            start,
        )
        .await
        .map_err(api)?;
        tenants.push((org, user, *category));
    }

    // The programme and a dozen grants.
    let programme = programmes::create_programme(
        &mut conn,
        NewProgramme {
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
        },
        finance_actor,
        start,
    )
    .await
    .map_err(api)?;
    let mut grants = BTreeMap::new();
    for (org, _, _) in tenants.iter().take(12) {
        let grant = programmes::create_grant(
            &mut conn,
            NewGrant {
                programme_id: programme.id,
                tenant_org_id: org.id,
                amount: Decimal::from(rng.random_range(5..30) * 1_000_000),
                rate: None,
                valid_from: start - Duration::days(1),
                valid_until: start + Duration::days(180),
            },
            finance_actor,
            start,
        )
        .await
        .map_err(api)?;
        grants.insert(org.id, grant.id);
    }

    // Listings: three per provider.
    let models = [("H100-SXM5-80GB", 80, 3800), ("H200-SXM-141GB", 141, 5200), ("A100-SXM4-80GB", 80, 2100)];
    let regions = ["kr-seoul-1", "kr-busan-1", "kr-daejeon-1", "kr-incheon-1", "kr-gwangju-1"];
    let mut all_listings = Vec::new();
    for (i, (org, _)) in providers.iter().enumerate() {
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
                currency: "KRW".into(),
                available_from: start,
                available_until: start + Duration::days(60),
                min_hours: 1,
                status: "active".into(),
                created_at: start,
                updated_at: start,
            };
            all_listings.push(listings::insert(&mut conn, &row).await?);
        }
    }

    // A few hundred orders over the next three weeks.
    let mut placed = Vec::new();
    for _ in 0..320 {
        let (org, user, _) = &tenants[rng.random_range(0..tenants.len())];
        let listing = &all_listings[rng.random_range(0..all_listings.len())];
        let principal = Principal { user_id: user.id, org_id: org.id, role: Role::Tenant };
        let begin = start + Duration::hours(rng.random_range(0..24 * 20));
        let request = Request {
            listing_id: listing.id,
            gpus: rng.random_range(1..=8),
            start: begin,
            end: begin + Duration::hours(rng.random_range(2..=24)),
            grant_id: grants.get(&org.id).copied(),
        };
        let fee = settings.fee_rate;
        let result = transaction(&mut conn, async |c| {
            let grant = programmes::grant_context(c, &principal, &request, listing).await?;
            orders::place(c, &principal, &request, fee, grant, start).await
        })
        .await;
        if let Ok(order) = result {
            placed.push((order, principal));
        }
    }
    drop(conn);

    // Let three weeks pass, a day at a time: settle, cancel a few, one outage.
    for day in 1..=21 {
        let now = start + Duration::days(day);
        advance(pool, now).await?;
        settlement::settle_all(pool, clock).await.map_err(api)?;
        let mut conn = pool.get().await?;
        for (order, principal) in placed.iter().skip(day as usize * 7).take(1) {
            let _ = transaction(&mut conn, async |c| {
                settlement::cancel(c, order.id, principal.org_id, principal.actor(), now).await
            })
            .await;
        }
        if day == 6
            && let Some((hit, _)) = placed.iter().find(|(o, _)| o.start_at >= start + Duration::days(2) && o.hours >= 3)
        {
            // The provider of an order that ran on day 3 or later loses its GPUs for two hours.
            let provider = providers.iter().find(|(org, _)| org.id == hit.provider_org_id).map(|(o, u)| (o.id, u.id));
            if let Some((provider_org, reporter)) = provider {
                let outage = Outage {
                    id: Uuid::now_v7(),
                    listing_id: hit.listing_id,
                    start: hit.start_at,
                    end: hit.start_at + Duration::hours(2),
                    gpus: hit.gpus,
                };
                let actor = Actor { user_id: Some(reporter), org_id: Some(provider_org) };
                transaction(&mut conn, async |c| {
                    use crate::db::schema::outages as o;
                    use diesel::prelude::*;
                    use diesel_async::RunQueryDsl;
                    diesel::insert_into(o::table)
                        .values((
                            o::id.eq(outage.id),
                            o::listing_id.eq(outage.listing_id),
                            o::reported_by.eq(reporter),
                            o::start_at.eq(outage.start),
                            o::end_at.eq(outage.end),
                            o::gpus.eq(outage.gpus),
                            o::created_at.eq(now),
                        ))
                        .execute(c)
                        .await?;
                    settlement::credit_outage(c, outage, actor, now).await
                })
                .await
                .map_err(api)?;
            }
        }
    }

    // The operator claims the first two weeks, the ministry pays 70%, providers are paid.
    let now = start + Duration::days(21);
    let mut conn = pool.get().await?;
    let claim = transaction(&mut conn, async |c| {
        let claim = crate::subsidy::claims::create_claim(
            c,
            programme.id,
            start,
            start + Duration::days(14),
            finance_actor,
            now,
        )
        .await?;
        crate::subsidy::claims::submit(c, claim.id, now).await
    })
    .await
    .map_err(api)?;
    let partial = (claim.amount * Decimal::new(7, 1)).floor();
    if partial > Decimal::ZERO {
        transaction(&mut conn, async |c| {
            crate::subsidy::claims::pay(c, claim.id, partial, "MSIT-2026-0001".into(), finance_actor, now).await
        })
        .await
        .map_err(api)?;
    }
    for (org, _) in &providers {
        let payable = crate::ledger::store::account_by_code(
            &mut conn,
            &crate::ledger::chart::provider_payable_code(org.id),
            Currency::Krw,
        )
        .await?
        .map(|a| a.credits_posted - a.debits_posted)
        .unwrap_or_default();
        let amount = (payable * Decimal::new(8, 1)).floor();
        if amount > Decimal::ZERO {
            transaction(&mut conn, async |c| {
                crate::finance::payouts::pay_out(
                    c,
                    org.id,
                    amount,
                    Currency::Krw,
                    format!("PAY-{}", org.id.simple()),
                    finance_actor,
                    now,
                )
                .await
            })
            .await
            .map_err(api)?;
        }
    }
    Ok(Logins { seeded: true, ..logins })
}

/// The demo market's funding mix in one line, from the funding report itself
/// (every KRW hour bought, settled and committed).
pub async fn funding_summary(pool: &DbPool) -> Result<String, DemoError> {
    use crate::finance::funding::routes::{FundingRequest, compute};
    use crate::finance::funding::store::Scope;
    let mut conn = pool.get().await?;
    let request =
        FundingRequest { scope: Scope { currency: Some(Currency::Krw), ..Scope::default() }, group_by: Vec::new() };
    let computed = compute(&mut conn, &request).await.map_err(api)?;
    let tally = computed.into_iter().find(|(c, _)| *c == Currency::Krw).map(|(_, node)| node.tally).unwrap_or_default();
    Ok(crate::finance::funding::summary_line(Currency::Krw, &tally)?)
}

/// `gpuhour demo`: sandbox mode, the seeded market, and the server.
pub async fn run(mut settings: Settings) -> Result<(), DemoError> {
    settings.sandbox = true;
    crate::startup::prepare_database(&settings).await?;
    let pool = db::build_pool(&settings.database_url, settings.pool_size)?;
    let logins = seed(&settings, &pool).await?;
    let app = crate::startup::Application::build(settings.clone()).await?;
    let url = format!("http://{}", settings.bind.replace("0.0.0.0", "127.0.0.1"));
    let seeded = if logins.seeded { "seeded a new market" } else { "found the market seeded before" };
    let funding = funding_summary(&pool).await?;
    println!(
        "\ngpuhour demo: {seeded}.\n\n  Funding      {funding}\n  API docs     {url}/docs/\n  finance      {} / {}\n  tenant       {} / {}\n  provider     {} / {}\n\n\
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
