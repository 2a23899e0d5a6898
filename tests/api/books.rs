//! The smaller points of issue 14, item 7: what a careful accountant trips over.
//! Each test failed before its fix.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use gpuhour::audit::routes::AuditEntry;
use gpuhour::auth::Role;
use gpuhour::auth::routes::{Me, OrganisationView, TokenResponse, UserView};
use gpuhour::finance::reports::Statement;
use gpuhour::http::pagination::Page;
use gpuhour::ledger::routes::EntryView;
use gpuhour::ledger::views::AccountView;
use gpuhour::market::views::{OrderView, QuoteView};
use gpuhour::subsidy::claims::ClaimView;
use serde_json::json;

use crate::helpers::{TestApp, expect_problem, json, next_hour, now, read_as, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock, settle};
use crate::subsidy::{grant, programme, with_grant};

fn at(t: DateTime<Utc>) -> String {
    // `+` in a query string is a space: use the `Z` form.
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A submitted claim of 5,603 (one SME order of 7 GPU-hours at 1,000.5, settled); returns its path.
async fn submitted_claim(app: &TestApp, finance: &str) -> String {
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    let start = next_hour(app, finance).await;
    let p = programme(app, finance, "1000000", start).await;
    let g = grant(app, finance, &p, &tenant, "100000", start).await;
    deposit(app, finance, tenant.org_id, "50000").await;
    let l = listing(app, &provider.token, 1, "1000.5", start, 24).await;
    let order: OrderView =
        app.post_as("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start, 7), &g), None, 201).await;
    assert_eq!(order.subsidy, "5603");
    set_clock(app, finance, start + Duration::hours(7)).await;
    settle(app, finance).await;
    let body = json!({"programme_id": p["id"], "period_start": start, "period_end": start + Duration::days(1)});
    let claim: ClaimView = app.post_as("/v1/claims", finance, &body, None, 201).await;
    let path = format!("/v1/claims/{}", claim.id);
    let submitted: ClaimView = app.post_as(&format!("{path}/submit"), finance, &json!({}), None, 200).await;
    assert_eq!((submitted.amount.as_str(), submitted.outstanding.as_str()), ("5603", "5603"));
    path
}

#[tokio::test]
async fn a_bank_reference_already_recorded_is_refused_unless_overridden() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let claim = submitted_claim(&app, &finance).await;
    let payments = format!("{claim}/payments");
    let paid: ClaimView =
        app.post_as(&payments, &finance, &json!({"amount": "4000", "reference": "MSIT-0001"}), None, 201).await;
    assert_eq!(paid.paid, "4000");

    // The same transfer booked again (even spelled in another case) is refused and changes nothing.
    let again = json!({"amount": "1603", "reference": " msit-0001 "});
    let problem = expect_problem(app.post(&payments, &finance, &again, None).await, 409, "duplicate_reference").await;
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("allow_duplicate_reference")), "{problem:#}");
    let unchanged: ClaimView = app.get_as(&claim, &finance).await;
    assert_eq!((unchanged.paid.as_str(), unchanged.outstanding.as_str()), ("4000", "1603"));
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries WHERE kind = 'claim_payment'").await, 1);

    // Another transfer that really carries the same reference: said explicitly,
    // recorded in the entry, audited like every write.
    let overridden = json!({"amount": "1603", "reference": "MSIT-0001", "allow_duplicate_reference": true});
    let paid: ClaimView = app.post_as(&payments, &finance, &overridden, None, 201).await;
    assert_eq!((paid.paid.as_str(), paid.outstanding.as_str()), ("5603", "0"));
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM journal_entries WHERE kind = 'claim_payment' \
             AND metadata @> '{\"duplicate_reference_allowed\": true}'"
        )
        .await,
        1
    );
    let audit: Page<AuditEntry> = app.get_as("/v1/audit-log?route=/v1/claims/{id}/payments", &finance).await;
    assert_eq!(audit.data.len(), 2, "{audit:#?}");
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn an_account_as_of_an_instant_counts_the_postings_before_it() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let tenant = app.caller(Role::Tenant).await;
    let first = now(&app, &finance).await;
    deposit(&app, &finance, tenant.org_id, "1000").await;
    let second = first + Duration::hours(1);
    set_clock(&app, &finance, second).await;
    deposit(&app, &finance, tenant.org_id, "250").await;
    let me: Me = app.get_as("/v1/me", &tenant.token).await;
    let wallet = me.accounts.iter().find(|a| a.currency == "KRW").expect("KRW wallet");
    let wallet = format!("/v1/accounts/{}", wallet.id);

    let figures = |a: &AccountView| (a.credits_posted.clone(), a.balance.clone());
    let current: AccountView = app.get_as(&wallet, &tenant.token).await;
    assert_eq!(figures(&current), ("1250".into(), "1250".into()));
    // "As of T" means before T: the deposit made at T itself is not in it.
    for (instant, expected) in [(first, "0"), (second, "1000"), (second + Duration::microseconds(1), "1250")] {
        let then: AccountView = app.get_as(&format!("{wallet}?as_of={}", at(instant)), &tenant.token).await;
        assert_eq!(figures(&then), (expected.into(), expected.into()), "as of {instant}");
    }

    // A parameter a route does not take is refused, naming it — never ignored.
    let problem = expect_problem(
        app.get(&format!("{wallet}?asof=2026-01-01T00:00:00Z"), &tenant.token).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "asof", "{problem:#}");
    for path in ["/v1/me?as_of=2026-01-01T00:00:00Z", "/v1/ledger/verify?as_of=2026-01-01T00:00:00Z"] {
        let token = if path.starts_with("/v1/me") { &tenant.token } else { &finance };
        let problem = expect_problem(app.get(path, token).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "as_of", "{path}: {problem:#}");
    }
}

