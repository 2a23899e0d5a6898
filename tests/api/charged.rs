//! An order shows what it really cost, from the ledger (issue 14, item 5):
//! outage credits over settled and unsettled hours, a grant that ran short, a
//! cancellation. Before, the order showed only its nominal breakdown.

use chrono::Duration;
use gpuhour::auth::Role;
use gpuhour::http::pagination::Page;
use gpuhour::market::charged::{ChargedSideView, ChargedView};
use gpuhour::market::orders::OrderStatus;
use gpuhour::market::views::{OrderView, OutageView};
use serde_json::json;

use crate::helpers::{TestApp, next_hour, spawn_app, typed, verify_is_clean};
use crate::market::{deposit, listing, order_body, set_clock, settle};
use crate::subsidy::{grant, programme, with_grant};

/// One payer's side: reserved, posted, pending, credited, refunded, released, total.
type Side<'a> = [&'a str; 7];

fn side(s: &ChargedSideView) -> Side<'_> {
    [&s.reserved, &s.posted, &s.pending, &s.credited, &s.refunded, &s.released, &s.total]
}

/// What an order was charged: currency, the tenant's side, the subsidy's side,
/// subtotal and effective subsidy rate.
fn charged(c: &ChargedView) -> (&str, Side<'_>, Side<'_>, &str, Option<&str>) {
    (&c.currency, side(&c.tenant), side(&c.subsidy), &c.subtotal, c.effective_subsidy_rate.as_deref())
}

async fn order(app: &TestApp, token: &str, id: uuid::Uuid) -> OrderView {
    app.get_as(&format!("/v1/orders/{id}"), token).await
}

/// The order as the list shows it: the same figures, read for the whole page at once.
async fn listed(app: &TestApp, token: &str, id: uuid::Uuid) -> OrderView {
    let page: Page<OrderView> = app.get_as("/v1/orders", token).await;
    page.data.into_iter().find(|o| o.id == id).expect("listed")
}

