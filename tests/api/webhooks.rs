//! Webhooks (issue 12, item 2): endpoints, signed deliveries to a local
//! receiver that can fail, hang or answer slowly, retries, rotation, two
//! workers at once, and the SSRF rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};
use gpuhour::auth::Role;
use gpuhour::events::{self, EventType, NewEvent};
use gpuhour::http::pagination::Page;
use gpuhour::market::views::OrderView;
use gpuhour::webhooks::routes::{WebhookDeliveryView, WebhookEndpointView, WebhookEndpointWithSecret};
use gpuhour::webhooks::signing;
use gpuhour::webhooks::store::{DeliveryStatus, EndpointStatus};
use gpuhour::webhooks::worker::{DeliveryConfig, Round, run_once};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, expect_problem, read_as, spawn_app, spawn_app_with};

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Ok,
    Fail,
    /// Answers 200 after this long.
    Slow(Duration),
}

#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
    at: Instant,
}

struct ReceiverState {
    mode: Mutex<Mode>,
    received: Mutex<Vec<Received>>,
    /// Requests being answered now, per event id.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Set if one event was ever being received twice at once.
    overlapped: AtomicBool,
}

/// A local HTTP server that records what it is sent.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<ReceiverState>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let event_id = header("gpuhour-event-id");
    {
        let mut in_flight = state.in_flight.lock().expect("lock");
        let n = in_flight.entry(event_id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            state.overlapped.store(true, Ordering::SeqCst);
        }
    }
    state.received.lock().expect("lock").push(Received {
        event_id: event_id.clone(),
        signature: header("gpuhour-signature"),
        content_type: header("content-type"),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let mode = *state.mode.lock().expect("lock");
    let response = match mode {
        Mode::Ok => HttpResponse::Ok().finish(),
        Mode::Fail => HttpResponse::InternalServerError().body("boom"),
        Mode::Slow(wait) => {
            tokio::time::sleep(wait).await;
            HttpResponse::Ok().finish()
        }
    };
    *state.in_flight.lock().expect("lock").entry(event_id).or_default() -= 1;
    response
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let state = Arc::new(ReceiverState {
            mode: Mutex::new(mode),
            received: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            overlapped: AtomicBool::new(false),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(2)
            .listen(listener)
            .expect("listen")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url: format!("http://127.0.0.1:{port}/hooks"), state, handle }
    }

    fn set(&self, mode: Mode) {
        *self.state.mode.lock().expect("lock") = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    fn event_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.received().into_iter().map(|r| r.event_id).collect();
        ids.sort();
        ids
    }
}

fn config(timeout: Duration) -> DeliveryConfig {
    DeliveryConfig { timeout, concurrency: 8, per_endpoint: 4, sandbox: true }
}

/// Registers an endpoint; returns the answer (with its secret).
async fn endpoint(app: &TestApp, token: &str, url: &str, types: &[&str]) -> WebhookEndpointWithSecret {
    app.post_as("/v1/webhook-endpoints", token, &json!({"url": url, "types": types}), None, 201).await
}

/// Reads an answer (an endpoint, or a page of them) that must not show a
/// secret: checked on the JSON, since reading it as a view would silently
/// drop a `secret` field.
async fn secretless<T: DeserializeOwned>(response: reqwest::Response) -> T {
    let answer: Value = read_as(response, 200).await;
    let endpoints = answer["data"].as_array().cloned().unwrap_or_else(|| vec![answer.clone()]);
    for e in &endpoints {
        assert_eq!(e.get("secret"), None, "{answer:#}");
    }
    serde_json::from_value(answer).expect("the view")
}

type EndpointFields<'a> = (
    Uuid,
    &'a str,
    &'a [EventType],
    Option<&'a str>,
    EndpointStatus,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Every field of an endpoint as shown.
fn fields(e: &WebhookEndpointView) -> EndpointFields<'_> {
    (
        e.id,
        &e.url,
        &e.types,
        e.description.as_deref(),
        e.status,
        e.created_at,
        e.disabled_at,
        e.secret_rotated_at,
        e.previous_secret_expires_at,
    )
}