#[tokio::test]
async fn a_period_that_ends_before_it_starts_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let (from, to) = (at(start + Duration::hours(2)), at(start));
    for path in [
        format!("/v1/reports/statements/{}?from={from}&to={to}", provider.org_id),
        format!("/v1/exports/journal?from={from}&to={to}"),
        format!("/v1/audit-log?from={from}&to={to}"),
        format!("/v1/orders?from={from}&to={to}"),
        format!("/v1/listings/{}/availability?from={from}&to={to}", l["id"].as_str().expect("id")),
    ] {
        let problem = expect_problem(app.get(&path, &finance).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "from", "{path}: {problem:#}");
    }
    // An empty period is not a backwards one.
    let _: Statement =
        app.get_as(&format!("/v1/reports/statements/{}?from={to}&to={to}", provider.org_id), &finance).await;
}

#[tokio::test]
async fn amounts_in_errors_have_the_currency_precision() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "1000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "243000", start, 24).await;
    let problem = expect_problem(
        app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start, 1), None).await,
        402,
        "insufficient_funds",
    )
    .await;
    assert_eq!(
        problem["detail"],
        format!(
            "account liabilities:tenant:{}:wallet (KRW) would go below its floor: available would be -242000",
            tenant.org_id
        )
    );
}

#[tokio::test]
async fn a_journal_entry_names_its_accounts() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let body = json!({"memo": "opening balance", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "125000"}]});
    let entry: EntryView = app.post_as("/v1/journal-entries", &finance, &body, None, 201).await;
    let fetched: EntryView = app.get_as(&format!("/v1/journal-entries/{}", entry.id), &finance).await;
    let p = &fetched.postings[0];
    assert_eq!(
        (
            p.debit_account_code.as_str(),
            p.debit_account_type.as_str(),
            p.credit_account_code.as_str(),
            p.credit_account_type.as_str()
        ),
        ("assets:bank", "asset", "equity:adjustments", "equity")
    );
    assert_eq!(p.debit_account_id, app.account_id("assets:bank", gpuhour::money::Currency::Krw).await);
}

