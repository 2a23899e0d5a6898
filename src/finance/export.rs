//! The journal as an hledger/ledger-cli file or CSV (SPEC section 6): posted
//! movements only, amounts with the currency's precision, so that
//! `hledger -f export.journal balance` agrees with the trial balance.

use std::fmt::Write;

use actix_web::http::header::{ContentDisposition, ContentType, DispositionParam, DispositionType};
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::FinanceError;
use super::spreadsheet::{Cell, csv_table};
use crate::auth::Principal;
use crate::http::ApiError;
use crate::http::extract::{Query, check_period};
use crate::money::{Currency, format_amount};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Hledger,
    Csv,
}

#[derive(diesel::QueryableByName, Debug)]
pub struct ExportRow {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = SqlUuid)]
    pub entry_id: Uuid,
    #[diesel(sql_type = Text)]
    pub entry_kind: String,
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
    /// The day of `effective_at` in the programme office's zone (hledger's date).
    #[diesel(sql_type = Text)]
    pub local_date: String,
    #[diesel(sql_type = Text)]
    pub memo: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub reference: Option<String>,
    #[diesel(sql_type = SqlUuid)]
    pub posting_id: Uuid,
    #[diesel(sql_type = Text)]
    pub debit_code: String,
    #[diesel(sql_type = Text)]
    pub credit_code: String,
    #[diesel(sql_type = Text)]
    pub currency: Currency,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
}

/// Posted movements (`posted` and `post_pending` postings) effective in [`from`, `to`),
/// each dated by its day in `time_zone`.
pub async fn rows(
    conn: &mut AsyncPgConnection,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    time_zone: &str,
) -> Result<Vec<ExportRow>, FinanceError> {
    Ok(diesel::sql_query(
        "SELECT e.seq, e.id AS entry_id, e.kind AS entry_kind, p.effective_at, \
                to_char(p.effective_at AT TIME ZONE $3, 'YYYY-MM-DD') AS local_date, e.memo, e.reference, p.id AS posting_id, \
                d.code AS debit_code, c.code AS credit_code, p.currency, p.amount \
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
         JOIN accounts d ON d.id = p.debit_account_id JOIN accounts c ON c.id = p.credit_account_id \
         WHERE p.kind IN ('posted', 'post_pending') \
           AND ($1::timestamptz IS NULL OR p.effective_at >= $1) AND ($2::timestamptz IS NULL OR p.effective_at < $2) \
         ORDER BY e.seq, p.seq",
    )
    .bind::<Nullable<Timestamptz>, _>(from)
    .bind::<Nullable<Timestamptz>, _>(to)
    .bind::<Text, _>(time_zone)
    .load(conn)
    .await?)
}

/// Text safe on one hledger line: no newlines, no `;` (which starts a comment).
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() || c == ';' { ' ' } else { c }).collect()
}

/// hledger journal: one transaction per entry, each posting as a debit line
/// (positive) and a credit line (negative) with the currency as commodity.
pub fn hledger(rows: &[ExportRow]) -> String {
    let mut out = String::from("; gpuhour journal export: posted movements only\n");
    let mut current: Option<Uuid> = None;
    for r in rows {
        if current != Some(r.entry_id) {
            current = Some(r.entry_id);
            let code = r.reference.as_deref().map(|x| format!(" ({})", one_line(x))).unwrap_or_default();
            let _ = write!(
                out,
                "\n{}{} {} | {}\n    ; entry:{} kind:{}\n",
                r.local_date,
                code,
                r.entry_kind,
                one_line(&r.memo),
                r.entry_id,
                r.entry_kind
            );
        }
        let amount = format_amount(r.amount, r.currency);
        let _ = writeln!(out, "    {}    {} {}", r.debit_code, amount, r.currency);
        let _ = writeln!(out, "    {}    -{} {}", r.credit_code, amount, r.currency);
    }
    out
}

