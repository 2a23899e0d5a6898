//! The order group commit (issue 9): orders placed together in one
//! transaction, each judged on its own — a refused order takes nothing and
//! fails none of its neighbours — and two processes batching at once never
//! oversell an hour nor overspend a grant.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use gpuhour::auth::{Principal, Role};
use gpuhour::http::ApiError;
use gpuhour::market::batch::{OrderAsk, place_many};
use gpuhour::market::orders::Request;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{
    Caller, TestApp, expect_problem, json, next_hour, now, settings_for, spawn_app, spawn_app_with, start,
    verify_is_clean,
};
use crate::market::{deposit, listing, order_body, wallet};
use crate::subsidy::{assert_grant_split_under_contention, grant, programme, with_grant};

fn ask(tenant: &Caller, listing: &Value, start: DateTime<Utc>, grant: Option<&Value>) -> OrderAsk {
    let listing_id = listing["id"].as_str().and_then(|id| id.parse().ok()).expect("listing id");
    OrderAsk {
        principal: Principal {
            user_id: tenant.user_id,
            org_id: tenant.org_id,
            role: Role::Tenant,
            token_issued_at: None,
        },
        request: Request {
            listing_id,
            gpus: 1,
            start,
            end: start + Duration::hours(1),
            grant_id: grant.and_then(|g| g["id"].as_str()).and_then(|id| id.parse().ok()),
        },
    }
}

async fn funded_tenant(app: &TestApp, finance: &str, amount: &str) -> Caller {
    let tenant = app.tenant("sme").await;
    deposit(app, finance, tenant.org_id, amount).await;
    tenant
}