#[tokio::test]
async fn a_self_declared_category_sets_no_rate_until_finance_confirms_it() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let password = "correct horse battery staple";
    let signup = json!({"org_name": "Self-styled University", "org_kind": "tenant", "org_category": "university",
        "email": "dean@self.example", "password": password});
    let user: UserView =
        read_as(app.client.post(app.url("/v1/auth/signup")).json(&signup).send().await.expect("signup"), 201).await;
    assert_eq!((user.org_category.as_deref(), user.org_category_confirmed), (Some("university"), false));
    let login = json!({"email": "dean@self.example", "password": password});
    let token: TokenResponse =
        read_as(app.client.post(app.url("/v1/auth/token")).json(&login).send().await.expect("login"), 200).await;
    let tenant = crate::helpers::Caller { token: token.access_token, user_id: user.id, org_id: user.org_id };

    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await; // default 0.7, sme 0.8, university 0.9
    let g = grant(&app, &finance, &p, &tenant, "1000000", start).await;
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let quote = async |token: &str| {
        let q: QuoteView =
            app.post_as("/v1/quotes", token, &with_grant(order_body(&l, 1, start, 10), &g), None, 200).await;
        (q.subsidy_rate, q.subsidy)
    };
    // Declared, not confirmed: the programme's default rate, not the university's 90%.
    assert_eq!(quote(&tenant.token).await, ("0.7".into(), "7000".into()));

    // Only finance confirms; the tenant cannot vouch for itself.
    let path = format!("/v1/organisations/{}/category", tenant.org_id);
    expect_problem(app.post(&path, &tenant.token, &json!({"category": "university"}), None).await, 403, "forbidden")
        .await;
    let org: OrganisationView = app.post_as(&path, &finance, &json!({"category": "university"}), None, 200).await;
    assert_eq!((org.category.as_deref(), org.category_confirmed), (Some("university"), true));
    assert_eq!(quote(&tenant.token).await, ("0.9".into(), "9000".into()));
    // Finance may also correct it.
    let corrected: OrganisationView = app.post_as(&path, &finance, &json!({"category": "sme"}), None, 200).await;
    assert_eq!((corrected.category.as_deref(), corrected.category_confirmed), (Some("sme"), true));
    assert_eq!(quote(&tenant.token).await, ("0.8".into(), "8000".into()));
    let me: Me = app.get_as("/v1/me", &tenant.token).await;
    assert_eq!((me.org_category.as_deref(), me.org_category_confirmed), (Some("sme"), true));

    // Every change is in the audit log, pointing at the organisation.
    let audit: Page<AuditEntry> = app.get_as(&format!("/v1/audit-log?resource_id={}", tenant.org_id), &finance).await;
    let routes: Vec<&str> = audit.data.iter().map(|e| e.route.as_str()).collect();
    assert_eq!(routes, vec!["/v1/organisations/{id}/category", "/v1/organisations/{id}/category"]);

    // Providers have no category; an unknown organisation is not found.
    let provider_path = format!("/v1/organisations/{}/category", provider.org_id);
    let problem = expect_problem(
        app.post(&provider_path, &finance, &json!({"category": "sme"}), None).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "category");
    let unknown = format!("/v1/organisations/{}/category", uuid::Uuid::now_v7());
    expect_problem(app.post(&unknown, &finance, &json!({"category": "sme"}), None).await, 404, "not_found").await;
}

