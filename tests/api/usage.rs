//! Usage metering (issue 12 item 3): the provider reports an order's
//! intervals; bad ones are refused whole, repeats change nothing, and
//! utilisation and energy are exact on the order, the grant and the
//! programme report.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use gpuhour::finance::reports::ProgrammeReport;
use gpuhour::http::pagination::Page;
use gpuhour::market::routes::{IntervalView, UsageReport};
use gpuhour::market::views::OrderView;
use gpuhour::subsidy::routes::GrantView;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, expect_problem, next_hour, read_as, spawn_app, typed, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock};
use crate::subsidy::{grant, programme, with_grant};

fn interval(start: DateTime<Utc>, from_hour: i64, to_hour: i64, gpus: i32, utilisation: &str, energy: &str) -> Value {
    json!({"start": start + Duration::hours(from_hour), "end": start + Duration::hours(to_hour),
           "gpus_in_use": gpus, "utilisation": utilisation, "memory_used_gb": "61.5", "energy_wh": energy})
}

/// Five hours at 2 GPUs × 0.5, 1,250.5 Wh an hour: 5 GPU-hours, 6.2525 kWh.
fn five_half_busy_hours(start: DateTime<Utc>) -> Value {
    json!({"intervals": (0..5).map(|h| interval(start, h, h + 1, 2, "0.5", "1250.5")).collect::<Vec<_>>()})
}

async fn usage_rows(app: &TestApp) -> i64 {
    app.count("SELECT count(*) AS n FROM order_usage").await
}

/// Metered utilisation and energy, as shown on an order, a grant or a programme report.
fn metered<'a>(utilisation: &'a Option<String>, energy_kwh: &'a Option<String>) -> (Option<&'a str>, Option<&'a str>) {
    (utilisation.as_deref(), energy_kwh.as_deref())
}

/// Every field of a usage report: order, stored, repeated, utilisation, energy.
fn outcome(r: &UsageReport) -> (Uuid, usize, usize, Option<&str>, Option<&str>) {
    (r.order_id, r.stored, r.repeated, r.utilisation.as_deref(), r.energy_kwh.as_deref())
}

#[tokio::test]
async fn bad_intervals_are_refused_whole_and_repeats_change_nothing() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let other_provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 4, "1000", start, 48).await;
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &order_body(&l, 2, start, 10), None, 201).await;
    let path = format!("/v1/orders/{}/usage", order.id);
    set_clock(&app, &finance, start + Duration::hours(6)).await;

    let good = interval(start, 0, 1, 2, "0.5", "100");
    let cases = [
        (json!([good.clone(), interval(start, 9, 11, 2, "0.5", "1")]), "intervals[1].start"), // past the order's end
        (json!([interval(start, -1, 0, 2, "0.5", "1")]), "intervals[0].start"),               // before its start
        (json!([interval(start, 5, 7, 2, "0.5", "1")]), "intervals[0].end"),                  // not yet over
        (json!([good.clone(), interval(start, 0, 2, 1, "0.5", "1")]), "intervals[1].start"),  // overlapping
        (json!([interval(start, 1, 2, 3, "0.5", "1")]), "intervals[0].gpus_in_use"),          // 3 of 2 GPUs
        (json!([interval(start, 1, 2, 2, "1.5", "1")]), "intervals[0].utilisation"),
        (json!([interval(start, 1, 2, 2, "0.5", "-1")]), "intervals[0].energy_wh"),
        (json!([interval(start, 2, 2, 2, "0.5", "1")]), "intervals[0].end"), // empty
        (json!([]), "intervals"),
    ];
    for (intervals, field) in cases {
        let problem = expect_problem(
            app.post(&path, &provider.token, &json!({"intervals": intervals}), None).await,
            422,
            "validation_failed",
        )
        .await;
        let fields: Vec<&str> =
            problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, [field], "{problem:#}");
    }
    // Another provider's order does not exist for it; a tenant may not report.
    expect_problem(app.post(&path, &other_provider.token, &five_half_busy_hours(start), None).await, 404, "not_found")
        .await;
    expect_problem(app.post(&path, &tenant.token, &five_half_busy_hours(start), None).await, 403, "forbidden").await;
    assert_eq!(usage_rows(&app).await, 0);

    // Five good hours; then the same five again: accepted, nothing new.
    let report: UsageReport = app.post_as(&path, &provider.token, &five_half_busy_hours(start), None, 200).await;
    assert_eq!(outcome(&report), (order.id, 5, 0, Some("0.2500"), Some("6.2525")));
    let again: UsageReport = app.post_as(&path, &provider.token, &five_half_busy_hours(start), None, 200).await;
    assert_eq!(outcome(&again), (order.id, 0, 5, Some("0.2500"), Some("6.2525")));
    assert_eq!(usage_rows(&app).await, 5);
    // The same moment with other figures is refused, and stores nothing.
    let changed =
        json!({"intervals": [interval(start, 5, 6, 2, "1", "10"), interval(start, 4, 5, 2, "0.7", "1250.5")]});
    let problem =
        expect_problem(app.post(&path, &provider.token, &changed, None).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "intervals[1].start", "{problem:#}");
    assert_eq!(usage_rows(&app).await, 5);

    // With an Idempotency-Key, a retry replays the first answer.
    let sixth = json!({"intervals": [interval(start, 5, 6, 2, "1", "2000")]});
    let first: UsageReport = app.post_as(&path, &provider.token, &sixth, Some("usage-hour-6"), 200).await;
    let replay = app.post(&path, &provider.token, &sixth, Some("usage-hour-6")).await;
    assert_eq!(replay.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let replayed: UsageReport = read_as(replay, 200).await;
    assert_eq!(outcome(&replayed), outcome(&first));
    assert_eq!(outcome(&first), (order.id, 1, 0, Some("0.3500"), Some("8.2525")));
    assert_eq!(usage_rows(&app).await, 6);

    // The tenant, the provider and finance read the intervals, by start; others cannot.
    for token in [&tenant.token, &provider.token, &finance] {
        let page: Page<IntervalView> = app.get_as(&format!("{path}?limit=4"), token).await;
        assert_eq!(page.data.len(), 4);
        let i = &page.data[0];
        assert_eq!(
            (i.start, i.end, i.gpus_in_use, i.utilisation.as_str(), i.memory_used_gb.as_str(), i.energy_wh.as_str()),
            (start, start + Duration::hours(1), 2, "0.5", "61.5", "1250.5")
        );
        let cursor = page.next_cursor.expect("more");
        let rest: Page<IntervalView> = app.get_as(&format!("{path}?limit=4&cursor={cursor}"), token).await;
        assert_eq!((rest.data.len(), rest.next_cursor), (2, None));
    }
    expect_problem(app.get(&path, &other_provider.token).await, 404, "not_found").await;
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn a_cancelled_orders_cancelled_hours_cannot_be_metered() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 4, "1000", start, 48).await;
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &order_body(&l, 2, start, 10), None, 201).await;
    let id = order.id;
    // Cancelled during its third hour: hours 0–2 are charged, 3–9 released.
    set_clock(&app, &finance, start + Duration::minutes(150)).await;
    let cancelled: OrderView =
        app.post_as(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None, 200).await;
    assert_eq!(cancelled.charged_hours, 3);
    set_clock(&app, &finance, start + Duration::hours(8)).await;
    let path = format!("/v1/orders/{id}/usage");
    let late = json!({"intervals": [interval(start, 3, 4, 2, "1", "1")]});
    let problem = expect_problem(app.post(&path, &provider.token, &late, None).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "intervals[0].start");
    // Its charged hours can: 3 h at 2 GPUs × 1 of 6 GPU-hours reserved.
    let charged = json!({"intervals": [interval(start, 0, 3, 2, "1", "3000")]});
    let report: UsageReport = app.post_as(&path, &provider.token, &charged, None, 200).await;
    assert_eq!((report.utilisation.as_deref(), report.energy_kwh.as_deref()), (Some("1.0000"), Some("3")));
}

