//! Identity and access: sign-up, tokens, roles, object-level checks, throttling
//! and the audit log — each attack a test that fails if its defence goes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gpuhour::auth::Role;
use gpuhour::auth::token::{AUDIENCE, Claims, ISSUER};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TEST_SECRET, TestApp, expect_problem, json, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery staple";

async fn signup(app: &TestApp, kind: &str, category: Option<&str>, email: &str) -> Value {
    let mut body = json!({"org_name": format!("{kind} co"), "org_kind": kind, "email": email, "password": PASSWORD});
    if let Some(c) = category {
        body["org_category"] = json!(c);
    }
    let response = app.client.post(app.url("/v1/auth/signup")).json(&body).send().await.expect("signup");
    let (status, user) = json(response).await;
    assert_eq!(status, 201, "{user:#}");
    user
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("token request")
}

async fn token_for(app: &TestApp, email: &str) -> String {
    let (status, body) = json(login(app, email, PASSWORD).await).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    body["access_token"].as_str().expect("token").to_string()
}

fn sign(claims: &Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("sign")
}

fn claims(user: Uuid, org: Uuid, role: Role, exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims { sub: user, org, role, iss: ISSUER.into(), aud: AUDIENCE.into(), iat: now, exp: now + exp_offset }
}

#[tokio::test]
async fn a_tenant_signs_up_logs_in_and_sees_its_wallets() {
    let app = spawn_app().await;
    let user = signup(&app, "tenant", Some("university"), "Ana@Lab.example").await;
    assert_eq!((user["email"].as_str(), user["role"].as_str()), (Some("ana@lab.example"), Some("tenant")));
    assert_eq!((user["org_kind"].as_str(), user["org_category"].as_str()), (Some("tenant"), Some("university")));
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let token = token_for(&app, "ana@lab.example").await;
    let (status, me) = json(app.get("/v1/me", &token).await).await;
    assert_eq!(status, 200);
    assert_eq!(me["user_id"], user["id"]);
    assert_eq!(me["org_id"], user["org_id"]);
    assert_eq!(me["org_kind"], "tenant");
    let wallets: Vec<(&str, &str, &str)> = me["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            (a["code"].as_str().expect("c"), a["currency"].as_str().expect("cur"), a["available"].as_str().expect("a"))
        })
        .collect();
    let code = format!("liabilities:tenant:{}:wallet", user["org_id"].as_str().expect("org"));
    assert_eq!(
        wallets,
        vec![
            (code.as_str(), "EUR", "0.00"),
            (code.as_str(), "JPY", "0"),
            (code.as_str(), "KRW", "0"),
            (code.as_str(), "USD", "0.00")
        ]
    );
}

#[tokio::test]
async fn a_provider_signs_up_with_payables() {
    let app = spawn_app().await;
    signup(&app, "provider", None, "ops@dc.example").await;
    let token = token_for(&app, "ops@dc.example").await;
    let (_, me) = json(app.get("/v1/me", &token).await).await;
    assert_eq!(me["role"], "provider");
    let accounts = me["accounts"].as_array().expect("accounts");
    // Per currency: what the operator owes it, and what it may owe back.
    assert_eq!(accounts.len(), 8);
    let ends = |suffix: &str| accounts.iter().filter(|a| a["code"].as_str().expect("c").ends_with(suffix)).count();
    assert_eq!((ends(":payable"), ends(":receivable")), (4, 4));
}

