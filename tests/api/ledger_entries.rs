//! Journal entries, floors, immutability, statements, the trial balance, reversals and verify.

use diesel_async::RunQueryDsl;
use gpuhour::auth::Role;
use gpuhour::db::transaction;
use gpuhour::ledger::model::{AccountType, EntryKind, Floor, NormalSide};
use gpuhour::ledger::posting::{self, NewEntry};
use gpuhour::ledger::routes::TrialBalance;
use gpuhour::ledger::rules::Movement;
use gpuhour::ledger::store::{self, NewAccount};
use gpuhour::ledger::{LedgerError, chart};
use gpuhour::money::Currency;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, dec, expect_problem, json, now, spawn_app, totals_in, trial_balance_row, verify_is_clean,
};

/// Records an adjustment bank → equity:adjustments in KRW through the API.
pub async fn adjust(app: &TestApp, token: &str, amount: &str) -> Value {
    let body = json!({"memo": "opening balance", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": amount}]});
    let (status, entry) = json(app.post("/v1/journal-entries", token, &body, None).await).await;
    assert_eq!(status, 201, "{entry:#}");
    entry
}

/// Creates a tenant-style wallet (credit-normal, never overdrawn) for tests.
pub async fn wallet(app: &TestApp, name: &str) -> Uuid {
    let mut conn = app.conn().await;
    let account = NewAccount {
        code: format!("liabilities:tenant:{name}:wallet"),
        currency: Currency::Krw,
        account_type: AccountType::Liability,
        normal_side: NormalSide::Credit,
        floor: Some(Floor::NoOverdraft),
        org_id: None,
    };
    store::ensure_accounts(&mut conn, &[account], chrono::Utc::now()).await.expect("account")[0].id
}

async fn account(app: &TestApp, token: &str, id: Uuid) -> Value {
    let (status, body) = json(app.get(&format!("/v1/accounts/{id}"), token).await).await;
    assert_eq!(status, 200, "{body:#}");
    body
}

#[tokio::test]
async fn an_adjustment_moves_posted_money_and_records_who_did_it() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let entry = adjust(&app, &finance, "125000").await;
    assert_eq!(entry["kind"], "adjustment");
    assert_eq!(entry["memo"], "opening balance");
    assert_eq!(entry["postings"].as_array().expect("postings").len(), 1);
    assert_eq!(entry["postings"][0]["amount"], "125000");
    assert_eq!(entry["postings"][0]["kind"], "posted");
    assert!(entry["actor_user_id"].is_string());

    let bank = account(&app, &finance, app.account_id(chart::BANK, Currency::Krw).await).await;
    assert_eq!((bank["debits_posted"].as_str(), bank["balance"].as_str()), (Some("125000"), Some("125000")));
    let equity = account(&app, &finance, app.account_id(chart::ADJUSTMENTS, Currency::Krw).await).await;
    assert_eq!((equity["credits_posted"].as_str(), equity["balance"].as_str()), (Some("125000"), Some("125000")));

    let (_, fetched) =
        json(app.get(&format!("/v1/journal-entries/{}", entry["id"].as_str().expect("id")), &finance).await).await;
    assert_eq!(fetched, entry);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn usd_amounts_keep_their_two_digits() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let body = json!({"memo": "usd", "currency": "USD", "postings": [
        {"debit_account": "assets:bank", "credit_account": "equity:adjustments", "amount": "12.5"}]});
    let (status, entry) = json(app.post("/v1/journal-entries", &finance, &body, None).await).await;
    assert_eq!(status, 201);
    assert_eq!(entry["postings"][0]["amount"], "12.50");
    assert_eq!(entry["postings"][0]["currency"], "USD");
}

#[tokio::test]
async fn a_transfer_that_would_break_a_floor_fails_and_writes_nothing() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let wallet = wallet(&app, "acme").await;
    let fund = json!({"memo": "deposit", "currency": "KRW", "postings": [
        {"debit_account": "assets:bank", "credit_account": wallet.to_string(), "amount": "1000"}]});
    assert_eq!(app.post("/v1/journal-entries", &finance, &fund, None).await.status(), 201);
    let before = account(&app, &finance, wallet).await;
    let entries_before = app.count("SELECT count(*) AS n FROM journal_entries").await;
    let postings_before = app.count("SELECT count(*) AS n FROM postings").await;

    // Two postings: the first fits, the second takes the wallet below zero.
    let overdraw = json!({"memo": "too much", "currency": "KRW", "postings": [
        {"debit_account": wallet.to_string(), "credit_account": "equity:adjustments", "amount": "600"},
        {"debit_account": wallet.to_string(), "credit_account": "equity:adjustments", "amount": "401"}]});
    let problem =
        expect_problem(app.post("/v1/journal-entries", &finance, &overdraw, None).await, 402, "insufficient_funds")
            .await;
    assert!(problem["detail"].as_str().expect("detail").contains("liabilities:tenant:acme:wallet"), "{problem:#}");

    assert_eq!(account(&app, &finance, wallet).await, before);
    assert_eq!(app.count("SELECT count(*) AS n FROM journal_entries").await, entries_before);
    assert_eq!(app.count("SELECT count(*) AS n FROM postings").await, postings_before);
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn the_database_refuses_to_change_the_journal() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    adjust(&app, &finance, "500").await;
    let mut conn = app.conn().await;
    for sql in [
        "UPDATE postings SET amount = 1",
        "DELETE FROM postings",
        "TRUNCATE postings CASCADE",
        "UPDATE journal_entries SET memo = 'rewritten'",
        "DELETE FROM journal_entries",
        "TRUNCATE journal_entries CASCADE",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // CHECK constraints back the posting code: no zero or negative amounts.
    let err = diesel::sql_query(
        "INSERT INTO postings (id, entry_id, kind, debit_account_id, credit_account_id, currency, amount, \
         debit_account_balance, credit_account_balance, effective_at) \
         SELECT gen_random_uuid(), entry_id, 'posted', debit_account_id, credit_account_id, currency, 0, 0, 0, now() FROM postings LIMIT 1",
    )
    .execute(&mut conn)
    .await
    .expect_err("zero amount");
    assert!(err.to_string().contains("check constraint"), "{err}");
    assert_eq!(app.count("SELECT count(*) AS n FROM postings WHERE amount = 500").await, 1);
}

#[tokio::test]
async fn the_database_refuses_a_broken_floor_even_without_the_posting_code() {
    let app = spawn_app().await;
    let wallet = wallet(&app, "direct").await;
    let mut conn = app.conn().await;
    let err = diesel::sql_query(format!("UPDATE accounts SET debits_posted = 1 WHERE id = '{wallet}'"))
        .execute(&mut conn)
        .await
        .expect_err("floor");
    assert!(err.to_string().contains("accounts_floor_respected"), "{err}");
}

#[tokio::test]
async fn pending_postings_are_posted_in_parts_and_voided() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let wallet = wallet(&app, "tenant-a").await;
    let payable = wallet_like_payable(&app).await;
    let bank = app.account_id(chart::BANK, Currency::Krw).await;
    let now = chrono::Utc::now();
    let mut conn = app.conn().await;
    let deposit = NewEntry::new(EntryKind::Deposit, now, vec![Movement::posted(bank, wallet, dec("7000"))]);
    posting::post_entry(&mut conn, deposit).await.expect("deposit");
    let order = NewEntry::new(EntryKind::Order, now, vec![Movement::pending(wallet, payable, dec("7004"))]);
    let err = posting::post_entry(&mut conn, order).await.expect_err("more than the wallet holds");
    assert!(matches!(err, LedgerError::FloorBroken { .. }), "{err:?}");

    let order = NewEntry::new(EntryKind::Order, now, vec![Movement::pending(wallet, payable, dec("7000"))]);
    let reserved = transaction(&mut conn, async |c| posting::post_entry(c, order).await).await.expect("reserve");
    let pending_id = reserved.postings[0].0;
    let w = account(&app, &finance, wallet).await;
    assert_eq!(
        (w["debits_pending"].as_str(), w["available"].as_str(), w["balance"].as_str()),
        (Some("7000"), Some("0"), Some("7000"))
    );

    for _ in 0..3 {
        let settle = NewEntry::new(
            EntryKind::Settlement,
            now,
            vec![Movement::PostPending { pending_posting_id: pending_id, amount: dec("1000") }],
        );
        posting::post_entry(&mut conn, settle).await.expect("settle an hour");
    }
    let cancel = NewEntry::new(
        EntryKind::Cancellation,
        now,
        vec![Movement::VoidPending { pending_posting_id: pending_id, amount: dec("4000") }],
    );
    posting::post_entry(&mut conn, cancel).await.expect("void the rest");
    let over = NewEntry::new(
        EntryKind::Settlement,
        now,
        vec![Movement::PostPending { pending_posting_id: pending_id, amount: dec("1") }],
    );
    let err = posting::post_entry(&mut conn, over).await.expect_err("nothing left");
    assert!(matches!(err, LedgerError::PendingExceeded { .. }), "{err:?}");

    let w = account(&app, &finance, wallet).await;
    assert_eq!(
        (w["debits_posted"].as_str(), w["debits_pending"].as_str(), w["balance"].as_str(), w["available"].as_str()),
        (Some("3000"), Some("0"), Some("4000"), Some("4000"))
    );
    let p = account(&app, &finance, payable).await;
    assert_eq!((p["credits_posted"].as_str(), p["credits_pending"].as_str()), (Some("3000"), Some("0")));
    verify_is_clean(&app, &finance).await;

    // Reservations are released by voiding, not by reversal.
    let problem = expect_problem(
        app.post(&format!("/v1/journal-entries/{}/reverse", reserved.id), &finance, &json!({"memo": "undo"}), None)
            .await,
        409,
        "conflict",
    )
    .await;
    assert!(problem["detail"].as_str().expect("detail").contains("pending"), "{problem:#}");
}

