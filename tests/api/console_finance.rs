//! The console's finance pages: the programme dashboard, grants, claims, the
//! ledger and the audit log — each figure checked against what the API
//! answers, each form against what it wrote.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::console_helpers::{self, Jar, browser, field, location};
use crate::helpers::{Caller, TestApp, json, next_hour, spawn_app};
use crate::market::{deposit, listing, order_body, set_clock};
use crate::subsidy::{grant, programme, report, report_figure, with_grant};

/// The page at `path` as the holder of session `token` sees it.
async fn get(app: &TestApp, token: &str, path: &str) -> Response {
    console_helpers::get(app, &mut Jar::with_session(token), path).await
}

async fn page(app: &TestApp, token: &str, path: &str) -> String {
    let response = get(app, token, path).await;
    let status = response.status();
    let body = response.text().await.expect("page");
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

async fn post_form(app: &TestApp, token: &str, path: &str, fields: &[(&str, &str)]) -> Response {
    console_helpers::post_form(app, &mut Jar::with_session(token), path, fields).await
}

/// The form posting to `action`, from its start to its end.
fn form<'a>(html: &'a str, action: &str) -> &'a str {
    let marker = format!("method=\"post\" action=\"{action}\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no form posting to {action}:\n{html}"));
    let rest = &html[start..];
    &rest[..rest.find("</form>").expect("form end")]
}

/// The form's csrf and idempotency key, as a browser would send them.
fn tokens(html: &str, action: &str) -> Vec<(&'static str, String)> {
    let f = form(html, action);
    vec![("csrf", field(f, "csrf")), ("idempotency_key", field(f, "idempotency_key"))]
}

async fn submit(app: &TestApp, token: &str, action: &str, html: &str, extra: &[(&str, &str)]) -> Response {
    let mut fields: Vec<(&str, String)> = tokens(html, action);
    fields.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_form(app, token, action, &fields).await
}

/// Every `{attribute}="…"` value in a page, in order.
pub(crate) fn values(html: &str, attribute: &str) -> Vec<String> {
    let marker = format!("{attribute}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').expect("closing quote")].to_string()
        })
        .collect()
}

/// A dashboard figure: its exact amount and where it links.
pub(crate) fn figure(html: &str, key: &str) -> (String, String) {
    let marker = format!("data-figure=\"{key}\" data-amount=\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no figure {key}:\n{html}"));
    let rest = &html[at + marker.len()..];
    let amount = rest[..rest.find('"').expect("quote")].to_string();
    let href = values(&rest[..rest.find("</dd>").expect("dd end")], "href").into_iter().next().unwrap_or_default();
    (amount, href)
}

pub(crate) const FIGURES: [&str; 12] = [
    "budget",
    "granted",
    "committed",
    "spent",
    "released",
    "unallocated",
    "claimed",
    "paid",
    "outstanding",
    "written_off",
    "advanced",
    "unclaimed",
];

pub(crate) fn seoul(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Asia::Seoul).format("%Y-%m-%dT%H:%M").to_string()
}

/// A programme of 1,000,000 KRW, an SME tenant's grant of 100,000, an order
/// of 7 hours settled (the programme's 80% is 5,603) and one of 2 hours not
/// yet begun (1,600 committed).
pub(crate) struct Books {
    pub(crate) finance: String,
    pub(crate) tenant: Caller,
    pub(crate) programme: Value,
    pub(crate) grant: Value,
    pub(crate) start: DateTime<Utc>,
}

