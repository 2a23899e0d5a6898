//! The demo tells the programme office's settlement story (issue 11, item 6):
//! two tranches of advance, a month closed, a bank statement with lines that
//! match, one that needs a person and one unexplained, and last year's pilot
//! settled with its refund due and paid.

use gpuhour::auth::Role;
use gpuhour::demo;
use serde_json::{Value, json};

use crate::helpers::{json, spawn_app, verify_is_clean};

fn decimal(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}")).parse().expect("decimal")
}

#[tokio::test]
async fn the_demo_tells_the_settlement_story() {
    let app = spawn_app().await;
    let settings = crate::helpers::settings_for(&app.database_url);
    assert!(demo::seed(&settings, &app.pool).await.expect("the demo seeds").seeded);
    let finance = app.token(Role::Finance).await;

    let (_, list) = json(app.get("/v1/programmes", &finance).await).await;
    let programmes = list["data"].as_array().expect("programmes");
    let id_of = |name: &str| -> String {
        programmes.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}: {list:#}"))["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let (current, pilot) = (id_of("2026 National AI Compute Voucher"), id_of(demo::PILOT_NAME));

    // The current programme: 3.5 billion then 1.5 billion advanced; the claim settled from it.
    let (status, report) = json(app.get(&format!("/v1/reports/programmes/{current}"), &finance).await).await;
    assert_eq!(status, 200, "{report:#}");
    let claimed = decimal(&report["claimed"]);
    assert!(claimed > rust_decimal::Decimal::ZERO, "{report:#}");
    assert_eq!(report["advanced"], "5000000000");
    assert_eq!(decimal(&report["advance_applied"]), claimed, "the claim was settled from the advance");
    assert_eq!(decimal(&report["advance_unapplied"]), rust_decimal::Decimal::from(5_000_000_000_i64) - claimed);
    assert_eq!((report["paid"].as_str(), report["outstanding"].as_str()), (Some("0"), Some("0")), "{report:#}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM programme_advances WHERE reference LIKE 'MSIT-2026-ADV-%'").await,
        2
    );

    // Last year's pilot: settled, its unused 240 million due back, and paid back.
    let path = format!("/v1/reports/programmes/{pilot}/settlement");
    let (status, statement) = json(app.get(&path, &finance).await).await;
    assert_eq!(status, 200, "{statement:#}");
    assert!(statement["settled_at"].is_string(), "{statement:#}");
    assert_eq!(statement["fiscal_year"], 2025);
    let figures = &statement["figures"];
    assert_eq!(
        (&figures["advanced"], &figures["advance_applied"], &figures["advance_unapplied"], &figures["spent"]),
        (&json!("240000000"), &json!("0"), &json!("0"), &json!("0")),
        "{statement:#}"
    );
    assert_eq!((&statement["refund_due"], &statement["refunded"]), (&json!("0"), &json!("240000000")));
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM postings p JOIN accounts a ON a.id = p.credit_account_id \
             WHERE a.code = 'liabilities:programme:{pilot}:refund-due' AND p.amount = 240000000"
        ))
        .await,
        1,
        "the settlement booked 240 million as refund due"
    );
    // Its accounts take nothing more.
    let problem = app
        .post(
            &format!("/v1/programmes/{pilot}/advances"),
            &finance,
            &json!({"amount": "1", "reference": "late", "received_at": "2026-01-01T00:00:00Z"}),
            None,
        )
        .await;
    assert_eq!(problem.status(), 409);

    // Every month from the pilot's advance up to the last that has ended is closed, in one chain.
    let (_, periods) = json(app.get("/v1/periods", &finance).await).await;
    let closed = periods["data"].as_array().expect("periods");
    assert!(closed.len() >= 11, "{periods:#}");
    for pair in closed.windows(2) {
        assert_eq!(pair[1]["previous_hash"], pair[0]["hash"]);
        assert_eq!(pair[1]["starts_at"], pair[0]["ends_at"]);
    }
    assert_eq!(closed[0]["postings"], 1, "the pilot's advance is the first month's one posting");
    assert_eq!(closed[0]["previous_hash"], Value::Null);

    // The bank statement: matched by reference, one suggested for a person, one unexplained fee.
    let (_, lines) = json(app.get("/v1/bank-lines", &finance).await).await;
    let outcome: Vec<(String, String, String)> = lines["data"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (s("bank_ref"), s("amount"), s("status"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("KB-20261201-0001", "3500000000", "matched"),
        ("KB-20261201-0002", "21000000", "matched"),
        ("KB-20261201-0003", "35000000", "matched"),
        ("KB-20261201-0004", "32000000", "matched"),
        ("KB-20261215-0001", "1500000000", "suggested"),
        ("KB-20261222-0001", "-240000000", "matched"),
        ("KB-20261222-0002", "-15000", "unmatched"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(outcome, expected, "{lines:#}");

    verify_is_clean(&app, &finance).await;
    // A second run finds the story told.
    assert!(!demo::seed(&settings, &app.pool).await.expect("the demo runs again").seeded);
    assert_eq!(app.count("SELECT count(*) AS n FROM bank_statements").await, 1);
}
