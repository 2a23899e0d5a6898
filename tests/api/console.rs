//! The web console: sessions, CSRF, language, and the tenant's pages — each
//! checked against what the API says happened.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use reqwest::Response;
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};

use crate::console_helpers::{Jar, browser, field, get, location, post_form, text};
use crate::helpers::{Caller, TestApp, json, next_hour, spawn_app};
use crate::market::{deposit, listing};

const PASSWORD: &str = "correct horse battery staple";

async fn signup_tenant(app: &TestApp, email: &str) {
    let body =
        json!({"org_name": "Lab", "org_kind": "tenant", "org_category": "sme", "email": email, "password": PASSWORD});
    let (status, user) =
        json(app.client.post(app.url("/v1/auth/signup")).json(&body).send().await.expect("signup")).await;
    assert_eq!(status, 201, "{user:#}");
}

/// Logs in through the form; answers the response to the POST.
async fn log_in(app: &TestApp, jar: &mut Jar, email: &str, password: &str) -> Response {
    let (status, page) = text(get(app, jar, "/login").await).await;
    assert_eq!(status, 200);
    let csrf = field(&page, "csrf");
    post_form(app, jar, "/login", &[("email", email), ("password", password), ("csrf", &csrf)]).await
}

#[tokio::test]
async fn logging_in_sets_an_http_only_strict_session_cookie_and_logging_out_clears_it() {
    let app = spawn_app().await;
    signup_tenant(&app, "ana@lab.example").await;
    let mut jar = Jar::default();
    let response = log_in(&app, &mut jar, "ana@lab.example", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/market");
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().expect("text").to_string())
        .find(|c| c.starts_with("gpuhour_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=900"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // Plain HTTP: not Secure (the browser would drop it).
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The cookie holds a token the API accepts, for this user.
    let token = jar.0["gpuhour_session"].clone();
    let (status, me) = json(app.get("/v1/me", &token).await).await;
    assert_eq!((status.as_u16(), me["email"].as_str()), (200, Some("ana@lab.example")));

    let (status, page) = text(get(&app, &mut jar, "/market").await).await;
    assert_eq!(status, 200);
    assert!(page.contains("action=\"/logout\""), "{page}");

    let csrf = field(&page, "csrf");
    let response = post_form(&app, &mut jar, "/logout", &[("csrf", &csrf)]).await;
    assert_eq!((response.status().as_u16(), location(&response).as_str()), (303, "/login"));
    assert!(!jar.0.contains_key("gpuhour_session"));
    let response = get(&app, &mut jar, "/market").await;
    assert_eq!((response.status().as_u16(), location(&response).as_str()), (303, "/login?next=%2Fmarket"));
}

#[tokio::test]
async fn behind_a_tls_proxy_the_session_cookie_is_secure() {
    let app = spawn_app().await;
    signup_tenant(&app, "ana@lab.example").await;
    let client = browser();
    let login = client.get(app.url("/login")).header("x-forwarded-proto", "https").send().await.expect("login page");
    let mut jar = Jar::default();
    jar.take(login.headers());
    let csrf = field(&login.text().await.expect("page"), "csrf");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("email", "ana@lab.example"), ("password", PASSWORD), ("csrf", &csrf)])
        .finish();
    let response = client
        .post(app.url("/login"))
        .header("x-forwarded-proto", "https")
        .header("cookie", jar.header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .find_map(|c| c.to_str().ok().filter(|c| c.starts_with("gpuhour_session=")).map(str::to_string));
    assert!(cookie.expect("session cookie").contains("Secure"));
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_and_is_throttled_as_the_api_is() {
    let app = spawn_app().await;
    signup_tenant(&app, "victim@lab.example").await;
    let mut jar = Jar::default();
    for attempt in 1..=10 {
        let (status, page) =
            text(log_in(&app, &mut jar, "victim@lab.example", &format!("guess {attempt}")).await).await;
        assert_eq!(status, 401, "attempt {attempt}");
        assert!(page.contains("role=\"alert\""), "{page}");
        assert!(page.contains("name=\"password\""), "the form is shown again: {page}");
        assert!(page.contains("value=\"victim@lab.example\""), "the email is kept: {page}");
        assert!(!jar.0.contains_key("gpuhour_session"));
    }
    let response = log_in(&app, &mut jar, "victim@lab.example", "guess 11").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // The console and the API count the same attempts: the API refuses too,
    // even the right password.
    let api = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"email": "victim@lab.example", "password": PASSWORD}))
        .send()
        .await
        .expect("token");
    assert_eq!(api.status(), 429);
    let attempts =
        "SELECT attempts::bigint AS n FROM login_throttle WHERE subject = 'pair:victim@lab.example|127.0.0.1'";
    // Refused attempts are not counted: ten failures, as in the API.
    assert_eq!(app.count(attempts).await, 10);
}

