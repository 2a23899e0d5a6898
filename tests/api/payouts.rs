//! Payouts from cash received (issue 14, item 4): a provider is paid its
//! tenants' share at once and the subsidy share once the programme has paid
//! it; an outage credit after a payout is owed back by the provider and
//! recovered from its next payout.

use chrono::Duration;
use gpuhour::auth::Role;
use gpuhour::ledger::routes::TrialBalance;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::helpers::{
    Caller, TestApp, expect_problem, json, next_hour, spawn_app, spawn_app_with, trial_balance_row, verify_is_clean,
};
use crate::market::{deposit, listing, order_body, set_clock, settle};
use crate::subsidy::{programme, with_grant};

async fn pay(app: &TestApp, finance: &str, provider: &Caller, amount: &str) -> reqwest::Response {
    let body = json!({"provider_org_id": provider.org_id, "amount": amount, "currency": "KRW",
        "reference": format!("P-{}", uuid::Uuid::now_v7())});
    app.post("/v1/payouts", finance, &body, None).await
}

async fn position(app: &TestApp, finance: &str, provider: &Caller) -> Value {
    let (status, s) =
        json(app.get(&format!("/v1/reports/statements/{}?currency=KRW", provider.org_id), finance).await).await;
    assert_eq!(status, 200, "{s:#}");
    s["payout_positions"][0].clone()
}

async fn krw_balance(app: &TestApp, finance: &str, code: &str) -> Decimal {
    let tb: TrialBalance = app.get_as("/v1/reports/trial-balance", finance).await;
    trial_balance_row(&tb, code, "KRW").expect("account").account.balance.parse().expect("decimal")
}

/// A tenant with a 80 % grant buys 1 GPU × 10 hours at 1,000; all settled.
pub struct Subsidised {
    pub finance: String,
    pub provider: Caller,
    pub tenant: Caller,
    pub programme: Value,
    pub grant: Value,
}

