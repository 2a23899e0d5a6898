//! The console's provider pages (listings, a listing, earnings) and the
//! administrator's users page, each checked against what the API says happened.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::console_helpers::{Jar, field, get, location, post_form, text};
use crate::helpers::{Caller, TestApp, json, next_hour, spawn_app, spawn_app_with};
use crate::market::{deposit, listing, order_body};

fn seoul_input(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Asia::Seoul).format("%Y-%m-%dT%H:%M").to_string()
}

/// The text inside the first element with class `class` (`<dd class="net">…</dd>`).
fn cell(page: &str, class: &str) -> String {
    let marker = format!("class=\"{class}\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("no {class} in the page:\n{page}"));
    let rest = &page[at..];
    let start = rest.find('>').expect("tag end") + 1;
    let end = rest[start..].find('<').expect("text end");
    rest[start..start + end].to_string()
}

async fn listings_of(app: &TestApp) -> i64 {
    app.count("SELECT count(*) AS n FROM listings").await
}

/// The create form's fields for a listing of 8 H100s at 2,500.5 KRW from `start` for 72 hours.
fn new_listing_fields(csrf: &str, key: &str, start: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", csrf.to_string()),
        ("idempotency_key", key.to_string()),
        ("gpu_model", "H100-SXM5-80GB".into()),
        ("gpu_memory_gb", "80".into()),
        ("gpus", "8".into()),
        ("region", "kr-seoul-1".into()),
        ("interconnect", "NVLink".into()),
        ("price_per_gpu_hour", "2500.5".into()),
        ("currency", "KRW".into()),
        ("available_from", seoul_input(start)),
        ("available_until", seoul_input(start + Duration::hours(72))),
        ("min_hours", "2".into()),
        ("status", "active".into()),
        ("accelerator_kind", "npu".into()),
        ("accelerator_vendor", "Rebellions".into()),
        ("accelerator_model", "ATOM".into()),
        ("board_power_w", "350".into()),
        ("pue", "1.2".into()),
        ("performance_tflops", "128".into()),
    ]
}

fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn a_provider_creates_changes_pauses_resumes_and_closes_a_listing_through_the_forms() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let mut jar = Jar::with_session(&provider.token);

    // The provider's home is its listings.
    let response = get(&app, &mut jar, "/").await;
    assert_eq!(location(&response), "/listings");
    let (status, page) = text(get(&app, &mut jar, "/listings").await).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("href=\"/earnings\""), "{page}");
    let csrf = field(&page, "csrf");
    let key = field(&page, "idempotency_key");

    // A wrong form comes back with its problems and values, and stores nothing.
    let mut wrong = new_listing_fields(&csrf, &key, start);
    wrong[7].1 = "2500.123456789".into();
    wrong[4].1 = "0".into();
    let (status, page) = text(post_form(&app, &mut jar, "/listings", &pairs(&wrong)).await).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("price_per_gpu_hour:") && page.contains("gpus: must be between 1 and 100000"), "{page}");
    assert!(page.contains("value=\"2500.123456789\"") && page.contains("value=\"kr-seoul-1\""), "{page}");
    assert_eq!(listings_of(&app).await, 0);
    // So does a declaration the API refuses (a PUE below 1), its values kept.
    let mut wrong = new_listing_fields(&csrf, &key, start);
    wrong[17].1 = "0.9".into();
    let (status, page) = text(post_form(&app, &mut jar, "/listings", &pairs(&wrong)).await).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("pue:") && page.contains("name=\"pue\" value=\"0.9\""), "{page}");
    assert!(page.contains("<option value=\"npu\" selected>"), "{page}");
    assert_eq!(listings_of(&app).await, 0);

    // The right one creates the listing, once, however often it is sent.
    let fields = new_listing_fields(&csrf, &key, start);
    let response = post_form(&app, &mut jar, "/listings", &pairs(&fields)).await;
    assert_eq!(response.status(), 303);
    let created = location(&response);
    let again = post_form(&app, &mut jar, "/listings", &pairs(&fields)).await;
    assert_eq!((again.status().as_u16(), location(&again)), (303, created.clone()));
    assert_eq!(listings_of(&app).await, 1);
    let id = created.strip_prefix("/listings/").and_then(|r| r.strip_suffix("?created=1")).expect("listing page");
    let (status, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
    assert_eq!(status, 200);
    let expected = json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_memory_gb": 80, "gpus": 8, "region": "kr-seoul-1",
        "interconnect": "NVLink", "price_per_gpu_hour": "2500.5", "currency": "KRW", "min_hours": 2,
        "status": "active", "provider_org_id": provider.org_id,
        "accelerator": {"kind": "npu", "vendor": "Rebellions", "model": "ATOM"},
        "board_power_w": 350, "pue": "1.2", "performance_tflops": "128", "kwh_per_gpu_hour": "0.42",
    });
    for (k, v) in expected.as_object().expect("object") {
        assert_eq!(&stored[k], v, "{k}");
    }
    let instant = |v: &Value| v.as_str().expect("instant").parse::<DateTime<Utc>>().expect("RFC 3339");
    assert_eq!(instant(&stored["available_from"]), start);
    assert_eq!(instant(&stored["available_until"]), start + Duration::hours(72));

    // Listed on its page, with its price as the provider set it.
    let (_, page) = text(get(&app, &mut jar, "/listings").await).await;
    assert!(page.contains(&format!("href=\"/listings/{id}\"")) && page.contains("2,500.5원"), "{page}");

    // Change the price and the GPUs.
    let (status, page) = text(get(&app, &mut jar, &created).await).await;
    assert_eq!(status, 200, "{page}");
    let change =
        [("csrf", csrf.as_str()), ("idempotency_key", "change-1"), ("price_per_gpu_hour", "3000"), ("gpus", "6")];
    let response = post_form(&app, &mut jar, &format!("/listings/{id}/change"), &change).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("/listings/{id}?changed=1")));
    let (_, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
    assert_eq!((stored["price_per_gpu_hour"].as_str(), stored["gpus"].as_i64()), (Some("3000"), Some(6)));
    assert_eq!(stored["min_hours"], 2, "an empty field stays as it is");
    // A change the API refuses is shown on the form.
    let bad = [("csrf", csrf.as_str()), ("idempotency_key", "change-2"), ("min_hours", "0")];
    let (status, page) = text(post_form(&app, &mut jar, &format!("/listings/{id}/change"), &bad).await).await;
    assert_eq!(status, 422);
    assert!(page.contains("min_hours: must be between 1 and 8784"), "{page}");

    // Pause, then resume.
    for (status, key) in [("paused", "pause-1"), ("active", "resume-1")] {
        let form = [("csrf", csrf.as_str()), ("idempotency_key", key), ("status", status)];
        assert_eq!(post_form(&app, &mut jar, &format!("/listings/{id}/change"), &form).await.status(), 303);
        let (_, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
        assert_eq!(stored["status"], status);
    }

    // Closing says what it means, and then it is closed for good.
    let (_, page) = text(get(&app, &mut jar, &format!("/listings/{id}")).await).await;
    assert!(page.contains("되돌릴 수 없습니다"), "{page}");
    let form = [("csrf", csrf.as_str()), ("idempotency_key", "close-1")];
    let response = post_form(&app, &mut jar, &format!("/listings/{id}/close"), &form).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("/listings/{id}?closed=1")));
    let (_, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
    assert_eq!(stored["status"], "closed");
    let (_, page) = text(get(&app, &mut jar, &format!("/listings/{id}")).await).await;
    assert!(!page.contains("/close\"") && !page.contains("/change\""), "no forms on a closed listing: {page}");
    let late = [("csrf", csrf.as_str()), ("idempotency_key", "change-3"), ("price_per_gpu_hour", "1")];
    let (status, page) = text(post_form(&app, &mut jar, &format!("/listings/{id}/change"), &late).await).await;
    assert_eq!(status, 409);
    assert!(page.contains("the listing is closed"), "{page}");
    let (_, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
    assert_eq!(stored["price_per_gpu_hour"], "3000");
    // Every write was audited as the API's are.
    assert_eq!(app.count("SELECT count(*) AS n FROM audit_log WHERE path LIKE '/listings%'").await, 5);
}

#[tokio::test]
async fn an_outage_reported_on_the_form_credits_the_orders_with_exact_amounts() {
    let app = spawn_app_with(|s| s.fee_rate = Decimal::new(5, 2)).await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 8, "2500", start, 72).await;
    let id = l["id"].as_str().expect("id");
    // 2 GPUs × 4 hours × 2,500 = 20,000, of which a 5 % fee of 1,000.
    let (status, order) = json(app.post("/v1/orders", &tenant.token, &order_body(&l, 2, start, 4), None).await).await;
    assert_eq!(status, 201, "{order:#}");
    assert_eq!(order["platform_fee"], "1000");
    let order_id = order["id"].as_str().expect("id");

    let mut jar = Jar::with_session(&provider.token);
    let (status, page) = text(get(&app, &mut jar, &format!("/listings/{id}")).await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (cell(&page, "gross"), cell(&page, "fees"), cell(&page, "net")),
        ("20,000원".into(), "1,000원".into(), "19,000원".into())
    );
    // The utilisation chart shows the 2 GPUs reserved in the order's hours.
    assert!(page.contains("2 예약"), "{page}");
    let csrf = field(&page, "csrf");

    // 1 GPU out for the first 2 hours: 2 of the order's 8 GPU-hours.
    let start_field = seoul_input(start);
    let end_field = seoul_input(start + Duration::hours(2));
    let outage = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", "outage-1"),
        ("start", start_field.as_str()),
        ("end", end_field.as_str()),
        ("gpus", "1"),
    ];
    let response = post_form(&app, &mut jar, &format!("/listings/{id}/outages"), &outage).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("/listings/{id}?outage=1#outages")));
    // Sent twice, recorded once.
    assert_eq!(post_form(&app, &mut jar, &format!("/listings/{id}/outages"), &outage).await.status(), 303);
    assert_eq!(app.count("SELECT count(*) AS n FROM outages").await, 1);

    // The API's order: a quarter of the tenant's 20,000 credited back.
    let (_, after) = json(app.get(&format!("/v1/orders/{order_id}"), &tenant.token).await).await;
    assert_eq!(after["credited_gpu_hours"], 2);
    assert_eq!(
        (after["charged"]["tenant"]["credited"].as_str(), after["charged"]["subtotal"].as_str()),
        (Some("5000"), Some("15000"))
    );

    let (_, page) = text(get(&app, &mut jar, &format!("/listings/{id}?outage=1")).await).await;
    assert_eq!(
        (
            cell(&page, "num to-tenants"),
            cell(&page, "num to-programmes"),
            cell(&page, "num fee-returned"),
            cell(&page, "num loss")
        ),
        ("5,000원".into(), "0원".into(), "250원".into(), "4,750원".into())
    );
    // Revenue after the credit: 15,000 charged, 750 of fee, 14,250 to the provider.
    assert_eq!(
        (cell(&page, "gross"), cell(&page, "fees"), cell(&page, "net")),
        ("15,000원".into(), "750원".into(), "14,250원".into())
    );

    // A mangled chart link shows the default hours.
    assert_eq!(get(&app, &mut jar, &format!("/listings/{id}?from=yesterday")).await.status(), 200);

    // An outage the API refuses is shown on its form, and records nothing.
    let too_many = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", "outage-2"),
        ("start", start_field.as_str()),
        ("end", end_field.as_str()),
        ("gpus", "9"),
    ];
    let (status, page) = text(post_form(&app, &mut jar, &format!("/listings/{id}/outages"), &too_many).await).await;
    assert_eq!(status, 422);
    assert!(page.contains("gpus: the listing has 8 GPUs"), "{page}");
    assert_eq!(app.count("SELECT count(*) AS n FROM outages").await, 1);
}