/// Records an event as a change's transaction would; returns its id.
async fn record(app: &TestApp, event_type: EventType, orgs: &[Uuid], data: Value) -> Uuid {
    let mut conn = app.conn().await;
    let subject = Uuid::now_v7();
    let occurred_at: DateTime<Utc> = "2026-12-23T10:00:00Z".parse().expect("instant");
    let data = events::view_data(&data).expect("the data serialises");
    events::record(&mut conn, NewEvent::new(event_type, occurred_at, subject, orgs.to_vec(), data))
        .await
        .expect("record the event");
    let (_, id) = subject_event(app, subject).await;
    id
}

async fn subject_event(app: &TestApp, subject: Uuid) -> (Uuid, Uuid) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = app.conn().await;
    let row: Row = diesel::sql_query("SELECT id FROM events WHERE subject_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(subject)
        .get_result(&mut conn)
        .await
        .expect("the event");
    (subject, row.id)
}

/// Runs rounds as of `now` until `deliveries` deliveries exist (the outbox
/// shows an event once every transaction older than it has ended, which other
/// tests' transactions on the same server may delay a moment).
async fn deliver(app: &TestApp, config: &DeliveryConfig, now: DateTime<Utc>, deliveries: i64) -> Round {
    let started = Instant::now();
    let mut total = Round::default();
    loop {
        let round = run_once(&app.pool, config, now).await.expect("a round");
        total.dispatched += round.dispatched;
        total.succeeded += round.succeeded;
        total.failed += round.failed;
        if app.count("SELECT count(*) AS n FROM webhook_deliveries").await >= deliveries {
            return total;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the events were never dispatched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries(app: &TestApp, token: &str, query: &str) -> Vec<WebhookDeliveryView> {
    let page: Page<WebhookDeliveryView> = app.get_as(&format!("/v1/webhook-deliveries{query}"), token).await;
    page.data
}

#[tokio::test]
async fn each_event_reaches_the_endpoints_that_see_it_signed_and_never_again_after_success() {
    let app = spawn_app().await;
    let (tenant, other) = (app.caller(Role::Tenant).await, app.caller(Role::Tenant).await);
    let finance = app.token(Role::Finance).await;
    let (tenant_rx, finance_rx) = (Receiver::start(Mode::Ok).await, Receiver::start(Mode::Ok).await);
    let created = endpoint(&app, &tenant.token, &tenant_rx.url, &["order.reserved", "order.cancelled"]).await;
    let secret = created.secret.clone();
    assert!(secret.starts_with("whsec_"), "{created:#?}");
    let id = created.endpoint.id;
    assert_eq!(created.endpoint.url, tenant_rx.url);
    assert_eq!(created.endpoint.types, [EventType::OrderReserved, EventType::OrderCancelled]);
    assert_eq!(created.endpoint.status, EndpointStatus::Active);
    // Shown once: never again.
    let shown: WebhookEndpointView =
        secretless(app.get(&format!("/v1/webhook-endpoints/{id}"), &tenant.token).await).await;
    assert_eq!(fields(&shown), fields(&created.endpoint));
    let list: Page<WebhookEndpointView> = secretless(app.get("/v1/webhook-endpoints", &tenant.token).await).await;
    assert_eq!(list.data.iter().map(fields).collect::<Vec<_>>(), [fields(&created.endpoint)]);
    assert_eq!(list.next_cursor, None);
    let finance_secret = endpoint(&app, &finance, &finance_rx.url, &["order.reserved"]).await.secret;

    let reserved = record(&app, EventType::OrderReserved, &[tenant.org_id], json!({"n": 1})).await;
    let others = record(&app, EventType::OrderReserved, &[other.org_id], json!({"n": 2})).await;
    let cancelled = record(&app, EventType::OrderCancelled, &[tenant.org_id], json!({"n": 3})).await;
    record(&app, EventType::OrderStarted, &[tenant.org_id], json!({"n": 4})).await;

    let round = deliver(&app, &config(Duration::from_secs(5)), Utc::now(), 4).await;
    assert_eq!((round.dispatched, round.succeeded, round.failed), (4, 4, 0));
    let mut tenant_expected = vec![reserved.to_string(), cancelled.to_string()];
    tenant_expected.sort();
    assert_eq!(tenant_rx.event_ids(), tenant_expected, "its types, of its organisation's events");
    let mut finance_expected = vec![reserved.to_string(), others.to_string()];
    finance_expected.sort();
    assert_eq!(finance_rx.event_ids(), finance_expected, "finance sees every organisation's events");

    let now = Utc::now().timestamp();
    for (rx, secret) in [(&tenant_rx, &secret), (&finance_rx, &finance_secret)] {
        for r in rx.received() {
            assert_eq!(r.content_type, "application/json");
            assert!(signing::verify(&r.signature, &r.body, secret, now, 60), "{}", r.signature);
            assert_eq!(r.signature.matches("v1=").count(), 1);
        }
    }
    let first = tenant_rx.received().into_iter().find(|r| r.event_id == reserved.to_string()).expect("delivered");
    // The body exactly as sent, which no view of the crate's describes.
    let body: Value = serde_json::from_slice(&first.body).expect("JSON");
    assert_eq!(
        body,
        json!({"id": reserved, "type": "order.reserved", "occurred_at": "2026-12-23T10:00:00Z", "data": {"n": 1}})
    );

    // Two days on, nothing is sent again.
    let later = run_once(&app.pool, &config(Duration::from_secs(5)), Utc::now() + chrono::Duration::days(2))
        .await
        .expect("a round");
    assert_eq!(later, Round::default());
    assert_eq!((tenant_rx.received().len(), finance_rx.received().len()), (2, 2));

    let shown = deliveries(&app, &tenant.token, &format!("?endpoint_id={id}")).await;
    assert_eq!(shown.len(), 2);
    for d in &shown {
        assert_eq!((d.status, d.attempts, d.last_status_code), (DeliveryStatus::Succeeded, 1, Some(200)));
        assert_eq!((d.next_attempt_at, d.last_error.as_deref(), d.endpoint_id), (None, None, id));
    }
    assert!(deliveries(&app, &tenant.token, "?status=failed").await.is_empty());
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_then_given_up_and_retried_by_hand() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let rx = Receiver::start(Mode::Fail).await;
    endpoint(&app, &tenant.token, &rx.url, &["claim.paid"]).await;
    let event = record(&app, EventType::ClaimPaid, &[tenant.org_id], json!({})).await;
    let config = config(Duration::from_secs(5));

    let start = Utc::now();
    let round = deliver(&app, &config, start, 1).await;
    assert_eq!((round.succeeded, round.failed), (0, 1));
    let [d] = deliveries(&app, &tenant.token, "").await.try_into().expect("one delivery");
    assert_eq!((d.status, d.attempts, d.last_status_code), (DeliveryStatus::Pending, 1, Some(500)));
    assert_eq!(d.last_error.as_deref(), Some("the receiver answered 500 Internal Server Error: boom"));
    let next = d.next_attempt_at.expect("due again");
    assert!(next <= Utc::now() + chrono::Duration::seconds(30), "the first retry waits at most 30 s: {next}");

    // The receiver recovers; an hour on, the retry succeeds.
    rx.set(Mode::Ok);
    let round = run_once(&app.pool, &config, start + chrono::Duration::hours(1)).await.expect("a round");
    assert_eq!((round.succeeded, round.failed), (1, 0));
    let [d] = deliveries(&app, &tenant.token, "").await.try_into().expect("one delivery");
    assert_eq!((d.status, d.attempts, d.last_status_code), (DeliveryStatus::Succeeded, 2, Some(200)));
    assert_eq!(rx.event_ids(), vec![event.to_string(), event.to_string()]);
    let retry = format!("/v1/webhook-deliveries/{}/retry", d.id);
    expect_problem(app.post(&retry, &tenant.token, &json!({}), None).await, 409, "conflict").await;

    // A receiver that never recovers: fifteen attempts, then failed.
    rx.set(Mode::Fail);
    let event = record(&app, EventType::ClaimPaid, &[tenant.org_id], json!({"second": true})).await;
    let mut now = Utc::now();
    deliver(&app, &config, now, 2).await;
    for _ in 0..20 {
        now += chrono::Duration::hours(9);
        run_once(&app.pool, &config, now).await.expect("a round");
    }
    let [failed] = deliveries(&app, &tenant.token, "?status=failed").await.try_into().expect("one failed");
    assert_eq!((failed.event_id, failed.attempts, failed.next_attempt_at), (event, 15, None));
    let sent = rx.received().iter().filter(|r| r.event_id == event.to_string()).count();
    assert_eq!(sent, 15);

    // Retried by hand: one more attempt, now.
    rx.set(Mode::Ok);
    let id = failed.id;
    let retried: WebhookDeliveryView =
        app.post_as(&format!("/v1/webhook-deliveries/{id}/retry"), &tenant.token, &json!({}), None, 200).await;
    assert_eq!((retried.status, retried.attempts), (DeliveryStatus::Pending, 15));
    let round = run_once(&app.pool, &config, Utc::now()).await.expect("a round");
    assert_eq!((round.succeeded, round.failed), (1, 0));
    let done = deliveries(&app, &tenant.token, "?status=succeeded").await;
    let done = done.iter().find(|d| d.id == id).expect("succeeded");
    assert_eq!((done.attempts, done.last_status_code), (16, Some(200)));
}

#[tokio::test]
async fn a_slow_or_hanging_receiver_does_not_hold_up_another_endpoint() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let hanging = Receiver::start(Mode::Slow(Duration::from_secs(30))).await;
    let slow = Receiver::start(Mode::Slow(Duration::from_millis(1500))).await;
    let fast = Receiver::start(Mode::Ok).await;
    for rx in [&hanging, &slow, &fast] {
        endpoint(&app, &tenant.token, &rx.url, &["order.reserved"]).await;
    }
    record(&app, EventType::OrderReserved, &[tenant.org_id], json!({})).await;
    // Dispatch first, so the round below only sends.
    let cfg = config(Duration::from_secs(3));
    while app.count("SELECT count(*) AS n FROM webhook_deliveries").await < 3 {
        gpuhour::webhooks::worker::dispatch(&mut *app.conn().await).await.expect("dispatch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let pool = app.pool.clone();
    let round = tokio::spawn(async move { run_once(&pool, &cfg, Utc::now()).await.expect("a round") });
    while fast.received().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(1), "the fast receiver waited for the others");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fast_at = fast.received()[0].at.duration_since(started);
    let round = round.await.expect("the round");
    let took = started.elapsed();
    assert!(fast_at < Duration::from_millis(1000), "{fast_at:?}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "the hanging receiver timed out: {took:?}"
    );
    assert_eq!((round.succeeded, round.failed), (2, 1));
    let failed = deliveries(&app, &tenant.token, "?status=pending").await;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].last_error.as_deref(), failed[0].last_status_code), (Some("no answer within 3 s"), None));
}