pub async fn subsidised_market(app: &TestApp) -> Subsidised {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(app, &finance).await;
    let p = programme(app, &finance, "1000000", start).await;
    let body = json!({"tenant_org_id": tenant.org_id, "amount": "100000", "rate": "0.8",
        "valid_from": start - Duration::days(1), "valid_until": start + Duration::days(90)});
    let pid = p["id"].as_str().expect("id");
    let (status, g) = json(app.post(&format!("/v1/programmes/{pid}/grants"), &finance, &body, None).await).await;
    assert_eq!(status, 201, "{g:#}");
    let l = listing(app, &provider.token, 1, "1000", start, 24).await;
    let (status, order) =
        json(app.post("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start, 10), &g), None).await).await;
    assert_eq!(status, 201, "{order:#}");
    assert_eq!((order["subsidy"].as_str(), order["tenant_amount"].as_str()), (Some("8000"), Some("2000")));
    set_clock(app, &finance, start + Duration::hours(10)).await;
    settle(app, &finance).await;
    Subsidised { finance, provider, tenant, programme: p, grant: g }
}

#[tokio::test]
async fn providers_are_paid_from_cash_received() {
    let app = spawn_app().await;
    let Subsidised { finance, provider, tenant, programme: p, .. } = subsidised_market(&app).await;
    let figures = |v: &Value| {
        ["payable", "awaiting_programme", "payable_now"].map(|k| v[k].as_str().expect("figure").to_string())
    };
    assert_eq!(figures(&position(&app, &finance, &provider).await), ["10000", "8000", "2000"]);
    // The subsidy has not reached the bank: only the tenant's 2,000 can go.
    let refused = expect_problem(pay(&app, &finance, &provider, "2001").await, 422, "validation_failed").await;
    assert!(refused.to_string().contains("8,000") || refused.to_string().contains("8000"), "{refused:#}");
    let (status, paid) = json(pay(&app, &finance, &provider, "2000").await).await;
    assert_eq!((status.as_u16(), paid["payable_balance"].as_str()), (201, Some("8000")), "{paid:#}");

    // The programme pays 5,000 of its 8,000 claim: 5,000 more may go.
    let pid = p["id"].as_str().expect("id");
    let claim_body =
        json!({"programme_id": pid, "period_start": "2020-01-01T00:00:00Z", "period_end": "2099-01-01T00:00:00Z"});
    let (status, claim) = json(app.post("/v1/claims", &finance, &claim_body, None).await).await;
    assert_eq!((status.as_u16(), claim["amount"].as_str()), (201, Some("8000")), "{claim:#}");
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    let (status, _) = json(app.post(&format!("{claim_path}/submit"), &finance, &json!({}), None).await).await;
    assert_eq!(status, 200);
    let payment = json!({"amount": "5000", "reference": "MSIT-1"});
    let (status, _) = json(app.post(&format!("{claim_path}/payments"), &finance, &payment, None).await).await;
    assert_eq!(status, 201);
    assert_eq!(figures(&position(&app, &finance, &provider).await), ["8000", "3000", "5000"]);
    expect_problem(pay(&app, &finance, &provider, "5001").await, 422, "validation_failed").await;
    let (status, _) = json(pay(&app, &finance, &provider, "5000").await).await;
    assert_eq!(status, 201);
    // The bank holds exactly the tenants' prepaid money: nothing was paid from it.
    let wallet = krw_balance(&app, &finance, &format!("liabilities:tenant:{}:wallet", tenant.org_id)).await;
    assert_eq!(krw_balance(&app, &finance, "assets:bank").await, wallet);
    assert_eq!(wallet, Decimal::from(98000));
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn an_advance_rate_lets_part_of_the_awaited_subsidy_be_paid() {
    let app = spawn_app_with(|s| s.payout_advance_rate = Decimal::new(5, 1)).await;
    let Subsidised { finance, provider, .. } = subsidised_market(&app).await;
    let p = position(&app, &finance, &provider).await;
    assert_eq!((p["advance_allowed"].as_str(), p["payable_now"].as_str()), (Some("4000"), Some("6000")));
    expect_problem(pay(&app, &finance, &provider, "6001").await, 422, "validation_failed").await;
    assert_eq!(pay(&app, &finance, &provider, "6000").await.status(), 201);
}

#[tokio::test]
async fn an_outage_after_a_payout_is_owed_back_and_recovered_from_the_next_payout() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let (status, _) = json(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start, 4), None).await).await;
    assert_eq!(status, 201);
    set_clock(&app, &finance, start + Duration::hours(4)).await;
    settle(&app, &finance).await;
    assert_eq!(pay(&app, &finance, &provider, "4000").await.status(), 201);

    // Hours 0 and 1 were down: 2,000 back to the tenant, which the provider now owes.
    let outage = json!({"start": start, "end": start + Duration::hours(2), "gpus": 1});
    let (status, credit) = json(
        app.post(&format!("/v1/listings/{}/outages", l["id"].as_str().expect("id")), &provider.token, &outage, None)
            .await,
    )
    .await;
    assert_eq!((status.as_u16(), credit["credits"][0]["refunded"].as_str()), (201, Some("2000")), "{credit:#}");
    let receivable = format!("assets:provider:{}:receivable", provider.org_id);
    let payable = format!("liabilities:provider:{}:payable", provider.org_id);
    assert_eq!(krw_balance(&app, &finance, &receivable).await, Decimal::from(2000));
    assert_eq!(krw_balance(&app, &finance, &payable).await, Decimal::ZERO, "never negative");
    let (_, statement) =
        json(app.get(&format!("/v1/reports/statements/{}?currency=KRW", provider.org_id), &provider.token).await).await;
    let owed = statement["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["section"] == "owed_by_provider")
        .cloned()
        .expect("owed section");
    assert_eq!(owed["closing_balance"], "2000");
    assert_eq!(statement["payout_positions"][0]["provider_receivable"], "2000");

    // It earns 3,000 more; the next payout recovers the 2,000 first.
    let later = start + Duration::hours(5);
    let (status, _) = json(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, later, 3), None).await).await;
    assert_eq!(status, 201);
    set_clock(&app, &finance, later + Duration::hours(3)).await;
    settle(&app, &finance).await;
    assert_eq!(position(&app, &finance, &provider).await["payable_now"], "1000");
    expect_problem(pay(&app, &finance, &provider, "1001").await, 422, "validation_failed").await;
    let (status, paid) = json(pay(&app, &finance, &provider, "1000").await).await;
    assert_eq!(status, 201, "{paid:#}");
    assert_eq!((paid["recovered"].as_str(), paid["payable_balance"].as_str()), (Some("2000"), Some("0")));
    assert_eq!(krw_balance(&app, &finance, &receivable).await, Decimal::ZERO);
    verify_is_clean(&app, &finance).await;
}