#[tokio::test]
async fn utilisation_and_energy_are_exact_on_the_order_the_grant_and_the_programme_report() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    let stranger = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "1000000").await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "10000000", start).await;
    let g = grant(&app, &finance, &p, &tenant, "1000000", start).await;
    let l = listing(&app, &provider.token, 8, "1000", start, 48).await;
    // 2 GPUs × 10 h (20 GPU-hours) and 1 GPU × 10 h (10), both funded by the grant.
    let (_, a): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 2, start, 10), &g), None).await).await;
    let (_, b): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start, 10), &g), None).await).await;
    let (a_id, b_id) = (a.id, b.id);
    assert_eq!(metered(&a.utilisation, &a.energy_kwh), (None, None));
    set_clock(&app, &finance, start + Duration::hours(5)).await;
    let _: UsageReport = app
        .post_as(&format!("/v1/orders/{a_id}/usage"), &provider.token, &five_half_busy_hours(start), None, 200)
        .await;

    // A: 5 GPU-hours used of 20 reserved. B reported nothing.
    let a: OrderView = app.get_as(&format!("/v1/orders/{a_id}"), &tenant.token).await;
    assert_eq!(metered(&a.utilisation, &a.energy_kwh), (Some("0.2500"), Some("6.2525")));
    let b: OrderView = app.get_as(&format!("/v1/orders/{b_id}"), &provider.token).await;
    assert_eq!(metered(&b.utilisation, &b.energy_kwh), (None, None));
    let listed: Page<OrderView> = app.get_as("/v1/orders", &tenant.token).await;
    let shown: Vec<_> = listed.data.iter().map(|o| metered(&o.utilisation, &o.energy_kwh)).collect();
    assert_eq!(shown, [(None, None), (Some("0.2500"), Some("6.2525"))]);
    // The grant: 5 of 30 GPU-hours, 0.1666… shown half-even as 0.1667.
    let grant_now: GrantView =
        app.get_as(&format!("/v1/grants/{}", g["id"].as_str().expect("id")), &tenant.token).await;
    assert_eq!(metered(&grant_now.utilisation, &grant_now.energy_kwh), (Some("0.1667"), Some("6.2525")));
    // The programme report, over its grants' orders.
    let report: ProgrammeReport =
        app.get_as(&format!("/v1/reports/programmes/{}", p["id"].as_str().expect("id")), &finance).await;
    assert_eq!(metered(&report.utilisation, &report.energy_kwh), (Some("0.1667"), Some("6.2525")));
    expect_problem(app.get(&format!("/v1/orders/{a_id}/usage"), &stranger.token).await, 404, "not_found").await;
    verify_is_clean(&app, &finance).await;
}
