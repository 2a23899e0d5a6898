//! The marketplace: listings, search, quotes, orders under contention, the
//! order's life (settlement, cancellation, outages) and the ledger behind it.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use gpuhour::auth::Role;
use gpuhour::auth::routes::Me;
use gpuhour::http::pagination::Page;
use gpuhour::ledger::views::AccountView;
use gpuhour::market::orders::OrderStatus;
use gpuhour::market::views::{Availability, ListingView, OrderView, OutageView, SettlementRun};
use serde_json::{Value, json};

use crate::helpers::{
    Caller, TestApp, expect_problem, json, next_hour, settings_for, spawn_app, spawn_app_with, start, typed,
    verify_is_clean,
};

pub async fn set_clock(app: &TestApp, finance: &str, to: DateTime<Utc>) {
    let (status, body) = json(app.post("/v1/sandbox/clock", finance, &json!({"now": to}), None).await).await;
    assert_eq!(status, 200, "{body:#}");
}

pub async fn listing(app: &TestApp, provider: &str, gpus: i32, price: &str, from: DateTime<Utc>, hours: i64) -> Value {
    let body = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_memory_gb": 80, "gpus": gpus, "region": "kr-seoul-1",
        "interconnect": "NVLink", "price_per_gpu_hour": price, "currency": "KRW",
        "available_from": from, "available_until": from + Duration::hours(hours),
    });
    let (status, listing) = json(app.post("/v1/listings", provider, &body, None).await).await;
    assert_eq!(status, 201, "{listing:#}");
    listing
}

pub async fn deposit_with_reference(
    app: &TestApp,
    finance: &str,
    tenant_org: uuid::Uuid,
    amount: &str,
    reference: &str,
) {
    let body = json!({"tenant_org_id": tenant_org, "amount": amount, "currency": "KRW", "reference": reference});
    let (status, d) = json(app.post("/v1/deposits", finance, &body, None).await).await;
    assert_eq!(status, 201, "{d:#}");
}

pub async fn deposit(app: &TestApp, finance: &str, tenant_org: uuid::Uuid, amount: &str) {
    let body = json!({"tenant_org_id": tenant_org, "amount": amount, "currency": "KRW", "reference": format!("wire-{}", uuid::Uuid::now_v7())});
    let (status, d) = json(app.post("/v1/deposits", finance, &body, None).await).await;
    assert_eq!(status, 201, "{d:#}");
}

pub fn order_body(listing: &Value, gpus: i32, start: DateTime<Utc>, hours: i64) -> Value {
    json!({"listing_id": listing["id"], "gpus": gpus, "start": start, "end": start + Duration::hours(hours)})
}

/// A provider's KRW payable, as `/v1/me` shows it.
pub async fn payable(app: &TestApp, token: &str) -> AccountView {
    let me: Me = app.get_as("/v1/me", token).await;
    me.accounts.into_iter().find(|a| a.currency == "KRW" && a.code.ends_with(":payable")).expect("KRW payable")
}

pub async fn wallet(app: &TestApp, token: &str) -> AccountView {
    let me: Me = app.get_as("/v1/me", token).await;
    me.accounts.into_iter().find(|a| a.currency == "KRW").expect("KRW wallet")
}

pub async fn settle(app: &TestApp, finance: &str) -> SettlementRun {
    app.post_as("/v1/settlements/run", finance, &json!({}), None, 200).await
}

/// The hours of a listing's availability as (hour, reserved, free).
async fn availability(
    app: &TestApp,
    token: &str,
    listing: &Value,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, i32, i32)> {
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path =
        format!("/v1/listings/{}/availability?from={}&to={}", listing["id"].as_str().expect("id"), t(from), t(to));
    let hours: Availability = app.get_as(&path, token).await;
    hours.data.into_iter().map(|h| (h.hour, h.reserved, h.free)).collect()
}

struct Market {
    finance: String,
    provider: Caller,
    tenants: Vec<Caller>,
}

async fn market(app: &TestApp, tenants: usize, deposit_each: &str) -> Market {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let mut all = Vec::new();
    for _ in 0..tenants {
        let tenant = app.caller(Role::Tenant).await;
        deposit(app, &finance, tenant.org_id, deposit_each).await;
        all.push(tenant);
    }
    Market { finance, provider, tenants: all }
}