async fn wallet_like_payable(app: &TestApp) -> Uuid {
    let mut conn = app.conn().await;
    let org = Uuid::now_v7();
    let accounts = chart::provider_accounts(org);
    let rows = store::ensure_accounts(&mut conn, &accounts, chrono::Utc::now()).await.expect("payables");
    rows.into_iter().find(|r| r.currency == Currency::Krw).expect("KRW payable").id
}

#[tokio::test]
async fn statements_carry_running_balances_across_pages() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    for amount in ["100", "250", "50", "1000", "7"] {
        adjust(&app, &finance, amount).await;
    }
    let bank = app.account_id(chart::BANK, Currency::Krw).await;
    let (status, first) = json(app.get(&format!("/v1/accounts/{bank}/postings?limit=2"), &finance).await).await;
    assert_eq!(status, 200, "{first:#}");
    let balances = |page: &Value| -> Vec<(String, String)> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|l| (l["amount"].as_str().expect("a").to_string(), l["balance"].as_str().expect("b").to_string()))
            .collect()
    };
    assert_eq!(balances(&first), vec![("100".into(), "100".into()), ("250".into(), "350".into())]);
    assert_eq!(first["data"][0]["side"], "debit");
    assert_eq!(first["data"][0]["counter_account_code"], "equity:adjustments");
    assert_eq!(first["data"][0]["entry_kind"], "adjustment");
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let (_, second) =
        json(app.get(&format!("/v1/accounts/{bank}/postings?limit=2&cursor={cursor}"), &finance).await).await;
    assert_eq!(balances(&second), vec![("50".into(), "400".into()), ("1000".into(), "1400".into())]);
    let cursor = second["next_cursor"].as_str().expect("more pages");
    let (_, third) =
        json(app.get(&format!("/v1/accounts/{bank}/postings?limit=2&cursor={cursor}"), &finance).await).await;
    assert_eq!(balances(&third), vec![("7".into(), "1407".into())]);
    assert_eq!(third["next_cursor"], Value::Null);

    // The account list pages by code, and filters.
    let (_, listed) = json(app.get("/v1/accounts?code=assets:&currency=KRW", &finance).await).await;
    let codes: Vec<&str> =
        listed["data"].as_array().expect("data").iter().map(|a| a["code"].as_str().expect("c")).collect();
    assert_eq!(codes, vec!["assets:bank"]);
    let (_, page) = json(app.get("/v1/accounts?limit=1&type=asset", &finance).await).await;
    assert_eq!(page["data"].as_array().expect("data").len(), 1);
    let cursor = page["next_cursor"].as_str().expect("next");
    let (_, next) = json(app.get(&format!("/v1/accounts?limit=500&type=asset&cursor={cursor}"), &finance).await).await;
    assert_eq!(next["data"].as_array().expect("data").len(), Currency::ALL.len() - 1);
}

