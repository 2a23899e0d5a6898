//! `Idempotency-Key`: one effect, identical answers, under races and restarts.

use futures::future::join_all;
use gpuhour::auth::Role;
use serde_json::json;

use crate::helpers::{expect_problem, settings_for, spawn_app, start};

const ENTRIES: &str = "SELECT count(*) AS n FROM journal_entries";

fn body(amount: &str) -> serde_json::Value {
    json!({"memo": "wire 4471", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": amount}]})
}

#[tokio::test]
async fn ten_concurrent_posts_with_one_key_make_one_entry_and_ten_identical_answers() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let payload = body("5000");
    let requests = (0..10).map(|_| app.post("/v1/journal-entries", &finance, &payload, Some("wire-4471")));
    let mut answers = Vec::new();
    for response in join_all(requests).await {
        answers.push((response.status().as_u16(), response.text().await.expect("body")));
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:#?}");
    assert_eq!(answers[0].0, 201);
    assert_eq!(app.count(ENTRIES).await, 1);
    assert_eq!(app.count("SELECT count(*) AS n FROM idempotency_keys").await, 1);
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_refused() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    assert_eq!(app.post("/v1/journal-entries", &finance, &body("100"), Some("k-1")).await.status(), 201);
    let response = app.post("/v1/journal-entries", &finance, &body("101"), Some("k-1")).await;
    expect_problem(response, 422, "idempotency_key_reused").await;
    // Another route with the same key is another request too.
    let response = app.post("/v1/sandbox/clock", &finance, &json!({"now": "2099-01-01T00:00:00Z"}), Some("k-1")).await;
    expect_problem(response, 422, "idempotency_key_reused").await;
    assert_eq!(app.count(ENTRIES).await, 1);
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let app = spawn_app().await;
    let (alice, bob) = (app.token(Role::Finance).await, app.token(Role::Finance).await);
    let first = app.post("/v1/journal-entries", &alice, &body("100"), Some("shared")).await;
    let second = app.post("/v1/journal-entries", &bob, &body("100"), Some("shared")).await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (201, 201));
    assert_ne!(first.text().await.expect("a"), second.text().await.expect("b"));
    assert_eq!(app.count(ENTRIES).await, 2);
}

#[tokio::test]
async fn a_retry_after_a_restart_gets_the_first_answer() {
    let first_app = spawn_app().await;
    let finance = first_app.token(Role::Finance).await;
    let first = first_app.post("/v1/journal-entries", &finance, &body("777"), Some("after-restart")).await;
    let first = (first.status(), first.text().await.expect("body"));

    // A new process on the same database, as after a crash or a deploy.
    let second_app = start(settings_for(&first_app.database_url)).await;
    let retry = second_app.post("/v1/journal-entries", &finance, &body("777"), Some("after-restart")).await;
    assert_eq!(retry.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!((retry.status(), retry.text().await.expect("body")), first);
    assert_eq!(second_app.count(ENTRIES).await, 1);
}

#[tokio::test]
async fn a_failed_request_stores_nothing_and_may_be_retried() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let bad = json!({"memo": "x", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "no:such", "amount": "1"}]});
    expect_problem(app.post("/v1/journal-entries", &finance, &bad, Some("k-fail")).await, 422, "validation_failed")
        .await;
    assert_eq!(app.count("SELECT count(*) AS n FROM idempotency_keys").await, 0);
    let response = app.post("/v1/journal-entries", &finance, &body("5"), Some("k-fail")).await;
    assert_eq!(response.status(), 201, "the key was not consumed by the failure");
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let long = "k".repeat(256);
    for key in [long.as_str(), "has space"] {
        let response = app.post("/v1/journal-entries", &finance, &body("5"), Some(key)).await;
        let problem = expect_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    }
    assert_eq!(app.count(ENTRIES).await, 0);
}