async fn race_for_the_last_eight(apps: &[&TestApp]) {
    let app = apps[0];
    let m = market(app, 51, "100000").await;
    let start = next_hour(app, &m.finance).await;
    let l = listing(app, &m.provider.token, 10, "1000", start, 24).await;
    // Two of ten GPUs are already sold for the hour everyone wants.
    let (status, _) =
        json(app.post("/v1/orders", &m.tenants[50].token, &order_body(&l, 2, start, 1), None).await).await;
    assert_eq!(status, 201);

    let body = order_body(&l, 1, start, 1);
    let requests =
        m.tenants[..50].iter().enumerate().map(|(i, t)| apps[i % apps.len()].post("/v1/orders", &t.token, &body, None));
    let mut accepted = 0;
    let mut refused = 0;
    for response in join_all(requests).await {
        match response.status().as_u16() {
            201 => accepted += 1,
            409 => {
                expect_problem(response, 409, "capacity_unavailable").await;
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap_or_default()),
        }
    }
    assert_eq!((accepted, refused), (8, 42));
    assert_eq!(
        availability(app, &m.finance, &l, start, start + Duration::hours(2)).await,
        vec![(start, 10, 0), (start + Duration::hours(1), 0, 10)]
    );
    // The ledger's pending postings match the accepted orders to the unit:
    // 9 orders, 10 GPU-hours at 1,000.
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 9);
    assert_eq!(
        app.count("SELECT sum(p.amount)::bigint AS n FROM postings p JOIN journal_entries e ON e.id = p.entry_id WHERE e.kind = 'order' AND p.kind = 'pending'").await,
        10_000
    );
    assert_eq!(app.count("SELECT sum(tenant_amount)::bigint AS n FROM orders").await, 10_000);
    let payable = format!("liabilities:provider:{}:payable", m.provider.org_id);
    assert_eq!(
        app.count(&format!(
            "SELECT credits_pending::bigint AS n FROM accounts WHERE code = '{payable}' AND currency = 'KRW'"
        ))
        .await,
        10_000
    );
    verify_is_clean(app, &m.finance).await;
}

#[tokio::test]
async fn fifty_tenants_race_for_the_last_eight_gpus() {
    let app = spawn_app().await;
    race_for_the_last_eight(&[&app]).await;
}

#[tokio::test]
async fn two_serve_processes_race_the_same_way() {
    let first = spawn_app().await;
    let second = start(settings_for(&first.database_url)).await;
    race_for_the_last_eight(&[&first, &second]).await;
}