/// A market of one listing (4 GPUs at 1,000.5 KRW per GPU-hour from the next
/// hour for 48 hours) and a tenant with 1,000,000 KRW.
struct Market {
    finance: String,
    tenant: Caller,
    listing: Value,
    start: DateTime<Utc>,
}

async fn market(app: &TestApp) -> Market {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(app, &finance, tenant.org_id, "1000000").await;
    let start = next_hour(app, &finance).await;
    let listing = listing(app, &provider.token, 4, "1000.5", start, 48).await;
    Market { finance, tenant, listing, start }
}

fn seoul_input(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Asia::Seoul).format("%Y-%m-%dT%H:%M").to_string()
}

/// The listing page with a quote for `gpus` GPUs over `hours` hours from the start.
async fn quote_page(app: &TestApp, jar: &mut Jar, m: &Market, gpus: i32, hours: i64) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("gpus", &gpus.to_string())
        .append_pair("start", &seoul_input(m.start))
        .append_pair("end", &seoul_input(m.start + Duration::hours(hours)))
        .finish();
    let id = m.listing["id"].as_str().expect("id");
    let (status, page) = text(get(app, jar, &format!("/market/{id}?{query}")).await).await;
    assert_eq!(status, 200, "{page}");
    page
}

/// The hidden fields of the page's buy form (the quote form above it has
/// fields of the same names).
fn buy_fields(page: &str) -> Vec<(&'static str, String)> {
    let form = &page[page.find("/buy\"").expect("a buy form")..];
    ["csrf", "idempotency_key", "gpus", "start", "end"].into_iter().map(|name| (name, field(form, name))).collect()
}

async fn buy(app: &TestApp, jar: &mut Jar, m: &Market, fields: &[(&'static str, String)]) -> Response {
    let id = m.listing["id"].as_str().expect("id");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_form(app, jar, &format!("/market/{id}/buy"), &fields).await
}

async fn orders_of(app: &TestApp, tenant: &Caller) -> Vec<Value> {
    let (status, page) = json(app.get("/v1/orders", &tenant.token).await).await;
    assert_eq!(status, 200);
    page["data"].as_array().expect("data").clone()
}

#[tokio::test]
async fn a_tenant_quotes_and_buys_through_the_form_and_a_double_submit_places_one_order() {
    let app = spawn_app().await;
    let m = market(&app).await;
    let mut jar = Jar::with_session(&m.tenant.token);
    let page = quote_page(&app, &mut jar, &m, 2, 3).await;
    // 2 GPUs × 3 hours × 1,000.5 = 6,003; no grant: the tenant pays it all.
    let body = json!({"listing_id": m.listing["id"], "gpus": 2, "start": m.start, "end": m.start + Duration::hours(3)});
    let (_, api_quote) = json(app.post("/v1/quotes", &m.tenant.token, &body, None).await).await;
    assert_eq!((api_quote["subtotal"].as_str(), api_quote["tenant_amount"].as_str()), (Some("6003"), Some("6003")));
    assert!(page.contains("6,003원"), "{page}");
    assert!(page.contains("1,000.5원"), "the unit price keeps its digits: {page}");
    assert!(page.contains("<svg"), "the availability chart: {page}");

    // With a grant (SME, 80%): the programme pays floor(6,003 × 0.8) = 4,802,
    // the tenant 1,201 — as the API quotes it.
    let programme = crate::subsidy::programme(&app, &m.finance, "10000000", m.start).await;
    let grant = crate::subsidy::grant(&app, &m.finance, &programme, &m.tenant, "100000", m.start).await;
    let grant_id = grant["id"].as_str().expect("grant id");
    let id = m.listing["id"].as_str().expect("id");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("gpus", "2")
        .append_pair("start", &seoul_input(m.start))
        .append_pair("end", &seoul_input(m.start + Duration::hours(3)))
        .append_pair("grant_id", grant_id)
        .finish();
    let (_, subsidised) = text(get(&app, &mut jar, &format!("/market/{id}?{query}")).await).await;
    let with_grant = crate::subsidy::with_grant(body.clone(), &grant);
    let (_, api_quote) = json(app.post("/v1/quotes", &m.tenant.token, &with_grant, None).await).await;
    assert_eq!((api_quote["subsidy"].as_str(), api_quote["tenant_amount"].as_str()), (Some("4802"), Some("1201")));
    for figure in ["4,802원", "1,201원"] {
        assert!(subsidised.contains(figure), "{figure}: {subsidised}");
    }
    assert!(subsidised.contains(&format!("name=\"grant_id\" value=\"{grant_id}\"")), "the buy form names the grant");

    let fields = buy_fields(&page);
    let first = buy(&app, &mut jar, &m, &fields).await;
    assert_eq!(first.status(), 303, "{:?}", fields);
    let second = buy(&app, &mut jar, &m, &fields).await;
    assert_eq!(second.status(), 303);
    assert_eq!(location(&first), location(&second));

    let orders = orders_of(&app, &m.tenant).await;
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let order = &orders[0];
    assert_eq!(location(&first), format!("/orders/{}?placed=1", order["id"].as_str().expect("id")));
    assert_eq!((order["gpus"].as_i64(), order["tenant_amount"].as_str()), (Some(2), Some("6003")));
    assert_eq!(app.count("SELECT count(*) AS n FROM audit_log WHERE route = '/market/{id}/buy'").await, 1);

    // The order's page shows it, and what cancelling it now would return.
    let (status, page) = text(get(&app, &mut jar, &location(&first)).await).await;
    assert_eq!(status, 200);
    assert!(page.contains("6,003원"), "{page}");
    let cancel = [("csrf", field(&page, "csrf")), ("idempotency_key", field(&page, "idempotency_key"))];
    let cancel: Vec<(&str, &str)> = cancel.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let id = order["id"].as_str().expect("id");
    let response = post_form(&app, &mut jar, &format!("/orders/{id}/cancel"), &cancel).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("/orders/{id}?cancelled=1")));
    let (_, after) = json(app.get(&format!("/v1/orders/{id}"), &m.tenant.token).await).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["charged"]["tenant"]["released"], "6003");
    let _ = m.finance;
}

