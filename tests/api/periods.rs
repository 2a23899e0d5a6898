//! Books per period (issue 14, items 1 and 2): usage is dated by the hour it
//! was used in, however late it is settled; months are counted in the
//! programme office's zone (Asia/Seoul by default); every report treats a
//! period as half-open, `[from, to)`, and `as_of` as "before this instant", so
//! the trial balance as of T equals every report for periods ending at T.

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Utc};
use gpuhour::auth::Role;
use gpuhour::finance::reports::{ProgrammeReport, Statement};
use gpuhour::ledger::routes::TrialBalance;
use gpuhour::market::views::OrderView;
use gpuhour::subsidy::claims::ClaimView;
use gpuhour::subsidy::routes::GrantView;
use serde_json::json;

use crate::helpers::{now, spawn_app, trial_balance_row, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock, settle};
use crate::subsidy::programme;

/// The first instant of the next month in Korea (UTC+9, no daylight saving)
/// that is at least three hours away.
fn next_kst_month_start(after: DateTime<Utc>) -> DateTime<Utc> {
    let kst = FixedOffset::east_opt(9 * 3600).expect("offset");
    let local = (after + Duration::hours(3)).with_timezone(&kst);
    let (year, month) = if local.month() == 12 { (local.year() + 1, 1) } else { (local.year(), local.month() + 1) };
    kst.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().expect("month start").with_timezone(&Utc)
}

#[tokio::test]
async fn usage_settled_late_falls_in_the_month_it_was_used_and_every_report_agrees_at_the_boundary() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let boundary = next_kst_month_start(now(&app, &finance).await);
    let start = boundary - Duration::hours(2);
    let p = programme(&app, &finance, "1000000", start).await;
    let body = json!({"tenant_org_id": tenant.org_id, "amount": "100000", "rate": "0.5",
        "valid_from": start - Duration::days(1), "valid_until": start + Duration::days(90)});
    let pid = p["id"].as_str().expect("id");
    let g: GrantView = app.post_as(&format!("/v1/programmes/{pid}/grants"), &finance, &body, None, 201).await;
    // 1 GPU for 4 hours at 1,000: two hours before the month ends (in Seoul), two after.
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let mut order = order_body(&l, 1, start, 4);
    order["grant_id"] = json!(g.id);
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &order, None, 201).await;
    assert_eq!(order.subsidy, "2000");

    // The settler is two days late.
    set_clock(&app, &finance, boundary + Duration::days(2)).await;
    assert_eq!(settle(&app, &finance).await.orders, 1);

    // Months in Seoul: 1,000 of subsidy in each (UTC would put all four hours in one month).
    let kst = FixedOffset::east_opt(9 * 3600).expect("offset");
    let month = |t: DateTime<Utc>| t.with_timezone(&kst).format("%Y-%m").to_string();
    let report: ProgrammeReport = app.get_as(&format!("/v1/reports/programmes/{pid}?group_by=month"), &finance).await;
    let groups: Vec<(String, String)> = report.groups.expect("groups").into_iter().map(|g| (g.key, g.spent)).collect();
    assert_eq!(groups, vec![(month(start), "1000".into()), (month(boundary), "1000".into())]);

    // At the boundary T: the trial balance as of T (before T) …
    let t = boundary.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let tb: TrialBalance = app.get_as(&format!("/v1/reports/trial-balance?as_of={t}"), &finance).await;
    let account = |code: &str| &trial_balance_row(&tb, code, "KRW").expect("account").account;
    let receivable = account(&format!("assets:subsidy-receivable:{pid}"));
    assert_eq!(receivable.debits_posted, "1000", "{receivable:#?}");
    let wallet = account(&format!("liabilities:tenant:{}:wallet", tenant.org_id));
    assert_eq!((wallet.credits_posted.as_str(), wallet.debits_posted.as_str()), ("100000", "1000"));
    // … equals the claim for the month ending at T (a month in Seoul) …
    let bad = json!({"programme_id": pid, "month": "2026-13"});
    crate::helpers::expect_problem(app.post("/v1/claims", &finance, &bad, None).await, 422, "validation_failed").await;
    let claim_body = json!({"programme_id": pid, "month": month(start)});
    let claim: ClaimView = app.post_as("/v1/claims", &finance, &claim_body, None, 201).await;
    assert_eq!(claim.amount, "1000");
    assert_eq!(claim.period_end, boundary);
    // … and the tenant's statement closing at T (own money, and subsidy paid for it).
    let statement: Statement = app.get_as(&format!("/v1/reports/statements/{}?to={t}", tenant.org_id), &finance).await;
    let section = |name: &str| statement.sections.iter().find(|s| s.section == name).expect(name);
    assert_eq!(section("own_money").closing_balance, "99000");
    // The journal export to T has the two hours of the old month, dated by their day in Seoul.
    let (_, export) = {
        let response = app.get(&format!("/v1/exports/journal?format=csv&to={t}"), &finance).await;
        (response.status(), response.text().await.expect("text"))
    };
    let settlement_rows = export.lines().filter(|l| l.contains(",settlement,")).count();
    assert_eq!(settlement_rows, 2 * 3, "two hours, three postings each");
    let hledger = app.get(&format!("/v1/exports/journal?to={t}"), &finance).await.text().await.expect("text");
    let last_day = (boundary - Duration::hours(1)).with_timezone(&kst).format("%Y-%m-%d").to_string();
    let dated: Vec<&str> = hledger.lines().filter(|l| l.contains(" settlement |")).collect();
    assert_eq!(dated.len(), 2, "{hledger}");
    assert!(dated.iter().all(|l| l.starts_with(&last_day)), "{dated:?}");
    verify_is_clean(&app, &finance).await;
}
