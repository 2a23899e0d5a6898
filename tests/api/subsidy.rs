//! Programmes, grants, subsidised orders, claims, payouts, reports and the
//! hledger export: the public money, to the last won.

use chrono::{DateTime, Duration, Utc};
use diesel_async::RunQueryDsl;
use futures::future::join_all;
use gpuhour::auth::Role;
use gpuhour::finance::names::OrgRef;
use gpuhour::finance::payouts::PayoutView;
use gpuhour::finance::reports::{ProgrammeReport, ReportGroup, Statement};
use gpuhour::ledger::routes::{EntryView, TrialBalance};
use gpuhour::market::views::{OrderView, QuoteView, SettlementRun};
use gpuhour::subsidy::claims::{ClaimLine, ClaimStatus, ClaimView};
use gpuhour::subsidy::routes::GrantView;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, expect_problem, json, next_hour, read_as, spawn_app, typed, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock};

pub async fn programme(app: &TestApp, finance: &str, budget: &str, at: DateTime<Utc>) -> Value {
    let body = json!({
        "name": "2026 AI Compute Voucher", "sponsor": "Ministry of Science and ICT", "fiscal_year": 2026,
        "currency": "KRW", "budget": budget, "starts_at": at - Duration::days(1), "ends_at": at + Duration::days(365),
        "default_rate": "0.7", "rates_by_category": {"sme": "0.8", "university": "0.9"},
    });
    let (status, p) = json(app.post("/v1/programmes", finance, &body, None).await).await;
    assert_eq!(status, 201, "{p:#}");
    p
}

