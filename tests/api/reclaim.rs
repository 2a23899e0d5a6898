//! Reclaim (issue 12 item 4): a programme's rule flags a grant whose orders
//! leave their GPUs idle, once, with its event; finance reclaims it: future
//! hours refunded exactly as a cancellation, what is left back to the
//! programme, the grant closed, `verify` clean.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, expect_problem, json, next_hour, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body, payable, set_clock, settle, wallet};
use crate::subsidy::{grant, programme, with_grant};

fn programme_body(at: DateTime<Utc>, rule: Value) -> Value {
    let mut body = json!({
        "name": "2026 AI Compute Voucher", "sponsor": "Ministry of Science and ICT", "fiscal_year": 2026,
        "currency": "KRW", "budget": "1000000", "starts_at": at - Duration::days(1), "ends_at": at + Duration::days(365),
        "default_rate": "0.7", "rates_by_category": {"sme": "0.8"},
    });
    for (k, v) in rule.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn flag(app: &TestApp) -> Vec<uuid::Uuid> {
    gpuhour::subsidy::reclaim::flag_grants(&app.pool, gpuhour::clock::Clock::Sandbox).await.expect("the job runs")
}

async fn events(app: &TestApp, kind: &str) -> i64 {
    app.count(&format!("SELECT count(*) AS n FROM events WHERE type = '{kind}'")).await
}

async fn report_usage(app: &TestApp, provider: &Caller, order: &Value, start: DateTime<Utc>, hours: i64, busy: &str) {
    let body = json!({"intervals": [{"start": start, "end": start + Duration::hours(hours), "gpus_in_use": 2,
        "utilisation": busy, "memory_used_gb": "10", "energy_wh": "1000"}]});
    let path = format!("/v1/orders/{}/usage", order["id"].as_str().expect("id"));
    let (status, report) = json(app.post(&path, &provider.token, &body, None).await).await;
    assert_eq!(status, 200, "{report:#}");
}

#[tokio::test]
async fn the_rule_is_both_fields_or_neither_and_shown_on_the_programme() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let at = next_hour(&app, &finance).await;
    for (rule, field) in [
        (json!({"reclaim_below_utilisation": "0.2"}), "reclaim_window_hours"),
        (json!({"reclaim_window_hours": 72}), "reclaim_below_utilisation"),
        (json!({"reclaim_below_utilisation": "1.5", "reclaim_window_hours": 72}), "reclaim_below_utilisation"),
        (json!({"reclaim_below_utilisation": "0.2", "reclaim_window_hours": 721}), "reclaim_window_hours"),
    ] {
        let problem = expect_problem(
            app.post("/v1/programmes", &finance, &programme_body(at, rule), None).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem:#}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM programmes").await, 0);
    let rule = json!({"reclaim_below_utilisation": "0.20", "reclaim_window_hours": 72});
    let (status, p) = json(app.post("/v1/programmes", &finance, &programme_body(at, rule), None).await).await;
    assert_eq!(status, 201, "{p:#}");
    assert_eq!((&p["reclaim_below_utilisation"], &p["reclaim_window_hours"]), (&json!("0.2"), &json!(72)));
    let (_, shown) = json(app.get(&format!("/v1/programmes/{}", p["id"].as_str().expect("id")), &finance).await).await;
    assert_eq!((&shown["reclaim_below_utilisation"], &shown["reclaim_window_hours"]), (&json!("0.2"), &json!(72)));
    let plain = programme(&app, &finance, "1000", at).await;
    assert_eq!((&plain["reclaim_below_utilisation"], &plain["reclaim_window_hours"]), (&Value::Null, &Value::Null));
}

#[tokio::test]
async fn a_grant_under_the_rule_is_flagged_once_with_its_event() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let (idle, busy) = (app.tenant("sme").await, app.tenant("sme").await);
    let start = next_hour(&app, &finance).await;
    let rule = json!({"reclaim_below_utilisation": "0.2", "reclaim_window_hours": 72});
    let (_, p) = json(app.post("/v1/programmes", &finance, &programme_body(start, rule), None).await).await;
    let l = listing(&app, &provider.token, 8, "1000", start, 200).await;
    let mut orders = Vec::new();
    let mut grants = Vec::new();
    for tenant in [&idle, &busy] {
        deposit(&app, &finance, tenant.org_id, "1000000").await;
        let g = grant(&app, &finance, &p, tenant, "300000", start).await;
        let (status, o) =
            json(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 2, start, 100), &g), None).await)
                .await;
        assert_eq!(status, 201, "{o:#}");
        orders.push(o);
        grants.push(g);
    }
    // 71 hours in, the window has not yet elapsed since the orders began.
    set_clock(&app, &finance, start + Duration::hours(71)).await;
    report_usage(&app, &provider, &orders[0], start, 71, "0.1").await;
    report_usage(&app, &provider, &orders[1], start, 71, "0.9").await;
    assert_eq!(flag(&app).await, Vec::<uuid::Uuid>::new());

    // At 72 hours: the idle one used 2 × 0.1 × 71 = 14.2 of 144 GPU-hours (0.0986 < 0.2).
    set_clock(&app, &finance, start + Duration::hours(72)).await;
    let idle_id: uuid::Uuid = grants[0]["id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(flag(&app).await, vec![idle_id]);
    assert_eq!(flag(&app).await, Vec::<uuid::Uuid>::new(), "flagged once");
    assert_eq!(events(&app, "grant.flagged").await, 1);
    let (status, flagged) = json(app.get("/v1/grants?flagged=true", &finance).await).await;
    assert_eq!(status, 200, "{flagged:#}");
    let data = flagged["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{flagged:#}");
    assert_eq!(data[0]["id"], grants[0]["id"]);
    assert_eq!(data[0]["flagged_at"], json!(start + Duration::hours(72)));
    assert_eq!(
        data[0]["flag_reason"],
        json!(format!(
            "utilisation 0.0986 from {} to {} is below the programme's 0.2 over 72 hours",
            start.to_rfc3339(),
            (start + Duration::hours(72)).to_rfc3339()
        ))
    );
    let (_, unflagged) = json(app.get("/v1/grants?flagged=false", &finance).await).await;
    assert_eq!(
        unflagged["data"].as_array().map(|d| d.iter().map(|g| g["id"].clone()).collect::<Vec<_>>()),
        Some(vec![grants[1]["id"].clone()])
    );
    // The event carries the grant as the API shows it, seen by its tenant.
    let (seen_by, event): (Vec<uuid::Uuid>, Value) = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use gpuhour::db::schema::events;
        let mut conn = app.conn().await;
        events::table
            .filter(events::event_type.eq("grant.flagged"))
            .select((events::org_ids, events::data))
            .first(&mut conn)
            .await
            .expect("event")
    };
    assert_eq!(
        (seen_by, &event["id"], &event["flag_reason"]),
        (vec![idle.org_id], &grants[0]["id"], &data[0]["flag_reason"])
    );
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn reclaiming_refunds_the_future_hours_exactly_and_closes_the_grant() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let rule = json!({"reclaim_below_utilisation": "0.2", "reclaim_window_hours": 1});
    let (_, p) = json(app.post("/v1/programmes", &finance, &programme_body(start, rule), None).await).await;
    let g = grant(&app, &finance, &p, &tenant, "100000", start).await;
    let grant_id = g["id"].as_str().expect("id");
    let l = listing(&app, &provider.token, 8, "1000", start, 48).await;
    // Running: 2 GPUs × 10 h = 20,000 (16,000 subsidy at 0.8, 4,000 tenant): 2,000 an hour.
    let (_, running) =
        json(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 2, start, 10), &g), None).await).await;
    // Not begun: 1 GPU × 5 h from hour 24 = 5,000 (4,000 subsidy, 1,000 tenant).
    let (_, later) = json(
        app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start + Duration::hours(24), 5), &g), None)
            .await,
    )
    .await;
    assert_eq!((running["subsidy"].as_str(), later["subsidy"].as_str()), (Some("16000"), Some("4000")));
    // Two and a half hours in: two hours settled, the third begun.
    set_clock(&app, &finance, start + Duration::minutes(150)).await;
    settle(&app, &finance).await;
    assert_eq!(flag(&app).await.len(), 1, "nothing reported: idle");

    let path = format!("/v1/grants/{grant_id}/reclaim");
    expect_problem(app.post(&path, &tenant.token, &json!({"reason": "mine"}), None).await, 403, "forbidden").await;
    let problem =
        expect_problem(app.post(&path, &finance, &json!({"reason": "  "}), None).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "reason");
    let (status, reclaimed) =
        json(app.post(&path, &finance, &json!({"reason": "idle for the window"}), Some("reclaim-1")).await).await;
    assert_eq!(status, 200, "{reclaimed:#}");

    // The running order: 3 hours begun are charged (6,000: 1,200 tenant, 4,800
    // subsidy), 7 refunded (14,000: 2,800 tenant, 11,200 grant); the later one wholly.
    let cancelled = reclaimed["cancelled_orders"].as_array().expect("orders");
    let summary: Vec<(Value, Value, Value)> =
        cancelled.iter().map(|o| (o["id"].clone(), o["status"].clone(), o["charged_hours"].clone())).collect();
    assert_eq!(
        summary,
        [(running["id"].clone(), json!("cancelled"), json!(3)), (later["id"].clone(), json!("cancelled"), json!(0))]
    );
    assert_eq!(
        (
            &cancelled[0]["charged"]["subtotal"],
            &cancelled[0]["charged"]["tenant"]["released"],
            &cancelled[0]["charged"]["subsidy"]["released"]
        ),
        (&json!("6000"), &json!("2800"), &json!("11200"))
    );
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.available.as_str(), w.debits_pending.as_str()), ("98800", "98800", "0"));
    let pay = payable(&app, &provider.token).await;
    assert_eq!((pay.credits_posted.as_str(), pay.credits_pending.as_str()), ("6000", "0"));
    let grant_after = &reclaimed["grant"];
    assert_eq!(
        (
            grant_after["status"].as_str(),
            grant_after["spent"].as_str(),
            grant_after["committed"].as_str(),
            grant_after["available"].as_str(),
            grant_after["released"].as_str(),
            grant_after["reclaim_reason"].as_str(),
        ),
        (Some("closed"), Some("4800"), Some("0"), Some("0"), Some("95200"), Some("idle for the window"))
    );
    assert_eq!(grant_after["reclaimed_at"], json!(start + Duration::minutes(150)));
    // The programme has its 95,200 back: 1,000,000 − 100,000 + 95,200.
    let (_, report) =
        json(app.get(&format!("/v1/reports/programmes/{}", p["id"].as_str().expect("id")), &finance).await).await;
    assert_eq!(
        (
            report["granted"].as_str(),
            report["released"].as_str(),
            report["spent"].as_str(),
            report["committed"].as_str(),
            report["unallocated"].as_str()
        ),
        (Some("100000"), Some("95200"), Some("4800"), Some("0"), Some("995200"))
    );
    assert_eq!(events(&app, "grant.reclaimed").await, 1);

    // A retry with the key replays; another reclaim is a conflict; nothing moved.
    let (status, replay) =
        json(app.post(&path, &finance, &json!({"reason": "idle for the window"}), Some("reclaim-1")).await).await;
    assert_eq!((status.as_u16(), &replay), (200, &reclaimed));
    expect_problem(app.post(&path, &finance, &json!({"reason": "again"}), None).await, 409, "conflict").await;
    assert_eq!(events(&app, "grant.reclaimed").await, 1);
    assert_eq!(wallet(&app, &tenant.token).await.balance, "98800");
    verify_is_clean(&app, &finance).await;
}
