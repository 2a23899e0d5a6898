//! Bank reconciliation (issue 11, item 4): a statement file imported and
//! matched — by reference one to one and one to many, by amount and date as a
//! suggestion, a near miss left unmatched — then a person confirms, books an
//! unexplained receipt as a deposit and explains a difference, until the
//! report says `reconciled: true`.

use chrono::{Duration, FixedOffset};
use gpuhour::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_problem, json, now, spawn_app, verify_is_clean};
use crate::market::{deposit_with_reference, set_clock};

async fn import(app: &TestApp, finance: &str, csv: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/bank-statements"))
        .bearer_auth(finance)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .expect("import");
    let (status, v) = json(response).await;
    (status.as_u16(), v)
}

fn status_of<'a>(result: &'a Value, bank_ref: &str) -> (&'a str, usize) {
    let line = result["lines"].as_array().expect("lines").iter().find(|l| l["bank_ref"] == bank_ref).expect("line");
    (line["status"].as_str().expect("status"), line["journal_entry_ids"].as_array().expect("ids").len())
}

#[tokio::test]
async fn a_bank_statement_is_matched_explained_and_reconciled() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let (acme, beta) = (app.caller(Role::Tenant).await, app.caller(Role::Tenant).await);
    deposit_with_reference(&app, &finance, acme.org_id, "500000", "wire-acme").await;
    deposit_with_reference(&app, &finance, beta.org_id, "200000", "BATCH-7").await;
    deposit_with_reference(&app, &finance, acme.org_id, "100000", "BATCH-7").await;
    deposit_with_reference(&app, &finance, beta.org_id, "120000", "wire-beta").await;
    let fee = json!({"memo": "bank fee", "currency": "KRW", "postings": [
        {"debit_account": "equity:adjustments", "credit_account": "assets:bank", "amount": "7000"}]});
    let (status, _) = json(app.post("/v1/journal-entries", &finance, &fee, None).await).await;
    assert_eq!(status, 201);

    let today =
        now(&app, &finance).await.with_timezone(&FixedOffset::east_opt(9 * 3600).expect("kst")).format("%Y-%m-%d");
    let header = "date,amount,currency,counterparty,reference,bank_ref";
    let file = format!(
        "{header}\n{today},500000,KRW,ACME Lab,wire-acme,B1\n{today},300000,KRW,Payroll batch,BATCH-7,B2\n\
         {today},-7000,KRW,Shinhan Bank,,B3\n{today},120001,KRW,Beta Inc,wire-bet,B4\n{today},55000,KRW,ACME Lab,GH-ACME,B5\n"
    );
    // A bad row refuses the whole file and names the row.
    let bad = format!("{header}\n{today},1,KRW,x,y,X1\n{today},1.5,KRW,x,y,X2\n");
    let (status, problem) = import(&app, &finance, &bad).await;
    assert_eq!(status, 422, "{problem:#}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("row 3")), "{problem:#}");

    let (status, result) = import(&app, &finance, &file).await;
    assert_eq!(status, 201, "{result:#}");
    assert_eq!(status_of(&result, "B1"), ("matched", 1), "by reference");
    assert_eq!(status_of(&result, "B2"), ("matched", 2), "one line, two entries");
    assert_eq!(status_of(&result, "B3"), ("suggested", 1), "by amount and date");
    assert_eq!(status_of(&result, "B4"), ("unmatched", 0), "a near miss is not matched");
    assert_eq!(status_of(&result, "B5"), ("unmatched", 0));
    // The same file again: every line refused, one by one; nothing changes.
    let (status, again) = import(&app, &finance, &file).await;
    assert_eq!((status, again["refused"].as_array().map(Vec::len)), (201, Some(5)), "{again:#}");
    assert_eq!(app.count("SELECT count(*) AS n FROM bank_lines").await, 5);

    let clock = now(&app, &finance).await + Duration::minutes(1);
    set_clock(&app, &finance, clock).await;
    let (_, report) = json(app.get("/v1/reports/bank-reconciliation", &finance).await).await;
    assert_eq!(
        (report["statement_balance"].as_str(), report["ledger_balance"].as_str()),
        (Some("968001"), Some("913000"))
    );
    assert_eq!(
        (report["unmatched_lines"].as_array().map(Vec::len), report["reconciled"].as_bool()),
        (Some(3), Some(false))
    );

    let line = |bank_ref: &str| {
        result["lines"].as_array().expect("lines").iter().find(|l| l["bank_ref"] == bank_ref).expect("line")["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    // A person confirms the suggestion …
    let (status, confirmed) =
        json(app.post(&format!("/v1/bank-lines/{}/match", line("B3")), &finance, &json!({}), None).await).await;
    assert_eq!((status.as_u16(), confirmed["status"].as_str()), (200, Some("matched")));
    // … books the receipt nobody expected as ACME's deposit …
    let (status, booked) = json(
        app.post(
            &format!("/v1/bank-lines/{}/deposit", line("B5")),
            &finance,
            &json!({"tenant_org_id": acme.org_id}),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status.as_u16(), booked["status"].as_str()), (201, Some("matched")), "{booked:#}");
    // … and explains the won the bank added: an adjustment, then both entries matched.
    let one = json!({"memo": "bank rounding on wire-beta", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "1"}]});
    let (_, adjustment) = json(app.post("/v1/journal-entries", &finance, &one, None).await).await;
    let beta_entry: String = {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
        }
        use diesel_async::RunQueryDsl;
        let mut conn = app.conn().await;
        let row: Id = diesel::sql_query("SELECT id::text AS id FROM journal_entries WHERE reference = 'wire-beta'")
            .get_result(&mut conn)
            .await
            .expect("entry");
        row.id
    };
    let path = format!("/v1/bank-lines/{}/match", line("B4"));
    let wrong = json!({"journal_entry_ids": [beta_entry]});
    expect_problem(app.post(&path, &finance, &wrong, None).await, 422, "validation_failed").await;
    let both = json!({"journal_entry_ids": [beta_entry, adjustment["id"]]});
    let (status, matched) = json(app.post(&path, &finance, &both, None).await).await;
    assert_eq!((status.as_u16(), matched["status"].as_str()), (200, Some("matched")), "{matched:#}");

    set_clock(&app, &finance, clock + Duration::minutes(1)).await;
    let (_, report) = json(app.get("/v1/reports/bank-reconciliation", &finance).await).await;
    assert_eq!(
        (report["statement_balance"].as_str(), report["ledger_balance"].as_str(), report["reconciled"].as_bool()),
        (Some("968001"), Some("968001"), Some(true)),
        "{report:#}"
    );
    let csv = app.get("/v1/reports/bank-reconciliation?format=csv", &finance).await.text().await.expect("csv");
    assert!(csv.contains("statement balance,968001") && csv.contains("reconciled,true"), "{csv}");
    // Undoing a match is possible, and shows again.
    let (status, undone) =
        json(app.post(&format!("/v1/bank-lines/{}/unmatch", line("B1")), &finance, &json!({}), None).await).await;
    assert_eq!((status.as_u16(), undone["status"].as_str()), (200, Some("unmatched")));
    let (_, report) = json(app.get("/v1/reports/bank-reconciliation", &finance).await).await;
    assert_eq!(report["reconciled"], false);
    verify_is_clean(&app, &finance).await;
}