pub async fn grant(
    app: &TestApp,
    finance: &str,
    programme: &Value,
    tenant: &Caller,
    amount: &str,
    at: DateTime<Utc>,
) -> Value {
    let body = json!({"tenant_org_id": tenant.org_id, "amount": amount,
        "valid_from": at - Duration::days(1), "valid_until": at + Duration::days(90)});
    let (status, g) = json(
        app.post(&format!("/v1/programmes/{}/grants", programme["id"].as_str().expect("id")), finance, &body, None)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{g:#}");
    g
}

pub fn with_grant(mut body: Value, grant: &Value) -> Value {
    body["grant_id"] = grant["id"].clone();
    body
}

#[tokio::test]
async fn the_co_payment_follows_the_category_and_the_cap() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    let l = listing(&app, &provider.token, 8, "1000.5", start, 48).await;
    for (category, subsidy, rate, tenant_pays) in
        [("sme", "5603", "0.8", "1401"), ("university", "6303", "0.9", "701"), ("enterprise", "4902", "0.7", "2102")]
    {
        let tenant = app.tenant(category).await;
        let g = grant(&app, &finance, &p, &tenant, "1000000", start).await;
        let q: QuoteView =
            app.post_as("/v1/quotes", &tenant.token, &with_grant(order_body(&l, 1, start, 7), &g), None, 200).await;
        assert_eq!(
            (q.subtotal.as_str(), q.subsidy.as_str(), q.subsidy_rate.as_str(), q.tenant_amount.as_str()),
            ("7004", subsidy, rate, tenant_pays),
            "{category}"
        );
    }
    let split =
        |o: &OrderView| (o.subtotal.clone(), o.subsidy.clone(), o.subsidy_rate.clone(), o.tenant_amount.clone());
    let strings = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());

    // At and across the cap: the grant pays what it has left, the tenant the rest.
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let g = grant(&app, &finance, &p, &tenant, "5000", start).await;
    let first: OrderView =
        app.post_as("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start, 7), &g), None, 201).await;
    assert_eq!(split(&first), strings("7004", "5000", "0.8", "2004"));
    let (_, second): (_, OrderView) = typed(
        app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start + Duration::hours(7), 7), &g), None)
            .await,
    )
    .await;
    assert_eq!(split(&second), strings("7004", "0", "0.8", "7004"));
    let g: GrantView = app.get_as(&format!("/v1/grants/{}", g["id"].as_str().expect("id")), &tenant.token).await;
    assert_eq!((g.available.as_str(), g.committed.as_str(), g.spent.as_str()), ("0", "5000", "0"));
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn thirty_orders_race_for_a_nearly_exhausted_grant() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "1000000", start).await;
    let l = listing(&app, &provider.token, 64, "10000", start, 48).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "1000000").await;
    // 20,000 left: two full subsidies of 8,000 and a 4,000 remainder.
    let g = grant(&app, &finance, &p, &tenant, "20000", start).await;
    let bodies: Vec<Value> =
        (0..30).map(|i| with_grant(order_body(&l, 1, start + Duration::hours(i), 1), &g)).collect();
    let responses = join_all(bodies.iter().map(|b| app.post("/v1/orders", &tenant.token, b, None))).await;
    assert_grant_split_under_contention(responses).await;
    let g: GrantView = app.get_as(&format!("/v1/grants/{}", g["id"].as_str().expect("id")), &finance).await;
    assert_eq!((g.available.as_str(), g.committed.as_str()), ("0", "20000"));
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn over_granting_under_concurrency_fails_without_writing() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000", start).await;
    let mut tenants = Vec::new();
    for _ in 0..10 {
        tenants.push(app.tenant("sme").await);
    }
    let path = format!("/v1/programmes/{}/grants", p["id"].as_str().expect("id"));
    let bodies: Vec<Value> = tenants
        .iter()
        .map(|t| json!({"tenant_org_id": t.org_id, "amount": "15000", "valid_from": start, "valid_until": start + Duration::days(30)}))
        .collect();
    let responses = join_all(bodies.iter().map(|b| app.post(&path, &finance, b, None))).await;
    let mut granted = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => granted += 1,
            _ => {
                expect_problem(response, 422, "budget_exhausted").await;
            }
        }
    }
    assert_eq!(granted, 6);
    assert_eq!(app.count("SELECT count(*) AS n FROM grants").await, 6);
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries WHERE kind = 'grant'").await, 6);
    let r = report(&app, &finance, &p).await;
    assert_eq!((r.granted.as_str(), r.unallocated.as_str()), ("90000", "10000"));
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn grants_are_checked_before_they_pay() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "1000000", start).await;
    let l = listing(&app, &provider.token, 8, "1000", start, 48).await;
    let (alice, bob) = (app.tenant("sme").await, app.tenant("sme").await);
    deposit(&app, &finance, bob.org_id, "100000").await;
    let alices = grant(&app, &finance, &p, &alice, "10000", start).await;
    let problem = expect_problem(
        app.post("/v1/orders", &bob.token, &with_grant(order_body(&l, 1, start, 1), &alices), None).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "grant_id");
    expect_problem(
        app.get(&format!("/v1/grants/{}", alices["id"].as_str().expect("id")), &bob.token).await,
        404,
        "not_found",
    )
    .await;
    // Outside its validity.
    let bobs = grant(&app, &finance, &p, &bob, "10000", start).await;
    let late = with_grant(order_body(&l, 1, start + Duration::days(91), 1), &bobs);
    let late_listing = listing(&app, &provider.token, 8, "1000", start, 24 * 100).await;
    let mut late = late;
    late["listing_id"] = late_listing["id"].clone();
    expect_problem(app.post("/v1/orders", &bob.token, &late, None).await, 422, "validation_failed").await;
    // Closed: what is left goes back to the programme, and it funds nothing new.
    let closed: GrantView = app
        .post_as(&format!("/v1/grants/{}/close", bobs["id"].as_str().expect("id")), &finance, &json!({}), None, 200)
        .await;
    assert_eq!((closed.status.as_str(), closed.released.as_str(), closed.available.as_str()), ("closed", "10000", "0"));
    expect_problem(
        app.post("/v1/orders", &bob.token, &with_grant(order_body(&l, 1, start, 1), &bobs), None).await,
        422,
        "validation_failed",
    )
    .await;
    let r = report(&app, &finance, &p).await;
    assert_eq!((r.granted.as_str(), r.released.as_str(), r.unallocated.as_str()), ("20000", "10000", "990000"));
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
    verify_is_clean(&app, &finance).await;
}

/// Postings of an entry as (debit code, credit code, kind, amount).
async fn entry_lines(app: &TestApp, entry_id: impl std::fmt::Display) -> Vec<(String, String, String, String)> {
    let mut conn = app.conn().await;
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        d: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        c: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        amount: String,
    }
    use diesel_async::RunQueryDsl;
    let lines: Vec<Line> = diesel::sql_query(format!(
        "SELECT d.code AS d, c.code AS c, p.kind, trim_scale(p.amount)::text AS amount FROM postings p \
         JOIN accounts d ON d.id = p.debit_account_id JOIN accounts c ON c.id = p.credit_account_id \
         WHERE p.entry_id = '{entry_id}' ORDER BY p.seq"
    ))
    .load(&mut conn)
    .await
    .expect("lines");
    lines.into_iter().map(|l| (l.d, l.c, l.kind, l.amount)).collect()
}