#[tokio::test]
async fn the_trial_balance_balances_now_and_as_of_the_past() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    adjust(&app, &finance, "300").await;
    let first = now(&app, &finance).await;
    let later = first + chrono::Duration::hours(1);
    app.post("/v1/sandbox/clock", &finance, &json!({"now": later}), None).await;
    adjust(&app, &finance, "700").await;

    let now: TrialBalance = app.get_as("/v1/reports/trial-balance", &finance).await;
    assert_eq!(totals_in(&now.totals, "KRW"), ["1000", "1000", "0", "0"]);
    // `as_of` means "before this instant": the entry made at `later` is not in it,
    // and nothing is in a trial balance as of the first entry's own instant.
    let as_of = later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let past: TrialBalance = app.get_as(&format!("/v1/reports/trial-balance?as_of={as_of}"), &finance).await;
    assert_eq!(totals_in(&past.totals, "KRW")[0], "300");
    let at_first = first.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let before: TrialBalance = app.get_as(&format!("/v1/reports/trial-balance?as_of={at_first}"), &finance).await;
    let bank_before = trial_balance_row(&before, "assets:bank", "KRW").is_some_and(|r| r.account.balance != "0");
    assert!(!bank_before, "{before:#?}");
    let bank = trial_balance_row(&past, "assets:bank", "KRW").expect("bank");
    assert_eq!(bank.account.balance, "300");
}

