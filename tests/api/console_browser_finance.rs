//! A finance officer in a real browser (see `console_browser`): signs in,
//! opens the programme dashboard and finds the programme report's figures,
//! drills from `spent` to its postings, creates a claim, submits it and
//! records its payment. With `GPUHOUR_SCREENSHOTS=1` the pages' screenshots
//! are written to docs/console/.

use std::time::Duration;

use gpuhour::auth::Role;
use serde_json::{Value, json};

use crate::console_browser::{Browser, PASSWORD, required, start_driver};
use crate::console_finance::{FIGURES, books, figure, seoul, values};
use crate::helpers::{TestApp, json};
use crate::subsidy::{report, report_figure};

const EMAIL: &str = "officer@gpuhour.example";

/// A finance officer who signs in with a password, as people do.
async fn finance_officer(app: &TestApp) {
    use gpuhour::auth::store;
    let mut conn = app.conn().await;
    let now = chrono::Utc::now();
    let operator = store::operator_org(&mut conn, now).await.expect("operator");
    let hash = gpuhour::auth::password::hash(PASSWORD.to_string()).await.expect("hash");
    store::create_user(&mut conn, operator.id, EMAIL, &hash, Role::Finance, now).await.expect("officer");
}

/// Sets a form field's value as a person would have picked it (date pickers
/// differ by locale; the value a form sends does not).
async fn set_value(browser: &Browser, css: &str, value: &str) {
    let script = json!({
        "script": "document.querySelector(arguments[0]).value = arguments[1]; return true;",
        "args": [css, value]
    });
    browser.call(reqwest::Method::POST, "/execute/sync", Some(script)).await;
}

#[tokio::test]
async fn a_finance_officer_checks_the_dashboard_drills_into_spent_and_claims_and_is_paid_in_a_browser() {
    if !required() {
        eprintln!("skipped: set GPUHOUR_BROWSER_TESTS=required to drive Chromium");
        return;
    }
    let app = crate::helpers::spawn_app().await;
    let b = books(&app).await;
    finance_officer(&app).await;
    let programme_id = b.programme["id"].as_str().expect("id").to_string();
    let api = report(&app, &b.finance, &b.programme).await;

    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let driver = start_driver(&http).await;
    let browser = Browser::open(&http, &driver, &app.address).await;

    browser.go(&app.url(&format!("/programmes/{programme_id}"))).await;
    browser.wait_for("/login?next=").await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("form[action='/login'] button").await;
    browser.wait_for(&format!("/programmes/{programme_id}")).await;

    // The dashboard's figures are the API's programme report, exactly.
    let dashboard = browser.source().await;
    for key in FIGURES {
        assert_eq!(figure(&dashboard, key).0, report_figure(&api, key), "{key}");
    }
    assert!(dashboard.contains("5,603원") && dashboard.contains("1,000,000원"), "{dashboard}");
    browser.screenshot("programme").await;

    // Drill from spent to the postings behind it.
    browser.click("dd[data-figure='spent'] a").await;
    browser.wait_for("/ledger/accounts/").await;
    let postings = browser.source().await;
    assert_eq!(values(&postings, "data-posting").len(), 9);
    assert_eq!(figure(&postings, "balance").0, "5603");
    browser.assert_only_from(&app.address).await;

    // A claim for the first day of the orders, submitted and paid in full.
    browser.go(&app.url("/claims")).await;
    set_value(&browser, "input[name=period_start]", &seoul(b.start)).await;
    set_value(&browser, "input[name=period_end]", &seoul(b.start + chrono::Duration::days(1))).await;
    browser.click("form[method=post][action='/claims'] button").await;
    let claim_url = browser.wait_for("?created=1").await;
    let claim_id = claim_url.rsplit('/').next().and_then(|s| s.split('?').next()).expect("claim id").to_string();
    assert_eq!(figure(&browser.source().await, "amount").0, "5603");
    browser.click("form[action$='/submit'] button").await;
    browser.wait_for("?submitted=1").await;
    browser.type_into("input[name=reference]", "MSIT-0001").await;
    browser.click("form[action$='/payments'] button").await;
    browser.wait_for("?paid=1").await;
    let (_, claim): (_, Value) = json(app.get(&format!("/v1/claims/{claim_id}"), &b.finance).await).await;
    assert_eq!(
        (claim["status"].as_str(), claim["paid"].as_str(), claim["outstanding"].as_str()),
        (Some("submitted"), Some("5603"), Some("0"))
    );
    let paid = browser.source().await;
    assert_eq!((figure(&paid, "paid").0, figure(&paid, "outstanding").0), ("5603".into(), "0".into()));
    browser.screenshot("claim").await;

    browser.go(&app.url("/claims")).await;
    assert!(browser.source().await.contains(&format!("/claims/{claim_id}")));
    browser.screenshot("claims").await;
    browser.go(&app.url("/ledger")).await;
    assert!(browser.source().await.contains("data-totals=\"KRW\""));
    browser.screenshot("ledger").await;
    // The dashboard after the payment: paid, nothing outstanding.
    browser.go(&app.url(&format!("/programmes/{programme_id}"))).await;
    let after = browser.source().await;
    let api = report(&app, &b.finance, &b.programme).await;
    for key in FIGURES {
        assert_eq!(figure(&after, key).0, report_figure(&api, key), "{key}");
    }
    assert_eq!((api.paid.as_str(), api.outstanding.as_str()), ("5603", "0"));
    browser.assert_only_from(&app.address).await;
    browser.close().await;
}