#[tokio::test]
async fn a_batch_judges_each_order_on_its_own() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let h = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 2, "1000", h, 24).await;
    let p = programme(&app, &finance, "1000000", h).await;
    let a = funded_tenant(&app, &finance, "5000").await;
    let b = funded_tenant(&app, &finance, "500").await;
    let c = funded_tenant(&app, &finance, "5000").await;
    let d = funded_tenant(&app, &finance, "5000").await;
    let e = funded_tenant(&app, &finance, "200").await;
    let g = grant(&app, &finance, &p, &e, "1000", h).await;
    let mut nowhere = ask(&d, &l, h + Duration::hours(3), None);
    nowhere.request.listing_id = Uuid::now_v7();
    let asks = vec![
        ask(&a, &l, h, None),                          // 0: takes 1 of 2 GPUs
        ask(&b, &l, h, None),                          // 1: 500 cannot pay 1,000
        ask(&c, &l, h, None),                          // 2: the GPU b did not take
        ask(&d, &l, h, None),                          // 3: the hour is full now
        ask(&e, &l, h + Duration::hours(1), Some(&g)), // 4: grant pays 800, e 200
        ask(&e, &l, h + Duration::hours(2), Some(&g)), // 5: grant has 200 left, e owes 800 and has 0
        ask(&a, &l, h + Duration::hours(2), None),     // 6: a's second order in the batch
        nowhere,                                       // 7: no such listing
    ];
    let at = now(&app, &finance).await;
    let mut conn = app.conn().await;
    let answers = gpuhour::db::transaction(&mut conn, async |c| place_many(c, &asks, Decimal::ZERO, at).await)
        .await
        .expect("the batch as a whole succeeds");
    // (subsidy, tenant pays) of an accepted order; (status, code) of a
    // refusal, as the API answers it.
    type Outcome = Result<(String, String), (u16, &'static str)>;
    let outcome: Vec<Outcome> = answers
        .into_iter()
        .map(|a| match a {
            Ok(o) => Ok((o.subsidy.to_string(), o.tenant_amount.to_string())),
            Err(refusal) => {
                let e = ApiError::from(refusal);
                Err((e.status.as_u16(), e.code.as_str()))
            }
        })
        .collect();
    let paid = |subsidy: &str, tenant: &str| Ok((subsidy.to_string(), tenant.to_string()));
    assert_eq!(
        outcome,
        vec![
            paid("0", "1000"),
            Err((402, "insufficient_funds")),
            paid("0", "1000"),
            Err((409, "capacity_unavailable")),
            paid("800", "200"),
            Err((402, "insufficient_funds")),
            paid("0", "1000"),
            Err((404, "not_found")),
        ]
    );
    drop(conn);

    // Refused orders took nothing: capacity, wallets and the grant are as the
    // four accepted orders left them, and they were written in one transaction.
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 4);
    let hours = app
        .count(&format!(
            "SELECT (sum(reserved * 10 ^ (extract(epoch FROM hour - '{}'::timestamptz) / 3600)))::bigint AS n \
             FROM listing_hours",
            h.to_rfc3339()
        ))
        .await;
    assert_eq!(hours, 2 + 10 + 100, "2 GPUs at h, 1 at h+1, 1 at h+2");
    assert_eq!(app.count("SELECT count(DISTINCT recorded_at) AS n FROM journal_entries WHERE kind = 'order'").await, 1);
    assert_eq!(wallet(&app, &a.token).await.available, "3000");
    assert_eq!(wallet(&app, &b.token).await.available, "500");
    assert_eq!(wallet(&app, &e.token).await.available, "0");
    let (_, g) = json(app.get(&format!("/v1/grants/{}", g["id"].as_str().expect("id")), &finance).await).await;
    assert_eq!((g["available"].as_str(), g["committed"].as_str()), (Some("200"), Some("800")));
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn a_burst_of_orders_gets_each_its_own_answer() {
    // A long window gathers the burst into as few batches as the workers allow.
    let app = spawn_app_with(|s| s.order_batch.window = std::time::Duration::from_millis(200)).await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let h = next_hour(&app, &finance).await;
    let open = listing(&app, &provider.token, 3, "1000", h, 24).await;
    let full = listing(&app, &provider.token, 1, "1000", h, 24).await;
    let p = programme(&app, &finance, "1000000", h).await;
    let early = funded_tenant(&app, &finance, "5000").await;
    let (status, body) = json(app.post("/v1/orders", &early.token, &order_body(&full, 1, h, 1), None).await).await;
    assert_eq!(status, 201, "{body:#}");
    // A grant already spent, held by a tenant whose wallet is empty.
    let spent = funded_tenant(&app, &finance, "200").await;
    let g = grant(&app, &finance, &p, &spent, "800", h).await;
    let (status, _) = json(
        app.post("/v1/orders", &spent.token, &with_grant(order_body(&open, 1, h + Duration::hours(5), 1), &g), None)
            .await,
    )
    .await;
    assert_eq!(status, 201);

    let buyers = [
        funded_tenant(&app, &finance, "1000").await,
        funded_tenant(&app, &finance, "1000").await,
        funded_tenant(&app, &finance, "1000").await,
    ];
    let poor = funded_tenant(&app, &finance, "999").await;
    let late = funded_tenant(&app, &finance, "5000").await;
    let twice = funded_tenant(&app, &finance, "5000").await;
    let later = order_body(&open, 1, h + Duration::hours(1), 1);
    let (now_open, now_full, later_granted) =
        (order_body(&open, 1, h, 1), order_body(&full, 1, h, 1), with_grant(later.clone(), &g));
    let mut requests = Vec::new();
    for b in &buyers {
        requests.push(app.post("/v1/orders", &b.token, &now_open, None));
    }
    requests.push(app.post("/v1/orders", &poor.token, &later, None));
    requests.push(app.post("/v1/orders", &late.token, &now_full, None));
    requests.push(app.post("/v1/orders", &spent.token, &later_granted, None));
    requests.push(app.post("/v1/orders", &twice.token, &later, Some("double-click")));
    requests.push(app.post("/v1/orders", &twice.token, &later, Some("double-click")));
    let mut responses = join_all(requests).await.into_iter();
    for _ in &buyers {
        let (status, order) = json(responses.next().expect("answer")).await;
        assert_eq!((status.as_u16(), order["tenant_amount"].as_str()), (201, Some("1000")), "{order:#}");
    }
    expect_problem(responses.next().expect("poor"), 402, "insufficient_funds").await;
    expect_problem(responses.next().expect("late"), 409, "capacity_unavailable").await;
    expect_problem(responses.next().expect("spent"), 402, "insufficient_funds").await;
    let first = responses.next().expect("first click");
    let second = responses.next().expect("second click");
    let replayed = [&first, &second].iter().filter(|r| r.headers().contains_key("idempotent-replayed")).count();
    let (s1, o1) = json(first).await;
    let (s2, o2) = json(second).await;
    assert_eq!((s1.as_u16(), s2.as_u16(), replayed), (201, 201, 1));
    assert_eq!(o1, o2, "one order, answered twice");
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 2 + 3 + 1);
    assert_eq!(
        app.count(&format!("SELECT count(*) AS n FROM orders WHERE tenant_org_id = '{}'", twice.org_id)).await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE route = '/v1/orders' AND status = 201").await,
        2 + 3 + 1,
        "one audit record per order placed, none for a refusal or a replay"
    );
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn two_processes_batching_at_once_never_oversell_nor_overspend() {
    let window = std::time::Duration::from_millis(20);
    let first = spawn_app_with(|s| s.order_batch.window = window).await;
    let mut settings = settings_for(&first.database_url);
    settings.order_batch.window = window;
    let second = start(settings).await;
    let apps = [&first, &second];
    let finance = first.token(Role::Finance).await;
    let provider = first.caller(Role::Provider).await;
    let h = next_hour(&first, &finance).await;
    let contested = listing(&first, &provider.token, 10, "1000", h, 1).await;
    let roomy = listing(&first, &provider.token, 64, "10000", h, 48).await;
    let p = programme(&first, &finance, "1000000", h).await;
    let holder = funded_tenant(&first, &finance, "1000000").await;
    // 20,000 left: two full subsidies of 8,000 and a 4,000 remainder.
    let g = grant(&first, &finance, &p, &holder, "20000", h).await;
    let mut racers = Vec::new();
    for _ in 0..30 {
        racers.push(funded_tenant(&first, &finance, "1000").await);
    }
    let hour_bodies: Vec<Value> = (0..30).map(|_| order_body(&contested, 1, h, 1)).collect();
    let grant_bodies: Vec<Value> =
        (0..30).map(|i| with_grant(order_body(&roomy, 1, h + Duration::hours(i), 1), &g)).collect();
    let hour_race = racers
        .iter()
        .zip(&hour_bodies)
        .enumerate()
        .map(|(i, (t, b))| apps[i % 2].post("/v1/orders", &t.token, b, None));
    let grant_race =
        grant_bodies.iter().enumerate().map(|(i, b)| apps[(i + 1) % 2].post("/v1/orders", &holder.token, b, None));
    let (hour_answers, grant_answers) = futures::join!(join_all(hour_race), join_all(grant_race));

    let mut statuses: Vec<u16> = hour_answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![201; 10], vec![409; 20]].concat(), "ten GPUs, ten orders");
    assert_grant_split_under_contention(grant_answers).await;
    assert_eq!(first.count("SELECT max(reserved)::bigint AS n FROM listing_hours").await, 10);
    verify_is_clean(&first, &finance).await;
}