#[tokio::test]
async fn the_earnings_page_shows_the_apis_figures_exactly() {
    let app = spawn_app().await;
    let s = crate::payouts::subsidised_market(&app).await;
    // Pay the tenant's share out: 2,000 of the 10,000 payable.
    let body = json!({"provider_org_id": s.provider.org_id, "amount": "2000", "currency": "KRW", "reference": "P-1"});
    let (status, payout) = json(app.post("/v1/payouts", &s.finance, &body, None).await).await;
    assert_eq!(status, 201, "{payout:#}");
    let (status, statement) =
        json(app.get(&format!("/v1/reports/statements/{}?currency=KRW", s.provider.org_id), &s.finance).await).await;
    assert_eq!(status, 200);
    let payable = &statement["sections"][0];
    assert_eq!((payable["section"].as_str(), payable["closing_balance"].as_str()), (Some("payable"), Some("8000")));
    let position = &statement["payout_positions"][0];
    assert_eq!(position["payable_now"], "0");

    let mut jar = Jar::with_session(&s.provider.token);
    let (status, page) = text(get(&app, &mut jar, "/earnings").await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(cell(&page, "payable"), "8,000원");
    assert_eq!(cell(&page, "pending"), "0원");
    assert_eq!(cell(&page, "paid-out"), "2,000원");
    assert_eq!(cell(&page, "payable-now"), "0원");
    assert!(page.contains("P-1"), "the payout is listed: {page}");
    // The statement: each line of the API's with its running balance, ending at the closing balance.
    for line in payable["lines"].as_array().expect("lines") {
        let balance = line["balance"].as_str().expect("balance");
        let shown = gpuhour::console::money::format_money(
            balance.parse().expect("amount"),
            gpuhour::money::Currency::Krw,
            gpuhour::console::Lang::Ko,
        );
        assert!(page.contains(&format!("<td class=\"num\">{shown}</td>")), "{shown}: {page}");
    }
    assert!(page.contains("<strong>8,000원</strong>"), "{page}");

    // A mangled page link still shows the page, from its first line.
    let (status, first) = text(get(&app, &mut jar, "/earnings?line=many&currency=XXX").await).await;
    assert_eq!(status, 200);
    assert!(first.contains("<strong>8,000원</strong>"), "{first}");

    // A tenant has no earnings page.
    let mut theirs = Jar::with_session(&s.tenant.token);
    assert_eq!(get(&app, &mut theirs, "/earnings").await.status(), 403);
}

#[tokio::test]
async fn a_provider_form_without_its_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let mut jar = Jar::with_session(&provider.token);
    let fields = new_listing_fields("", "key-1", start);
    let without: Vec<_> = pairs(&fields).into_iter().filter(|(k, _)| *k != "csrf").collect();
    let (status, page) = text(post_form(&app, &mut jar, "/listings", &without).await).await;
    assert_eq!(status, 403);
    assert!(page.contains("role=\"alert\""), "{page}");
    let other = app.caller(Role::Provider).await;
    let theirs = app.keys.form_token(&other.token);
    let mut forged = without.clone();
    forged.push(("csrf", &theirs));
    assert_eq!(post_form(&app, &mut jar, "/listings", &forged).await.status(), 403);
    assert_eq!(listings_of(&app).await, 0);

    let l = listing(&app, &provider.token, 4, "1000", start, 24).await;
    let id = l["id"].as_str().expect("id");
    let close = [("idempotency_key", "close-1")];
    assert_eq!(post_form(&app, &mut jar, &format!("/listings/{id}/close"), &close).await.status(), 403);
    let (_, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
    assert_eq!(stored["status"], "active");
}

#[tokio::test]
async fn another_providers_listing_is_not_found_and_a_tenant_is_refused() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 4, "1000", start, 24).await;
    let id = l["id"].as_str().expect("id");
    let mut own = Jar::with_session(&provider.token);
    assert_eq!(get(&app, &mut own, &format!("/listings/{id}")).await.status(), 200);

    let stranger = app.caller(Role::Provider).await;
    let mut theirs = Jar::with_session(&stranger.token);
    let (status, page) = text(get(&app, &mut theirs, &format!("/listings/{id}")).await).await;
    assert_eq!(status, 404);
    assert!(!page.contains(id), "{page}");
    let (_, list) = text(get(&app, &mut theirs, "/listings").await).await;
    assert!(!list.contains(id), "{list}");
    let csrf = app.keys.form_token(&stranger.token);
    let start_field = seoul_input(start);
    let end_field = seoul_input(start + Duration::hours(1));
    for (path, fields) in [
        (format!("/listings/{id}/change"), vec![("csrf", csrf.as_str()), ("status", "paused")]),
        (format!("/listings/{id}/close"), vec![("csrf", csrf.as_str())]),
        (
            format!("/listings/{id}/outages"),
            vec![("csrf", csrf.as_str()), ("start", start_field.as_str()), ("end", end_field.as_str()), ("gpus", "1")],
        ),
    ] {
        assert_eq!(post_form(&app, &mut theirs, &path, &fields).await.status(), 404, "{path}");
    }
    let (_, stored) = json(app.get(&format!("/v1/listings/{id}"), &provider.token).await).await;
    assert_eq!(stored["status"], "active");
    assert_eq!(app.count("SELECT count(*) AS n FROM outages").await, 0);

    // A tenant is refused the provider's pages; an anonymous visitor is sent to sign in.
    let tenant = app.caller(Role::Tenant).await;
    let mut tenant_jar = Jar::with_session(&tenant.token);
    for path in ["/listings", &format!("/listings/{id}"), "/earnings", "/users"] {
        assert_eq!(get(&app, &mut tenant_jar, path).await.status(), 403, "{path}");
    }
    let response = get(&app, &mut Jar::default(), "/listings").await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, "/login?next=%2Flistings".to_string()));
}

