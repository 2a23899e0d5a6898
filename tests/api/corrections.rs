//! Subsidy corrections as workflows (issue 14, item 3): credit notes netted by
//! the next claim, write-offs of disallowed amounts, voided draft claims and
//! grant withdrawals — each with exact figures, and `verify` clean after each.

use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem, json, spawn_app, verify_is_clean};
use crate::payouts::{Subsidised, subsidised_market};
use crate::subsidy::report;

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, v) = json(app.post(path, token, &body, None).await).await;
    (status.as_u16(), v)
}

async fn claim_everything(app: &TestApp, m: &Subsidised) -> Value {
    let body = json!({"programme_id": m.programme["id"], "period_start": "2020-01-01T00:00:00Z",
        "period_end": "2099-01-01T00:00:00Z"});
    let (status, claim) = post(app, &m.finance, "/v1/claims", body).await;
    assert_eq!(status, 201, "{claim:#}");
    claim
}

fn pid(m: &Subsidised) -> &str {
    m.programme["id"].as_str().expect("id")
}

#[tokio::test]
async fn a_credit_note_is_netted_by_the_next_claim() {
    let app = spawn_app().await;
    let m = subsidised_market(&app).await;
    let path = format!("/v1/programmes/{}/credit-notes", pid(&m));
    let note = json!({"grant_id": m.grant["id"], "provider_org_id": m.provider.org_id, "amount": "600",
        "reason": "goodwill: two hours of degraded interconnect"});
    let (status, credit) = post(&app, &m.finance, &path, note.clone()).await;
    assert_eq!(status, 201, "{credit:#}");
    assert_eq!(
        (credit["amount"].as_str(), credit["tenant_org_id"].as_str()),
        (Some("600"), Some(m.tenant.org_id.to_string().as_str()))
    );
    verify_is_clean(&app, &m.finance).await;
    let r = report(&app, &m.finance, &m.programme).await;
    assert_eq!(r.spent, "7400");
    // The claim asks the programme for 8,000 settled less the 600 credited.
    let claim = claim_everything(&app, &m).await;
    assert_eq!((claim["amount"].as_str(), claim["items"].as_i64()), (Some("7400"), Some(11)));
    // Never more than the grant has funded.
    let mut too_much = note;
    too_much["amount"] = json!("7401");
    expect_problem(app.post(&path, &m.finance, &too_much, None).await, 422, "validation_failed").await;
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn a_disallowed_amount_is_written_off_and_the_books_still_agree() {
    let app = spawn_app().await;
    let m = subsidised_market(&app).await;
    let claim = claim_everything(&app, &m).await;
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    let off = json!({"amount": "1000", "reason": "two hours outside the agreement's purpose"});
    // Only a submitted claim has amounts to write off.
    expect_problem(app.post(&format!("{claim_path}/write-offs"), &m.finance, &off, None).await, 409, "conflict").await;
    assert_eq!(post(&app, &m.finance, &format!("{claim_path}/submit"), json!({})).await.0, 200);
    let payment = json!({"amount": "7000", "reference": "MSIT-7000"});
    assert_eq!(post(&app, &m.finance, &format!("{claim_path}/payments"), payment).await.0, 201);
    let payable_now = |s: Value| s["payout_positions"][0]["payable_now"].as_str().expect("payable now").to_string();
    let statement = format!("/v1/reports/statements/{}?currency=KRW", m.provider.org_id);
    let (_, before) = json(app.get(&statement, &m.finance).await).await;
    assert_eq!(payable_now(before), "9000", "1,000 of subsidy still awaited");
    let (status, written) = post(&app, &m.finance, &format!("{claim_path}/write-offs"), off).await;
    assert_eq!(status, 201, "{written:#}");
    assert_eq!(
        (written["paid"].as_str(), written["written_off"].as_str(), written["outstanding"].as_str()),
        (Some("7000"), Some("1000"), Some("0"))
    );
    let r = report(&app, &m.finance, &m.programme).await;
    assert_eq!(
        (r.claimed.as_str(), r.paid.as_str(), r.written_off.as_str(), r.outstanding.as_str()),
        ("8000", "7000", "1000", "0")
    );
    // The operator bears the disallowed amount: the provider is owed all it earned.
    let (_, after) = json(app.get(&statement, &m.finance).await).await;
    assert_eq!(payable_now(after), "10000");
    // Nothing is left to write off.
    let more = json!({"amount": "1", "reason": "again"});
    expect_problem(
        app.post(&format!("{claim_path}/write-offs"), &m.finance, &more, None).await,
        422,
        "validation_failed",
    )
    .await;
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn a_voided_draft_claim_releases_its_postings() {
    let app = spawn_app().await;
    let m = subsidised_market(&app).await;
    let claim = claim_everything(&app, &m).await;
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    expect_problem(
        app.post(&format!("{claim_path}/void"), &m.finance, &json!({"reason": " "}), None).await,
        422,
        "validation_failed",
    )
    .await;
    let (status, voided) =
        post(&app, &m.finance, &format!("{claim_path}/void"), json!({"reason": "wrong period"})).await;
    assert_eq!(
        (status, voided["status"].as_str(), voided["void_reason"].as_str()),
        (200, Some("void"), Some("wrong period"))
    );
    // The same postings are claimable again, once.
    let again = claim_everything(&app, &m).await;
    assert_eq!((again["amount"].as_str(), again["items"].as_i64()), (Some("8000"), Some(10)));
    let body = json!({"programme_id": m.programme["id"], "period_start": "2020-01-01T00:00:00Z", "period_end": "2099-01-01T00:00:00Z"});
    expect_problem(app.post("/v1/claims", &m.finance, &body, None).await, 409, "conflict").await;
    // A submitted claim is not voided.
    let again_path = format!("/v1/claims/{}", again["id"].as_str().expect("id"));
    assert_eq!(post(&app, &m.finance, &format!("{again_path}/submit"), json!({})).await.0, 200);
    expect_problem(
        app.post(&format!("{again_path}/void"), &m.finance, &json!({"reason": "late"}), None).await,
        409,
        "conflict",
    )
    .await;
    verify_is_clean(&app, &m.finance).await;
}

#[tokio::test]
async fn part_of_a_grant_is_withdrawn_back_to_the_programme() {
    let app = spawn_app().await;
    let m = subsidised_market(&app).await;
    let path = format!("/v1/grants/{}/withdrawals", m.grant["id"].as_str().expect("id"));
    // The grant of 100,000 funded 8,000: 92,000 is left.
    let (status, grant) =
        post(&app, &m.finance, &path, json!({"amount": "50000", "reason": "project scope reduced"})).await;
    assert_eq!(status, 201, "{grant:#}");
    let r = report(&app, &m.finance, &m.programme).await;
    assert_eq!((r.released.as_str(), r.unallocated.as_str()), ("50000", "950000"));
    expect_problem(
        app.post(&path, &m.finance, &json!({"amount": "42001", "reason": "more"}), None).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(post(&app, &m.finance, &path, json!({"amount": "42000", "reason": "project ended"})).await.0, 201);
    verify_is_clean(&app, &m.finance).await;
}

/// The reliability review's defect 2: finance could reverse workflow entries
/// and adjust budget accounts, breaking invariant 4 and desynchronising the
/// reports. Each is refused now, and the books stay clean.
#[tokio::test]
async fn workflow_entries_are_not_reversed_and_subsidy_accounts_not_adjusted() {
    let app = spawn_app().await;
    let m = subsidised_market(&app).await;
    let claim = claim_everything(&app, &m).await;
    let claim_path = format!("/v1/claims/{}", claim["id"].as_str().expect("id"));
    assert_eq!(post(&app, &m.finance, &format!("{claim_path}/submit"), json!({})).await.0, 200);
    let (status, paid) =
        post(&app, &m.finance, &format!("{claim_path}/payments"), json!({"amount": "8000", "reference": "MSIT-R"}))
            .await;
    assert_eq!(status, 201, "{paid:#}");
    let payment_entry = paid["payments"][0]["journal_entry_id"].as_str().expect("entry").to_string();
    let grant_entry = m.grant["journal_entry_id"].as_str().expect("entry").to_string();
    for entry in [payment_entry, grant_entry] {
        let path = format!("/v1/journal-entries/{entry}/reverse");
        expect_problem(app.post(&path, &m.finance, &json!({"memo": "undo"}), None).await, 409, "conflict").await;
    }
    let pid = pid(&m);
    let gid = m.grant["id"].as_str().expect("id");
    for (debit, credit) in [
        (format!("budget:grant:{gid}:available"), format!("budget:programme:{pid}:unallocated")),
        ("equity:adjustments".to_string(), format!("assets:subsidy-receivable:{pid}")),
        (format!("assets:subsidy-receivable:{pid}"), "equity:adjustments".to_string()),
    ] {
        let body = json!({"memo": "manual fix", "currency": "KRW",
            "postings": [{"debit_account": debit, "credit_account": credit, "amount": "600"}]});
        expect_problem(app.post("/v1/journal-entries", &m.finance, &body, None).await, 422, "validation_failed").await;
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM journal_entries WHERE kind IN ('adjustment', 'reversal')").await,
        0
    );
    verify_is_clean(&app, &m.finance).await;
}
