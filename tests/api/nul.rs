//! A NUL character anywhere in the input is a 422 naming the field, never a
//! 500 (issue 8, defect 4): PostgreSQL's text cannot hold it, so it is refused
//! where input is parsed — bodies and query strings alike.

use gpuhour::auth::Role;
use serde_json::json;

use crate::helpers::{expect_problem, spawn_app};

#[tokio::test]
async fn a_nul_character_is_refused_where_input_is_parsed() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let tenant = app.caller(Role::Tenant).await;
    let no_token = "";
    let bodies = [
        ("/v1/auth/token", no_token, json!({"email": "a\u{0}b@x.com", "password": "whatever-long-enough"}), "email"),
        (
            "/v1/auth/signup",
            no_token,
            json!({"org_name": "Evil\u{0}Corp", "org_kind": "tenant", "org_category": "sme",
                "email": "nul@x.example", "password": "correct horse battery"}),
            "org_name",
        ),
        (
            "/v1/deposits",
            finance.as_str(),
            json!({"tenant_org_id": tenant.org_id, "amount": "1000", "currency": "KRW", "reference": "wire\u{0}"}),
            "reference",
        ),
        (
            "/v1/journal-entries",
            finance.as_str(),
            json!({"memo": "fix\u{0}", "currency": "KRW",
                "postings": [{"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "1"}]}),
            "memo",
        ),
    ];
    for (path, token, body, field) in bodies {
        let problem = expect_problem(app.post(path, token, &body, None).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem:#}");
    }
    for (path, field) in [
        ("/v1/listings?gpu_model=%00", "gpu_model"),
        ("/v1/accounts?code=%00", "code"),
        ("/v1/audit-log?route=%00", "route"),
    ] {
        let problem = expect_problem(app.get(path, &finance).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem:#}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries").await, 0);
}