/// CSV: one row per posting, built by `spreadsheet::csv_table`.
pub fn csv(rows: &[ExportRow]) -> String {
    let columns = [
        "entry_id",
        "entry_kind",
        "effective_at",
        "posting_id",
        "debit_account",
        "credit_account",
        "amount",
        "currency",
        "memo",
        "reference",
    ];
    csv_table(
        &columns,
        rows.iter().map(|r| {
            vec![
                Cell::text(r.entry_id.to_string()),
                Cell::text(&r.entry_kind),
                Cell::text(r.effective_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                Cell::text(r.posting_id.to_string()),
                Cell::text(&r.debit_code),
                Cell::text(&r.credit_code),
                Cell::Amount(r.amount, r.currency),
                Cell::text(r.currency.code()),
                Cell::text(&r.memo),
                Cell::text(r.reference.as_deref().unwrap_or("")),
            ]
        }),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `hledger` (default) or `csv`.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// The journal's posted movements as an hledger file or CSV. Roles: finance, admin.
#[utoipa::path(tag = "reports", params(ExportQuery), security(("bearer" = [])), responses(
    (status = 200, description = "text/plain (hledger) or text/csv"),
))]
#[get("/v1/exports/journal")]
pub async fn export_journal(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    check_period(q.from, q.to)?;
    let mut conn = state.pool.get().await?;
    export_response(&mut conn, q.from, q.to, &state.settings.time_zone, q.format.unwrap_or(Format::Hledger)).await
}

/// The journal export as a download (`GET /v1/exports/journal`), for the API
/// and the console.
pub async fn export_response(
    conn: &mut AsyncPgConnection,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    time_zone: &str,
    format: Format,
) -> Result<HttpResponse, ApiError> {
    let rows = rows(conn, from, to, time_zone).await?;
    let (body, content_type, name) = match format {
        Format::Hledger => (hledger(&rows), ContentType::plaintext(), "gpuhour.journal"),
        Format::Csv => (csv(&rows), ContentType(mime::TEXT_CSV_UTF_8), "gpuhour-journal.csv"),
    };
    Ok(HttpResponse::Ok()
        .insert_header(content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(name.into())],
        })
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn row(entry: u128, code_d: &str, code_c: &str, amount: Decimal, currency: Currency) -> ExportRow {
        ExportRow {
            seq: 1,
            entry_id: Uuid::from_u128(entry),
            entry_kind: "deposit".into(),
            effective_at: DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").expect("t").with_timezone(&Utc),
            local_date: "2026-03-01".into(),
            memo: "deposit; from \"ACME\"\nnext".into(),
            reference: Some("wire-1".into()),
            posting_id: Uuid::from_u128(9),
            debit_code: code_d.into(),
            credit_code: code_c.into(),
            currency,
            amount,
        }
    }

    #[test]
    fn hledger_lines_balance_and_keep_the_currency_precision() {
        let text = hledger(&[row(1, "assets:bank", "liabilities:tenant:x:wallet", dec!(12.5), Currency::Usd)]);
        assert!(text.contains("2026-03-01 (wire-1) deposit | deposit  from \"ACME\" next\n"), "{text}");
        assert!(text.contains("    assets:bank    12.50 USD\n"), "{text}");
        assert!(text.contains("    liabilities:tenant:x:wallet    -12.50 USD\n"), "{text}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let text = csv(&[row(1, "assets:bank", "equity:adjustments", dec!(1000), Currency::Krw)]);
        let expected_row = format!(
            "{},deposit,2026-03-01T10:00:00.000000Z,{},assets:bank,equity:adjustments,1000,KRW,\"deposit; from \"\"ACME\"\"\nnext\",wire-1\n",
            Uuid::from_u128(1),
            Uuid::from_u128(9)
        );
        assert_eq!(text.split_once('\n').map(|(_, rows)| rows), Some(expected_row.as_str()));
    }
}