#[tokio::test]
async fn a_wallet_racing_itself_never_goes_below_zero() {
    let app = spawn_app().await;
    let m = market(&app, 1, "10000").await;
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 100, "1000", start, 24).await;
    let tenant = &m.tenants[0];
    // 20 orders of 1 GPU-hour at 1,000 each: 10% of the wallet each.
    let bodies: Vec<Value> = (0..20).map(|i| order_body(&l, 1, start + Duration::hours(i), 1)).collect();
    let requests = bodies.iter().map(|body| app.post("/v1/orders", &tenant.token, body, None));
    let mut statuses = Vec::new();
    for response in join_all(requests).await {
        let status = response.status().as_u16();
        if status == 402 {
            expect_problem(response, 402, "insufficient_funds").await;
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 10, "{statuses:?}");
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.debits_pending.as_str(), w.available.as_str()), ("10000", "10000", "0"));
    // Refused orders reserved no capacity.
    let reserved = app.count("SELECT coalesce(sum(reserved), 0)::bigint AS n FROM listing_hours").await;
    assert_eq!(reserved, 10);
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn an_order_settles_hour_by_hour_with_the_rounding_in_the_last_hour() {
    let app = spawn_app().await;
    let m = market(&app, 1, "100000").await;
    let tenant = &m.tenants[0];
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 4, "1000.5", start, 48).await;

    let body = order_body(&l, 1, start, 7);
    let (status, quote) = json(app.post("/v1/quotes", &tenant.token, &body, None).await).await;
    assert_eq!(status, 200, "{quote:#}");
    assert_eq!(
        quote,
        json!({"listing_id": l["id"], "gpus": 1, "hours": 7, "gpu_hours": 7, "unit_price": "1000.5",
        "subtotal": "7004", "subsidy": "0", "subsidy_rate": "0", "tenant_amount": "7004", "platform_fee": "0", "currency": "KRW",
        "energy_kwh": null, "co2e_kg": null})
    );
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &body, Some("buy-7"), 201).await;
    assert_eq!(
        (order.status.as_str(), order.subtotal.as_str(), order.tenant_amount.as_str()),
        ("reserved", "7004", "7004")
    );
    let id = order.id;
    let payable_code = format!("liabilities:provider:{}:payable", m.provider.org_id);
    let payable_sql =
        format!("SELECT credits_posted::bigint AS n FROM accounts WHERE code = '{payable_code}' AND currency = 'KRW'");
    let payable = || app.count(&payable_sql);

    // A price change never changes an existing order.
    let (status, _) = json(
        app.client
            .patch(app.url(&format!("/v1/listings/{}", l["id"].as_str().expect("id"))))
            .bearer_auth(&m.provider.token)
            .json(&json!({"price_per_gpu_hour": "2000"}))
            .send()
            .await
            .expect("patch"),
    )
    .await;
    assert_eq!(status, 200);

    let mut posted = Vec::new();
    for hour in 1..=7 {
        set_clock(&app, &m.finance, start + Duration::hours(hour)).await;
        let run = settle(&app, &m.finance).await;
        assert_eq!((run.orders, run.hours), (1, 1), "hour {hour}: {run:#?}");
        posted.push(payable().await);
        // Settling twice settles nothing twice.
        assert_eq!(settle(&app, &m.finance).await.orders, 0);
    }
    assert_eq!(posted, vec![1000, 2000, 3000, 4000, 5000, 6000, 7004]);
    let order: OrderView = app.get_as(&format!("/v1/orders/{id}"), &tenant.token).await;
    assert_eq!((order.status.as_str(), order.settled_hours), ("completed", 7));
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.debits_pending.as_str()), ("92996", "0"));
    // The provider sees what it earned.
    assert_eq!(crate::market::payable(&app, &m.provider.token).await.balance, "7004");
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries WHERE kind = 'settlement'").await, 7);
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn cancelling_before_the_start_releases_everything() {
    let app = spawn_app().await;
    let m = market(&app, 1, "50000").await;
    let tenant = &m.tenants[0];
    let start = next_hour(&app, &m.finance).await + Duration::hours(2);
    let l = listing(&app, &m.provider.token, 4, "1000", start, 24).await;
    let (_, order): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &order_body(&l, 4, start, 5), None).await).await;
    let id = order.id;
    assert_eq!(wallet(&app, &tenant.token).await.available, "30000");

    let cancelled: OrderView =
        app.post_as(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None, 200).await;
    assert_eq!((cancelled.status.as_str(), cancelled.charged_hours), ("cancelled", 0));
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.available.as_str(), w.debits_pending.as_str()), ("50000", "50000", "0"));
    assert_eq!(app.count("SELECT coalesce(sum(reserved), 0)::bigint AS n FROM listing_hours").await, 0);
    // The freed capacity sells again.
    let (status, _) = json(app.post("/v1/orders", &tenant.token, &order_body(&l, 4, start, 5), None).await).await;
    assert_eq!(status, 201);
    expect_problem(
        app.post(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None).await,
        409,
        "conflict",
    )
    .await;
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn cancelling_midway_charges_the_hours_begun_only() {
    let app = spawn_app().await;
    let m = market(&app, 2, "50000").await;
    let tenant = &m.tenants[0];
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 2, "1000", start, 24).await;
    let (_, order): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &order_body(&l, 2, start, 5), None).await).await;
    let id = order.id;
    set_clock(&app, &m.finance, start + Duration::hours(1)).await;
    settle(&app, &m.finance).await;
    // Two and a half hours in: three hours have begun.
    set_clock(&app, &m.finance, start + Duration::minutes(150)).await;

    // Someone else's order answers 404.
    expect_problem(
        app.post(&format!("/v1/orders/{id}/cancel"), &m.tenants[1].token, &json!({}), None).await,
        404,
        "not_found",
    )
    .await;
    expect_problem(app.get(&format!("/v1/orders/{id}"), &m.tenants[1].token).await, 404, "not_found").await;

    let cancelled: OrderView =
        app.post_as(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None, 200).await;
    assert_eq!((cancelled.charged_hours, cancelled.settled_hours), (3, 3));
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.debits_pending.as_str()), ("44000", "0"));
    // Hours 4 and 5 are free again; hour 3 is still sold.
    let hours = availability(&app, &tenant.token, &l, start + Duration::hours(2), start + Duration::hours(5)).await;
    let free: Vec<i32> = hours.into_iter().map(|(_, _, free)| free).collect();
    assert_eq!(free, vec![0, 2, 2]);
    // Nothing is left to settle.
    set_clock(&app, &m.finance, start + Duration::hours(6)).await;
    assert_eq!(settle(&app, &m.finance).await.orders, 0);
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn an_outage_credits_settled_and_pending_hours_exactly() {
    let app = spawn_app().await;
    let m = market(&app, 1, "50000").await;
    let tenant = &m.tenants[0];
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 2, "1000", start, 24).await;
    // 2 GPUs × 4 hours = 8 GPU-hours at 1,000.
    let (_, order): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &order_body(&l, 2, start, 4), None).await).await;
    let id = order.id;
    set_clock(&app, &m.finance, start + Duration::hours(2)).await;
    settle(&app, &m.finance).await;

    // One GPU down in hours 2 and 3: one hour settled, one not.
    let outage = json!({"start": start + Duration::hours(1), "end": start + Duration::hours(3), "gpus": 1});
    let lid = l["id"].as_str().expect("id");
    let report: OutageView =
        app.post_as(&format!("/v1/listings/{lid}/outages"), &m.provider.token, &outage, None, 201).await;
    let credit = |r: &OutageView| {
        let c = &r.credits[0];
        (c.order_id, c.gpu_hours, c.voided.clone(), c.refunded.clone(), c.journal_entry_id.is_some())
    };
    let one_hour_each = (id, 2, "1000".to_string(), "1000".to_string(), true);
    assert_eq!(credit(&report), one_hour_each);
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.debits_pending.as_str()), ("47000", "3000"));
    // Both GPUs down then (a second report): only the GPU-hours not yet credited count.
    let both = json!({"start": start + Duration::hours(1), "end": start + Duration::hours(3), "gpus": 2});
    let (_, second): (_, OutageView) =
        typed(app.post(&format!("/v1/listings/{lid}/outages"), &m.provider.token, &both, None).await).await;
    assert_eq!(credit(&second), one_hour_each);
    // Nothing is left to credit in those hours.
    let (_, third): (_, OutageView) =
        typed(app.post(&format!("/v1/listings/{lid}/outages"), &m.provider.token, &both, None).await).await;
    assert!(third.credits.is_empty(), "{third:#?}");

    set_clock(&app, &m.finance, start + Duration::hours(4)).await;
    settle(&app, &m.finance).await;
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.debits_pending.as_str()), ("46000", "0"), "paid 4 of 8 GPU-hours");
    assert_eq!(payable(&app, &m.provider.token).await.balance, "4000");
    let order: OrderView = app.get_as(&format!("/v1/orders/{id}"), &tenant.token).await;
    assert_eq!((order.status.as_str(), order.credited_gpu_hours), ("completed", 4));
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn listings_are_validated_and_owned() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let (owner, other) = (app.caller(Role::Provider).await, app.caller(Role::Provider).await);
    let tenant = app.caller(Role::Tenant).await;
    let start = next_hour(&app, &finance).await;
    let base = json!({"gpu_model": "A100-80GB", "gpu_memory_gb": 80, "gpus": 4, "region": "kr-daejeon",
        "price_per_gpu_hour": "1500", "currency": "KRW", "available_from": start, "available_until": start + Duration::hours(10)});
    let bad = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    for (body, field) in [
        (bad("gpus", json!(0)), "gpus"),
        (bad("price_per_gpu_hour", json!("1500.12345")), "price_per_gpu_hour"),
        (bad("price_per_gpu_hour", json!("-1")), "price_per_gpu_hour"),
        (bad("currency", json!("GBP")), "currency"),
        (bad("available_from", json!(start + Duration::minutes(30))), "available_from"),
        (bad("available_until", json!(start)), "available_until"),
        (bad("gpu_model", json!("")), "gpu_model"),
        // A window wholly in the past could never sell an hour.
        (
            json!({"gpu_model": "A100-80GB", "gpu_memory_gb": 80, "gpus": 4, "region": "kr-daejeon",
                "price_per_gpu_hour": "1500", "currency": "KRW", "available_from": "1970-01-01T00:00:00Z",
                "available_until": "1970-01-02T00:00:00Z"}),
            "available_until",
        ),
    ] {
        let problem =
            expect_problem(app.post("/v1/listings", &owner.token, &body, None).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem:#}");
    }
    expect_problem(app.post("/v1/listings", &tenant.token, &base, None).await, 403, "forbidden").await;
    assert_eq!(app.count("SELECT count(*) AS n FROM listings").await, 0);
    let (status, l) = json(app.post("/v1/listings", &owner.token, &base, None).await).await;
    assert_eq!(status, 201);
    let made: ListingView = serde_json::from_value(l.clone()).expect("a listing");
    assert_eq!(made.price_per_gpu_hour, "1500");
    let path = format!("/v1/listings/{}", made.id);
    // Nor may a change move the whole window into the past.
    let past = json!({"available_from": "1970-01-01T00:00:00Z", "available_until": "1970-01-02T00:00:00Z"});
    let response = app.client.patch(app.url(&path)).bearer_auth(&owner.token).json(&past).send().await.expect("patch");
    let problem = expect_problem(response, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "available_until", "{problem:#}");

    // Another provider cannot change it: it is not theirs, so it does not exist.
    let change = json!({"price_per_gpu_hour": "1"});
    let response =
        app.client.patch(app.url(&path)).bearer_auth(&other.token).json(&change).send().await.expect("patch");
    expect_problem(response, 404, "not_found").await;
    expect_problem(app.post(&format!("{path}/close"), &other.token, &json!({}), None).await, 404, "not_found").await;
    let outage = json!({"start": start, "end": start + Duration::hours(1), "gpus": 1});
    expect_problem(app.post(&format!("{path}/outages"), &other.token, &outage, None).await, 404, "not_found").await;

    // Shrinking below what is sold is refused.
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let (status, _) =
        json(app.post("/v1/orders", &tenant.token, &order_body(&l, 3, start + Duration::hours(2), 2), None).await)
            .await;
    assert_eq!(status, 201);
    let shrink = |body: Value| app.client.patch(app.url(&path)).bearer_auth(&owner.token).json(&body).send();
    expect_problem(shrink(json!({"gpus": 2})).await.expect("patch"), 409, "conflict").await;
    expect_problem(
        shrink(json!({"available_until": start + Duration::hours(3)})).await.expect("patch"),
        409,
        "conflict",
    )
    .await;
    let (status, grown): (_, ListingView) =
        typed(shrink(json!({"gpus": 3, "status": "paused"})).await.expect("patch")).await;
    assert_eq!((status.as_u16(), grown.gpus, grown.status.as_str()), (200, 3, "paused"));
    // A paused listing takes no orders and is hidden from other organisations:
    // ordering or quoting it answers 404 as reading it does, so its existence
    // does not leak (ordering it was a 409 "the listing is paused").
    let with_grant = json!({"listing_id": l["id"], "gpus": 1, "start": start, "end": start + Duration::hours(1),
        "grant_id": uuid::Uuid::now_v7()});
    for body in [order_body(&l, 1, start, 1), with_grant] {
        expect_problem(app.post("/v1/orders", &tenant.token, &body, None).await, 404, "not_found").await;
        expect_problem(app.post("/v1/quotes", &tenant.token, &body, None).await, 404, "not_found").await;
    }
    expect_problem(app.get(&path, &tenant.token).await, 404, "not_found").await;
    assert_eq!(app.get(&path, &owner.token).await.status(), 200);
}

