//! The lists finance staff page through (issue 10, item 5): programmes,
//! claims, payouts, deposits and organisations, with filters and cursors.

use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem, json};
use crate::market::deposit_with_reference;
use crate::payouts::subsidised_market;

async fn all(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=1&cursor={c}"),
            None => format!("{path}{sep}limit=1"),
        };
        let (status, page) = json(app.get(&url, token).await).await;
        assert_eq!(status, 200, "{url}: {page:#}");
        out.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn finance_pages_through_programmes_claims_payouts_deposits_and_organisations() {
    let app = crate::helpers::spawn_app().await;
    let m = subsidised_market(&app).await;
    let pid = m.programme["id"].as_str().expect("id");
    let body =
        json!({"programme_id": pid, "period_start": "2020-01-01T00:00:00Z", "period_end": "2099-01-01T00:00:00Z"});
    let (status, claim) = json(app.post("/v1/claims", &m.finance, &body, None).await).await;
    assert_eq!(status, 201);
    deposit_with_reference(&app, &m.finance, m.tenant.org_id, "5000", "wire-2").await;
    let payout = json!({"provider_org_id": m.provider.org_id, "amount": "1000", "currency": "KRW", "reference": "P-1"});
    assert_eq!(app.post("/v1/payouts", &m.finance, &payout, None).await.status(), 201);

    let programmes = all(&app, &m.finance, "/v1/programmes?status=open").await;
    assert_eq!(programmes.iter().map(|p| p["id"].as_str()).collect::<Vec<_>>(), vec![Some(pid)]);
    assert!(all(&app, &m.finance, "/v1/programmes?status=settled").await.is_empty());
    let claims = all(&app, &m.finance, &format!("/v1/claims?programme_id={pid}&status=draft")).await;
    assert_eq!(
        (claims.len(), claims[0]["id"].clone(), claims[0]["amount"].as_str()),
        (1, claim["id"].clone(), Some("8000"))
    );
    let payouts = all(&app, &m.finance, &format!("/v1/payouts?provider_org_id={}", m.provider.org_id)).await;
    assert_eq!((payouts.len(), payouts[0]["amount"].as_str()), (1, Some("1000")));
    let deposits = all(&app, &m.finance, &format!("/v1/deposits?tenant_org_id={}", m.tenant.org_id)).await;
    let amounts: Vec<&str> = deposits.iter().map(|d| d["amount"].as_str().expect("amount")).collect();
    assert_eq!(amounts, vec!["100000", "5000"]);
    let tenants = all(&app, &m.finance, "/v1/organisations?kind=tenant").await;
    assert_eq!(
        tenants.iter().map(|o| o["id"].as_str()).collect::<Vec<_>>(),
        vec![Some(m.tenant.org_id.to_string().as_str())]
    );
    let providers = all(&app, &m.finance, "/v1/organisations?kind=provider&q=provider").await;
    assert_eq!(providers.len(), 1);

    expect_problem(app.get("/v1/claims?status=paid", &m.finance).await, 422, "validation_failed").await;
    expect_problem(app.get("/v1/organisations?kind=bank", &m.finance).await, 422, "validation_failed").await;
    expect_problem(app.get("/v1/deposits?cursor=zz", &m.finance).await, 422, "validation_failed").await;
    for path in ["/v1/programmes", "/v1/claims", "/v1/payouts", "/v1/deposits", "/v1/organisations"] {
        expect_problem(app.get(path, &m.tenant.token).await, 403, "forbidden").await;
    }
}