#[tokio::test]
async fn a_batch_checks_its_callers_in_its_own_transaction() {
    // Callers of `POST /v1/orders` are checked against the database inside
    // the batch (one query for all of them), not before it: a user disabled
    // after its token was issued is refused there, and its neighbours in the
    // same batch are placed.
    let app = spawn_app_with(|s| s.order_batch.window = std::time::Duration::from_millis(50)).await;
    let finance = app.token(Role::Finance).await;
    let admin = app.token(Role::Admin).await;
    let provider = app.caller(Role::Provider).await;
    let h = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 8, "1000", h, 4).await;
    let kept = funded_tenant(&app, &finance, "5000").await;
    let gone = funded_tenant(&app, &finance, "5000").await;
    let response = app.post(&format!("/v1/users/{}/disable", gone.user_id), &admin, &serde_json::json!({}), None).await;
    assert_eq!(response.status(), 200);
    let body = order_body(&l, 1, h, 1);
    let (placed, refused, replay_probe) = futures::join!(
        app.post("/v1/orders", &kept.token, &body, None),
        app.post("/v1/orders", &gone.token, &body, Some("gone-key")),
        app.post("/v1/orders", &gone.token, &body, Some("gone-key-2")),
    );
    assert_eq!(placed.status(), 201);
    expect_problem(refused, 401, "unauthorized").await;
    expect_problem(replay_probe, 401, "unauthorized").await;
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(
        app.count(&format!("SELECT count(*) AS n FROM orders WHERE tenant_org_id = '{}'", gone.org_id)).await,
        0
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM idempotency_keys WHERE key LIKE 'gone-key%'").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries WHERE kind = 'order'").await, 1);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn a_batch_refuses_a_token_from_before_its_user_was_disabled_and_enabled_again() {
    let app = spawn_app_with(|s| s.order_batch.window = std::time::Duration::from_millis(50)).await;
    let finance = app.token(Role::Finance).await;
    let admin = app.token(Role::Admin).await;
    let provider = app.caller(Role::Provider).await;
    let h = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 8, "1000", h, 4).await;
    let back = funded_tenant(&app, &finance, "5000").await;
    for action in ["disable", "enable"] {
        let response =
            app.post(&format!("/v1/users/{}/{action}", back.user_id), &admin, &serde_json::json!({}), None).await;
        assert_eq!(response.status(), 200, "{action}");
    }
    let body = order_body(&l, 1, h, 1);
    expect_problem(app.post("/v1/orders", &back.token, &body, Some("old-token")).await, 401, "unauthorized").await;
    // A token issued after the enabling (its `iat` past the disable's second) is placed.
    let fresh_from = Some(Utc::now() + Duration::seconds(1));
    let fresh = app
        .keys
        .issue_not_before(back.user_id, gpuhour::auth::OrgId(back.org_id), Role::Tenant, fresh_from)
        .expect("token");
    assert_eq!(app.post("/v1/orders", &fresh, &body, Some("fresh-token")).await.status(), 201);
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM idempotency_keys WHERE key = 'old-token'").await, 0);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn hours_without_rows_get_them_in_the_batch_and_lose_them_when_unsold() {
    // Hour rows are made with the listing; a listing stored before that (its
    // rows missing here) still sells: the batch makes the rows it needs and
    // removes the ones no order took.
    use diesel_async::RunQueryDsl;
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let h = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 2, "1000", h, 4).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM listing_hours").await, 4, "made with the listing");
    let mut conn = app.conn().await;
    diesel::sql_query("DELETE FROM listing_hours").execute(&mut *conn).await.expect("rows removed");
    let rich = funded_tenant(&app, &finance, "5000").await;
    let poor = funded_tenant(&app, &finance, "500").await;
    let asks = vec![ask(&rich, &l, h, None), ask(&poor, &l, h + Duration::hours(1), None)];
    let at = now(&app, &finance).await;
    let answers = gpuhour::db::transaction(&mut conn, async |c| place_many(c, &asks, Decimal::ZERO, at).await)
        .await
        .expect("the batch as a whole succeeds");
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    let refusal = answers.into_iter().nth(1).and_then(Result::err).map(ApiError::from);
    assert_eq!(refusal.map(|e| e.status.as_u16()), Some(402));
    drop(conn);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM listing_hours WHERE hour = '{}' AND reserved = 1",
            h.to_rfc3339()
        ))
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM listing_hours").await, 1, "the unsold hour's row is gone");
    verify_is_clean(&app, &finance).await;
}