#[tokio::test]
async fn an_order_with_ten_of_its_24_gpu_hours_credited_shows_what_it_really_cost() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "1000000").await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    let g = grant(&app, &finance, &p, &tenant, "1000000", start).await;
    let l = listing(&app, &provider.token, 2, "1001", start, 24).await;

    // 2 GPUs × 12 hours = 24 GPU-hours at 1,001: subtotal 24,024; SME 80%:
    // subsidy floor(19,219.2) = 19,219, tenant 4,805. An hour carries 400 of
    // the tenant's money (the last 405) and 1,601 of the subsidy (the last 1,608).
    let placed: OrderView =
        app.post_as("/v1/orders", &tenant.token, &with_grant(order_body(&l, 2, start, 12), &g), None, 201).await;
    assert_eq!((placed.tenant_amount.as_str(), placed.subsidy.as_str()), ("4805", "19219"));
    assert_eq!(
        charged(&placed.charged),
        (
            "KRW",
            ["4805", "0", "4805", "0", "0", "0", "4805"],
            ["19219", "0", "19219", "0", "0", "0", "19219"],
            "24024",
            Some("0.8000")
        )
    );
    let id = placed.id;

    // Six hours settled; then both GPUs lost in hours 2–6: four settled hours
    // refunded, one unsettled hour voided — 10 of the 24 GPU-hours.
    set_clock(&app, &finance, start + Duration::hours(6)).await;
    settle(&app, &finance).await;
    let outage = json!({"start": start + Duration::hours(2), "end": start + Duration::hours(7), "gpus": 2});
    let credit: OutageView = app
        .post_as(
            &format!("/v1/listings/{}/outages", l["id"].as_str().expect("id")),
            &provider.token,
            &outage,
            None,
            201,
        )
        .await;
    assert_eq!(credit.credits[0].gpu_hours, 10);

    // Tenant: posted 6 × 400 = 2,400; refunded 4 × 400 = 1,600; voided 400;
    // still reserved 4,805 − 2,400 − 400 = 2,005; pays 2,400 − 1,600 + 2,005 = 2,805.
    // Subsidy: posted 9,606; refunded 6,404; voided 1,601; reserved 8,012; pays 11,214.
    // 11,214 ÷ 14,019 = 0.79991…: the rounding of each hour shows in the rate.
    let expected_mid = (
        "KRW",
        ["4805", "2400", "2005", "400", "1600", "0", "2805"],
        ["19219", "9606", "8012", "1601", "6404", "0", "11214"],
        "14019",
        Some("0.7999"),
    );
    let mid = order(&app, &tenant.token, id).await;
    assert_eq!(charged(&mid.charged), expected_mid, "{mid:#?}");
    assert_eq!(mid.credited_gpu_hours, 10);
    // The nominal breakdown stays what it was when the order was placed.
    assert_eq!((mid.tenant_amount.as_str(), mid.subsidy.as_str()), ("4805", "19219"));
    assert_eq!(charged(&listed(&app, &tenant.token, id).await.charged), expected_mid);
    assert_eq!(charged(&order(&app, &provider.token, id).await.charged), expected_mid, "its provider sees the same");

    // The order runs out: what was reserved is posted, and the totals stand.
    set_clock(&app, &finance, start + Duration::hours(12)).await;
    settle(&app, &finance).await;
    let done = order(&app, &finance, id).await;
    assert_eq!(done.status, OrderStatus::Completed);
    assert_eq!(
        charged(&done.charged),
        (
            "KRW",
            ["4805", "4405", "0", "400", "1600", "0", "2805"],
            ["19219", "17618", "0", "1601", "6404", "0", "11214"],
            "14019",
            Some("0.7999")
        )
    );
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn a_grant_capped_order_shows_its_effective_rate() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.tenant("sme").await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let p = programme(&app, &finance, "100000000", start).await;
    // 10,000 at 80% would be 8,000 of subsidy; the grant has 5,000 left.
    let g = grant(&app, &finance, &p, &tenant, "5000", start).await;
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let placed: OrderView =
        app.post_as("/v1/orders", &tenant.token, &with_grant(order_body(&l, 1, start, 10), &g), None, 201).await;
    assert_eq!(
        (placed.subsidy_rate.as_str(), placed.subsidy.as_str(), placed.tenant_amount.as_str()),
        ("0.8", "5000", "5000")
    );
    let shown = order(&app, &tenant.token, placed.id).await;
    assert_eq!(
        charged(&shown.charged),
        (
            "KRW",
            ["5000", "0", "5000", "0", "0", "0", "5000"],
            ["5000", "0", "5000", "0", "0", "0", "5000"],
            "10000",
            Some("0.5000")
        )
    );
}

#[tokio::test]
async fn a_cancelled_order_shows_what_the_cancellation_released() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 2, "1000", start, 48).await;
    let (_, running): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start, 10), None).await).await;
    let (_, unstarted): (_, OrderView) =
        typed(app.post("/v1/orders", &tenant.token, &order_body(&l, 1, start + Duration::hours(24), 5), None).await)
            .await;

    // Two and a half hours in: two hours settled, the third begun and charged,
    // seven released.
    set_clock(&app, &finance, start + Duration::minutes(150)).await;
    settle(&app, &finance).await;
    let id = running.id;
    let cancelled: OrderView =
        app.post_as(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None, 200).await;
    let expected = (
        "KRW",
        ["10000", "3000", "0", "0", "0", "7000", "3000"],
        ["0", "0", "0", "0", "0", "0", "0"],
        "3000",
        Some("0.0000"),
    );
    assert_eq!(charged(&cancelled.charged), expected, "{cancelled:#?}");
    assert_eq!(charged(&order(&app, &tenant.token, id).await.charged), expected);

    // Cancelled before it began: everything released, nothing charged, no rate.
    let id = unstarted.id;
    let (_, cancelled): (_, OrderView) =
        typed(app.post(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None).await).await;
    assert_eq!(
        charged(&cancelled.charged),
        ("KRW", ["5000", "0", "0", "0", "0", "5000", "0"], ["0", "0", "0", "0", "0", "0", "0"], "0", None)
    );
    verify_is_clean(&app, &finance).await;
}
