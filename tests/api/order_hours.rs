//! Credits and charges tied to the hours they are for: an outage credit
//! followed by a cancellation, the money defect the reliability review found
//! (issue 8, defect 1). Before the fix the credited hour was charged again.

use chrono::Duration;
use gpuhour::auth::Role;
use gpuhour::market::views::{OrderView, OutageView};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json, next_hour, spawn_app, verify_is_clean};
use crate::market::{deposit, listing, order_body, payable, set_clock, settle, wallet};
use crate::subsidy::{programme, report, with_grant};

/// 1 GPU at 1,000 KRW an hour for 10 hours; hour 0 lost to an outage half an
/// hour in, then the order cancelled: the only begun hour was fully credited,
/// so nothing is charged to anyone.
async fn outage_then_cancel(subsidised: bool) {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let provider = app.caller(Role::Provider).await;
    let tenant = app.caller(Role::Tenant).await;
    deposit(&app, &finance, tenant.org_id, "100000").await;
    let start = next_hour(&app, &finance).await;
    let l = listing(&app, &provider.token, 1, "1000", start, 24).await;
    let mut body = order_body(&l, 1, start, 10);
    let p = programme(&app, &finance, "1000000", start).await;
    if subsidised {
        body = with_grant(body, &grant_at_half(&app, &finance, &p, &tenant, start).await);
    }
    let order: OrderView = app.post_as("/v1/orders", &tenant.token, &body, None, 201).await;
    let tenant_share = if subsidised { "5000" } else { "10000" };
    assert_eq!(order.tenant_amount, tenant_share);

    set_clock(&app, &finance, start + Duration::minutes(30)).await;
    let outage = json!({"start": start, "end": start + Duration::hours(1), "gpus": 1});
    let credit: OutageView = app
        .post_as(
            &format!("/v1/listings/{}/outages", l["id"].as_str().expect("id")),
            &provider.token,
            &outage,
            None,
            201,
        )
        .await;
    let hour_share = if subsidised { "500" } else { "1000" };
    assert_eq!((credit.credits[0].voided.as_str(), credit.credits[0].refunded.as_str()), (hour_share, "0"));

    let id = order.id;
    let cancelled: OrderView =
        app.post_as(&format!("/v1/orders/{id}/cancel"), &tenant.token, &json!({}), None, 200).await;
    assert_eq!(cancelled.charged_hours, 1);

    // Nobody pays for the lost hour: wallet whole, nothing reserved, nothing earned.
    let w = wallet(&app, &tenant.token).await;
    assert_eq!((w.balance.as_str(), w.debits_pending.as_str()), ("100000", "0"), "{w:#?}");
    let earned = payable(&app, &provider.token).await;
    assert_eq!((earned.balance.as_str(), earned.credits_pending.as_str()), ("0", "0"), "{earned:#?}");
    let r = report(&app, &finance, &p).await;
    assert_eq!((r.spent.as_str(), r.committed.as_str()), ("0", "0"), "{r:#?}");
    // Later hours settle nothing.
    set_clock(&app, &finance, start + Duration::hours(12)).await;
    assert_eq!(settle(&app, &finance).await.orders, 0);
    verify_is_clean(&app, &finance).await;
}

async fn grant_at_half(
    app: &TestApp,
    finance: &str,
    programme: &Value,
    tenant: &crate::helpers::Caller,
    start: chrono::DateTime<chrono::Utc>,
) -> Value {
    let body = json!({"tenant_org_id": tenant.org_id, "amount": "100000", "rate": "0.5",
        "valid_from": start - Duration::days(1), "valid_until": start + Duration::days(90)});
    let (status, g) = json(
        app.post(&format!("/v1/programmes/{}/grants", programme["id"].as_str().expect("id")), finance, &body, None)
            .await,
    )
    .await;
    assert_eq!(status, 201, "{g:#}");
    g
}

#[tokio::test]
async fn a_credited_hour_is_not_charged_again_when_the_order_is_cancelled() {
    outage_then_cancel(true).await;
}

#[tokio::test]
async fn a_credited_hour_is_not_charged_again_without_a_grant_either() {
    outage_then_cancel(false).await;
}
