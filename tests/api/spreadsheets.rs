//! Every report downloads as CSV and XLSX (`?format=csv|xlsx`; issue 11, item
//! 5), and the downloads agree with the JSON figure for figure: the XLSX read
//! back with calamine, the CSV with the csv reader, over the demo's books.

use std::collections::BTreeMap;

use calamine::{Data, Reader};
use gpuhour::audit::routes::AuditEntry;
use gpuhour::auth::Role;
use gpuhour::finance::bank::Reconciliation;
use gpuhour::finance::list_routes::OrganisationView;
use gpuhour::finance::reports::{ProgrammeReport, Statement};
use gpuhour::http::pagination::Page;
use gpuhour::ledger::routes::{StatementLineView, TrialBalance};
use gpuhour::subsidy::claims::ClaimView;
use gpuhour::subsidy::list_routes::ClaimSummary;
use gpuhour::subsidy::routes::ProgrammeView;
use gpuhour::subsidy::year_end_routes::SettlementStatement;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::de::DeserializeOwned;

use crate::helpers::{TestApp, expect_problem, json, spawn_app, totals_in, trial_balance_row};
use crate::subsidy::report_figure;

/// A workbook as text, sheet by sheet: every non-empty row, trailing empty
/// cells dropped, numbers as exact decimals.
type Book = BTreeMap<String, Vec<Vec<String>>>;

fn trimmed(mut row: Vec<String>) -> Vec<String> {
    while row.last().is_some_and(String::is_empty) {
        row.pop();
    }
    row
}

fn read_xlsx(bytes: &[u8]) -> (Vec<String>, Book) {
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("xlsx");
    let names = book.sheet_names();
    let mut sheets = Book::new();
    for name in &names {
        let range = book.worksheet_range(name).expect("sheet");
        let rows = range
            .rows()
            .map(|r| {
                trimmed(
                    r.iter()
                        .map(|cell| match cell {
                            Data::Empty => String::new(),
                            Data::String(s) => s.clone(),
                            Data::Float(f) => Decimal::from_f64(*f).expect("a finite number").normalize().to_string(),
                            Data::Int(i) => i.to_string(),
                            other => panic!("unexpected cell {other:?}"),
                        })
                        .collect(),
                )
            })
            .filter(|r| !r.is_empty())
            .collect();
        sheets.insert(name.clone(), rows);
    }
    (names, sheets)
}

fn read_csv(text: &str) -> (Vec<String>, Book) {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let (mut names, mut sheets) = (Vec::new(), Book::new());
    for record in reader.records() {
        let record = record.expect("a CSV record");
        let row: Vec<String> = record
            .iter()
            .map(|f| match f.strip_prefix('\'') {
                // A text field guarded against formulas reads as the text.
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest.to_string(),
                _ => f.parse::<Decimal>().map_or_else(|_| f.to_string(), |d| d.normalize().to_string()),
            })
            .collect();
        let row = trimmed(row);
        if row.is_empty() {
            continue;
        }
        if row.len() == 2 && row[0] == "sheet" {
            names.push(row[1].clone());
            sheets.insert(row[1].clone(), Vec::new());
            continue;
        }
        sheets.get_mut(names.last().expect("a sheet line first")).expect("sheet").push(row);
    }
    (names, sheets)
}