#[tokio::test]
async fn search_finds_only_listings_with_the_gpus_free() {
    let app = spawn_app().await;
    let m = market(&app, 1, "1000000").await;
    let start = next_hour(&app, &m.finance).await;
    let cheap = listing(&app, &m.provider.token, 4, "900", start, 24).await;
    let mid = listing(&app, &m.provider.token, 8, "1200.25", start, 24).await;
    let dear = listing(&app, &m.provider.token, 8, "2000", start, 24).await;
    // Sell all of the cheap one for hours 3–4.
    let (status, _) = json(
        app.post("/v1/orders", &m.tenants[0].token, &order_body(&cheap, 4, start + Duration::hours(2), 2), None).await,
    )
    .await;
    assert_eq!(status, 201);
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ids = |page: &Page<ListingView>| -> Vec<String> { page.data.iter().map(|l| l.id.to_string()).collect() };
    let id = |l: &Value| l["id"].as_str().expect("id").to_string();
    let token = &m.tenants[0].token;
    let app = &app;
    let search =
        |query: String| async move { app.get_as::<Page<ListingView>>(&format!("/v1/listings?{query}"), token).await };

    let all = search("sort=price".into()).await;
    assert_eq!(ids(&all), vec![id(&cheap), id(&mid), id(&dear)]);
    assert_eq!(all.data[0].free_gpus, Some(0), "sold out in some hour of its window");
    let window = format!("start={}&end={}", t(start + Duration::hours(3)), t(start + Duration::hours(5)));
    let busy = search(window.clone()).await;
    assert_eq!(ids(&busy), vec![id(&mid), id(&dear)], "the cheap one is sold out then");
    let six = search(format!("min_gpus=6&max_price=1500&{window}")).await;
    assert_eq!(ids(&six), vec![id(&mid)]);
    assert_eq!(six.data[0].free_gpus, Some(8));
    let desc = search("sort=-price&limit=2".into()).await;
    assert_eq!(ids(&desc), vec![id(&dear), id(&mid)]);
    let cursor = desc.next_cursor.as_deref().expect("next");
    let rest = search(format!("sort=-price&limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&rest), vec![id(&cheap)]);
    assert_eq!(rest.next_cursor, None);
    let none = search("gpu_model=B200&region=kr-seoul-1".into()).await;
    assert!(none.data.is_empty());
    expect_problem(app.get("/v1/listings?sort=cheapest", token).await, 422, "validation_failed").await;
    // A forged cursor (valid base64 JSON, nonsense inside) is refused, not passed to SQL.
    use base64::Engine;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("[\"1); DROP\", \"{}\"]", uuid::Uuid::now_v7()));
    expect_problem(app.get(&format!("/v1/listings?sort=price&cursor={forged}"), token).await, 422, "validation_failed")
        .await;
    expect_problem(
        app.get(&format!("/v1/listings?sort=available_from&cursor={cursor}"), token).await,
        422,
        "validation_failed",
    )
    .await;
    expect_problem(app.get(&format!("/v1/listings?start={}", t(start)), token).await, 422, "validation_failed").await;
}

#[tokio::test]
async fn orders_are_listed_for_who_may_see_them() {
    let app = spawn_app().await;
    let m = market(&app, 2, "100000").await;
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 8, "1000", start, 24).await;
    for (i, t) in m.tenants.iter().enumerate() {
        let (status, _) = json(
            app.post("/v1/orders", &t.token, &order_body(&l, 1, start + Duration::hours(i as i64), 1), None).await,
        )
        .await;
        assert_eq!(status, 201);
    }
    let app = &app;
    let orders = |path: &'static str, token: String| async move { app.get_as::<Page<OrderView>>(path, &token).await };
    let own = orders("/v1/orders", m.tenants[0].token.clone()).await;
    assert_eq!(own.data.len(), 1);
    assert_eq!(own.data[0].tenant_org_id, m.tenants[0].org_id);
    assert_eq!(orders("/v1/orders", m.provider.token.clone()).await.data.len(), 2);
    assert_eq!(orders("/v1/orders?status=reserved,active", m.finance.clone()).await.data.len(), 2);
    assert_eq!(orders("/v1/orders?status=completed", m.finance.clone()).await.data.len(), 0);
    set_clock(app, &m.finance, start).await;
    let active = orders("/v1/orders?status=active", m.finance.clone()).await;
    assert_eq!(active.data.len(), 1, "the first hour of one order has begun");
    expect_problem(app.get("/v1/orders?status=lost", &m.finance).await, 422, "validation_failed").await;
    assert_eq!(orders("/v1/orders", app.token(Role::Provider).await).await.data.len(), 0);
}

