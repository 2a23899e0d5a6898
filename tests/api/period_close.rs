//! Period close (issue 11, item 3): a month closes in order, once it has ended
//! and settled; nothing may be dated in it afterwards; its postings are hashed
//! into a chain that `verify` recomputes, so a change made behind the
//! service's back (a superuser with triggers disabled) is reported.

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Utc};
use diesel_async::RunQueryDsl;
use gpuhour::auth::Role;
use gpuhour::ledger::period_routes::PeriodList;
use gpuhour::ledger::periods::ClosedPeriod;
use gpuhour::ledger::routes::EntryView;
use gpuhour::ledger::verify::VerifyReport;
use gpuhour::market::views::OrderView;
use serde_json::json;

use crate::helpers::{expect_problem, now, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock, settle};

fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("offset")
}

/// The first instant of the month after `t`'s, in Seoul.
fn next_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&kst());
    let (y, m) = if local.month() == 12 { (local.year() + 1, 1) } else { (local.year(), local.month() + 1) };
    kst().with_ymd_and_hms(y, m, 1, 0, 0, 0).single().expect("month start").with_timezone(&Utc)
}

#[tokio::test]
async fn a_closed_month_is_final_and_its_hash_chain_catches_tampering() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    // Three hours before a month ends in Seoul, everything starts.
    let boundary = next_month_start(now(&app, &finance).await + Duration::hours(3));
    set_clock(&app, &finance, boundary - Duration::hours(3)).await;
    let month = (boundary - Duration::days(1)).with_timezone(&kst()).format("%Y-%m").to_string();
    deposit(&app, &finance, tenant.org_id, "100000").await;
    // An order whose two hours end exactly at the month's end (in Seoul).
    let start = boundary - Duration::hours(2);
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let _: OrderView = app.post_as("/v1/orders", &tenant.token, &order_body(&l, 1, start, 2), None, 201).await;

    let close = format!("/v1/periods/{month}/close");
    expect_problem(app.post(&close, &finance, &json!({}), None).await, 409, "conflict").await; // not ended
    // The month has ended, but its last hours are not settled yet.
    set_clock(&app, &finance, boundary + Duration::hours(1)).await;
    let unsettled = expect_problem(app.post(&close, &finance, &json!({}), None).await, 409, "conflict").await;
    assert!(unsettled["detail"].as_str().is_some_and(|d| d.contains("settle")), "{unsettled:#}");
    settle(&app, &finance).await;
    let closed: ClosedPeriod = app.post_as(&close, &finance, &json!({}), None, 201).await;
    // deposit (1) + two hours' settlement (1 each) + the order's pending (1).
    assert_eq!((closed.period.as_str(), closed.postings), (month.as_str(), 4));
    assert_eq!(closed.hash.len(), 64);
    assert_eq!(closed.previous_hash, None);
    // The view keeps the trial balance as the JSON it stored at closing.
    let wallet = closed
        .trial_balance
        .as_array()
        .expect("trial balance")
        .iter()
        .find(|a| a["code"] == format!("liabilities:tenant:{}:wallet", tenant.org_id) && a["currency"] == "KRW")
        .cloned()
        .expect("wallet");
    assert_eq!((wallet["credits_posted"].as_str(), wallet["debits_posted"].as_str()), (Some("100000"), Some("2000")));
    expect_problem(app.post(&close, &finance, &json!({}), None).await, 409, "conflict").await;
    let bad = app.post("/v1/periods/2026-13/close", &finance, &json!({}), None).await;
    expect_problem(bad, 422, "validation_failed").await;

    // Nothing may be dated in the closed month; the open month takes corrections.
    let correction = |at: Option<DateTime<Utc>>| {
        let mut body = json!({"memo": "bank charge", "currency": "KRW", "postings": [
            {"debit_account": "equity:adjustments", "credit_account": "assets:bank", "amount": "10"}]});
        if let Some(at) = at {
            body["effective_at"] = json!(at);
        }
        body
    };
    let refused =
        app.post("/v1/journal-entries", &finance, &correction(Some(boundary - Duration::hours(1))), None).await;
    expect_problem(refused, 409, "period_closed").await;
    let _: EntryView = app.post_as("/v1/journal-entries", &finance, &correction(None), None, 201).await;
    let periods: PeriodList = app.get_as("/v1/periods", &finance).await;
    assert_eq!(periods.data[0].hash, closed.hash);
    assert_eq!(periods.open_from, Some(boundary));
    verify_is_clean(&app, &finance).await;

    // A superuser edits a closed month's posting with the triggers off.
    let mut conn = app.conn().await;
    diesel::sql_query("SET session_replication_role = replica").execute(&mut conn).await.expect("replica");
    diesel::sql_query(
        "UPDATE postings SET amount = amount + 1 WHERE id = \
         (SELECT p.id FROM postings p JOIN journal_entries e ON e.id = p.entry_id WHERE e.kind = 'deposit' LIMIT 1)",
    )
    .execute(&mut conn)
    .await
    .expect("tamper");
    diesel::sql_query("SET session_replication_role = origin").execute(&mut conn).await.expect("origin");
    let report: VerifyReport = app.get_as("/v1/ledger/verify", &finance).await;
    assert!(!report.ok);
    let chain: Vec<_> = report.differences.iter().filter(|d| d.invariant == 7).collect();
    assert_eq!(chain.len(), 1, "{report:#?}");
    assert_eq!((chain[0].field.as_deref(), chain[0].expected.as_deref()), (Some("hash"), Some(closed.hash.as_str())));
}
