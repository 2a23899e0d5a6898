//! Advances (issue 11, item 1): tranches the programme pays ahead settle its
//! claims first; only the rest waits for cash, and the books agree throughout.

use chrono::Duration;
use gpuhour::finance::reports::ProgrammeReport;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem, json, now, spawn_app, verify_is_clean};
use crate::payouts::subsidised_market;
use crate::subsidy::report;

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, v) = json(app.post(path, token, &body, None).await).await;
    (status.as_u16(), v)
}

#[tokio::test]
async fn tranches_settle_claims_first_and_the_rest_waits_for_cash() {
    let app = spawn_app().await;
    let m = subsidised_market(&app).await;
    let pid = m.programme["id"].as_str().expect("id");
    let advances = format!("/v1/programmes/{pid}/advances");
    let at = now(&app, &m.finance).await;
    let tranche = |amount: &str, reference: &str| json!({"amount": amount, "reference": reference, "received_at": at});

    let (status, first) = post(&app, &m.finance, &advances, tranche("5000", "MSIT-ADV-1")).await;
    assert_eq!(status, 201, "{first:#}");
    assert_eq!((first["applied_now"].as_str(), first["unapplied"].as_str()), (Some("0"), Some("5000")));
    expect_problem(app.post(&advances, &m.finance, &tranche("1", "MSIT-ADV-1"), None).await, 409, "conflict").await;
    let future = json!({"amount": "1", "reference": "X", "received_at": at + Duration::hours(1)});
    expect_problem(app.post(&advances, &m.finance, &future, None).await, 422, "validation_failed").await;

    // The claim of 8,000 is settled first from the 5,000 advanced.
    let body =
        json!({"programme_id": pid, "period_start": "2020-01-01T00:00:00Z", "period_end": "2099-01-01T00:00:00Z"});
    let (status, claim) = post(&app, &m.finance, "/v1/claims", body).await;
    assert_eq!(status, 201, "{claim:#}");
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    let (status, submitted) = post(&app, &m.finance, &format!("{claim_path}/submit"), json!({})).await;
    assert_eq!(status, 200, "{submitted:#}");
    assert_eq!(
        (submitted["advance_applied"].as_str(), submitted["outstanding"].as_str()),
        (Some("5000"), Some("3000"))
    );
    let figures = |r: &ProgrammeReport| {
        [&r.advanced, &r.advance_applied, &r.advance_unapplied, &r.paid, &r.outstanding].map(String::clone)
    };
    assert_eq!(figures(&report(&app, &m.finance, &m.programme).await), ["5000", "5000", "0", "0", "3000"]);
    verify_is_clean(&app, &m.finance).await;

    // 1,000 in cash, then the second tranche: 2,000 of it closes the claim.
    let (status, _) =
        post(&app, &m.finance, &format!("{claim_path}/payments"), json!({"amount": "1000", "reference": "MSIT-1"}))
            .await;
    assert_eq!(status, 201);
    let (status, second) = post(&app, &m.finance, &advances, tranche("3000", "MSIT-ADV-2")).await;
    assert_eq!(status, 201, "{second:#}");
    assert_eq!((second["applied_now"].as_str(), second["unapplied"].as_str()), (Some("2000"), Some("1000")));
    assert_eq!(figures(&report(&app, &m.finance, &m.programme).await), ["8000", "7000", "1000", "1000", "0"]);
    let (_, claim) = json(app.get(&claim_path, &m.finance).await).await;
    assert_eq!((claim["advance_applied"].as_str(), claim["outstanding"].as_str()), (Some("7000"), Some("0")));
    // The subsidy is cash now: the provider may be paid all it earned.
    let (_, statement) =
        json(app.get(&format!("/v1/reports/statements/{}?currency=KRW", m.provider.org_id), &m.finance).await).await;
    assert_eq!(statement["payout_positions"][0]["payable_now"], "10000");
    verify_is_clean(&app, &m.finance).await;
}