async fn token_for(app: &TestApp, email: &str, password: &str) -> StatusCode {
    let body = json!({"email": email, "password": password});
    app.client.post(app.url("/v1/auth/token")).json(&body).send().await.expect("token").status()
}

#[tokio::test]
async fn an_administrator_creates_and_disables_a_user_who_then_cannot_log_in() {
    let app = spawn_app().await;
    let admin = app.caller(Role::Admin).await;
    let tenant: Caller = app.caller(Role::Tenant).await;
    let mut jar = Jar::with_session(&admin.token);
    assert_eq!(location(&get(&app, &mut jar, "/").await), "/users");
    let (status, page) = text(get(&app, &mut jar, "/users").await).await;
    assert_eq!(status, 200, "{page}");
    let csrf = field(&page, "csrf");
    let key = field(&page, "idempotency_key");
    let org = tenant.org_id.to_string();
    let users_before = app.count("SELECT count(*) AS n FROM users").await;

    // A short password is refused by the API's rule, on the form.
    let short = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", "with-a-short-password"),
        ("email", "mina@lab.example"),
        ("password", "short"),
        ("role", "tenant"),
        ("org_id", org.as_str()),
    ];
    let (status, page) = text(post_form(&app, &mut jar, "/users", &short).await).await;
    assert_eq!(status, 422);
    assert!(page.contains("password:") && page.contains("value=\"mina@lab.example\""), "{page}");
    assert!(!page.contains("value=\"short\""), "the password is not sent back");
    // A tenant user cannot join the operator.
    let operator = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", "operator"),
        ("email", "mina@lab.example"),
        ("password", "a long enough password"),
        ("role", "tenant"),
        ("org_id", ""),
    ];
    let (status, page) = text(post_form(&app, &mut jar, "/users", &operator).await).await;
    assert_eq!(status, 422);
    assert!(page.contains("org_id: is required for tenant and provider users"), "{page}");
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, users_before);

    let good = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("email", "mina@lab.example"),
        ("password", "a long enough password"),
        ("role", "tenant"),
        ("org_id", org.as_str()),
    ];
    let response = post_form(&app, &mut jar, "/users", &good).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, "/users?created=1".to_string()));
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, users_before + 1);
    assert_eq!(token_for(&app, "mina@lab.example", "a long enough password").await, 200);
    let (status, users) = json(app.get("/v1/users?limit=500", &admin.token).await).await;
    assert_eq!(status, 200);
    let mina = users["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|u| u["email"] == "mina@lab.example")
        .cloned()
        .expect("mina");
    assert_eq!((mina["role"].as_str(), mina["org_id"].as_str()), (Some("tenant"), Some(org.as_str())));
    let mina_id = mina["id"].as_str().expect("id");

    let (_, page) = text(get(&app, &mut jar, "/users").await).await;
    assert!(page.contains(&format!("href=\"/users/{mina_id}/disable\"")), "{page}");
    // Disabling asks first, saying what it means.
    let (status, page) = text(get(&app, &mut jar, &format!("/users/{mina_id}/disable")).await).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("action=\"/users/{mina_id}/disable\"")) && page.contains("mina@lab.example"),
        "{page}"
    );
    assert!(page.contains("되살아나지 않습니다"), "{page}");
    let nobody = uuid::Uuid::now_v7();
    assert_eq!(get(&app, &mut jar, &format!("/users/{nobody}/disable")).await.status(), 404);
    let disable = [("csrf", csrf.as_str()), ("idempotency_key", "disable-1")];
    let response = post_form(&app, &mut jar, &format!("/users/{mina_id}/disable"), &disable).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, "/users?disabled=1".to_string()));
    assert_eq!(token_for(&app, "mina@lab.example", "a long enough password").await, 401);
    let (_, after) = json(app.get("/v1/users?limit=500", &admin.token).await).await;
    let mina = after["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|u| u["email"] == "mina@lab.example")
        .cloned()
        .expect("mina");
    assert!(mina["disabled_at"].is_string(), "{mina:#}");

    // The page offers to enable her again; enabled, she logs in anew.
    let (_, page) = text(get(&app, &mut jar, "/users?disabled=1").await).await;
    assert!(page.contains(&format!("action=\"/users/{mina_id}/enable\"")), "{page}");
    let enable = [("csrf", csrf.as_str()), ("idempotency_key", "enable-1")];
    let response = post_form(&app, &mut jar, &format!("/users/{mina_id}/enable"), &enable).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, "/users?enabled=1".to_string()));
    assert_eq!(token_for(&app, "mina@lab.example", "a long enough password").await, 200);
    let (_, page) = text(get(&app, &mut jar, "/users?enabled=1").await).await;
    assert!(page.contains("old sessions stay ended") || page.contains("이전 로그인 세션"), "{page}");
    assert!(page.contains(&format!("href=\"/users/{mina_id}/disable\"")), "{page}");
    assert_eq!(
        post_form(&app, &mut jar, &format!("/users/{nobody}/enable"), &[("csrf", csrf.as_str())]).await.status(),
        404
    );

    // An administrator cannot disable themselves, and no one else may use the page.
    let me = [("csrf", csrf.as_str()), ("idempotency_key", "disable-me")];
    assert_eq!(post_form(&app, &mut jar, &format!("/users/{}/disable", admin.user_id), &me).await.status(), 409);
    let provider = app.caller(Role::Provider).await;
    let users_now = app.count("SELECT count(*) AS n FROM users").await;
    let mut theirs = Jar::with_session(&provider.token);
    assert_eq!(get(&app, &mut theirs, "/users").await.status(), 403);
    let theirs_csrf = app.keys.form_token(&provider.token);
    let forged = [
        ("csrf", theirs_csrf.as_str()),
        ("email", "x@lab.example"),
        ("password", "a long enough password"),
        ("role", "admin"),
        ("org_id", ""),
    ];
    assert_eq!(post_form(&app, &mut theirs, "/users", &forged).await.status(), 403);
    let theirs_enable = [("csrf", theirs_csrf.as_str())];
    assert_eq!(post_form(&app, &mut theirs, &format!("/users/{mina_id}/enable"), &theirs_enable).await.status(), 403);
    assert_eq!(app.count("SELECT count(*) AS n FROM users").await, users_now);
}

