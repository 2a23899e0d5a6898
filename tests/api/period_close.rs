//! Period close (issue 11, item 3): a month closes in order, once it has ended
//! and settled; nothing may be dated in it afterwards; its postings are hashed
//! into a chain that `verify` recomputes, so a change made behind the
//! service's back (a superuser with triggers disabled) is reported.

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Utc};
use diesel_async::RunQueryDsl;
use gpuhour::auth::Role;
use serde_json::json;

use crate::helpers::{expect_problem, json, now, spawn_app, verify_is_clean};
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
    let (status, _) = json(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start, 2), None).await).await;
    assert_eq!(status, 201);

    let close = format!("/v1/periods/{month}/close");
    expect_problem(app.post(&close, &finance, &json!({}), None).await, 409, "conflict").await; // not ended
    // The month has ended, but its last hours are not settled yet.
    set_clock(&app, &finance, boundary + Duration::hours(1)).await;
    let unsettled = expect_problem(app.post(&close, &finance, &json!({}), None).await, 409, "conflict").await;
    assert!(unsettled["detail"].as_str().is_some_and(|d| d.contains("settle")), "{unsettled:#}");
    settle(&app, &finance).await;
    let (status, closed) = json(app.post(&close, &finance, &json!({}), None).await).await;
    assert_eq!(status, 201, "{closed:#}");
    // deposit (1) + two hours' settlement (1 each) + the order's pending (1).
    assert_eq!((closed["period"].as_str(), closed["postings"].as_i64()), (Some(month.as_str()), Some(4)));
    assert_eq!(closed["hash"].as_str().map(str::len), Some(64));
    assert_eq!(closed["previous_hash"], serde_json::Value::Null);
    let wallet = closed["trial_balance"]
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
    let (status, _) = json(app.post("/v1/journal-entries", &finance, &correction(None), None).await).await;
    assert_eq!(status, 201);
    let (_, periods) = json(app.get("/v1/periods", &finance).await).await;
    assert_eq!(periods["data"][0]["hash"], closed["hash"]);
    assert_eq!(periods["open_from"], json!(boundary.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
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
    let (_, report) = json(app.get("/v1/ledger/verify", &finance).await).await;
    assert_eq!(report["ok"], false);
    let chain: Vec<&serde_json::Value> =
        report["differences"].as_array().expect("differences").iter().filter(|d| d["invariant"] == 7).collect();
    assert_eq!(chain.len(), 1, "{report:#}");
    assert_eq!((chain[0]["field"].as_str(), chain[0]["expected"].as_str()), (Some("hash"), closed["hash"].as_str()));
}
