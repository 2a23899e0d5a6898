//! Readiness and stuck locks (issue 8, defect 5): `/readyz` answers from a
//! connection of its own while the request pool is busy, and a request stuck
//! behind a row lock fails fast with a clear problem (503 `timeout`,
//! `Retry-After`), writing nothing, instead of holding the pool.

use std::time::{Duration, Instant};

use diesel_async::RunQueryDsl;
use gpuhour::auth::Role;
use gpuhour::money::Currency;
use serde_json::json;

use crate::helpers::{expect_problem, spawn_app_with};

#[tokio::test]
async fn readyz_answers_while_the_request_pool_is_exhausted() {
    let app = spawn_app_with(|s| s.pool_size = 1).await;
    let held = app.pool.get().await.expect("the only connection");
    let started = Instant::now();
    let response = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    drop(held);
}

#[tokio::test]
async fn a_request_stuck_behind_a_row_lock_times_out_cleanly() {
    let app = spawn_app_with(|s| s.session_limits.lock_timeout_ms = 300).await;
    let finance = app.token(Role::Finance).await;
    let tenant = app.caller(Role::Tenant).await;
    let wallet = app.account_id(&format!("liabilities:tenant:{}:wallet", tenant.org_id), Currency::Krw).await;
    // Another session holds the wallet's row.
    let mut other = app.pool.get().await.expect("connection");
    diesel::sql_query("BEGIN").execute(&mut other).await.expect("begin");
    diesel::sql_query(format!("SELECT id FROM accounts WHERE id = '{wallet}' FOR UPDATE"))
        .execute(&mut other)
        .await
        .expect("lock");
    let body = json!({"tenant_org_id": tenant.org_id, "amount": "1000", "currency": "KRW", "reference": "wire-1"});
    let started = Instant::now();
    let response = app.post("/v1/deposits", &finance, &body, None).await;
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    expect_problem(response, 503, "timeout").await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries WHERE kind = 'deposit'").await, 0);
    diesel::sql_query("ROLLBACK").execute(&mut other).await.expect("rollback");
    drop(other);
    assert_eq!(app.post("/v1/deposits", &finance, &body, None).await.status(), 201);
}

#[derive(diesel::QueryableByName)]
struct JitSetting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    jit: String,
}

/// `db::JIT_OFF`: a short lookup whose estimate is stale must not pay for a
/// compilation, so every session the service's pool opens runs without JIT,
/// whatever the server's default.
#[tokio::test]
async fn the_service_s_sessions_run_without_the_jit_compiler() {
    let no_limits = gpuhour::db::SessionLimits::NONE;
    let some_limits = gpuhour::db::SessionLimits { lock_timeout_ms: 300, ..no_limits };
    for limits in [no_limits, some_limits] {
        let app = spawn_app_with(|s| s.session_limits = limits).await;
        let mut conn = app.pool.get().await.expect("connection");
        let setting: JitSetting = diesel::sql_query("SHOW jit").get_result(&mut conn).await.expect("show jit");
        assert_eq!(setting.jit, "off", "{limits:?}");
    }
}