#[tokio::test]
async fn the_demo_seeds_through_the_audited_paths() {
    let app = spawn_app().await;
    let settings = crate::helpers::settings_for(&app.database_url);
    let logins = gpuhour::demo::seed(&settings, &app.pool).await.expect("the demo seeds");
    assert!(logins.seeded);

    // Every kind of write the demo makes has the audit record its handler writes, one per write.
    let audited = |route: &str| format!("SELECT count(*) AS n FROM audit_log WHERE route = '{route}'");
    for (route, seeded) in [
        ("/v1/users", "SELECT count(*) AS n FROM users WHERE role = 'finance'"),
        ("/v1/auth/signup", "SELECT count(*) AS n FROM organisations WHERE kind IN ('tenant', 'provider')"),
        ("/v1/deposits", "SELECT count(*) AS n FROM journal_entries WHERE kind = 'deposit'"),
        ("/v1/programmes", "SELECT count(*) AS n FROM programmes"),
        ("/v1/programmes/{id}/grants", "SELECT count(*) AS n FROM grants"),
        ("/v1/listings", "SELECT count(*) AS n FROM listings"),
        ("/v1/orders", "SELECT count(*) AS n FROM orders"),
        ("/v1/orders/{id}/cancel", "SELECT count(*) AS n FROM orders WHERE status = 'cancelled'"),
        ("/v1/listings/{id}/outages", "SELECT count(*) AS n FROM outages"),
        ("/v1/claims", "SELECT count(*) AS n FROM claims"),
        ("/v1/claims/{id}/submit", "SELECT count(*) AS n FROM claims WHERE status = 'submitted'"),
        ("/v1/programmes/{id}/advances", "SELECT count(*) AS n FROM programme_advances"),
        ("/v1/programmes/{id}/settle", "SELECT count(*) AS n FROM programmes WHERE settled_at IS NOT NULL"),
        ("/v1/programmes/{id}/refunds", "SELECT count(*) AS n FROM programme_refunds"),
        ("/v1/bank-statements", "SELECT count(*) AS n FROM bank_statements"),
        ("/v1/periods/{period}/close", "SELECT count(*) AS n FROM closed_periods"),
        ("/v1/payouts", "SELECT count(*) AS n FROM payouts"),
        ("/v1/sandbox/clock", "SELECT 21::bigint AS n"),
        ("/v1/settlements/run", "SELECT 21::bigint AS n"),
    ] {
        let (records, rows) = (app.count(&audited(route)).await, app.count(seeded).await);
        assert!(rows > 0, "the demo seeds {route}");
        assert_eq!(records, rows, "{route}");
    }
    // Each record names who did it and what it made: an order by the tenant who placed it.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM audit_log a JOIN orders o ON o.id = a.resource_id AND o.placed_by = a.user_id \
             WHERE a.route = '/v1/orders' AND a.request_id = 'gpuhour-demo'"
        )
        .await,
        app.count("SELECT count(*) AS n FROM orders").await
    );
    // Finance reads them like any other history.
    let finance = app.token(Role::Finance).await;
    let log: Page<AuditEntry> = app.get_as("/v1/audit-log?route=/v1/payouts", &finance).await;
    assert_eq!(log.data.len(), app.count("SELECT count(*) AS n FROM payouts").await as usize);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn the_new_route_and_fields_are_in_the_openapi_document() {
    let app = spawn_app().await;
    // The OpenAPI document itself, read as JSON: it is no view of the crate's.
    let (status, doc) = json(app.client.get(app.url("/openapi.json")).send().await.expect("openapi")).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/organisations/{id}/category"]["post"].is_object(), "the category route");
    let params: Vec<&str> = doc["paths"]["/v1/accounts/{id}"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, vec!["id", "as_of"]);
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["OrderView"]["properties"]["charged"].is_object(), "{:#}", schemas["OrderView"]);
    for field in ["tenant", "subsidy", "subtotal", "effective_subsidy_rate"] {
        assert!(schemas["ChargedView"]["properties"][field].is_object(), "ChargedView.{field}");
    }
    for field in ["debit_account_code", "credit_account_type"] {
        assert!(schemas["PostingView"]["properties"][field].is_object(), "PostingView.{field}");
    }
    assert!(schemas["PaymentRequest"]["properties"]["allow_duplicate_reference"].is_object());
}

#[tokio::test]
async fn two_payments_racing_with_one_reference_on_two_claims_book_once() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let first = submitted_claim(&app, &finance).await;
    let second = submitted_claim(&app, &finance).await;
    let body = json!({"amount": "100", "reference": "MSIT-RACE"});
    let (a, b) = (format!("{first}/payments"), format!("{second}/payments"));
    let responses =
        futures::future::join_all((0..8).map(|i| app.post(if i % 2 == 0 { &a } else { &b }, &finance, &body, None)))
            .await;
    let mut statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(app.count("SELECT count(*) AS n FROM claim_payments WHERE reference = 'MSIT-RACE'").await, 1);
    verify_is_clean(&app, &finance).await;
}