/// Fetches `path` as JSON, CSV and XLSX; checks the download headers and that
/// the CSV and the XLSX hold the same cells. Returns the JSON read as the view
/// `T`, and the workbook.
async fn three_ways<T: DeserializeOwned>(app: &TestApp, token: &str, path: &str, stem: &str) -> (T, Vec<String>, Book) {
    let body: T = app.get_as(path, token).await;
    let sep = if path.contains('?') { '&' } else { '?' };
    let csv = app.get(&format!("{path}{sep}format=csv"), token).await;
    assert_eq!(csv.status(), 200, "{path}");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.headers()["content-disposition"], &format!("attachment; filename=\"{stem}.csv\""));
    let (csv_names, csv_book) = read_csv(&csv.text().await.expect("csv"));
    let xlsx = app.get(&format!("{path}{sep}format=xlsx"), token).await;
    assert_eq!(xlsx.status(), 200, "{path}");
    assert_eq!(xlsx.headers()["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    assert_eq!(xlsx.headers()["content-disposition"], &format!("attachment; filename=\"{stem}.xlsx\""));
    let (names, book) = read_xlsx(&xlsx.bytes().await.expect("xlsx"));
    assert_eq!(csv_names, names, "{path}: the same sheets");
    for name in &names {
        assert!(name.chars().count() <= 31, "{name}");
        let rows = &book[name];
        assert_eq!(rows[0], vec!["report".to_string(), rows[0][1].clone()], "{path} {name}: what");
        assert_eq!(rows[1][0], "generated at", "{path} {name}: when");
        assert_eq!(rows[2][0], "as of", "{path} {name}: as of");
        // The generation instant may differ between the two downloads; every other cell is the same.
        let without_time = |rows: &Vec<Vec<String>>| rows.iter().skip(2).cloned().collect::<Vec<_>>();
        assert_eq!(without_time(&csv_book[name]), without_time(rows), "{path} {name}: CSV and XLSX agree");
    }
    (body, names, book)
}

fn norm(amount: &str) -> String {
    amount.parse::<Decimal>().expect("decimal").normalize().to_string()
}

/// The table of a sheet: the rows after its column row (`first` names the first column).
fn table<'a>(rows: &'a [Vec<String>], first: &str) -> &'a [Vec<String>] {
    let at = rows.iter().position(|r| r[0] == first).unwrap_or_else(|| panic!("no column {first}: {rows:?}"));
    &rows[at + 1..]
}

fn figure(rows: &[Vec<String>], name: &str) -> String {
    table(rows, "figure").iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("no {name}"))[1].clone()
}