fn short(code: &str) -> String {
    // liabilities:tenant:<uuid>:wallet → liabilities:tenant:wallet
    code.split(':').filter(|part| uuid::Uuid::parse_str(part).is_err()).collect::<Vec<_>>().join(":")
}

fn lines(rows: Vec<(String, String, String, String)>) -> Vec<(String, String, String, String)> {
    rows.into_iter().map(|(d, c, k, a)| (short(&d), short(&c), k, a)).collect()
}

fn l(d: &str, c: &str, k: &str, a: &str) -> (String, String, String, String) {
    (d.into(), c.into(), k.into(), a.into())
}

pub async fn report(app: &TestApp, finance: &str, programme: &Value) -> ProgrammeReport {
    app.get_as(&format!("/v1/reports/programmes/{}", programme["id"].as_str().expect("id")), finance).await
}

/// A money figure of the report by its name in the API (the console shows
/// the same names), so a test can walk a list of them.
pub fn report_figure<'a>(r: &'a ProgrammeReport, name: &str) -> &'a str {
    match name {
        "budget" => &r.budget,
        "granted" => &r.granted,
        "committed" => &r.committed,
        "spent" => &r.spent,
        "released" => &r.released,
        "unallocated" => &r.unallocated,
        "claimed" => &r.claimed,
        "paid" => &r.paid,
        "written_off" => &r.written_off,
        "advanced" => &r.advanced,
        "advance_applied" => &r.advance_applied,
        "advance_unapplied" => &r.advance_unapplied,
        "outstanding" => &r.outstanding,
        "unclaimed" => &r.unclaimed,
        other => panic!("the programme report has no figure {other}"),
    }
}

fn figures(r: &ProgrammeReport) -> Vec<&str> {
    vec![
        &r.budget,
        &r.granted,
        &r.committed,
        &r.spent,
        &r.released,
        &r.unallocated,
        &r.claimed,
        &r.paid,
        &r.outstanding,
    ]
    .into_iter()
    .map(String::as_str)
    .collect()
}

/// A group of the report: key, name, organisation, committed, spent.
fn group(g: &ReportGroup) -> (&str, &str, Option<&OrgRef>, &str, &str) {
    (&g.key, &g.name, g.org.as_ref(), &g.committed, &g.spent)
}

/// A claim's line: organisation id, organisation, amount.
fn claim_line(l: &ClaimLine) -> (uuid::Uuid, Option<&OrgRef>, &str) {
    (l.org_id, l.org.as_ref(), &l.amount)
}

pub struct Cycle {
    pub finance: String,
}

