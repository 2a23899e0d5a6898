//! Health, readiness, metrics, the API document, start-up rules and the sandbox clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gpuhour::auth::Role;
use gpuhour::startup::{Application, StartupError};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{expect_problem, fresh_database, json, settings_for, spawn_app, spawn_app_with, start};

#[tokio::test]
async fn health_metrics_and_docs_are_served() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"), "every response carries its request id");
    assert_eq!(app.client.get(app.url("/readyz")).send().await.expect("readyz").status(), 200);

    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.lines().any(|l| l.starts_with("gpuhour_http_requests_total{")
            && l.contains(r#"endpoint="/healthz""#)
            && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(metrics.contains("gpuhour_http_requests_duration_seconds_bucket"), "{metrics}");

    let (status, doc) = json(app.client.get(app.url("/openapi.json")).send().await.expect("openapi")).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    for path in ["/v1/accounts", "/v1/accounts/{id}/postings", "/v1/reports/trial-balance", "/v1/ledger/verify"] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let page = app.client.get(app.url("/docs/")).send().await.expect("docs");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "the docs page is Swagger UI served locally");
    let script = app.client.get(app.url("/docs/swagger-ui-bundle.js")).send().await.expect("bundle");
    assert_eq!(script.status(), 200, "Swagger UI's assets are vendored, not fetched from the internet");
}

#[tokio::test]
async fn unknown_routes_are_problems() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/nothing-here")).send().await.expect("request");
    expect_problem(response, 404, "not_found").await;
    let response = app.client.delete(app.url("/v1/accounts")).send().await.expect("request");
    expect_problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn refuses_to_start_without_a_signing_key_outside_sandbox() {
    let database = fresh_database().await;
    let mut settings = settings_for(&database.url);
    settings.sandbox = false;
    settings.jwt_secret = None;
    assert!(matches!(Application::build(settings).await, Err(StartupError::MissingSecret)));
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore.
struct Switch {
    port: u16,
    up: Arc<AtomicBool>,
}

async fn proxy_to(target: String) -> Switch {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { return };
            if !flag.load(Ordering::SeqCst) {
                continue; // dropped: connection refused in effect
            }
            let target = target.clone();
            let flag = flag.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                let cut = async {
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! { _ = copy => {}, _ = cut => {} }
            });
        }
    });
    Switch { port, up }
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_away_and_recovers() {
    let database = fresh_database().await;
    let direct = url::Url::parse(&database.url).expect("url");
    let target = format!("{}:{}", direct.host_str().expect("host"), direct.port().unwrap_or(5432));
    let switch = proxy_to(target).await;
    let mut proxied = direct.clone();
    proxied.set_port(Some(switch.port)).expect("port");
    let mut settings = settings_for(proxied.as_str());
    settings.pool_size = 2;
    let app = start(settings).await;
    let _keep = &database;
    let finance = app.token(Role::Finance).await;

    assert_eq!(app.client.get(app.url("/readyz")).send().await.expect("readyz").status(), 200);
    switch.up.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.client.get(app.url("/readyz")).send().await.expect("readyz").status(), 503);
    assert_eq!(app.client.get(app.url("/healthz")).send().await.expect("healthz").status(), 200);
    let response = app.get("/v1/accounts", &finance).await;
    expect_problem(response, 503, "service_unavailable").await;

    switch.up.store(true, Ordering::SeqCst);
    let mut ready = false;
    for _ in 0..50 {
        if app.client.get(app.url("/readyz")).send().await.expect("readyz").status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "readyz recovers when the database is back");
    assert_eq!(app.get("/v1/accounts", &finance).await.status(), 200);
}

#[tokio::test]
async fn the_sandbox_clock_moves_forward_only() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let (_, now) = json(app.get("/v1/sandbox/clock", &finance).await).await;
    let start: chrono::DateTime<chrono::Utc> = now["now"].as_str().expect("now").parse().expect("instant");
    let later = start + chrono::Duration::hours(5);
    let (status, moved) = json(app.post("/v1/sandbox/clock", &finance, &json!({"now": later}), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(moved["now"].as_str().expect("now").parse::<chrono::DateTime<chrono::Utc>>().expect("t"), later);

    let response = app.post("/v1/sandbox/clock", &finance, &json!({"now": start}), None).await;
    expect_problem(response, 422, "validation_failed").await;
    let response = app.post("/v1/sandbox/clock", &app.token(Role::Tenant).await, &json!({"now": later}), None).await;
    expect_problem(response, 403, "forbidden").await;

    // Entries take their effective time from the sandbox clock.
    let entry = crate::ledger_entries::adjust(&app, &finance, "100").await;
    assert_eq!(entry["effective_at"].as_str().expect("t").parse::<chrono::DateTime<chrono::Utc>>().expect("t"), later);
}

#[tokio::test]
async fn without_sandbox_mode_the_clock_route_does_not_exist() {
    let app = spawn_app_with(|s| s.sandbox = false).await;
    let finance = app.token(Role::Finance).await;
    let response = app.post("/v1/sandbox/clock", &finance, &json!({"now": "2030-01-01T00:00:00Z"}), None).await;
    expect_problem(response, 404, "not_found").await;
}
