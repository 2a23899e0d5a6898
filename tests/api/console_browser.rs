//! The console in a real browser: headless Chromium driven through
//! chromedriver over the WebDriver protocol, against a real server on a test
//! database. Skipped unless `GPUHOUR_BROWSER_TESTS=required` (CI sets it and
//! installs `chromium`, `chromium-driver` and `fonts-nanum`); with
//! `GPUHOUR_SCREENSHOTS=1` the pages' screenshots are written to docs/console/.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use chrono::Duration as Hours;
use gpuhour::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{Caller, TestApp, json, next_hour, spawn_app};
use crate::market::{deposit, listing};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(crate) fn required() -> bool {
    std::env::var("GPUHOUR_BROWSER_TESTS").is_ok_and(|v| v == "required")
}

/// chromedriver on a port of its own, stopped when dropped.
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn start_driver(http: &reqwest::Client) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver)");
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

/// One browser session.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    /// The server under test: the only origin a page may load from.
    origin: String,
}

impl Browser {
    pub(crate) async fn open(http: &reqwest::Client, driver: &Driver, origin: &str) -> Browser {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=ko-KR"],
                "prefs": {"intl.accept_languages": "ko-KR,ko"}
            }
        }}});
        let response: Value = http
            .post(format!("{}/session", driver.url))
            .json(&capabilities)
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("json");
        let id = response["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {response:#}"));
        Browser { http: http.clone(), base: format!("{}/session/{id}", driver.url), origin: origin.to_string() }
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.expect("webdriver").json().await.expect("json");
        assert!(response["value"].get("error").is_none(), "{path}: {response:#}");
        response["value"].clone()
    }

    pub(crate) async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await.as_str().expect("url").to_string()
    }

    /// Waits (up to ten seconds) until the browser is at a URL containing `part`.
    pub(crate) async fn wait_for(&self, part: &str) -> String {
        for _ in 0..100 {
            let url = self.url().await;
            if url.contains(part) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser never reached {part}: it is at {}", self.url().await);
    }

    pub(crate) async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await.as_str().expect("source").to_string()
    }

    pub(crate) async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_string()
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    /// Every resource the page loaded came from `origin`.
    pub(crate) async fn assert_only_from(&self, origin: &str) {
        let script = json!({"script": "return performance.getEntriesByType('resource').map(e => e.name)", "args": []});
        let loaded = self.call(reqwest::Method::POST, "/execute/sync", Some(script)).await;
        let loaded: Vec<String> =
            loaded.as_array().expect("names").iter().map(|n| n.as_str().expect("name").to_string()).collect();
        assert!(loaded.iter().all(|url| url.starts_with(origin)), "{loaded:?}");
        assert!(loaded.iter().any(|url| url.ends_with("/assets/console.css")), "the stylesheet loads: {loaded:?}");
    }

    /// A screenshot of the page, kept under docs/console/ when asked for.
    pub(crate) async fn screenshot(&self, name: &str) {
        self.assert_only_from(&self.origin).await;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64")).expect("png");
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
        if std::env::var("GPUHOUR_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
            std::fs::create_dir_all(&dir).expect("docs/console");
            std::fs::write(dir.join(format!("{name}.png")), bytes).expect("screenshot written");
        }
    }

    pub(crate) async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

async fn orders_of(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, page) = json(app.get("/v1/orders", token).await).await;
    assert_eq!(status, 200);
    page["data"].as_array().expect("data").clone()
}