/// programme → grant → deposit → order → settlement → claim → partial payment → payout.
pub async fn full_cycle(app: &TestApp) -> Cycle {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    let start = next_hour(app, &finance).await;

    let p = programme(app, &finance, "1000000", start).await;
    assert_eq!(
        lines(entry_lines(app, p["journal_entry_id"].as_str().expect("entry")).await),
        vec![l("budget:programme:appropriation", "budget:programme:unallocated", "posted", "1000000")]
    );
    let g = grant(app, &finance, &p, &tenant, "100000", start).await;
    assert_eq!(
        lines(entry_lines(app, g["journal_entry_id"].as_str().expect("entry")).await),
        vec![l("budget:programme:unallocated", "budget:grant:available", "posted", "100000")]
    );
    assert_eq!(
        figures(&report(app, &finance, &p).await),
        vec!["1000000", "100000", "0", "0", "0", "900000", "0", "0", "0"]
    );

    deposit(app, &finance, tenant.org_id, "50000").await;
    let l7 = listing(app, &provider.token, 4, "1000.5", start, 48).await;
    let order: OrderView =
        app.post_as("/v1/orders", &tenant.token, &with_grant(order_body(&l7, 1, start, 7), &g), None, 201).await;
    assert_eq!(
        lines(entry_lines(app, order.journal_entry_id).await),
        vec![
            l("liabilities:tenant:wallet", "liabilities:provider:payable", "pending", "1401"),
            l("assets:subsidy-receivable", "liabilities:provider:payable", "pending", "5603"),
            l("budget:grant:available", "budget:grant:spent", "pending", "5603"),
        ]
    );
    assert_eq!(
        figures(&report(app, &finance, &p).await),
        vec!["1000000", "100000", "5603", "0", "0", "900000", "0", "0", "0"]
    );

    set_clock(app, &finance, start + Duration::hours(7)).await;
    let (_, run): (_, SettlementRun) = typed(app.post("/v1/settlements/run", &finance, &json!({}), None).await).await;
    // One settlement entry per hour, dated at the hour it pays for: six hours
    // of floor(amount ÷ 7), the last taking the remainder.
    let settlements = &run.settled[0].journal_entry_ids;
    assert_eq!(settlements.len(), 7);
    for (hour, settlement) in settlements.iter().enumerate() {
        let (tenant_share, subsidy_share) = if hour < 6 { ("200", "800") } else { ("201", "803") };
        assert_eq!(
            lines(entry_lines(app, settlement).await),
            vec![
                l("liabilities:tenant:wallet", "liabilities:provider:payable", "post_pending", tenant_share),
                l("assets:subsidy-receivable", "liabilities:provider:payable", "post_pending", subsidy_share),
                l("budget:grant:available", "budget:grant:spent", "post_pending", subsidy_share),
            ]
        );
        let entry: EntryView = app.get_as(&format!("/v1/journal-entries/{settlement}"), &finance).await;
        assert_eq!(entry.effective_at, start + Duration::hours(hour as i64));
    }
    assert_eq!(
        figures(&report(app, &finance, &p).await),
        vec!["1000000", "100000", "0", "5603", "0", "900000", "0", "0", "0"]
    );

    let claim_body = json!({"programme_id": p["id"], "period_start": start, "period_end": start + Duration::days(1)});
    let claim: ClaimView = app.post_as("/v1/claims", &finance, &claim_body, None, 201).await;
    assert_eq!(
        (claim.amount.as_str(), claim.status.as_str(), claim.items),
        ("5603", "draft", 7),
        "one item per hour's settled receivable posting"
    );
    let provider_org = OrgRef { id: provider.org_id, name: "Test Provider".into(), category: None };
    let tenant_org = OrgRef { id: tenant.org_id, name: "Tenant".into(), category: Some("sme".into()) };
    let by_provider: Vec<_> = claim.lines_by_provider.iter().map(claim_line).collect();
    assert_eq!(by_provider, vec![(provider.org_id, Some(&provider_org), "5603")]);
    let by_tenant: Vec<_> = claim.lines_by_tenant.iter().map(claim_line).collect();
    assert_eq!(by_tenant, vec![(tenant.org_id, Some(&tenant_org), "5603")]);
    // A settled subsidy is claimed exactly once.
    expect_problem(app.post("/v1/claims", &finance, &claim_body, None).await, 409, "conflict").await;
    let claim_path = format!("/v1/claims/{}", claim.id);
    expect_problem(
        app.post(&format!("{claim_path}/payments"), &finance, &json!({"amount": "1", "reference": "x"}), None).await,
        409,
        "conflict",
    )
    .await;
    let (_, submitted): (_, ClaimView) =
        typed(app.post(&format!("{claim_path}/submit"), &finance, &json!({}), None).await).await;
    assert_eq!(submitted.status, ClaimStatus::Submitted);
    assert_eq!(
        figures(&report(app, &finance, &p).await),
        vec!["1000000", "100000", "0", "5603", "0", "900000", "5603", "0", "5603"]
    );

    let paid: ClaimView = app
        .post_as(
            &format!("{claim_path}/payments"),
            &finance,
            &json!({"amount": "4000", "reference": "MSIT-0001"}),
            None,
            201,
        )
        .await;
    assert_eq!((paid.paid.as_str(), paid.outstanding.as_str()), ("4000", "1603"));
    assert_eq!(
        lines(entry_lines(app, paid.payments[0].journal_entry_id).await),
        vec![l("assets:bank", "assets:subsidy-receivable", "posted", "4000")]
    );
    assert_eq!(
        figures(&report(app, &finance, &p).await),
        vec!["1000000", "100000", "0", "5603", "0", "900000", "5603", "4000", "1603"]
    );
    // A second payment overpays: the difference shows, negative, as outstanding.
    let second = json!({"amount": "2000", "reference": "MSIT-0002"});
    let over: ClaimView = app.post_as(&format!("{claim_path}/payments"), &finance, &second, None, 201).await;
    assert_eq!((over.paid.as_str(), over.outstanding.as_str()), ("6000", "-397"));
    assert_eq!(
        figures(&report(app, &finance, &p).await),
        vec!["1000000", "100000", "0", "5603", "0", "900000", "5603", "6000", "-397"]
    );
    let grouped: ProgrammeReport = app
        .get_as(&format!("/v1/reports/programmes/{}?group_by=tenant", p["id"].as_str().expect("id")), &finance)
        .await;
    let tenant_key = tenant.org_id.to_string();
    assert_eq!(
        grouped.groups.iter().flatten().map(group).collect::<Vec<_>>(),
        vec![(tenant_key.as_str(), "Tenant", Some(&tenant_org), "0", "5603")]
    );
    let by_model: ProgrammeReport = app
        .get_as(&format!("/v1/reports/programmes/{}?group_by=gpu_model", p["id"].as_str().expect("id")), &finance)
        .await;
    assert_eq!(
        by_model.groups.iter().flatten().map(group).collect::<Vec<_>>(),
        vec![("H100-SXM5-80GB", "H100-SXM5-80GB", None, "0", "5603")]
    );

    // Payouts: never more than the posted payable (7,004).
    let too_much = json!({"provider_org_id": provider.org_id, "amount": "7005", "currency": "KRW", "reference": "P-1"});
    expect_problem(app.post("/v1/payouts", &finance, &too_much, None).await, 422, "validation_failed").await;
    let payout = json!({"provider_org_id": provider.org_id, "amount": "7004", "currency": "KRW", "reference": "P-1"});
    let paid_out: PayoutView = app.post_as("/v1/payouts", &finance, &payout, None, 201).await;
    assert_eq!(paid_out.payable_balance, "0");
    assert_eq!(
        lines(entry_lines(app, paid_out.journal_entry_id).await),
        vec![l("liabilities:provider:payable", "assets:bank", "posted", "7004")]
    );

    // Statements: the tenant's own money and the subsidy apart; the provider's earnings and payout.
    let statement: Statement =
        app.get_as(&format!("/v1/reports/statements/{}?currency=KRW", tenant.org_id), &tenant.token).await;
    let sections: Vec<(&str, &str, &str)> = statement
        .sections
        .iter()
        .map(|s| (s.section.as_str(), s.opening_balance.as_str(), s.closing_balance.as_str()))
        .collect();
    assert_eq!(sections, vec![("own_money", "0", "48599"), ("subsidy", "0", "5603")]);
    let ps: Statement =
        app.get_as(&format!("/v1/reports/statements/{}?currency=KRW", provider.org_id), &provider.token).await;
    let totals: Vec<(&str, &str)> = ps.sections[0].totals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(totals, vec![("earned", "7004"), ("payout", "-7004")]);
    expect_problem(
        app.get(&format!("/v1/reports/statements/{}", provider.org_id), &tenant.token).await,
        404,
        "not_found",
    )
    .await;

    verify_is_clean(app, &finance).await;
    Cycle { finance }
}

