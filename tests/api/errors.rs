//! Malformed input of every kind gets a precise problem+json 4xx and changes nothing.

use gpuhour::auth::Role;
use serde_json::json;

use crate::helpers::{expect_problem, spawn_app};

const ENTRIES: &str = "SELECT count(*) AS n FROM journal_entries";

#[tokio::test]
async fn malformed_bodies_are_refused_with_the_field_named() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let url = app.url("/v1/journal-entries");
    let send = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&finance).header("content-type", content_type).body(body).send()
    };

    expect_problem(send("{not json", "application/json").await.expect("sent"), 400, "malformed_json").await;
    expect_problem(send("", "application/json").await.expect("sent"), 400, "malformed_json").await;
    expect_problem(send(r#"{"memo": "x"}"#, "text/plain").await.expect("sent"), 415, "unsupported_media_type").await;

    let body = r#"{"memo": "fix", "currency": "KRW", "postings": [{"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": 5}]}"#;
    let problem = expect_problem(send(body, "application/json").await.expect("sent"), 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "postings[0].amount");

    let body = r#"{"memo": "fix", "currency": "XYZ", "postings": []}"#;
    let problem = expect_problem(send(body, "application/json").await.expect("sent"), 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "currency");

    let body = r#"{"memo": "fix", "currency": "KRW", "postings": [], "sneaky": true}"#;
    let problem = expect_problem(send(body, "application/json").await.expect("sent"), 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "sneaky");

    assert_eq!(app.count(ENTRIES).await, 0);
}

#[tokio::test]
async fn invalid_values_list_every_field() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let body = json!({
        "memo": "  ",
        "currency": "KRW",
        "postings": [
            {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "10.5"},
            {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "-3"},
            {"debit_account": "assets:bank", "credit_account": "assets:bank", "amount": "1e9"},
            {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "99999999999999999999999999999999"},
        ]
    });
    let problem =
        expect_problem(app.post("/v1/journal-entries", &finance, &body, None).await, 422, "validation_failed").await;
    let fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().map(|e| e["field"].as_str().expect("field")).collect();
    assert_eq!(
        fields,
        vec![
            "memo",
            "postings[0].amount",
            "postings[1].amount",
            "postings[2].amount",
            "postings[2]",
            "postings[3].amount"
        ]
    );

    let body = json!({"memo": "x", "currency": "USD", "postings": [
        {"debit_account": "assets:bank", "credit_account": "no:such:account", "amount": "1.00"}]});
    let problem =
        expect_problem(app.post("/v1/journal-entries", &finance, &body, None).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "postings[0].credit_account");
    assert_eq!(app.count(ENTRIES).await, 0);
}

#[tokio::test]
async fn bad_paths_and_queries_are_422_not_500() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    for (path, field) in [
        ("/v1/accounts/not-a-uuid", "id"),
        ("/v1/accounts/not-a-uuid/postings", "id"),
        ("/v1/journal-entries/123", "id"),
        ("/v1/accounts?limit=501", "limit"),
        ("/v1/accounts?limit=0", "limit"),
        ("/v1/accounts?limit=ten", "limit"),
        ("/v1/accounts?limit=99999999999999999999999", "limit"),
        ("/v1/accounts?cursor=garbage", "cursor"),
        ("/v1/accounts?currency=XXX", "currency"),
        ("/v1/accounts?type=wallet", "type"),
        ("/v1/accounts?org_id=nope", "org_id"),
        ("/v1/accounts?bogus=1", "bogus"),
        ("/v1/reports/trial-balance?as_of=yesterday", "as_of"),
    ] {
        let problem = expect_problem(app.get(path, &finance).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem:#}");
    }
    let missing = uuid::Uuid::now_v7();
    expect_problem(app.get(&format!("/v1/accounts/{missing}"), &finance).await, 404, "not_found").await;
    expect_problem(app.get(&format!("/v1/journal-entries/{missing}"), &finance).await, 404, "not_found").await;
}

#[tokio::test]
async fn authentication_and_roles_are_checked() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/accounts")).send().await.expect("sent");
    expect_problem(response, 401, "unauthorized").await;
    let response =
        app.client.get(app.url("/v1/accounts")).header("authorization", "Basic abc").send().await.expect("sent");
    expect_problem(response, 401, "unauthorized").await;
    expect_problem(app.get("/v1/accounts", "not.a.jwt").await, 401, "unauthorized").await;
    for role in [Role::Tenant, Role::Provider] {
        let token = app.token(role).await;
        for path in ["/v1/reports/trial-balance", "/v1/ledger/verify", "/v1/audit-log", "/v1/users"] {
            expect_problem(app.get(path, &token).await, 403, "forbidden").await;
        }
        let body = json!({"memo": "x", "currency": "KRW", "postings": []});
        expect_problem(app.post("/v1/journal-entries", &token, &body, None).await, 403, "forbidden").await;
    }
    for role in [Role::Finance, Role::Admin] {
        assert_eq!(app.get("/v1/accounts", &app.token(role).await).await.status(), 200);
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let memo = "x".repeat(100 * 1024);
    let body = json!({"memo": memo, "currency": "KRW", "postings": []});
    expect_problem(app.post("/v1/journal-entries", &finance, &body, None).await, 413, "payload_too_large").await;
}