#[tokio::test]
async fn every_report_downloads_as_csv_and_xlsx_figure_for_figure() {
    let app = spawn_app().await;
    let settings = crate::helpers::settings_for(&app.database_url);
    gpuhour::demo::seed(&settings, &app.pool).await.expect("the demo seeds");
    let finance = app.token(Role::Finance).await;
    let list: Page<ProgrammeView> = app.get_as("/v1/programmes", &finance).await;
    let programme = list.data.iter().find(|p| p.name == "2026 National AI Compute Voucher").expect("the programme").id;

    // The programme report, grouped by tenant.
    let path = format!("/v1/reports/programmes/{programme}?group_by=tenant");
    let (report, names, book): (ProgrammeReport, _, _) =
        three_ways(&app, &finance, &path, &format!("programme-{programme}")).await;
    assert_eq!(names, ["Programme", "By tenant"]);
    for key in
        ["budget", "granted", "spent", "claimed", "advanced", "advance_applied", "advance_unapplied", "outstanding"]
    {
        assert_eq!(figure(&book["Programme"], &key.replace('_', " ")), norm(report_figure(&report, key)), "{key}");
    }
    // Use and energy as the API shows them (the demo's listings declare power).
    let energy = report.energy_kwh.as_deref().expect("the demo's orders carry energy");
    assert_eq!(figure(&book["Programme"], "energy kWh"), energy);
    assert_eq!(figure(&book["Programme"], "CO2e kg"), report.co2e_kg.as_deref().expect("and carbon"));
    assert_eq!(figure(&book["Programme"], "KRW per kWh"), report.krw_per_kwh.as_deref().expect("and a price"));
    let groups = report.groups.as_ref().expect("groups");
    let rows = table(&book["By tenant"], "tenant");
    assert_eq!(rows.len(), groups.len() + 1, "a row per group and the totals row");
    for (row, g) in rows.iter().zip(groups) {
        assert_eq!((&row[0], &row[1], &row[3]), (&g.key, &g.name, &norm(&g.spent)));
    }
    let total = rows.last().expect("totals");
    assert_eq!((total[0].as_str(), total[3].clone()), ("total", norm(&report.spent)), "the groups add up to spent");

    // The trial balance: each account's figures and the totals, money and memo apart.
    let (tb, names, book): (TrialBalance, _, _) =
        three_ways(&app, &finance, "/v1/reports/trial-balance", "trial-balance").await;
    assert_eq!(
        names,
        ["Trial balance KRW", "Budget memo KRW", "Trial balance USD", "Trial balance EUR", "Trial balance JPY"]
    );
    for (sheet, totals) in [("Trial balance KRW", &tb.totals), ("Budget memo KRW", &tb.memo_totals)] {
        let rows = table(&book[sheet], "account");
        let last = rows.last().expect("totals");
        assert_eq!(last[3..7].to_vec(), totals_in(totals, "KRW").map(norm).to_vec(), "{sheet}");
    }
    let money_and_memo =
        table(&book["Trial balance KRW"], "account").len() + table(&book["Budget memo KRW"], "account").len();
    assert_eq!(money_and_memo, tb.data.iter().filter(|r| r.account.currency == "KRW").count() + 2);
    let bank = &trial_balance_row(&tb, "assets:bank", "KRW").expect("bank").account;
    let bank_row =
        table(&book["Trial balance KRW"], "account").iter().find(|r| r[0] == "assets:bank").expect("bank row").clone();
    assert_eq!(
        bank_row[3..8].to_vec(),
        [&bank.debits_posted, &bank.credits_posted, &bank.debits_pending, &bank.credits_pending, &bank.balance]
            .map(|amount| norm(amount))
            .to_vec()
    );

    // The bank account's statement page: debits and credits apart, the running balance, the page's totals.
    let bank_id = bank.id;
    let path = format!("/v1/accounts/{bank_id}/postings?limit=500");
    let (page, names, book): (Page<StatementLineView>, _, _) =
        three_ways(&app, &finance, &path, &format!("account-{bank_id}")).await;
    assert_eq!(names, ["Account statement"]);
    let rows = table(&book["Account statement"], "effective_at");
    assert_eq!(rows.len(), page.data.len() + 1);
    let mut debits = Decimal::ZERO;
    for (row, line) in rows.iter().zip(&page.data) {
        let column = if line.side == "debit" { 6 } else { 7 };
        assert_eq!((&row[column], &row[8]), (&norm(&line.amount), &norm(&line.balance)));
        if line.side == "debit" {
            debits += line.amount.parse::<Decimal>().expect("decimal");
        }
    }
    let totals = rows.last().expect("totals");
    assert_eq!((&totals[6], &totals[8]), (&debits.normalize().to_string(), &norm(&bank.balance)));

    // A tenant's statement: its sections, each movement with its balance, and the closing balance.
    let orgs: Page<OrganisationView> = app.get_as("/v1/organisations?kind=tenant&q=SNU", &finance).await;
    let org = orgs.data.first().expect("SNU Vision Lab").id;
    let path = format!("/v1/reports/statements/{org}");
    let (statement, names, book): (Statement, _, _) =
        three_ways(&app, &finance, &path, &format!("statement-{org}")).await;
    assert_eq!(names, statement.sections.iter().map(|s| format!("{} KRW", s.section)).collect::<Vec<_>>());
    for (name, section) in names.iter().zip(&statement.sections) {
        let rows = table(&book[name], "effective_at");
        assert_eq!(rows.len(), section.lines.len() + 2, "{name}: opening, lines, closing");
        assert_eq!(rows[0][6], norm(&section.opening_balance));
        for (row, line) in rows[1..].iter().zip(&section.lines) {
            assert_eq!((&row[5], &row[6]), (&norm(&line.amount), &norm(&line.balance)), "{name}");
        }
        assert_eq!(rows.last().expect("closing")[6], norm(&section.closing_balance), "{name}");
    }

    // The claim with its lines: by provider and by tenant, each adding up to the claim.
    let claims: Page<ClaimSummary> = app.get_as(&format!("/v1/claims?programme_id={programme}"), &finance).await;
    let claim = claims.data.first().expect("the demo's claim").id;
    let (view, names, book): (ClaimView, _, _) =
        three_ways(&app, &finance, &format!("/v1/claims/{claim}"), &format!("claim-{claim}")).await;
    assert_eq!(names, ["Claim", "By provider", "By tenant", "Payments"]);
    for (key, amount) in [
        ("amount", &view.amount),
        ("paid", &view.paid),
        ("advance_applied", &view.advance_applied),
        ("outstanding", &view.outstanding),
    ] {
        assert_eq!(figure(&book["Claim"], &key.replace('_', " ")), norm(amount), "{key}");
    }
    for (sheet, lines) in [("By provider", &view.lines_by_provider), ("By tenant", &view.lines_by_tenant)] {
        let rows = table(&book[sheet], if sheet == "By provider" { "provider" } else { "tenant" });
        assert_eq!(rows.len(), lines.len() + 1);
        for (row, line) in rows.iter().zip(lines) {
            assert_eq!((&row[0], &row[2]), (&line.org_id.to_string(), &norm(&line.amount)));
        }
        assert_eq!(rows.last().expect("totals")[2], norm(&view.amount), "{sheet} adds up to the claim");
    }

    // The audit log: the same page, record for record, and their count.
    let path = "/v1/audit-log?route=/v1/programmes/{id}/advances";
    let (log, names, book): (Page<AuditEntry>, _, _) = three_ways(&app, &finance, path, "audit-log").await;
    assert_eq!(names, ["Audit log"]);
    assert_eq!(log.data.len(), 3, "two tranches and the pilot's advance");
    let rows = table(&book["Audit log"], "at");
    for (row, entry) in rows.iter().zip(&log.data) {
        assert_eq!(
            (row[2].as_str(), row[4].as_str(), &row[9]),
            ("/v1/programmes/{id}/advances", "201", &entry.id.to_string())
        );
    }
    assert_eq!(rows.last().expect("totals"), &vec!["records".to_string(), "3".to_string()]);

    // The bank reconciliation and the settlement statement come the same way.
    let (rec, _, book): (Reconciliation, _, _) =
        three_ways(&app, &finance, "/v1/reports/bank-reconciliation", "bank-reconciliation").await;
    assert_eq!(figure(&book["Reconciliation"], "statement balance"), norm(&rec.statement_balance));
    let rows = table(&book["Unmatched lines"], "date");
    assert_eq!(rows.len(), rec.unmatched_lines.len() + 1);
    let pilot = list.data.iter().find(|p| p.fiscal_year == 2025).expect("pilot").id;
    let path = format!("/v1/reports/programmes/{pilot}/settlement");
    let (settlement, _, book): (SettlementStatement, _, _) =
        three_ways(&app, &finance, &path, &format!("settlement-{pilot}")).await;
    assert_eq!(figure(&book["Settlement"], "refunded"), norm(&settlement.refunded));

    // An unknown format is refused, naming the parameter and the formats there are.
    for path in [
        format!("/v1/reports/programmes/{programme}"),
        "/v1/reports/trial-balance".into(),
        format!("/v1/claims/{claim}"),
        "/v1/audit-log".into(),
        format!("/v1/reports/statements/{org}"),
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let problem =
            expect_problem(app.get(&format!("{path}{sep}format=pdf"), &finance).await, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "format", "{path}");
        let message = problem["errors"][0]["message"].as_str().expect("message");
        assert!(message.contains("`json`, `csv`, `xlsx`"), "{path}: {message}");
    }
}

#[tokio::test]
async fn every_report_documents_its_format_parameter() {
    let app = spawn_app().await;
    // The OpenAPI document itself, read as JSON: it is no view of the crate's.
    let (status, doc) = json(app.client.get(app.url("/openapi.json")).send().await.expect("openapi")).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/reports/programmes/{id}",
        "/v1/reports/programmes/{id}/settlement",
        "/v1/reports/trial-balance",
        "/v1/accounts/{id}/postings",
        "/v1/reports/statements/{org_id}",
        "/v1/claims/{id}",
        "/v1/reports/bank-reconciliation",
        "/v1/audit-log",
        "/v1/reports/funding",
    ] {
        let get = &doc["paths"][path]["get"];
        let names: Vec<&str> =
            get["parameters"].as_array().expect("parameters").iter().filter_map(|p| p["name"].as_str()).collect();
        assert!(names.contains(&"format"), "{path}: {names:?}");
        let ok = get["responses"]["200"]["description"].as_str().unwrap_or_default();
        if path != "/v1/reports/funding" {
            assert!(ok.contains("format=csv|xlsx"), "{path}: {ok}");
        }
    }
}