#[tokio::test]
async fn a_full_cycle_through_the_api_books_exactly() {
    let app = spawn_app().await;
    full_cycle(&app).await;
}

#[tokio::test]
async fn the_hledger_export_agrees_with_the_trial_balance() {
    let app = spawn_app().await;
    let cycle = full_cycle(&app).await;
    let response = app.get("/v1/exports/journal?format=hledger", &cycle.finance).await;
    assert_eq!(response.status(), 200);
    let journal = response.text().await.expect("journal");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.journal");
    std::fs::write(&file, &journal).expect("write");
    let output = std::process::Command::new("hledger")
        .arg("-f")
        .arg(&file)
        .args(["balance", "--flat", "--no-total"])
        .output()
        .expect("hledger is installed (Debian package hledger; .ci/run installs it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut from_hledger: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (amount, commodity, account) = (parts.next()?, parts.next()?, parts.next()?);
            Some((format!("{account} {commodity}"), amount.to_string()))
        })
        .collect();
    from_hledger.sort();

    let tb: TrialBalance = app.get_as("/v1/reports/trial-balance", &cycle.finance).await;
    let mut from_ledger: Vec<(String, String)> = tb
        .data
        .iter()
        .map(|row| &row.account)
        .filter_map(|a| {
            let debits: rust_decimal::Decimal = a.debits_posted.parse().expect("debits");
            let credits: rust_decimal::Decimal = a.credits_posted.parse().expect("credits");
            let net = debits - credits;
            let key = format!("{} {}", a.code, a.currency);
            (!net.is_zero()).then(|| (key, net.normalize().to_string()))
        })
        .collect();
    from_ledger.sort();
    assert_eq!(
        from_ledger.len(),
        7,
        "bank, wallet, receivable, appropriation, unallocated, available, spent: {from_ledger:#?}"
    );
    assert_eq!(from_hledger, from_ledger);

    // CSV: one row per posted posting, plus the header.
    let csv = app.get("/v1/exports/journal?format=csv", &cycle.finance).await.text().await.expect("csv");
    let posted = app.count("SELECT count(*) AS n FROM postings WHERE kind IN ('posted', 'post_pending')").await;
    assert_eq!(csv.lines().count() as i64, posted + 1);
}

