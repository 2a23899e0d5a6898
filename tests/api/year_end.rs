//! Year-end settlement (issue 11, item 2): after its fiscal year a programme's
//! grants are closed, what is unclaimed is claimed, and what it gave beyond
//! its subsidy becomes a refund due (or a shortfall stays outstanding); after
//! that it takes nothing new but its refund and payments on its claims.

use chrono::{DateTime, Duration, Utc};
use gpuhour::auth::Role;
use gpuhour::market::views::OrderView;
use gpuhour::subsidy::advances::AdvanceView;
use gpuhour::subsidy::claims::ClaimView;
use gpuhour::subsidy::programmes::GrantStatus;
use gpuhour::subsidy::routes::{GrantView, ProgrammeView};
use gpuhour::subsidy::year_end::{RefundView, SettlementOutcome};
use gpuhour::subsidy::year_end_routes::{GrantLine, SettlementStatement};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Caller, TestApp, expect_problem, next_hour, read_as, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock, settle};

struct Year {
    finance: String,
    tenant: Caller,
    pid: Uuid,
    grant: Uuid,
    ends_at: DateTime<Utc>,
    start: DateTime<Utc>,
}

/// A programme that ends 12 hours from now; an 80 % grant; 1 GPU × 10 hours
/// at 1,000 bought with it (subsidy 8,000), not yet settled.
async fn year(app: &TestApp) -> Year {
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(app, &finance).await;
    let ends_at = start + Duration::hours(12);
    let body = json!({"name": "2026 compute voucher", "sponsor": "NIPA", "fiscal_year": 2026, "currency": "KRW",
        "budget": "1000000", "starts_at": start - Duration::days(1), "ends_at": ends_at, "default_rate": "0.7"});
    let p: ProgrammeView = app.post_as("/v1/programmes", &finance, &body, None, 201).await;
    let pid = p.id;
    let body = json!({"tenant_org_id": tenant.org_id, "amount": "100000", "rate": "0.8",
        "valid_from": start - Duration::days(1), "valid_until": ends_at});
    let g: GrantView = app.post_as(&format!("/v1/programmes/{pid}/grants"), &finance, &body, None, 201).await;
    let l = listing(app, &provider.token, 1, "1000", start, 24).await;
    let mut order = order_body(&l, 1, start, 10);
    order["grant_id"] = json!(g.id);
    let o: OrderView = app.post_as("/v1/orders", &tenant.token, &order, None, 201).await;
    assert_eq!(o.subsidy, "8000");
    Year { finance, tenant, pid, grant: g.id, ends_at, start }
}

async fn advance(app: &TestApp, y: &Year, amount: &str, reference: &str) -> reqwest::Response {
    let at = crate::helpers::now(app, &y.finance).await;
    let body = json!({"amount": amount, "reference": reference, "received_at": at});
    app.post(&format!("/v1/programmes/{}/advances", y.pid), &y.finance, &body, None).await
}

/// Records an advance, expecting it taken in full.
async fn advanced(app: &TestApp, y: &Year, amount: &str, reference: &str) {
    let tranche: AdvanceView = read_as(advance(app, y, amount, reference).await, 201).await;
    assert_eq!((tranche.programme_id, tranche.amount.as_str(), tranche.reference.as_str()), (y.pid, amount, reference));
}

/// A settlement statement's line of a grant: grant, tenant, status, amount, spent, released.
fn grant_line(l: &GrantLine) -> (Uuid, Uuid, GrantStatus, &str, &str, &str) {
    (l.grant_id, l.tenant_org_id, l.status, &l.amount, &l.spent, &l.released)
}