pub(crate) async fn books(app: &TestApp) -> Books {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    let start = next_hour(app, &finance).await;
    let programme = programme(app, &finance, "1000000", start).await;
    let grant = grant(app, &finance, &programme, &tenant, "100000", start).await;
    deposit(app, &finance, tenant.org_id, "50000").await;
    let offer = listing(app, &provider.token, 4, "1000.5", start, 48).await;
    for (from, hours) in [(start, 7), (start + Duration::hours(10), 2)] {
        let body = with_grant(order_body(&offer, 1, from, hours), &grant);
        let (status, order) = json(app.post("/v1/orders", &tenant.token, &body, None).await).await;
        assert_eq!(status, 201, "{order:#}");
    }
    set_clock(app, &finance, start + Duration::hours(7)).await;
    assert_eq!(app.post("/v1/settlements/run", &finance, &json!({}), None).await.status(), 200);
    Books { finance, tenant, programme, grant, start }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

#[tokio::test]
async fn the_dashboard_shows_the_programme_reports_figures_exactly_and_each_links_to_its_postings() {
    let app = spawn_app().await;
    let b = books(&app).await;
    let programme_id = id(&b.programme);
    let api = report(&app, &b.finance, &b.programme).await;
    assert_eq!((api.spent.as_str(), api.committed.as_str()), ("5603", "1600"));

    // Finance starts at the programmes.
    let home = get(&app, &b.finance, "/").await;
    assert_eq!((home.status().as_u16(), location(&home).as_str()), (303, "/programmes"));
    let list = page(&app, &b.finance, "/programmes").await;
    assert!(list.contains(&format!("href=\"/programmes/{programme_id}\"")), "{list}");
    assert!(list.contains("1,000,000원"), "{list}");

    let dashboard = page(&app, &b.finance, &format!("/programmes/{programme_id}")).await;
    for key in FIGURES {
        assert_eq!(figure(&dashboard, key).0, report_figure(&api, key), "{key}");
    }
    for shown in ["1,000,000원", "5,603원", "1,600원", "900,000원"] {
        assert!(dashboard.contains(shown), "{shown}: {dashboard}");
    }
    // The burn-down ends at the report's spent and committed.
    assert!(dashboard.contains("<polyline"), "the burn-down chart");
    assert_eq!(values(&dashboard, "data-last-spent"), vec!["5603".to_string()]);
    assert_eq!(values(&dashboard, "data-last-committed"), vec!["1600".to_string()]);
    // The breakdowns are the report's groups: one tenant (SME), one provider, one model.
    let (_, by_model) =
        json(app.get(&format!("/v1/reports/programmes/{programme_id}?group_by=gpu_model"), &b.finance).await).await;
    assert_eq!(by_model["groups"][0]["spent"], "5603");
    assert!(dashboard.contains("H100-SXM5-80GB") && dashboard.contains("중소기업"), "{dashboard}");

    // Spent links to the grant's spent account: its postings are the API's.
    let (_, spent_href) = figure(&dashboard, "spent");
    let spent_account =
        app.account_id(&format!("budget:grant:{}:spent", id(&b.grant)), gpuhour::money::Currency::Krw).await;
    assert_eq!(spent_href, format!("/ledger/accounts/{spent_account}"));
    let account_page = page(&app, &b.finance, &spent_href).await;
    let (_, postings) =
        json(app.get(&format!("/v1/accounts/{spent_account}/postings?limit=50"), &b.finance).await).await;
    let api_amounts: Vec<String> =
        postings["data"].as_array().expect("data").iter().map(|p| p["amount"].as_str().expect("a").into()).collect();
    let api_balances: Vec<String> =
        postings["data"].as_array().expect("data").iter().map(|p| p["balance"].as_str().expect("b").into()).collect();
    // Two orders reserved, seven hours settled.
    assert_eq!(api_amounts.len(), 9, "{postings:#}");
    let rows: Vec<String> = values(&account_page, "data-posting");
    assert_eq!(rows.len(), 9);
    // The first amount is the account's balance figure; the postings follow.
    let page_amounts: Vec<String> = values(&account_page, "data-amount").into_iter().skip(1).collect();
    assert_eq!(page_amounts, api_amounts);
    assert_eq!(values(&account_page, "data-balance"), api_balances);
    assert_eq!(figure(&account_page, "balance").0, "5603");

    // From a posting to its journal entry, with all its postings.
    let entry_id = postings["data"][1]["entry_id"].as_str().expect("entry");
    assert!(account_page.contains(&format!("href=\"/ledger/entries/{entry_id}\"")));
    let entry_page = page(&app, &b.finance, &format!("/ledger/entries/{entry_id}")).await;
    let (_, entry) = json(app.get(&format!("/v1/journal-entries/{entry_id}"), &b.finance).await).await;
    let entry_amounts: Vec<String> = entry["postings"]
        .as_array()
        .expect("postings")
        .iter()
        .map(|p| p["amount"].as_str().expect("a").into())
        .collect();
    assert_eq!(entry_amounts.len(), 3, "{entry:#}");
    assert_eq!(values(&entry_page, "data-amount"), entry_amounts);
    for p in entry["postings"].as_array().expect("postings") {
        let debit = p["debit_account_id"].as_str().expect("debit");
        assert!(entry_page.contains(&format!("href=\"/ledger/accounts/{debit}\"")), "{entry_page}");
    }

    // Budget and unallocated link to the programme's own accounts.
    let appropriation =
        app.account_id(&format!("budget:programme:{programme_id}:appropriation"), gpuhour::money::Currency::Krw).await;
    assert_eq!(figure(&dashboard, "budget").1, format!("/ledger/accounts/{appropriation}"));
    let unallocated =
        app.account_id(&format!("budget:programme:{programme_id}:unallocated"), gpuhour::money::Currency::Krw).await;
    assert_eq!(figure(&dashboard, "unallocated").1, format!("/ledger/accounts/{unallocated}"));
    let unallocated_page = page(&app, &b.finance, &format!("/ledger/accounts/{unallocated}")).await;
    assert_eq!(figure(&unallocated_page, "balance").0, "900000");
    let _ = b.tenant;
}

#[tokio::test]
async fn grants_are_made_and_closed_through_the_dashboards_forms() {
    let app = spawn_app().await;
    let b = books(&app).await;
    let programme_id = id(&b.programme);
    let other = app.tenant("university").await;
    let path = format!("/programmes/{programme_id}");
    let dashboard = page(&app, &b.finance, &path).await;
    let action = format!("/programmes/{programme_id}/grants");
    assert!(form(&dashboard, &action).contains(&format!("value=\"{}\"", other.org_id)), "the tenant is offered");
    let tenant_org = other.org_id.to_string();
    let (from, until) = (seoul(b.start), seoul(b.start + Duration::days(30)));
    let fields = [
        ("tenant_org_id", tenant_org.as_str()),
        ("amount", "20000"),
        ("rate", ""),
        ("valid_from", from.as_str()),
        ("valid_until", until.as_str()),
    ];
    let first = submit(&app, &b.finance, &action, &dashboard, &fields).await;
    assert_eq!(first.status(), 303);
    // The same form again (a double click) makes no second grant.
    let second = submit(&app, &b.finance, &action, &dashboard, &fields).await;
    assert_eq!((second.status().as_u16(), location(&second)), (303, location(&first)));
    let (_, grants) = json(app.get(&format!("/v1/grants?programme_id={programme_id}"), &b.finance).await).await;
    let made: Vec<&Value> =
        grants["data"].as_array().expect("data").iter().filter(|g| g["tenant_org_id"] == tenant_org.as_str()).collect();
    assert_eq!(made.len(), 1, "{grants:#}");
    let made = made[0];
    assert_eq!((made["amount"].as_str(), made["status"].as_str()), (Some("20000"), Some("active")));
    assert_eq!(made["valid_from"].as_str().map(|t| t.parse::<DateTime<Utc>>().expect("t")), Some(b.start));
    assert_eq!(location(&first), format!("/programmes/{programme_id}?granted={}#grants", id(made)));
    let api = report(&app, &b.finance, &b.programme).await;
    assert_eq!((api.granted.as_str(), api.unallocated.as_str()), ("120000", "880000"));

    // With two grants, the grant-level figures point at the grants table.
    let dashboard = page(&app, &b.finance, &location(&first)).await;
    assert_eq!(figure(&dashboard, "spent").1, "#grants");
    assert_eq!(figure(&dashboard, "granted").0, "120000");

    // Close it: what it had left goes back to the programme.
    let close = format!("/grants/{}/close", id(made));
    let response = submit(&app, &b.finance, &close, &dashboard, &[]).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("{path}?closed={}#grants", id(made))));
    let (_, closed) = json(app.get(&format!("/v1/grants/{}", id(made)), &b.finance).await).await;
    assert_eq!((closed["status"].as_str(), closed["released"].as_str()), (Some("closed"), Some("20000")));
    let api = report(&app, &b.finance, &b.programme).await;
    assert_eq!((api.released.as_str(), api.unallocated.as_str()), ("20000", "900000"));
    let dashboard = page(&app, &b.finance, &path).await;
    assert_eq!(figure(&dashboard, "released").0, "20000");
    assert!(!dashboard.contains(&format!("action=\"{close}\"")), "a closed grant has no close button");

    // A bad amount is refused with the API's reason, and nothing is written.
    let response = submit(
        &app,
        &b.finance,
        &action,
        &dashboard,
        &[
            ("tenant_org_id", tenant_org.as_str()),
            ("amount", "12.5"),
            ("valid_from", from.as_str()),
            ("valid_until", until.as_str()),
        ],
    )
    .await;
    // It comes back to the dashboard's form, the values as typed.
    assert_eq!(response.status(), 422);
    let again = response.text().await.expect("page");
    let refused_form = form(&again, &action);
    assert!(again.contains("div class=\"problem\" role=\"alert\""), "{again}");
    assert!(again.contains("amount: "), "the field's problem is named: {again}");
    assert_eq!(field(refused_form, "amount"), "12.5");
    assert!(refused_form.contains(&format!("value=\"{tenant_org}\" selected")), "the tenant stays chosen");
    assert_eq!(field(refused_form, "valid_from"), from);
    let (_, after) = json(app.get(&format!("/v1/grants?programme_id={programme_id}"), &b.finance).await).await;
    assert_eq!(after["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_claim_is_created_submitted_and_paid_through_the_forms() {
    let app = spawn_app().await;
    let b = books(&app).await;
    let programme_id = id(&b.programme);
    let claims = page(&app, &b.finance, "/claims").await;
    assert!(claims.contains("청구가 없습니다"), "{claims}");
    // A month that is not one comes back to the form, as typed; no claim is made.
    let response =
        submit(&app, &b.finance, "/claims", &claims, &[("programme_id", programme_id), ("month", "2026-13")]).await;
    assert_eq!(response.status(), 422);
    let refused = response.text().await.expect("page");
    assert!(refused.contains("div class=\"problem\" role=\"alert\"") && refused.contains("month"), "{refused}");
    assert_eq!(field(form(&refused, "/claims"), "month"), "2026-13");
    assert!(form(&refused, "/claims").contains(&format!("value=\"{programme_id}\" selected")));
    let (_, none) = json(app.get("/v1/claims", &b.finance).await).await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    let (start, end) = (seoul(b.start), seoul(b.start + Duration::days(1)));
    let response = submit(
        &app,
        &b.finance,
        "/claims",
        &claims,
        &[
            ("programme_id", programme_id),
            ("month", ""),
            ("period_start", start.as_str()),
            ("period_end", end.as_str()),
        ],
    )
    .await;
    assert_eq!(response.status(), 303);
    let claim_path = location(&response).trim_end_matches("?created=1").to_string();
    let claim_id = claim_path.trim_start_matches("/claims/");
    let (_, claim) = json(app.get(&format!("/v1/claims/{claim_id}"), &b.finance).await).await;
    assert_eq!(
        (claim["amount"].as_str(), claim["status"].as_str(), claim["items"].as_i64()),
        (Some("5603"), Some("draft"), Some(7))
    );
    assert_eq!(claim["period_start"].as_str().map(|t| t.parse::<DateTime<Utc>>().expect("t")), Some(b.start));

    let list = page(&app, &b.finance, "/claims").await;
    assert!(list.contains(&format!("href=\"{claim_path}\"")) && list.contains("5,603원"), "{list}");
    let draft = page(&app, &b.finance, &claim_path).await;
    assert_eq!(figure(&draft, "amount").0, "5603");
    assert!(!draft.contains("/payments\""), "a draft takes no payment");
    let response = submit(&app, &b.finance, &format!("{claim_path}/submit"), &draft, &[]).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("{claim_path}?submitted=1")));
    let (_, claim) = json(app.get(&format!("/v1/claims/{claim_id}"), &b.finance).await).await;
    assert_eq!(claim["status"], "submitted");

    let submitted = page(&app, &b.finance, &claim_path).await;
    assert_eq!(figure(&submitted, "outstanding").0, "5603");
    let pay = format!("{claim_path}/payments");
    let response = submit(&app, &b.finance, &pay, &submitted, &[("amount", "4000"), ("reference", "MSIT-0001")]).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("{claim_path}?paid=1")));
    let (_, claim) = json(app.get(&format!("/v1/claims/{claim_id}"), &b.finance).await).await;
    assert_eq!((claim["paid"].as_str(), claim["outstanding"].as_str()), (Some("4000"), Some("1603")));
    let paid = page(&app, &b.finance, &format!("{claim_path}?paid=1")).await;
    assert_eq!((figure(&paid, "paid").0, figure(&paid, "outstanding").0), ("4000".into(), "1603".into()));
    assert!(paid.contains("1,603원") && paid.contains("MSIT-0001"), "{paid}");
    let payment_entry = claim["payments"][0]["journal_entry_id"].as_str().expect("entry");
    assert!(paid.contains(&format!("href=\"/ledger/entries/{payment_entry}\"")));

    // The same reference again is the API's 409, shown on the payment form
    // with what was typed; nothing is paid.
    let again = submit(&app, &b.finance, &pay, &paid, &[("amount", "1603"), ("reference", "MSIT-0001")]).await;
    assert_eq!(again.status(), 409);
    let again = again.text().await.expect("page");
    assert!(again.contains("div class=\"problem\" role=\"alert\""), "{again}");
    assert_eq!(
        (field(form(&again, &pay), "amount"), field(form(&again, &pay), "reference")),
        ("1603".into(), "MSIT-0001".into())
    );
    let (_, claim) = json(app.get(&format!("/v1/claims/{claim_id}"), &b.finance).await).await;
    assert_eq!(claim["paid"], "4000");

    // The dashboard agrees with the report after the payment.
    let api = report(&app, &b.finance, &b.programme).await;
    assert_eq!((api.claimed.as_str(), api.paid.as_str(), api.outstanding.as_str()), ("5603", "4000", "1603"));
    let dashboard = page(&app, &b.finance, &format!("/programmes/{programme_id}")).await;
    for key in FIGURES {
        assert_eq!(figure(&dashboard, key).0, report_figure(&api, key), "{key}");
    }
    let receivable =
        app.account_id(&format!("assets:subsidy-receivable:{programme_id}"), gpuhour::money::Currency::Krw).await;
    assert_eq!(figure(&dashboard, "outstanding").1, format!("/ledger/accounts/{receivable}"));

    // Each write is in the audit log once, under the console's route.
    let audit = page(&app, &b.finance, "/audit?route=%2Fclaims%2F%7Bid%7D%2Fpayments").await;
    assert_eq!(values(&audit, "data-route"), vec!["/claims/{id}/payments".to_string()]);
    assert_eq!(values(&audit, "data-status"), vec!["201".to_string()]);
    let (_, api_audit) = json(app.get("/v1/audit-log?route=/claims/%7Bid%7D/payments", &b.finance).await).await;
    assert_eq!(api_audit["data"].as_array().map(Vec::len), Some(1), "{api_audit:#}");
}