#[tokio::test]
async fn signup_refuses_bad_input_and_writes_nothing() {
    let app = spawn_app().await;
    signup(&app, "tenant", Some("sme"), "taken@x.example").await;
    let orgs = app.count("SELECT count(*) AS n FROM organisations").await;
    let cases = [
        (
            json!({"org_name": "A", "org_kind": "tenant", "org_category": "sme", "email": "a@x.example", "password": "short"}),
            "password",
        ),
        (
            json!({"org_name": "A", "org_kind": "tenant", "org_category": "sme", "email": "TAKEN@x.example", "password": PASSWORD}),
            "email",
        ),
        (json!({"org_name": "A", "org_kind": "bank", "email": "b@x.example", "password": PASSWORD}), "org_kind"),
        (json!({"org_name": "A", "org_kind": "operator", "email": "b@x.example", "password": PASSWORD}), "org_kind"),
        (json!({"org_name": "A", "org_kind": "tenant", "email": "c@x.example", "password": PASSWORD}), "org_category"),
        (
            json!({"org_name": "A", "org_kind": "tenant", "org_category": "hedge_fund", "email": "c@x.example", "password": PASSWORD}),
            "org_category",
        ),
        (
            json!({"org_name": "A", "org_kind": "provider", "org_category": "sme", "email": "d@x.example", "password": PASSWORD}),
            "org_category",
        ),
        (json!({"org_name": " ", "org_kind": "provider", "email": "e@x.example", "password": PASSWORD}), "org_name"),
        (json!({"org_name": "A", "org_kind": "provider", "email": "not-an-email", "password": PASSWORD}), "email"),
    ];
    for (body, field) in cases {
        let response = app.client.post(app.url("/v1/auth/signup")).json(&body).send().await.expect("signup");
        let problem = expect_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem:#}");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM organisations").await, orgs);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    signup(&app, "tenant", Some("sme"), "real@x.example").await;
    let wrong = expect_problem(login(&app, "real@x.example", "not the password!").await, 401, "unauthorized").await;
    let unknown = expect_problem(login(&app, "ghost@x.example", "not the password!").await, 401, "unauthorized").await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn the_eleventh_failed_login_in_a_row_is_refused_with_429() {
    let app = spawn_app().await;
    signup(&app, "tenant", Some("sme"), "victim@x.example").await;
    for attempt in 1..=10 {
        let response = login(&app, "victim@x.example", &format!("guess number {attempt}")).await;
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let response = login(&app, "victim@x.example", "guess number 11").await;
    let retry_after: i64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    expect_problem(response, 429, "too_many_requests").await;
    // Even the right password waits out the block.
    expect_problem(login(&app, "victim@x.example", PASSWORD).await, 429, "too_many_requests").await;
    // Another account is not blocked by it.
    signup(&app, "tenant", Some("sme"), "bystander@x.example").await;
    token_for(&app, "bystander@x.example").await;
}

/// A client whose requests come from `ip` (any 127.0.0.0/8 address reaches
/// the server over loopback), so tests can play several client addresses.
fn client_from(ip: &str) -> reqwest::Client {
    let ip: std::net::IpAddr = ip.parse().expect("ip");
    reqwest::Client::builder().local_address(ip).build().expect("client")
}

async fn login_from(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> reqwest::Response {
    client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("token request")
}

/// The statuses of `attempts` logins sent all at once, counted by status.
async fn concurrent_logins(
    app: &TestApp,
    client: &reqwest::Client,
    attempts: Vec<(String, String)>,
) -> std::collections::BTreeMap<u16, usize> {
    let responses =
        futures::future::join_all(attempts.iter().map(|(email, password)| login_from(app, client, email, password)))
            .await;
    let mut counts = std::collections::BTreeMap::new();
    for response in responses {
        *counts.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    counts
}

fn guesses(email: &str, n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (email.to_string(), format!("wrong guess number {i}"))).collect()
}

/// The check and the count of an attempt are one atomic step: forty guesses
/// sent at once get exactly the limit's ten password checks (they all got
/// one: 40 × 401, no 429).
#[tokio::test]
async fn forty_concurrent_wrong_passwords_get_ten_401s_then_429s() {
    let app = spawn_app().await;
    signup(&app, "tenant", Some("sme"), "target@x.example").await;
    let counts = concurrent_logins(&app, &app.client, guesses("target@x.example", 40)).await;
    assert_eq!(counts, [(401, 10), (429, 30)].into());
    let attempts = "SELECT attempts::bigint AS n FROM login_throttle WHERE subject = 'pair:target@x.example|127.0.0.1'";
    assert_eq!(app.count(attempts).await, 10, "refused attempts are not counted");
}

/// 99 guesses at once, then the right password: from the guessing address it
/// waits out the block (the 99 got 99 password checks and the right one a
/// token); from another address it is not locked out at all.
#[tokio::test]
async fn ninety_nine_concurrent_guesses_lock_out_their_own_address_only() {
    let app = spawn_app().await;
    signup(&app, "tenant", Some("sme"), "target@x.example").await;
    let attacker = client_from("127.0.0.7");
    let counts = concurrent_logins(&app, &attacker, guesses("target@x.example", 99)).await;
    assert_eq!(counts, [(401, 10), (429, 89)].into());
    let response = login_from(&app, &attacker, "target@x.example", PASSWORD).await;
    let retry_after: i64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_problem(response, 429, "too_many_requests").await;
    let (status, body) = json(login_from(&app, &client_from("127.0.0.8"), "target@x.example", PASSWORD).await).await;
    assert_eq!(status, 200, "the victim, elsewhere, is not locked out: {body:#}");
}

/// Guesses spread over many addresses: past the email's limit every address
/// it has not logged in from is refused, while the user's own known address
/// still gets in with the right password.
#[tokio::test]
async fn a_spray_from_many_addresses_spares_an_address_the_user_logged_in_from() {
    let app = spawn_app().await;
    signup(&app, "tenant", Some("sme"), "target@x.example").await;
    let home = client_from("127.0.0.2");
    assert_eq!(login_from(&app, &home, "target@x.example", PASSWORD).await.status(), 200);

    let sprayers: Vec<reqwest::Client> = (10..15).map(|i| client_from(&format!("127.0.0.{i}"))).collect();
    let sprays = sprayers.iter().map(|c| concurrent_logins(&app, c, guesses("target@x.example", 10)));
    for counts in futures::future::join_all(sprays).await {
        assert_eq!(counts, [(401, 10)].into(), "each address stays within its own limit");
    }
    let stranger = client_from("127.0.0.20");
    expect_problem(login_from(&app, &stranger, "target@x.example", PASSWORD).await, 429, "too_many_requests").await;
    assert_eq!(login_from(&app, &home, "target@x.example", PASSWORD).await.status(), 200);
}

/// One address failing for a hundred emails blocks that address — but not the
/// administrator who has logged in from it before (100 failures from one
/// address locked the admin out for ten minutes).
#[tokio::test]
async fn a_noisy_address_does_not_lock_out_a_user_who_logs_in_from_it() {
    const ADMIN: &str = "root@operator.example";
    let app = spawn_app_with(|s| {
        s.admin_email = Some(ADMIN.into());
        s.admin_password = Some(PASSWORD.into());
    })
    .await;
    signup(&app, "tenant", Some("sme"), "newcomer@x.example").await;
    let office = client_from("127.0.0.30");
    assert_eq!(login_from(&app, &office, ADMIN, PASSWORD).await.status(), 200);

    let spray: Vec<(String, String)> =
        (0..100).map(|i| (format!("user{i}@x.example"), "wrong guess".to_string())).collect();
    assert_eq!(concurrent_logins(&app, &office, spray).await, [(401, 100)].into());
    expect_problem(login_from(&app, &office, "newcomer@x.example", PASSWORD).await, 429, "too_many_requests").await;
    assert_eq!(login_from(&app, &office, ADMIN, PASSWORD).await.status(), 200, "the admin is known here");
}

/// Sign-up answers whether an email is registered: one address may try only
/// so many before it is spaced out with 429.
#[tokio::test]
async fn sign_ups_from_one_address_are_throttled() {
    let app = spawn_app_with(|s| s.signups_per_address = 3).await;
    let client = client_from("127.0.0.40");
    let attempt = |email: &str| {
        let body = json!({"org_name": "Probe", "org_kind": "provider", "email": email, "password": PASSWORD});
        client.post(app.url("/v1/auth/signup")).json(&body).send()
    };
    assert_eq!(attempt("first@x.example").await.expect("signup").status(), 201);
    expect_problem(attempt("first@x.example").await.expect("signup"), 422, "validation_failed").await;
    assert_eq!(attempt("second@x.example").await.expect("signup").status(), 201);
    let response = attempt("first@x.example").await.expect("signup");
    assert!(response.headers().contains_key("retry-after"));
    expect_problem(response, 429, "too_many_requests").await;
    assert_eq!(app.count("SELECT count(*) AS n FROM users WHERE email LIKE '%@x.example'").await, 2);
    // Another address is not affected.
    assert_eq!(
        client_from("127.0.0.41")
            .post(app.url("/v1/auth/signup"))
            .json(&json!({"org_name": "Co", "org_kind": "provider", "email": "third@x.example", "password": PASSWORD}))
            .send()
            .await
            .expect("signup")
            .status(),
        201
    );
}

#[tokio::test]
async fn forged_expired_and_stale_tokens_are_401() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    assert_eq!(app.get("/v1/me", &tenant.token).await.status(), 200);

    // alg: none, no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims(tenant.user_id, tenant.org_id, Role::Tenant, 600)).expect("json"));
    expect_problem(app.get("/v1/me", &format!("{header}.{payload}.")).await, 401, "unauthorized").await;

    // Signed with another key.
    let forged =
        sign(&claims(tenant.user_id, tenant.org_id, Role::Tenant, 600), b"another-secret-another-secret-another");
    expect_problem(app.get("/v1/me", &forged).await, 401, "unauthorized").await;

    // Expired (beyond the five seconds of leeway).
    let expired = sign(&claims(tenant.user_id, tenant.org_id, Role::Tenant, -60), TEST_SECRET.as_bytes());
    expect_problem(app.get("/v1/me", &expired).await, 401, "unauthorized").await;

    // The role claim edited in a real token: the signature no longer matches.
    let mut parts: Vec<String> = tenant.token.split('.').map(String::from).collect();
    let mut body: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("claims");
    body["role"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).expect("json"));
    expect_problem(app.get("/v1/audit-log", &parts.join(".")).await, 401, "unauthorized").await;

    // Validly signed, but the role is not the user's.
    let promoted = sign(&claims(tenant.user_id, tenant.org_id, Role::Finance, 600), TEST_SECRET.as_bytes());
    expect_problem(app.get("/v1/reports/trial-balance", &promoted).await, 401, "unauthorized").await;

    // Another issuer or audience.
    let mut other = claims(tenant.user_id, tenant.org_id, Role::Tenant, 600);
    other.aud = "someone-else".into();
    expect_problem(app.get("/v1/me", &sign(&other, TEST_SECRET.as_bytes())).await, 401, "unauthorized").await;

    // A user that does not exist.
    let ghost = sign(&claims(Uuid::now_v7(), tenant.org_id, Role::Tenant, 600), TEST_SECRET.as_bytes());
    expect_problem(app.get("/v1/me", &ghost).await, 401, "unauthorized").await;

    // A user disabled after the token was issued.
    let admin = app.token(Role::Admin).await;
    let response = app.post(&format!("/v1/users/{}/disable", tenant.user_id), &admin, &json!({}), None).await;
    assert_eq!(response.status(), 200);
    expect_problem(app.get("/v1/me", &tenant.token).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_enabled_user_logs_in_anew_but_their_old_tokens_stay_refused() {
    let app = spawn_app().await;
    let user = signup(&app, "tenant", Some("sme"), "back@lab.example").await;
    let id = user["id"].as_str().expect("id").to_string();
    let enable = format!("/v1/users/{id}/enable");
    let old = token_for(&app, "back@lab.example").await;
    assert_eq!(app.get("/v1/me", &old).await.status(), 200);
    let admin = app.caller(Role::Admin).await;
    let response = app.post(&format!("/v1/users/{id}/disable"), &admin.token, &json!({}), None).await;
    assert_eq!(response.status(), 200);
    expect_problem(app.get("/v1/me", &old).await, 401, "unauthorized").await;
    expect_problem(login(&app, "back@lab.example", PASSWORD).await, 401, "unauthorized").await;

    // Only administrators enable users.
    for role in [Role::Tenant, Role::Provider, Role::Finance] {
        let token = app.token(role).await;
        expect_problem(app.post(&enable, &token, &json!({}), None).await, 403, "forbidden").await;
    }
    let (_, listed) = json(app.get("/v1/users?limit=500", &admin.token).await).await;
    let still = listed["data"].as_array().expect("data").iter().find(|u| u["id"] == json!(id)).cloned();
    assert!(still.is_some_and(|u| u["disabled_at"].is_string()));

    let (status, enabled) = json(app.post(&enable, &admin.token, &json!({}), Some("enable-back")).await).await;
    assert_eq!(status, 200, "{enabled:#}");
    assert_eq!((&enabled["id"], &enabled["disabled_at"]), (&json!(id), &Value::Null));
    // The token issued before the disable stays refused; a fresh login works
    // at once, even within the second of the disable.
    expect_problem(app.get("/v1/me", &old).await, 401, "unauthorized").await;
    let fresh = token_for(&app, "back@lab.example").await;
    let (status, me) = json(app.get("/v1/me", &fresh).await).await;
    assert_eq!((status.as_u16(), &me["user_id"]), (200, &json!(id)));

    // Enabling an enabled user changes nothing, as disabling a disabled one;
    // a key replays its answer.
    let (status, again) = json(app.post(&enable, &admin.token, &json!({}), None).await).await;
    assert_eq!((status.as_u16(), &again["disabled_at"]), (200, &Value::Null));
    let (status, replay) = json(app.post(&enable, &admin.token, &json!({}), Some("enable-back")).await).await;
    assert_eq!((status.as_u16(), &replay), (200, &enabled));
    assert_eq!(app.get("/v1/me", &fresh).await.status(), 200);
    expect_problem(
        app.post(&format!("/v1/users/{}/enable", Uuid::now_v7()), &admin.token, &json!({}), None).await,
        404,
        "not_found",
    )
    .await;
    let not_an_id = app.post("/v1/users/not-a-user/enable", &admin.token, &json!({}), None).await;
    expect_problem(not_an_id, 422, "validation_failed").await;
    let audited = app.count("SELECT count(*) AS n FROM audit_log WHERE route = '/v1/users/{id}/enable'").await;
    assert_eq!(audited, 2, "each enabling that answered 200 is audited, the replay is not");

    // A user whose email was registered again while they were disabled
    // cannot be enabled: two active users would share it.
    let response = app.post(&format!("/v1/users/{id}/disable"), &admin.token, &json!({}), None).await;
    assert_eq!(response.status(), 200);
    signup(&app, "tenant", Some("sme"), "back@lab.example").await;
    expect_problem(app.post(&enable, &admin.token, &json!({}), None).await, 409, "conflict").await;
    expect_problem(app.get("/v1/me", &fresh).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn finance_routes_are_403_for_tenants_and_providers() {
    let app = spawn_app().await;
    for role in [Role::Tenant, Role::Provider] {
        let token = app.token(role).await;
        for path in ["/v1/reports/trial-balance", "/v1/ledger/verify", "/v1/audit-log", "/v1/users"] {
            expect_problem(app.get(path, &token).await, 403, "forbidden").await;
        }
        let adjustment = json!({"memo": "x", "currency": "KRW", "postings": [
            {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "1"}]});
        expect_problem(app.post("/v1/journal-entries", &token, &adjustment, None).await, 403, "forbidden").await;
        let user = json!({"email": "new@x.example", "password": PASSWORD, "role": "finance"});
        expect_problem(app.post("/v1/users", &token, &user, None).await, 403, "forbidden").await;
    }
    // Finance may read reports but not make users.
    let finance = app.token(Role::Finance).await;
    assert_eq!(app.get("/v1/reports/trial-balance", &finance).await.status(), 200);
    let user = json!({"email": "new@x.example", "password": PASSWORD, "role": "finance"});
    expect_problem(app.post("/v1/users", &finance, &user, None).await, 403, "forbidden").await;
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries").await, 0);
}

#[tokio::test]
async fn another_tenants_wallet_and_statement_answer_404() {
    let app = spawn_app().await;
    let (alice, bob) = (app.caller(Role::Tenant).await, app.caller(Role::Tenant).await);
    let (_, me) = json(app.get("/v1/me", &bob.token).await).await;
    let bobs_wallet = me["accounts"][0]["id"].as_str().expect("wallet").to_string();

    assert_eq!(app.get(&format!("/v1/accounts/{bobs_wallet}"), &bob.token).await.status(), 200);
    let theirs =
        expect_problem(app.get(&format!("/v1/accounts/{bobs_wallet}"), &alice.token).await, 404, "not_found").await;
    let missing =
        expect_problem(app.get(&format!("/v1/accounts/{}", Uuid::now_v7()), &alice.token).await, 404, "not_found")
            .await;
    assert_eq!(theirs["title"], missing["title"], "another's wallet looks exactly like no wallet");
    expect_problem(app.get(&format!("/v1/accounts/{bobs_wallet}/postings"), &alice.token).await, 404, "not_found")
        .await;
    let bank = app.account_id("assets:bank", gpuhour::money::Currency::Krw).await;
    expect_problem(app.get(&format!("/v1/accounts/{bank}"), &alice.token).await, 404, "not_found").await;

    // Listing shows one's own accounts only, whatever the filter asks.
    let (_, own) = json(app.get("/v1/accounts", &alice.token).await).await;
    let orgs: Vec<&str> =
        own["data"].as_array().expect("data").iter().map(|a| a["org_id"].as_str().expect("org")).collect();
    assert_eq!(orgs, vec![alice.org_id.to_string(); 4]);
    let (_, other) = json(app.get(&format!("/v1/accounts?org_id={}", bob.org_id), &alice.token).await).await;
    assert_eq!(other["data"], json!([]));
}

#[tokio::test]
async fn the_first_admin_comes_from_the_environment_and_makes_finance_users() {
    let app = spawn_app_with(|s| {
        s.admin_email = Some("root@operator.example".into());
        s.admin_password = Some("an admin password".into());
    })
    .await;
    let (status, body) = json(login(&app, "root@operator.example", "an admin password").await).await;
    assert_eq!(status, 200, "{body:#}");
    let admin = body["access_token"].as_str().expect("token").to_string();
    let (_, me) = json(app.get("/v1/me", &admin).await).await;
    assert_eq!((me["role"].as_str(), me["org_kind"].as_str()), (Some("admin"), Some("operator")));

    let new_user = json!({"email": "fin@operator.example", "password": PASSWORD, "role": "finance"});
    let (status, created) = json(app.post("/v1/users", &admin, &new_user, None).await).await;
    assert_eq!(status, 201, "{created:#}");
    assert_eq!((created["role"].as_str(), created["org_id"].as_str()), (Some("finance"), me["org_id"].as_str()));
    let finance = token_for(&app, "fin@operator.example").await;
    assert_eq!(app.get("/v1/ledger/verify", &finance).await.status(), 200);

    // A tenant user must join a tenant organisation.
    let provider = app.caller(Role::Provider).await;
    let wrong = json!({"email": "t@x.example", "password": PASSWORD, "role": "tenant", "org_id": provider.org_id});
    let problem = expect_problem(app.post("/v1/users", &admin, &wrong, None).await, 422, "validation_failed").await;
    assert_eq!(problem["errors"][0]["field"], "org_id");

    // A second start does not make a second admin.
    let again = crate::helpers::start(crate::helpers::settings_for(&app.database_url)).await;
    drop(again);
    assert_eq!(app.count("SELECT count(*) AS n FROM users WHERE role = 'admin'").await, 1);
}

#[tokio::test]
async fn the_cli_creates_users_with_a_password_from_stdin() {
    use std::io::Write;
    let app = spawn_app().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gpuhour"))
        .args(["admin", "create-user", "--email", "cli@operator.example", "--role", "finance"])
        .env("DATABASE_URL", &app.database_url)
        .env("GPUHOUR_SANDBOX", "1")
        .env_remove("GPUHOUR_NEW_USER_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gpuhour runs");
    child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("write");
    let output = child.wait_with_output().expect("exit");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(created["role"], "finance");
    let token = token_for(&app, "cli@operator.example").await;
    assert_eq!(app.get("/v1/reports/trial-balance", &token).await.status(), 200);
}

#[tokio::test]
async fn every_write_is_in_the_audit_log() {
    let app = spawn_app().await;
    let finance = app.caller(Role::Finance).await;
    let body = json!({"memo": "audit me", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "10"}]});
    let response = app.post("/v1/journal-entries", &finance.token, &body, Some("audit-key")).await;
    let request_id =
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("request id").to_string();
    let (_, entry) = json(response).await;
    // A replay is not a second write.
    app.post("/v1/journal-entries", &finance.token, &body, Some("audit-key")).await;
    signup(&app, "tenant", Some("sme"), "audited@x.example").await;

    let (status, log) =
        json(app.get(&format!("/v1/audit-log?user_id={}", finance.user_id), &finance.token).await).await;
    assert_eq!(status, 200);
    let rows = log["data"].as_array().expect("data");
    assert_eq!(rows.len(), 1, "{log:#}");
    let row = &rows[0];
    assert_eq!(
        (row["method"].as_str(), row["route"].as_str(), row["status"].as_u64(), row["resource_id"].as_str()),
        (Some("POST"), Some("/v1/journal-entries"), Some(201), entry["id"].as_str())
    );
    assert_eq!(row["org_id"], json!(finance.org_id));
    assert_eq!(row["request_id"], json!(request_id));
    assert_eq!(row["idempotency_key"], "audit-key");

    let (_, all) = json(app.get("/v1/audit-log?limit=1", &finance.token).await).await;
    assert_eq!(all["data"][0]["route"], "/v1/auth/signup", "newest first");
    assert_eq!(all["data"][0]["user_id"], Value::Null);
    let cursor = all["next_cursor"].as_str().expect("more");
    let (_, older) = json(app.get(&format!("/v1/audit-log?limit=1&cursor={cursor}"), &finance.token).await).await;
    assert_eq!(older["data"][0]["resource_id"], entry["id"]);

    let mut conn = app.conn().await;
    use diesel_async::RunQueryDsl;
    let err = diesel::sql_query("DELETE FROM audit_log").execute(&mut conn).await.expect_err("append-only");
    assert!(err.to_string().contains("append-only"));
}