#[tokio::test]
async fn a_programme_advanced_more_than_it_spent_is_owed_a_refund() {
    let app = spawn_app().await;
    let y = year(&app).await;
    advanced(&app, &y, "7000", "NIPA-ADV-1").await;
    advanced(&app, &y, "3000", "NIPA-ADV-2").await;
    let settle_path = format!("/v1/programmes/{}/settle", y.pid);
    // Not before the fiscal year ends; not while an order it funded is unsettled.
    expect_problem(app.post(&settle_path, &y.finance, &json!({}), None).await, 409, "conflict").await;
    set_clock(&app, &y.finance, y.ends_at + Duration::hours(1)).await;
    let pending = expect_problem(app.post(&settle_path, &y.finance, &json!({}), None).await, 409, "conflict").await;
    assert!(pending["detail"].as_str().is_some_and(|d| d.contains("1 orders")), "{pending:#}");
    settle(&app, &y.finance).await;

    let done: SettlementOutcome = app.post_as(&settle_path, &y.finance, &json!({}), None, 200).await;
    assert_eq!(
        (done.released_now.as_str(), done.refund_due.as_str(), done.outstanding.as_str()),
        ("92000", "2000", "0")
    );
    assert!(done.final_claim_id.is_some());
    verify_is_clean(&app, &y.finance).await;

    // Settled: nothing new but the refund.
    expect_problem(app.post(&settle_path, &y.finance, &json!({}), None).await, 409, "conflict").await;
    assert_eq!(advance(&app, &y, "1", "NIPA-ADV-3").await.status(), 409);
    let grant =
        json!({"tenant_org_id": y.tenant.org_id, "amount": "1", "valid_from": y.start, "valid_until": y.ends_at});
    expect_problem(
        app.post(&format!("/v1/programmes/{}/grants", y.pid), &y.finance, &grant, None).await,
        409,
        "conflict",
    )
    .await;
    let refunds = format!("/v1/programmes/{}/refunds", y.pid);
    let too_much = json!({"amount": "2001", "reference": "REF-1"});
    expect_problem(app.post(&refunds, &y.finance, &too_much, None).await, 422, "validation_failed").await;
    let refund: RefundView =
        app.post_as(&refunds, &y.finance, &json!({"amount": "2000", "reference": "REF-1"}), None, 201).await;
    assert_eq!(refund.refund_due, "0");

    let statement: SettlementStatement =
        app.get_as(&format!("/v1/reports/programmes/{}/settlement", y.pid), &y.finance).await;
    assert_eq!((statement.refund_due.as_str(), statement.refunded.as_str()), ("0", "2000"));
    assert_eq!(
        statement.by_grant.iter().map(grant_line).collect::<Vec<_>>(),
        [(y.grant, y.tenant.org_id, GrantStatus::Closed, "100000", "8000", "92000")]
    );
    // The same statement as a spreadsheet, figure for figure.
    let xlsx = app.get(&format!("/v1/reports/programmes/{}/settlement?format=xlsx", y.pid), &y.finance).await;
    assert_eq!(xlsx.status(), 200);
    let bytes = xlsx.bytes().await.expect("bytes");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("xlsx");
    use calamine::Reader;
    assert_eq!(book.sheet_names(), ["Settlement", "By grant", "By tenant", "By provider", "By month"]);
    let sheet = book.worksheet_range("Settlement").expect("sheet");
    let figure = |name: &str| {
        sheet.rows().find(|r| r[0] == calamine::Data::String(name.into())).map(|r| r[1].clone()).expect(name)
    };
    assert_eq!(figure("spent"), calamine::Data::Float(8000.0));
    assert_eq!(figure("refunded"), calamine::Data::Float(2000.0));
    let csv = app.get(&format!("/v1/reports/programmes/{}/settlement?format=csv", y.pid), &y.finance).await;
    let csv = csv.text().await.expect("csv");
    assert!(csv.lines().any(|l| l == "spent,8000") && csv.lines().any(|l| l == "refund due,0"), "{csv}");
    let f = &statement.figures;
    assert_eq!(
        [&f.spent, &f.claimed, &f.advanced, &f.advance_applied, &f.advance_unapplied, &f.outstanding],
        ["8000", "8000", "10000", "8000", "0", "0"]
    );
    verify_is_clean(&app, &y.finance).await;
}

#[tokio::test]
async fn a_shortfall_stays_outstanding_for_a_cash_payment() {
    let app = spawn_app().await;
    let y = year(&app).await;
    advanced(&app, &y, "5000", "NIPA-ADV-1").await;
    set_clock(&app, &y.finance, y.ends_at + Duration::hours(1)).await;
    settle(&app, &y.finance).await;
    let done: SettlementOutcome =
        app.post_as(&format!("/v1/programmes/{}/settle", y.pid), &y.finance, &json!({}), None, 200).await;
    assert_eq!((done.refund_due.as_str(), done.outstanding.as_str()), ("0", "3000"));
    // The programme pays the rest on the final claim.
    let claim = format!("/v1/claims/{}", done.final_claim_id.expect("a final claim"));
    let payment = json!({"amount": "3000", "reference": "NIPA-F"});
    let paid: ClaimView = app.post_as(&format!("{claim}/payments"), &y.finance, &payment, None, 201).await;
    assert_eq!(paid.outstanding, "0");
    verify_is_clean(&app, &y.finance).await;
}