#[tokio::test]
async fn a_tenant_logs_in_quotes_buys_and_cancels_in_a_browser() {
    if !required() {
        eprintln!("skipped: set GPUHOUR_BROWSER_TESTS=required to drive Chromium");
        return;
    }
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let signup = json!({"org_name": "서울대 연구실", "org_kind": "tenant", "org_category": "university",
                        "email": "ana@lab.example", "password": PASSWORD});
    let (status, user) =
        json(app.client.post(app.url("/v1/auth/signup")).json(&signup).send().await.expect("signup")).await;
    assert_eq!(status, 201, "{user:#}");
    let tenant_org: uuid::Uuid = user["org_id"].as_str().expect("org").parse().expect("uuid");
    deposit(&app, &finance, tenant_org, "5000000").await;
    let start = next_hour(&app, &finance).await;
    let listing = listing(&app, &provider.token, 8, "2500", start, 72).await;
    // A grant of 1,000,000 from a programme; the declared category is not yet
    // confirmed, so the programme's default rate (70%) applies.
    let tenant = Caller {
        token: String::new(),
        user_id: user["id"].as_str().expect("id").parse().expect("uuid"),
        org_id: tenant_org,
    };
    let programme = crate::subsidy::programme(&app, &finance, "100000000", start).await;
    let grant = crate::subsidy::grant(&app, &finance, &programme, &tenant, "1000000", start).await;
    let grant_id = grant["id"].as_str().expect("grant id");
    let listing_id = listing["id"].as_str().expect("id");

    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let driver = start_driver(&http).await;
    let browser = Browser::open(&http, &driver, &app.address).await;

    // Anonymous: to the login page.
    browser.go(&app.url("/market")).await;
    assert!(browser.url().await.ends_with("/login?next=%2Fmarket"), "{}", browser.url().await);
    browser.type_into("#email", "ana@lab.example").await;
    browser.type_into("#password", PASSWORD).await;
    browser.screenshot("login").await;
    browser.click("form[action='/login'] button").await;
    assert_eq!(browser.wait_for("/market").await, app.url("/market"));
    assert!(browser.source().await.contains("H100-SXM5-80GB"));
    browser.screenshot("market").await;

    // Search with a filter the listing does not meet, then one it does.
    browser.type_into("input[name=min_memory_gb]", "100").await;
    browser.click("form.filters button").await;
    browser.wait_for("min_memory_gb=100").await;
    assert!(!browser.source().await.contains(&format!("/market/{listing_id}")));
    browser.type_into("input[name=min_memory_gb]", "80").await;
    browser.click("form.filters button").await;
    browser.wait_for("min_memory_gb=80").await;
    browser.click(&format!("a[href='/market/{listing_id}']")).await;
    browser.wait_for(&format!("/market/{listing_id}")).await;

    // Quote 2 GPUs for 4 hours from the listing's start (Seoul time in the form).
    let seoul = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&chrono_tz::Asia::Seoul).format("%Y-%m-%dT%H:%M").to_string()
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("gpus", "2")
        .append_pair("start", &seoul(start))
        .append_pair("end", &seoul(start + Hours::hours(4)))
        .append_pair("grant_id", grant_id)
        .finish();
    browser.go(&app.url(&format!("/market/{listing_id}?{query}"))).await;
    let page = browser.source().await;
    // 2 × 4 × 2,500 = 20,000: the programme pays 70% (14,000), the tenant 6,000.
    for figure in ["20,000원", "14,000원", "6,000원"] {
        assert!(page.contains(figure), "{figure}: {page}");
    }
    browser.screenshot("listing").await;
    browser.click(&format!("form[action='/market/{listing_id}/buy'] button")).await;
    let order_url = browser.wait_for("/orders/").await;
    assert!(order_url.contains("/orders/") && order_url.ends_with("?placed=1"), "{order_url}");
    let orders = orders_of(
        &app,
        &app.keys
            .issue(
                user["id"].as_str().expect("id").parse().expect("uuid"),
                gpuhour::auth::OrgId(tenant_org),
                Role::Tenant,
            )
            .expect("token"),
    )
    .await;
    assert_eq!(orders.len(), 1);
    assert_eq!((orders[0]["subsidy"].as_str(), orders[0]["tenant_amount"].as_str()), (Some("14000"), Some("6000")));
    browser.screenshot("order").await;

    // Cancel it from its page.
    browser.click("button.danger").await;
    browser.wait_for("?cancelled=1").await;
    let id = orders[0]["id"].as_str().expect("id");
    let (_, after) = json(app.get(&format!("/v1/orders/{id}"), &finance).await).await;
    assert_eq!(after["status"], "cancelled");

    browser.go(&app.url("/orders")).await;
    browser.screenshot("orders").await;
    browser.go(&app.url("/wallet")).await;
    assert!(browser.source().await.contains("5,000,000원"));
    browser.screenshot("wallet").await;

    // Switch to English: remembered on the next page.
    browser.click("a[href^='/lang/en']").await;
    for _ in 0..100 {
        if browser.source().await.contains("lang=\"en\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.go(&app.url("/market")).await;
    let english = browser.source().await;
    assert!(english.contains("lang=\"en\"") && english.contains("Market"), "{english}");
    browser.screenshot("market-en").await;
    browser.close().await;
}