#[tokio::test]
async fn orders_refuse_what_cannot_be_sold() {
    let app = spawn_app().await;
    let m = market(&app, 1, "1000").await;
    let tenant = &m.tenants[0];
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 4, "1000", start, 10).await;
    let cases = [
        (order_body(&l, 0, start, 1), 422, "validation_failed"),
        (order_body(&l, 5, start, 1), 409, "capacity_unavailable"),
        (order_body(&l, 1, start - Duration::hours(1), 1), 422, "validation_failed"),
        (order_body(&l, 1, start + Duration::hours(9), 2), 422, "validation_failed"),
        (order_body(&l, 1, start + Duration::minutes(30), 1), 422, "validation_failed"),
        (order_body(&l, 2, start, 1), 402, "insufficient_funds"),
        (
            json!({"listing_id": uuid::Uuid::now_v7(), "gpus": 1, "start": start, "end": start + Duration::hours(1)}),
            404,
            "not_found",
        ),
        (
            json!({"listing_id": l["id"], "gpus": 1, "start": start, "end": start + Duration::hours(1), "grant_id": uuid::Uuid::now_v7()}),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        expect_problem(app.post("/v1/orders", &tenant.token, &body, None).await, status, code).await;
    }
    expect_problem(
        app.post("/v1/orders", &m.provider.token, &order_body(&l, 1, start, 1), None).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM listing_hours WHERE reserved > 0").await, 0);
    let deposit_bad = json!({"tenant_org_id": m.provider.org_id, "amount": "100", "currency": "KRW", "reference": "x"});
    expect_problem(app.post("/v1/deposits", &m.finance, &deposit_bad, None).await, 422, "validation_failed").await;
    expect_problem(app.post("/v1/deposits", &tenant.token, &deposit_bad, None).await, 403, "forbidden").await;
}

#[tokio::test]
async fn the_background_settler_settles_by_itself() {
    let app = spawn_app_with(|s| s.settle_interval = Some(std::time::Duration::from_millis(200))).await;
    let m = market(&app, 1, "10000").await;
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 1, "1000", start, 10).await;
    let (_, order): (_, OrderView) =
        typed(app.post("/v1/orders", &m.tenants[0].token, &order_body(&l, 1, start, 2), None).await).await;
    set_clock(&app, &m.finance, start + Duration::hours(2)).await;
    let path = format!("/v1/orders/{}", order.id);
    let mut status = OrderStatus::Reserved;
    for _ in 0..50 {
        let o: OrderView = app.get_as(&path, &m.tenants[0].token).await;
        status = o.status;
        if status == OrderStatus::Completed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, OrderStatus::Completed);
    verify_is_clean(&app, &m.finance).await;
}