#[tokio::test]
async fn a_form_without_its_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let m = market(&app).await;
    let mut jar = Jar::with_session(&m.tenant.token);
    let page = quote_page(&app, &mut jar, &m, 1, 2).await;
    let fields = buy_fields(&page);

    let without: Vec<_> = fields.iter().filter(|(k, _)| *k != "csrf").cloned().collect();
    let (status, refused) = text(buy(&app, &mut jar, &m, &without).await).await;
    assert_eq!(status, 403);
    assert!(refused.contains("role=\"alert\""), "{refused}");

    let mut forged = without.clone();
    forged.push(("csrf", "00".repeat(32)));
    assert_eq!(buy(&app, &mut jar, &m, &forged).await.status(), 403);

    // Another tenant's token does not pass for this one's.
    let other = app.caller(Role::Tenant).await;
    let mut theirs = without.clone();
    theirs.push(("csrf", app.keys.form_token(&other.token)));
    assert_eq!(buy(&app, &mut jar, &m, &theirs).await.status(), 403);

    // The right token, but the request comes from another site.
    let id = m.listing["id"].as_str().expect("id");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let response = browser()
        .post(app.url(&format!("/market/{id}/buy")))
        .header("cookie", jar.header())
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403);

    // Logging in without the login form's token is refused too.
    let response = post_form(&app, &mut Jar::default(), "/login", &[("email", "a@b.example"), ("password", "x")]).await;
    assert_eq!(response.status(), 403);

    assert!(orders_of(&app, &m.tenant).await.is_empty());
    assert_eq!(app.count("SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn an_anonymous_visitor_is_sent_to_the_login_page() {
    let app = spawn_app().await;
    let mut jar = Jar::default();
    for (path, next) in [("/", "%2F"), ("/market", "%2Fmarket"), ("/orders", "%2Forders"), ("/wallet", "%2Fwallet")] {
        let response = get(&app, &mut jar, path).await;
        assert_eq!((response.status().as_u16(), location(&response)), (303, format!("/login?next={next}")), "{path}");
    }
    // A form posted without a session comes back home after signing in.
    let response = post_form(&app, &mut jar, "/orders/0195/cancel", &[("csrf", "x")]).await;
    assert_eq!((response.status().as_u16(), location(&response).as_str()), (303, "/login?next=%2F"));
    // A forged session cookie is no session.
    let mut forged = Jar::with_session("not.a.token");
    assert_eq!(location(&get(&app, &mut forged, "/wallet").await), "/login?next=%2Fwallet");
    // The login page is served with the console's security headers.
    let response = get(&app, &mut jar, "/login?next=%2Fwallet").await;
    let csp = response.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert!(csp.expect("CSP").starts_with("default-src 'self'"));
    let page = response.text().await.expect("page");
    assert!(page.contains("name=\"next\" value=\"/wallet\""), "{page}");
}

#[tokio::test]
async fn another_tenants_order_page_is_not_found() {
    let app = spawn_app().await;
    let m = market(&app).await;
    let body = json!({"listing_id": m.listing["id"], "gpus": 1, "start": m.start, "end": m.start + Duration::hours(2)});
    let (status, order) = json(app.post("/v1/orders", &m.tenant.token, &body, None).await).await;
    assert_eq!(status, 201, "{order:#}");
    let id = order["id"].as_str().expect("id");
    let mut own = Jar::with_session(&m.tenant.token);
    assert_eq!(get(&app, &mut own, &format!("/orders/{id}")).await.status(), 200);
    let stranger = app.caller(Role::Tenant).await;
    let mut theirs = Jar::with_session(&stranger.token);
    let (status, page) = text(get(&app, &mut theirs, &format!("/orders/{id}")).await).await;
    assert_eq!(status, 404);
    assert!(!page.contains(id), "{page}");
    // Nor can it be cancelled by them.
    let csrf = app.keys.form_token(&stranger.token);
    let response = post_form(&app, &mut theirs, &format!("/orders/{id}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 404);
    let (_, still) = json(app.get(&format!("/v1/orders/{id}"), &m.tenant.token).await).await;
    assert_eq!(still["status"], "reserved");
}

#[tokio::test]
async fn the_language_follows_accept_language_and_a_switch_is_remembered() {
    let app = spawn_app().await;
    let tenant = app.caller(Role::Tenant).await;
    let page = |accept: &'static str, jar: Jar| {
        let app = &app;
        async move {
            let response = browser()
                .get(app.url("/wallet"))
                .header("cookie", jar.header())
                .header("accept-language", accept)
                .send()
                .await
                .expect("page");
            text(response).await
        }
    };
    let (status, korean) = page("ko-KR,ko;q=0.9,en;q=0.8", Jar::with_session(&tenant.token)).await;
    assert_eq!(status, 200);
    assert!(korean.contains("<html lang=\"ko\">") && korean.contains("지갑"), "{korean}");
    let (_, english) = page("en-GB,en;q=0.9", Jar::with_session(&tenant.token)).await;
    assert!(english.contains("<html lang=\"en\">") && english.contains("Wallet"), "{english}");

    let mut jar = Jar::with_session(&tenant.token);
    let response = get(&app, &mut jar, "/lang/en?next=%2Fwallet%3Fcurrency%3DKRW").await;
    assert_eq!((response.status().as_u16(), location(&response).as_str()), (303, "/wallet?currency=KRW"));
    assert_eq!(jar.0.get("gpuhour_lang").map(String::as_str), Some("en"));
    // Remembered over a browser that asks for Korean.
    let (_, remembered) = page("ko-KR", jar.clone()).await;
    assert!(remembered.contains("<html lang=\"en\">"), "{remembered}");

    // `next` must be a path on this server.
    for next in ["https://evil.example/", "//evil.example/", "/\\evil.example", "evil.example"] {
        let encoded: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let response = get(&app, &mut jar, &format!("/lang/ko?next={encoded}")).await;
        assert_eq!((response.status().as_u16(), location(&response).as_str()), (303, "/"), "{next}");
    }
    assert_eq!(get(&app, &mut jar, "/lang/fr").await.status(), 404);
}

#[tokio::test]
async fn the_wallet_shows_own_money_and_a_statement_with_running_balance() {
    let app = spawn_app().await;
    let m = market(&app).await;
    let body = json!({"listing_id": m.listing["id"], "gpus": 1, "start": m.start, "end": m.start + Duration::hours(2)});
    let (status, _) = json(app.post("/v1/orders", &m.tenant.token, &body, None).await).await;
    assert_eq!(status, 201);
    let mut jar = Jar::with_session(&m.tenant.token);
    let (status, page) = text(get(&app, &mut jar, "/wallet").await).await;
    assert_eq!(status, 200);
    // 1,000,000 deposited; 2,001 reserved for the order (1 GPU × 2 h × 1,000.5).
    assert!(page.contains("1,000,000원"), "{page}");
    assert!(page.contains("2,001원"), "{page}");
    assert!(page.contains("997,999원"), "{page}");
}