#[tokio::test]
async fn a_reversal_restores_balances_once() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    let entry = adjust(&app, &finance, "900").await;
    let id = entry["id"].as_str().expect("id");
    let path = format!("/v1/journal-entries/{id}/reverse");
    expect_problem(app.post(&path, &finance, &json!({"memo": ""}), None).await, 422, "validation_failed").await;
    let (status, reversal) = json(app.post(&path, &finance, &json!({"memo": "entered twice"}), None).await).await;
    assert_eq!(status, 201, "{reversal:#}");
    assert_eq!(reversal["kind"], "reversal");
    assert_eq!(reversal["reverses_entry_id"], id);
    assert_eq!(reversal["postings"][0]["debit_account_id"], entry["postings"][0]["credit_account_id"]);
    let bank = account(&app, &finance, app.account_id(chart::BANK, Currency::Krw).await).await;
    assert_eq!(
        (bank["debits_posted"].as_str(), bank["credits_posted"].as_str(), bank["balance"].as_str()),
        (Some("900"), Some("900"), Some("0"))
    );

    expect_problem(app.post(&path, &finance, &json!({"memo": "again"}), None).await, 409, "conflict").await;
    let reversal_path = format!("/v1/journal-entries/{}/reverse", reversal["id"].as_str().expect("id"));
    expect_problem(app.post(&reversal_path, &finance, &json!({"memo": "undo the undo"}), None).await, 409, "conflict")
        .await;
    let missing = format!("/v1/journal-entries/{}/reverse", Uuid::now_v7());
    expect_problem(app.post(&missing, &finance, &json!({"memo": "x"}), None).await, 404, "not_found").await;
    verify_is_clean(&app, &finance).await;
}

#[tokio::test]
async fn verify_finds_tampering_and_the_cli_exits_non_zero() {
    let app = spawn_app().await;
    let finance = app.token(Role::Finance).await;
    adjust(&app, &finance, "400").await;
    let cli = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gpuhour"))
            .arg("verify")
            .env("DATABASE_URL", &app.database_url)
            .env("GPUHOUR_SANDBOX", "1")
            .output()
            .expect("gpuhour verify runs")
    };
    let clean = cli();
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    let report: Value = serde_json::from_slice(&clean.stdout).expect("JSON report");
    assert_eq!(report, json!({"ok": true, "differences": []}));

    // Tamper with a stored figure behind the ledger's back.
    let mut conn = app.conn().await;
    diesel::sql_query(
        "UPDATE accounts SET debits_posted = debits_posted + 1 WHERE code = 'assets:bank' AND currency = 'KRW'",
    )
    .execute(&mut conn)
    .await
    .expect("tamper");
    let (_, report) = json(app.get("/v1/ledger/verify", &finance).await).await;
    assert_eq!(report["ok"], false);
    let found: Vec<(u64, &str)> = report["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| (d["invariant"].as_u64().expect("n"), d["field"].as_str().expect("field")))
        .collect();
    assert_eq!(found, vec![(1, "posted"), (2, "debits_posted")]);
    let dirty = cli();
    assert_eq!(dirty.status.code(), Some(1));
}