#[tokio::test]
async fn the_trial_balance_page_is_the_apis_now_and_as_of_an_instant_and_the_export_downloads() {
    let app = spawn_app().await;
    let b = books(&app).await;
    let check = |html: String, api: Value| {
        let rows = api["data"].as_array().expect("data");
        for row in rows {
            let marker =
                format!("data-account=\"{}\" data-balance=\"{}\"", id(row), row["balance"].as_str().expect("b"));
            assert!(html.contains(&marker), "{marker}: {html}");
        }
        assert_eq!(values(&html, "data-account").len(), rows.len());
        for t in api["totals"].as_array().expect("totals").iter().chain(api["memo_totals"].as_array().expect("memo")) {
            let marker = format!(
                "data-totals=\"{}\" data-debits=\"{}\" data-credits=\"{}\"",
                t["currency"].as_str().expect("c"),
                t["debits_posted"].as_str().expect("d"),
                t["credits_posted"].as_str().expect("c")
            );
            assert!(html.contains(&marker), "{marker}");
        }
    };
    let (_, now) = json(app.get("/v1/reports/trial-balance", &b.finance).await).await;
    check(page(&app, &b.finance, "/ledger?all=1").await, now);
    // By default, only the currencies something was posted in.
    let krw_only = page(&app, &b.finance, "/ledger").await;
    assert_eq!(values(&krw_only, "data-totals"), vec!["KRW".to_string(), "KRW".to_string()]);
    assert!(krw_only.contains("EUR, JPY, USD"), "{krw_only}");
    let at = b.start + Duration::hours(3);
    let (_, then) = json(
        app.get(&format!("/v1/reports/trial-balance?as_of={}", at.to_rfc3339().replace('+', "%2B")), &b.finance).await,
    )
    .await;
    let as_of: String = form_urlencoded::byte_serialize(seoul(at).as_bytes()).collect();
    let html = page(&app, &b.finance, &format!("/ledger?as_of={as_of}&all=1")).await;
    check(html.clone(), then);
    assert!(html.contains(&format!("href=\"/ledger/export?format=csv&amp;to={as_of}\"")), "{html}");
    let bad = get(&app, &b.finance, "/ledger?as_of=yesterday").await;
    assert_eq!(bad.status(), 422);

    // The journal export with the session: the API's own file.
    for format in ["hledger", "csv"] {
        let response = get(&app, &b.finance, &format!("/ledger/export?format={format}")).await;
        assert_eq!(response.status(), 200);
        let disposition = response.headers().get("content-disposition").and_then(|v| v.to_str().ok()).map(String::from);
        assert!(disposition.expect("attachment").starts_with("attachment"));
        let console = response.text().await.expect("file");
        let api =
            app.get(&format!("/v1/exports/journal?format={format}"), &b.finance).await.text().await.expect("file");
        assert_eq!(console, api, "{format}");
    }
    assert_eq!(get(&app, &b.finance, "/ledger/export?format=pdf").await.status(), 422);

    let verify = page(&app, &b.finance, "/ledger/verify").await;
    assert!(verify.contains("data-verify=\"ok\""), "{verify}");

    // The audit log pages with the API's filters; a malformed filter is the API's 422.
    let (_, api_audit) = json(app.get("/v1/audit-log?limit=50", &b.finance).await).await;
    let audit = page(&app, &b.finance, "/audit").await;
    let api_routes: Vec<String> = api_audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["route"].as_str().expect("route").into())
        .collect();
    assert_eq!(values(&audit, "data-route"), api_routes);
    let orders = page(&app, &b.finance, "/audit?route=%2Fv1%2Forders").await;
    assert_eq!(values(&orders, "data-route"), vec!["/v1/orders".to_string(); 2]);
    for bad in ["/audit?user_id=someone", "/audit?from=yesterday", "/audit?cursor=nonsense"] {
        assert_eq!(get(&app, &b.finance, bad).await.status(), 422, "{bad}");
    }
}