#[tokio::test]
async fn two_workers_never_send_one_delivery_at_once() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let rx = Receiver::start(Mode::Slow(Duration::from_millis(100))).await;
    endpoint(&app, &tenant.token, &rx.url, &["order.completed"]).await;
    let mut expected = Vec::new();
    for n in 0..30 {
        expected.push(record(&app, EventType::OrderCompleted, &[tenant.org_id], json!({"n": n})).await.to_string());
    }
    expected.sort();
    let second_pool = gpuhour::db::build_pool(&app.database_url, 8).expect("a second process's pool");
    let cfg = DeliveryConfig { timeout: Duration::from_secs(5), concurrency: 8, per_endpoint: 30, sandbox: true };
    let worker = move |pool: gpuhour::db::DbPool, app_pool: gpuhour::db::DbPool| async move {
        let started = Instant::now();
        loop {
            run_once(&pool, &cfg, Utc::now()).await.expect("a round");
            let mut conn = app_pool.get().await.expect("conn");
            #[derive(diesel::QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            use diesel_async::RunQueryDsl;
            let done: N = diesel::sql_query("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'succeeded'")
                .get_result(&mut conn)
                .await
                .expect("count");
            if done.n == 30 {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not all delivered");
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(worker(app.pool.clone(), app.pool.clone())),
        tokio::spawn(worker(second_pool, app.pool.clone()))
    );
    a.expect("worker a");
    b.expect("worker b");
    assert!(!rx.state.overlapped.load(Ordering::SeqCst), "one delivery was being sent twice at once");
    assert_eq!(rx.event_ids(), expected, "each event exactly once");
    assert_eq!(app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE attempts <> 1").await, 0);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_until_the_grace_period_ends() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let rx = Receiver::start(Mode::Ok).await;
    let created = endpoint(&app, &tenant.token, &rx.url, &["grant.created"]).await;
    let (id, old) = (created.endpoint.id, created.secret.as_str());
    let path = format!("/v1/webhook-endpoints/{id}/rotate-secret");
    let rotate = async |body: Value| app.post(&path, &tenant.token, &body, None).await;
    let rotated: WebhookEndpointWithSecret = read_as(rotate(json!({})).await, 200).await;
    let new = rotated.secret.as_str();
    assert_ne!(new, old);
    let grace_ends = rotated.endpoint.previous_secret_expires_at.expect("grace");
    let rotated_at = rotated.endpoint.secret_rotated_at.expect("rotated");
    assert_eq!(grace_ends - rotated_at, chrono::Duration::hours(24));
    let shown: WebhookEndpointView =
        secretless(app.get(&format!("/v1/webhook-endpoints/{id}"), &tenant.token).await).await;
    assert_eq!(fields(&shown), fields(&rotated.endpoint));

    record(&app, EventType::GrantCreated, &[tenant.org_id], json!({"k": 1})).await;
    deliver(&app, &config(Duration::from_secs(5)), Utc::now(), 1).await;
    let [r] = rx.received().try_into().expect("one request");
    let t: i64 = r.signature.split(',').next().and_then(|t| t.strip_prefix("t=")).expect("t=").parse().expect("number");
    assert_eq!(r.signature, signing::signature_header(t, &r.body, &[new, old]));
    assert!(signing::verify(&r.signature, &r.body, old, t, 0) && signing::verify(&r.signature, &r.body, new, t, 0));

    // Rotated again with no grace: only the newest secret signs.
    let again: WebhookEndpointWithSecret = read_as(rotate(json!({"grace_hours": 0})).await, 200).await;
    assert_eq!(again.endpoint.previous_secret_expires_at, None);
    let newest = again.secret.as_str();
    record(&app, EventType::GrantCreated, &[tenant.org_id], json!({"k": 2})).await;
    deliver(&app, &config(Duration::from_secs(5)), Utc::now(), 2).await;
    let r = rx.received().pop().expect("a second request");
    let t: i64 = r.signature.split(',').next().and_then(|t| t.strip_prefix("t=")).expect("t=").parse().expect("number");
    assert_eq!(r.signature, signing::signature_header(t, &r.body, &[newest]));

    let body = expect_problem(rotate(json!({"grace_hours": 169})).await, 422, "validation_failed").await;
    assert_eq!(body["errors"], json!([{"field": "grace_hours", "message": "must be from 0 to 168"}]));
}

#[tokio::test]
async fn another_organisation_can_neither_see_nor_touch_your_webhooks() {
    let app = spawn_app().await;
    let (owner, stranger) = (app.caller(Role::Tenant).await, app.caller(Role::Provider).await);
    let rx = Receiver::start(Mode::Fail).await;
    let id = endpoint(&app, &owner.token, &rx.url, &["order.reserved"]).await.endpoint.id;
    record(&app, EventType::OrderReserved, &[owner.org_id], json!({})).await;
    deliver(&app, &config(Duration::from_secs(5)), Utc::now(), 1).await;
    let [d] = deliveries(&app, &owner.token, "").await.try_into().expect("one delivery");
    let delivery = d.id;

    let s = &stranger.token;
    expect_problem(app.get(&format!("/v1/webhook-endpoints/{id}"), s).await, 404, "not_found").await;
    expect_problem(app.get(&format!("/v1/webhook-deliveries?endpoint_id={id}"), s).await, 404, "not_found").await;
    let list: Page<WebhookEndpointView> = app.get_as("/v1/webhook-endpoints", s).await;
    assert_eq!((list.data.len(), list.next_cursor), (0, None));
    assert!(deliveries(&app, s, "").await.is_empty());
    let retry = format!("/v1/webhook-deliveries/{delivery}/retry");
    expect_problem(app.post(&retry, s, &json!({}), None).await, 404, "not_found").await;
    let rotate = format!("/v1/webhook-endpoints/{id}/rotate-secret");
    expect_problem(app.post(&rotate, s, &json!({}), None).await, 404, "not_found").await;
    let delete = app.client.delete(app.url(&format!("/v1/webhook-endpoints/{id}"))).bearer_auth(s).send().await;
    expect_problem(delete.expect("request"), 404, "not_found").await;

    // The owner disables it: its pending delivery fails, and nothing is sent.
    let delete =
        app.client.delete(app.url(&format!("/v1/webhook-endpoints/{id}"))).bearer_auth(&owner.token).send().await;
    let disabled: WebhookEndpointView = read_as(delete.expect("request"), 200).await;
    assert_eq!(disabled.status, EndpointStatus::Disabled, "{disabled:#?}");
    let [d] = deliveries(&app, &owner.token, "").await.try_into().expect("one delivery");
    assert_eq!((d.status, d.last_error.as_deref()), (DeliveryStatus::Failed, Some("the endpoint was disabled")));
    expect_problem(app.post(&retry, &owner.token, &json!({}), None).await, 409, "conflict").await;
    let sent = rx.received().len();
    run_once(&app.pool, &config(Duration::from_secs(5)), Utc::now() + chrono::Duration::days(1)).await.expect("round");
    assert_eq!(rx.received().len(), sent);
}

#[tokio::test]
async fn urls_outside_the_rules_are_refused_outside_sandbox_mode() {
    let app = spawn_app_with(|s| s.sandbox = false).await;
    let tenant = app.caller(Role::Tenant).await;
    for (url, message) in [
        ("http://hooks.example.com/x", "must use https (http is allowed in sandbox mode only)"),
        (
            "https://10.0.0.7/x",
            "10.0.0.7 is a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16): webhooks may not be sent there",
        ),
        (
            "https://127.0.0.1:9000/x",
            "127.0.0.1 is a loopback address (127.0.0.0/8, ::1, localhost): webhooks may not be sent there",
        ),
        (
            "https://localhost/x",
            "localhost is a loopback address (127.0.0.0/8, ::1, localhost): webhooks may not be sent there",
        ),
        (
            "https://[::ffff:169.254.169.254]/latest",
            "[::ffff:a9fe:a9fe] is a link-local address (169.254.0.0/16, fe80::/10): webhooks may not be sent there",
        ),
        (
            "https://100.64.1.1/",
            "100.64.1.1 is a carrier-grade NAT address (100.64.0.0/10): webhooks may not be sent there",
        ),
    ] {
        let body = json!({"url": url, "types": ["order.reserved"]});
        let problem = expect_problem(
            app.post("/v1/webhook-endpoints", &tenant.token, &body, None).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(problem["errors"], json!([{"field": "url", "message": message}]), "{url}");
    }
    let body = json!({"url": "https://hooks.example.com/x", "types": ["order.shipped"]});
    let problem =
        expect_problem(app.post("/v1/webhook-endpoints", &tenant.token, &body, None).await, 422, "validation_failed")
            .await;
    assert_eq!(problem["errors"][0]["field"], "types[0]");
    assert_eq!(app.count("SELECT count(*) AS n FROM webhook_endpoints").await, 0);
    // An https URL on a public name is accepted.
    let created = endpoint(&app, &tenant.token, "https://hooks.example.com/gpuhour", &["order.reserved"]).await;
    assert_eq!(created.endpoint.url, "https://hooks.example.com/gpuhour");
}

#[tokio::test]
async fn a_url_registered_in_sandbox_mode_is_not_sent_to_by_a_worker_outside_it() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let rx = Receiver::start(Mode::Ok).await;
    endpoint(&app, &tenant.token, &rx.url, &["payout.created"]).await;
    record(&app, EventType::PayoutCreated, &[tenant.org_id], json!({})).await;
    let strict = DeliveryConfig { sandbox: false, ..config(Duration::from_secs(5)) };
    let round = deliver(&app, &strict, Utc::now(), 1).await;
    assert_eq!((round.succeeded, round.failed), (0, 1));
    assert!(rx.received().is_empty());
    let [d] = deliveries(&app, &tenant.token, "").await.try_into().expect("one delivery");
    assert_eq!(
        d.last_error.as_deref(),
        Some("the URL must use https (http is allowed in sandbox mode only): not sent")
    );
}

#[tokio::test]
async fn registering_and_retrying_are_checked_and_idempotent() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let body = json!({"url": "http://127.0.0.1:9/x", "types": ["order.reserved"], "description": "x".repeat(201)});
    let problem =
        expect_problem(app.post("/v1/webhook-endpoints", &tenant.token, &body, None).await, 422, "validation_failed")
            .await;
    assert_eq!(problem["errors"], json!([{"field": "description", "message": "must be at most 200 characters"}]));
    let body = json!({"url": "http://127.0.0.1:9/x", "types": []});
    let problem =
        expect_problem(app.post("/v1/webhook-endpoints", &tenant.token, &body, None).await, 422, "validation_failed")
            .await;
    assert_eq!(problem["errors"], json!([{"field": "types", "message": "must name at least one event type"}]));
    let body = json!({"url": "http://127.0.0.1:9/x", "types": ["order.reserved"], "secret": "mine"});
    expect_problem(app.post("/v1/webhook-endpoints", &tenant.token, &body, None).await, 422, "validation_failed").await;
    expect_problem(app.get("/v1/webhook-deliveries?status=lost", &tenant.token).await, 422, "validation_failed").await;
    expect_problem(app.get("/v1/webhook-endpoints/not-a-uuid", &tenant.token).await, 422, "validation_failed").await;

    // One key, one endpoint: the retry replays the first answer.
    let body = json!({"url": "http://127.0.0.1:9/x", "types": ["order.reserved"], "description": "ops"});
    let first: WebhookEndpointWithSecret =
        app.post_as("/v1/webhook-endpoints", &tenant.token, &body, Some("wh-1"), 201).await;
    let again: WebhookEndpointWithSecret =
        app.post_as("/v1/webhook-endpoints", &tenant.token, &body, Some("wh-1"), 201).await;
    assert_eq!((fields(&first.endpoint), &first.secret), (fields(&again.endpoint), &again.secret));
    assert_eq!(first.endpoint.description.as_deref(), Some("ops"));
    assert_eq!(app.count("SELECT count(*) AS n FROM webhook_endpoints").await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_log WHERE route = '/v1/webhook-endpoints'").await,
        1,
        "the write is audited once"
    );

    // At most twenty active endpoints per organisation.
    for _ in 1..20 {
        endpoint(&app, &tenant.token, "http://127.0.0.1:9/x", &["order.reserved"]).await;
    }
    let body = json!({"url": "http://127.0.0.1:9/x", "types": ["order.reserved"]});
    let problem =
        expect_problem(app.post("/v1/webhook-endpoints", &tenant.token, &body, None).await, 422, "validation_failed")
            .await;
    assert_eq!(
        problem["errors"][0]["message"],
        "an organisation may have at most 20 active endpoints; disable one first"
    );
    let page: Page<WebhookEndpointView> = app.get_as("/v1/webhook-endpoints?limit=15", &tenant.token).await;
    assert_eq!(page.data.len(), 15);
    let cursor = page.next_cursor.expect("more");
    let rest: Page<WebhookEndpointView> =
        app.get_as(&format!("/v1/webhook-endpoints?limit=15&cursor={cursor}"), &tenant.token).await;
    assert_eq!((rest.data.len(), rest.next_cursor), (5, None));
}

#[tokio::test]
async fn a_delivery_whose_worker_died_mid_send_is_sent_again_when_its_lease_ends() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let rx = Receiver::start(Mode::Ok).await;
    endpoint(&app, &tenant.token, &rx.url, &["listing.paused"]).await;
    let event = record(&app, EventType::ListingPaused, &[tenant.org_id], json!({})).await;
    let cfg = config(Duration::from_secs(5));
    while app.count("SELECT count(*) AS n FROM webhook_deliveries").await < 1 {
        gpuhour::webhooks::worker::dispatch(&mut *app.conn().await).await.expect("dispatch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A worker claims it, then dies before sending.
    let now = Utc::now();
    let claimed =
        gpuhour::webhooks::store::claim_due(&mut *app.conn().await, now, 10, 4, cfg.lease()).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    // While the lease lasts, no other worker sends it.
    assert_eq!(
        run_once(&app.pool, &cfg, now + cfg.lease() - chrono::Duration::seconds(1)).await.expect("round"),
        Round::default()
    );
    assert!(rx.received().is_empty());
    let round = run_once(&app.pool, &cfg, now + cfg.lease()).await.expect("round");
    assert_eq!((round.succeeded, round.failed), (1, 0));
    assert_eq!(rx.event_ids(), vec![event.to_string()]);
    let [d] = deliveries(&app, &tenant.token, "").await.try_into().expect("one delivery");
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 2));
}

