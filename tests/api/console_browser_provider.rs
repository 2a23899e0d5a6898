//! The provider's and the administrator's console pages in a real browser
//! (see `console_browser.rs` for how it runs): a provider logs in, creates a
//! listing and reports an outage; an administrator opens the users page.
//! With `GPUHOUR_SCREENSHOTS=1` the pages' screenshots go to docs/console/.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gpuhour::auth::Role;
use serde_json::json;

use crate::console_browser::{Browser, PASSWORD, required, start_driver};
use crate::helpers::{TestApp, json, next_hour, spawn_app};
use crate::market::{deposit, order_body, set_clock, settle};

async fn log_in(browser: &Browser, app: &TestApp, email: &str, home: &str) {
    browser.go(&app.url("/login")).await;
    browser.type_into("#email", email).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form[action='/login'] button").await;
    assert_eq!(browser.wait_for(home).await, app.url(home));
}

#[tokio::test]
async fn a_provider_creates_a_listing_and_reports_an_outage_in_a_browser() {
    if !required() {
        eprintln!("skipped: set GPUHOUR_BROWSER_TESTS=required to drive Chromium");
        return;
    }
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let signup = json!({"org_name": "한빛 데이터센터", "org_kind": "provider",
                        "email": "ops@hanbit.example", "password": PASSWORD});
    let (status, provider) =
        json(app.client.post(app.url("/v1/auth/signup")).json(&signup).send().await.expect("signup")).await;
    assert_eq!(status, 201, "{provider:#}");
    let provider_token = app
        .keys
        .issue(
            provider["id"].as_str().expect("id").parse().expect("uuid"),
            gpuhour::auth::OrgId(provider["org_id"].as_str().expect("org").parse().expect("uuid")),
            Role::Provider,
        )
        .expect("token");
    let admin = app.caller(Role::Admin).await;
    let body = json!({"email": "admin@gpuhour.example", "password": PASSWORD, "role": "admin"});
    let (status, created) = json(app.post("/v1/users", &admin.token, &body, None).await).await;
    assert_eq!(status, 201, "{created:#}");
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "1000000").await;
    let start = next_hour(&app, &finance).await;

    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let driver = start_driver(&http).await;
    let browser = Browser::open(&http, &driver, &app.address).await;

    // The provider's home is its listings; create one (the window's defaults: a week from the next hour).
    log_in(&browser, &app, "ops@hanbit.example", "/listings").await;
    browser.type_into("#gpu_model", "H100-SXM5-80GB").await;
    browser.type_into("input[name=gpu_memory_gb]", "80").await;
    browser.type_into("input[name=gpus]", "8").await;
    browser.type_into("input[name=region]", "kr-seoul-1").await;
    browser.type_into("input[name=interconnect]", "NVLink").await;
    browser.type_into("input[name=price_per_gpu_hour]", "2500").await;
    browser.click("form[action='/listings'] button").await;
    let url = browser.wait_for("?created=1").await;
    let id = url.rsplit('/').next().and_then(|last| last.strip_suffix("?created=1")).expect("listing id").to_string();
    let (status, listing) = json(app.get(&format!("/v1/listings/{id}"), &provider_token).await).await;
    assert_eq!(status, 200);
    assert_eq!((listing["gpus"].as_i64(), listing["price_per_gpu_hour"].as_str()), (Some(8), Some("2500")));
    let from: DateTime<Utc> = listing["available_from"].as_str().expect("from").parse().expect("instant");
    assert_eq!(from, start, "the form's default start is the next hour");

    // A tenant buys 2 GPUs for 4 hours from the start: 20,000.
    let (status, order) =
        json(app.post("/v1/orders", &tenant.token, &order_body(&listing, 2, start, 4), None).await).await;
    assert_eq!(status, 201, "{order:#}");
    let order_id = order["id"].as_str().expect("id");

    browser.go(&app.url("/listings")).await;
    assert!(browser.source().await.contains(&format!("/listings/{id}")));
    browser.screenshot("listings").await;

    // Report 1 GPU out for the listing's first hour (the form's defaults).
    browser.go(&app.url(&format!("/listings/{id}"))).await;
    browser.assert_only_from(&app.address).await;
    browser.click(&format!("form[action='/listings/{id}/outages'] button")).await;
    browser.wait_for("outage=1").await;
    let (_, after) = json(app.get(&format!("/v1/orders/{order_id}"), &tenant.token).await).await;
    assert_eq!(after["credited_gpu_hours"], 1);
    assert_eq!(after["charged"]["tenant"]["credited"], "2500");
    let page = browser.source().await;
    // The outage's credit to the tenant, and the listing's revenue after it.
    for figure in ["2,500원", "17,500원"] {
        assert!(page.contains(figure), "{figure}: {page}");
    }
    browser.go(&app.url("/earnings")).await;
    assert!(browser.source().await.contains("17,500원"), "pending: the order's hours, less the credit");

    // The order's hours pass and are settled; finance pays 5,000 out.
    set_clock(&app, &finance, start + chrono::Duration::hours(4)).await;
    settle(&app, &finance).await;
    let body =
        json!({"provider_org_id": provider["org_id"], "amount": "5000", "currency": "KRW", "reference": "HANBIT-0001"});
    let (status, payout) = json(app.post("/v1/payouts", &finance, &body, None).await).await;
    assert_eq!(status, 201, "{payout:#}");
    browser.go(&app.url(&format!("/listings/{id}"))).await;
    browser.screenshot("provider-listing").await;
    browser.go(&app.url("/earnings")).await;
    let page = browser.source().await;
    // Payable 17,500 − 5,000; paid out 5,000.
    for figure in ["12,500원", "5,000원", "HANBIT-0001"] {
        assert!(page.contains(figure), "{figure}: {page}");
    }
    browser.screenshot("earnings").await;

    // The administrator's users page.
    browser.click("form[action='/logout'] button").await;
    browser.wait_for("/login").await;
    log_in(&browser, &app, "admin@gpuhour.example", "/users").await;
    assert!(browser.source().await.contains("ops@hanbit.example"));
    browser.screenshot("users").await;
    browser.close().await;
}