/// `Idempotency-Key` on a settlement run: the retry replays the first answer
/// and settles nothing, even when more hours have elapsed since (the key was
/// ignored, so the retry settled them).
#[tokio::test]
async fn a_settlement_run_honours_its_idempotency_key() {
    let app = spawn_app().await;
    let m = market(&app, 1, "100000").await;
    let start = next_hour(&app, &m.finance).await;
    let l = listing(&app, &m.provider.token, 2, "1000", start, 10).await;
    let order: OrderView =
        app.post_as("/v1/orders", &m.tenants[0].token, &order_body(&l, 1, start, 4), None, 201).await;
    let order_path = format!("/v1/orders/{}", order.id);
    set_clock(&app, &m.finance, start + Duration::hours(2)).await;

    let empty = json!({});
    let run = || app.post("/v1/settlements/run", &m.finance, &empty, Some("settle-once"));
    let first = run().await;
    assert_eq!(first.headers().get("idempotent-replayed"), None);
    let (status, first): (_, SettlementRun) = typed(first).await;
    assert_eq!((status.as_u16(), first.orders, first.hours), (200, 1, 2));

    set_clock(&app, &m.finance, start + Duration::hours(3)).await;
    let again = run().await;
    assert_eq!(again.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let (status, again): (_, SettlementRun) = typed(again).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(serde_json::to_value(&again).expect("json"), serde_json::to_value(&first).expect("json"));
    let after: OrderView = app.get_as(&order_path, &m.finance).await;
    assert_eq!(after.settled_hours, 2, "the replay settled nothing");
    let audited = "SELECT count(*) AS n FROM audit_log WHERE route = '/v1/settlements/run'";
    assert_eq!(app.count(audited).await, 1, "one run, one audit record");

    // The key belongs to that run: another request with it is refused, and a
    // new key runs again and settles the hour that elapsed meanwhile.
    let deposit = json!({"tenant_org_id": m.tenants[0].org_id, "amount": "1", "currency": "KRW", "reference": "x"});
    expect_problem(
        app.post("/v1/deposits", &m.finance, &deposit, Some("settle-once")).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    let next: SettlementRun =
        app.post_as("/v1/settlements/run", &m.finance, &json!({}), Some("settle-twice"), 200).await;
    assert_eq!(next.hours, 1);
    verify_is_clean(&app, &m.finance).await;
}

/// Rows hold their currency and status as values diesel reads: what was
/// written reads back, and a damaged stored text is an internal error (logged)
/// — never won, never some other status.
#[tokio::test]
async fn a_damaged_stored_currency_or_status_is_an_internal_error_never_a_default() {
    use diesel::IntoSql;
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    use gpuhour::market::orders::OrderStatus;
    use gpuhour::money::Currency;

    let app = spawn_app().await;
    let m = market(&app, 1, "50000").await;
    let tenant = &m.tenants[0];
    let start = next_hour(&app, &m.finance).await + Duration::hours(2);
    let l = listing(&app, &m.provider.token, 4, "1000", start, 24).await;
    let (status, order) = json(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start, 2), None).await).await;
    assert_eq!(status, 201, "{order:#}");
    let id = order["id"].as_str().expect("id").to_string();
    let path = format!("/v1/orders/{id}");
    let (status, read) = json(app.get(&path, &tenant.token).await).await;
    assert_eq!(
        (status.as_u16(), read["currency"].as_str(), read["status"].as_str()),
        (200, Some("KRW"), Some("reserved"))
    );

    let mut conn = app.conn().await;
    let text: String = diesel::select(Currency::Jpy.into_sql::<Text>()).get_result(&mut conn).await.expect("query");
    assert_eq!(text, "JPY", "a currency is stored as its code");
    let back: OrderStatus = diesel::select("cancelled".into_sql::<Text>()).get_result(&mut conn).await.expect("query");
    assert_eq!(back, OrderStatus::Cancelled);
    let unknown = diesel::select("lost".into_sql::<Text>()).get_result::<OrderStatus>(&mut conn).await;
    assert!(matches!(unknown, Err(diesel::result::Error::DeserializationError(_))), "{unknown:?}");

    let damage = |sql: String| {
        let pool = app.pool.clone();
        async move {
            let mut conn = pool.get().await.expect("connection");
            diesel::sql_query(sql).execute(&mut conn).await.expect("damage");
        }
    };
    for (column, value) in [("currency", "krw"), ("currency", "XYZ"), ("status", "lost")] {
        damage("ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check".into()).await;
        damage(format!("UPDATE orders SET {column} = '{value}' WHERE id = '{id}'")).await;
        expect_problem(app.get(&path, &tenant.token).await, 500, "internal_error").await;
        expect_problem(app.get("/v1/orders", &tenant.token).await, 500, "internal_error").await;
        damage(format!("UPDATE orders SET currency = 'KRW', status = 'reserved' WHERE id = '{id}'")).await;
    }
    let (status, read) = json(app.get(&path, &tenant.token).await).await;
    assert_eq!((status.as_u16(), read["currency"].as_str()), (200, Some("KRW")), "repaired, it reads again");
}