#[tokio::test]
async fn serve_runs_the_worker_and_a_hanging_receiver_does_not_hold_up_the_next_events() {
    let app = spawn_app_with(|s| {
        s.webhooks.interval = Some(Duration::from_millis(50));
        s.webhooks.timeout = Duration::from_secs(5);
    })
    .await;
    let tenant = app.caller(Role::Tenant).await;
    let hanging = Receiver::start(Mode::Slow(Duration::from_secs(30))).await;
    let fast = Receiver::start(Mode::Ok).await;
    endpoint(&app, &tenant.token, &hanging.url, &["order.reserved"]).await;
    endpoint(&app, &tenant.token, &fast.url, &["order.reserved"]).await;
    let started = Instant::now();
    let mut expected = Vec::new();
    for n in 0..3 {
        expected.push(record(&app, EventType::OrderReserved, &[tenant.org_id], json!({"n": n})).await.to_string());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    expected.sort();
    while fast.event_ids() != expected {
        assert!(started.elapsed() < Duration::from_secs(4), "the fast receiver waited: {:?}", fast.event_ids());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hanging.received().len(), 3, "the hanging receiver was sent each event too");
}

#[tokio::test]
async fn a_placed_order_reaches_its_tenants_and_providers_endpoints() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let (tenant, provider) = (app.caller(Role::Tenant).await, app.caller(Role::Provider).await);
    let (tenant_rx, provider_rx) = (Receiver::start(Mode::Ok).await, Receiver::start(Mode::Ok).await);
    let tenant_secret = endpoint(&app, &tenant.token, &tenant_rx.url, &["order.reserved"]).await.secret;
    let provider_secret = endpoint(&app, &provider.token, &provider_rx.url, &["order.reserved"]).await.secret;
    crate::market::deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = crate::helpers::next_hour(&app, &finance).await;
    let listing = crate::market::listing(&app, &provider.token, 2, "1000", start, 10).await;
    let order: OrderView =
        app.post_as("/v1/orders", &tenant.token, &crate::market::order_body(&listing, 1, start, 2), None, 201).await;

    deliver(&app, &config(Duration::from_secs(5)), Utc::now(), 2).await;
    let now = Utc::now().timestamp();
    for (rx, secret) in [(&tenant_rx, &tenant_secret), (&provider_rx, &provider_secret)] {
        let [r] = rx.received().try_into().expect("one delivery each");
        assert!(signing::verify(&r.signature, &r.body, secret, now, 60));
        // The body as sent, which no view of the crate's describes; its data is the order's view.
        let body: Value = serde_json::from_slice(&r.body).expect("JSON");
        let sent: OrderView = serde_json::from_value(body["data"].clone()).expect("an OrderView");
        assert_eq!((&body["type"], sent.id), (&json!("order.reserved"), order.id), "{body:#}");
    }
}