/// A subsidised order, settled, claimed, submitted and paid in part.
async fn paid_claim(app: &TestApp) {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    let start = next_hour(app, &finance).await;
    let programme = programme(app, &finance, "1000000", start).await;
    let grant = grant(app, &finance, &programme, &tenant, "100000", start).await;
    deposit(app, &finance, tenant.org_id, "50000").await;
    let l = listing(app, &provider.token, 4, "1000", start, 48).await;
    let (status, order) =
        json(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start, 2), &grant), None).await).await;
    assert_eq!(status, 201, "{order:#}");
    set_clock(app, &finance, start + Duration::hours(2)).await;
    assert_eq!(app.post("/v1/settlements/run", &finance, &json!({}), None).await.status(), 200);
    let claim_body =
        json!({"programme_id": programme["id"], "period_start": start, "period_end": start + Duration::days(1)});
    let (_, claim) = json(app.post("/v1/claims", &finance, &claim_body, None).await).await;
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    assert_eq!(app.post(&format!("{claim_path}/submit"), &finance, &json!({}), None).await.status(), 200);
    let payment = json!({"amount": "1600", "reference": "M-1"});
    let (status, claim) = json(app.post(&format!("{claim_path}/payments"), &finance, &payment, None).await).await;
    assert_eq!(status, 201, "{claim:#}");
}

/// Claim items and payments are records, like the journal: the database itself
/// refuses to rewrite or remove them (it accepted UPDATE and DELETE).
#[tokio::test]
async fn the_database_refuses_to_change_claim_items_and_payments() {
    let app = spawn_app().await;
    paid_claim(&app).await;
    let mut conn = app.conn().await;
    for sql in [
        "UPDATE claim_items SET amount = 1",
        "DELETE FROM claim_items",
        "TRUNCATE claim_items",
        "UPDATE claim_payments SET amount = 1",
        "DELETE FROM claim_payments",
        "TRUNCATE claim_payments",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM claim_items").await, 2, "one per hour settled");
    assert_eq!(app.count("SELECT count(*) AS n FROM claim_payments WHERE amount = 1600").await, 1);
}

/// Asserts how 30 one-hour orders of 10,000 won, placed at once under one
/// grant of 20,000 at 80 %, split: the grant pays 8,000 until it runs out
/// (one order gets the 4,000 left), the tenant pays the rest, and the grant
/// never spends more than it has.
pub async fn assert_grant_split_under_contention(responses: Vec<reqwest::Response>) {
    let mut subsidies = Vec::new();
    for response in responses {
        let order: OrderView = read_as(response, 201).await;
        let subsidy: i64 = order.subsidy.parse().expect("number");
        let paid: i64 = order.tenant_amount.parse().expect("number");
        assert_eq!(subsidy + paid, 10_000, "the tenant pays what the grant cannot");
        subsidies.push(subsidy);
    }
    subsidies.sort_unstable();
    subsidies.reverse();
    assert_eq!(&subsidies[..4], &[8000, 8000, 4000, 0]);
    assert_eq!(subsidies.iter().sum::<i64>(), 20_000, "the grant's spending never exceeds its amount");
}