#[tokio::test]
async fn every_provider_page_of_the_demo_market_shows() {
    let app = spawn_app().await;
    let settings = crate::helpers::settings_for(&app.database_url);
    assert!(gpuhour::demo::seed(&settings, &app.pool).await.expect("the demo seeds").seeded);
    let admin = app.caller(Role::Admin).await;
    let (status, users) = json(app.get("/v1/users?limit=500", &admin.token).await).await;
    assert_eq!(status, 200);
    let providers: Vec<&Value> =
        users["data"].as_array().expect("data").iter().filter(|u| u["role"] == "provider").collect();
    assert!(!providers.is_empty(), "{users:#}");
    let mut listing_pages = 0;
    for p in providers {
        let id = |k: &str| p[k].as_str().expect("id").parse::<uuid::Uuid>().expect("uuid");
        let token = app.keys.issue(id("id"), gpuhour::auth::OrgId(id("org_id")), Role::Provider).expect("token");
        let mut jar = Jar::with_session(&token);
        let (status, page) = text(get(&app, &mut jar, "/listings").await).await;
        assert_eq!(status, 200, "{page}");
        for chunk in page.split("href=\"/listings/").skip(1) {
            let listing = &chunk[..chunk.find('"').expect("quote")];
            let (status, shown) = text(get(&app, &mut jar, &format!("/listings/{listing}")).await).await;
            assert_eq!(status, 200, "{shown}");
            listing_pages += 1;
        }
        let (status, page) = text(get(&app, &mut jar, "/earnings").await).await;
        assert_eq!(status, 200, "{page}");
    }
    assert!(listing_pages > 0);
    let mut jar = Jar::with_session(&admin.token);
    assert_eq!(get(&app, &mut jar, "/users").await.status(), 200);
}