#[tokio::test]
async fn forms_without_their_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let b = books(&app).await;
    let programme_id = id(&b.programme);
    let (start, end) = (seoul(b.start), seoul(b.start + Duration::days(1)));
    let claim_fields = [("programme_id", programme_id), ("period_start", start.as_str()), ("period_end", end.as_str())];
    let response = post_form(&app, &b.finance, "/claims", &claim_fields).await;
    assert_eq!(response.status(), 403);
    let mut forged = claim_fields.to_vec();
    let zeros = "00".repeat(32);
    forged.push(("csrf", &zeros));
    assert_eq!(post_form(&app, &b.finance, "/claims", &forged).await.status(), 403);
    assert_eq!(app.count("SELECT count(*) AS n FROM claims").await, 0);

    let close = format!("/grants/{}/close", id(&b.grant));
    assert_eq!(post_form(&app, &b.finance, &close, &[]).await.status(), 403);
    let (_, grant) = json(app.get(&format!("/v1/grants/{}", id(&b.grant)), &b.finance).await).await;
    assert_eq!(grant["status"], "active");
}

#[tokio::test]
async fn a_tenant_cannot_open_or_post_to_finance_pages() {
    let app = spawn_app().await;
    let b = books(&app).await;
    let programme_id = id(&b.programme);
    let account =
        app.account_id(&format!("budget:programme:{programme_id}:unallocated"), gpuhour::money::Currency::Krw).await;
    for path in [
        "/programmes".to_string(),
        format!("/programmes/{programme_id}"),
        "/claims".into(),
        "/ledger".into(),
        format!("/ledger/accounts/{account}"),
        "/ledger/export?format=csv".into(),
        "/ledger/verify".into(),
        "/audit".into(),
    ] {
        let response = get(&app, &b.tenant.token, &path).await;
        assert_eq!(response.status(), 403, "{path}");
        let body = response.text().await.expect("page");
        assert!(body.contains("role=\"alert\"") && !body.contains("900,000"), "{path}: {body}");
    }
    // Even with its own valid form token, a tenant's post writes nothing.
    let csrf = app.keys.form_token(&b.tenant.token);
    let (start, end) = (seoul(b.start), seoul(b.start + Duration::days(1)));
    let fields =
        [("csrf", csrf.as_str()), ("programme_id", programme_id), ("period_start", &start), ("period_end", &end)];
    assert_eq!(post_form(&app, &b.tenant.token, "/claims", &fields).await.status(), 403);
    assert_eq!(app.count("SELECT count(*) AS n FROM claims").await, 0);
    // A tenant's navigation has no finance pages; anonymous visitors are sent to sign in.
    let market = page(&app, &b.tenant.token, "/market").await;
    assert!(!market.contains("href=\"/ledger\""));
    let anonymous = browser().get(app.url("/programmes")).send().await.expect("page");
    assert_eq!((anonymous.status().as_u16(), location(&anonymous).as_str()), (303, "/login?next=%2Fprogrammes"));
    // A programme that does not exist is not found.
    let missing = get(&app, &b.finance, &format!("/programmes/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn an_under_used_grant_is_shown_flagged_and_reclaimed_through_the_dashboards_form() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let mut body = json!({
        "name": "2026 AI Compute Voucher", "sponsor": "Ministry of Science and ICT", "fiscal_year": 2026,
        "currency": "KRW", "budget": "1000000", "starts_at": start - Duration::days(1),
        "ends_at": start + Duration::days(365), "default_rate": "0.7", "rates_by_category": {"sme": "0.8"},
    });
    body["reclaim_below_utilisation"] = json!("0.2");
    body["reclaim_window_hours"] = json!(1);
    let (_, p) = json(app.post("/v1/programmes", &finance, &body, None).await).await;
    let g = grant(&app, &finance, &p, &tenant, "100000", start).await;
    let l = listing(&app, &provider.token, 8, "1000", start, 48).await;
    let (status, _) =
        json(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 2, start, 10), &g), None).await).await;
    assert_eq!(status, 201);
    set_clock(&app, &finance, start + Duration::minutes(150)).await;
    assert_eq!(app.post("/v1/settlements/run", &finance, &json!({}), None).await.status(), 200);
    let flagged =
        gpuhour::subsidy::reclaim::flag_grants(&app.pool, gpuhour::clock::Clock::Sandbox).await.expect("the job runs");
    assert_eq!(flagged.len(), 1);

    let path = format!("/programmes/{}", id(&p));
    let dashboard = page(&app, &finance, &path).await;
    assert!(dashboard.contains(&format!("data-flagged=\"{}\"", id(&g))), "{dashboard}");
    let action = format!("/grants/{}/reclaim", id(&g));

    // No reason: refused on the dashboard, the grant untouched.
    let response = submit(&app, &finance, &action, &dashboard, &[("reason", " ")]).await;
    assert_eq!(response.status(), 422);
    let again = response.text().await.expect("page");
    assert!(again.contains("div class=\"problem\" role=\"alert\"") && again.contains("reason: "), "{again}");
    let (_, still) = json(app.get(&format!("/v1/grants/{}", id(&g)), &finance).await).await;
    assert_eq!(still["status"], "active");

    // With a reason: reclaimed exactly as the API reclaims (3 hours begun
    // charged, the rest refunded, 95,200 back to the programme).
    let response = submit(&app, &finance, &action, &again, &[("reason", "idle for the window")]).await;
    assert_eq!((response.status().as_u16(), location(&response)), (303, format!("{path}?reclaimed={}#grants", id(&g))));
    let (_, after) = json(app.get(&format!("/v1/grants/{}", id(&g)), &finance).await).await;
    assert_eq!(
        (
            after["status"].as_str(),
            after["spent"].as_str(),
            after["released"].as_str(),
            after["reclaim_reason"].as_str()
        ),
        (Some("closed"), Some("4800"), Some("95200"), Some("idle for the window"))
    );
    let shown = page(&app, &finance, &location(&response)).await;
    assert!(shown.contains(&format!("data-reclaimed=\"{}\"", id(&g))), "{shown}");
    assert!(!shown.contains(&format!("action=\"{action}\"")), "a closed grant has no reclaim form");
    let api = report(&app, &finance, &p).await;
    assert_eq!(figure(&shown, "unallocated").0, api.unallocated);
    assert_eq!(api.unallocated, "995200");
}
