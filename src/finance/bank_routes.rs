//! Bank reconciliation routes. Roles: finance, admin.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::bank::{self, BankLineView, Columns, ImportResult, Reconciliation};
use super::spreadsheet::{self, Cell, Format, Sheet, amount_cell};
use crate::auth::Principal;
use crate::http::ApiError;
use crate::http::Write;
use crate::http::extract::{CsvBody, JsonBody, Query};
use crate::money::Currency;
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

/// Imports a bank statement (`text/csv`, header
/// `date,amount,currency,counterparty,reference,bank_ref`; amounts signed, +
/// received, − paid; other layouts name their columns in the query). A bad row
/// refuses the file and names the row; a `bank_ref` imported before is refused
/// line by line. The matcher then runs over every unmatched line.
#[utoipa::path(tag = "finance", params(Columns, ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = String, content_type = "text/csv"), security(("bearer" = [])), responses(
    (status = 201, body = ImportResult), (status = 415, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/bank-statements")]
pub async fn import_statement(write: Write<CsvBody>, Query(columns): Query<Columns>) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let lines = bank::parse_statement(&body.0, &columns)?;
    let state = op.state();
    let (clock, zone, days) = (state.clock, state.settings.time_zone.clone(), state.settings.bank_match_days);
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(bank::import(conn, lines, &zone, days, principal.actor(), now).await?)
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LineQuery {
    /// `matched`, `suggested` or `unmatched`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineList {
    pub data: Vec<BankLineView>,
}

/// Statement lines, by date, optionally of one status.
#[utoipa::path(tag = "finance", params(LineQuery), security(("bearer" = [])), responses((status = 200, body = LineList)))]
#[get("/v1/bank-lines")]
pub async fn list_lines(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<LineQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<bank::BankLineStatus>)
        .transpose()
        .map_err(|_| ApiError::invalid("status", "must be matched, suggested or unmatched"))?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(LineList { data: bank::list_lines(&mut conn, status).await? }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    /// The entries the line is for; empty or absent confirms what was suggested.
    #[serde(default)]
    pub journal_entry_ids: Vec<Uuid>,
}

/// A person matches a line (or confirms its suggestion).
#[utoipa::path(tag = "finance", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = MatchRequest, security(("bearer" = [])), responses(
    (status = 200, body = BankLineView), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/bank-lines/{id}/match")]
pub async fn match_line(
    state: web::Data<AppState>,
    write: Write<JsonBody<MatchRequest>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let entries = body.value.journal_entry_ids.clone();
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(bank::match_line(conn, id, entries, principal.actor(), now).await?)
    })
    .await
}

/// A person undoes a line's matches (kept in the record as removed).
#[utoipa::path(tag = "finance", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = BankLineView), (status = 404, body = Problem), (status = 409, body = Problem),
))]
#[post("/v1/bank-lines/{id}/unmatch")]
pub async fn unmatch_line(
    state: web::Data<AppState>,
    write: Write,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(bank::unmatch_line(conn, id, principal.actor(), now).await?)
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookDeposit {
    /// The tenant the receipt's reference names.
    pub tenant_org_id: Uuid,
}

/// Books an unmatched receipt as a deposit for a tenant and matches the line to it.
#[utoipa::path(tag = "finance", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = BookDeposit, security(("bearer" = [])), responses(
    (status = 201, body = BankLineView), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/bank-lines/{id}/deposit")]
pub async fn book_deposit(
    state: web::Data<AppState>,
    write: Write<JsonBody<BookDeposit>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let tenant = body.value.tenant_org_id;
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(bank::book_deposit(conn, id, crate::auth::OrgId(tenant), principal.actor(), now).await?)
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationQuery {
    /// Before this instant; now when absent.
    pub as_of: Option<DateTime<Utc>>,
    /// Default KRW.
    #[param(value_type = Option<String>)]
    pub currency: Option<Currency>,
    /// `json` (default), `csv` or `xlsx`.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// The bank statement balance beside `assets:bank`, with every reconciling item;
/// `reconciled: true` when they agree with nothing unexplained.
#[utoipa::path(tag = "reports", params(ReconciliationQuery), security(("bearer" = [])), responses(
    (status = 200, body = Reconciliation,
        description = "JSON, or with `format=csv|xlsx` a download named `bank-reconciliation.csv|xlsx`"),
    (status = 422, body = Problem),
))]
#[get("/v1/reports/bank-reconciliation")]
pub async fn reconciliation(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<ReconciliationQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    let as_of = match q.as_of {
        Some(t) => t,
        None => state.clock.now(&mut conn).await?,
    };
    let currency = q.currency.unwrap_or(Currency::Krw);
    let report = bank::reconciliation(&mut conn, as_of, currency, &state.settings.time_zone).await?;
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &report, "bank-reconciliation", || reconciliation_sheets(&report, currency, now))
}

fn reconciliation_sheets(r: &Reconciliation, c: Currency, now: DateTime<Utc>) -> Result<Vec<Sheet>, ApiError> {
    let header = spreadsheet::header_block(
        "bank reconciliation",
        now,
        Some(r.as_of),
        vec![("currency", c.code().into()), ("reconciled", r.reconciled.to_string())],
    );
    let lines_total = spreadsheet::sum_amounts(r.unmatched_lines.iter().map(|l| l.amount.as_str()))?;
    let entries_total = spreadsheet::sum_amounts(r.unmatched_entries.iter().map(|e| e.amount.as_str()))?;
    Ok(vec![
        Sheet {
            name: "Reconciliation".into(),
            header: header.clone(),
            columns: vec!["figure".into(), "amount".into()],
            rows: vec![
                vec![Cell::text("statement balance"), amount_cell(&r.statement_balance, c)],
                vec![Cell::text("ledger balance (assets:bank)"), amount_cell(&r.ledger_balance, c)],
            ],
            totals: None,
        },
        Sheet {
            name: "Unmatched lines".into(),
            header: header.clone(),
            columns: vec![
                "date".into(),
                "bank_ref".into(),
                "reference".into(),
                "counterparty".into(),
                "status".into(),
                "amount".into(),
            ],
            rows: r
                .unmatched_lines
                .iter()
                .map(|l| {
                    vec![
                        Cell::text(l.date.to_string()),
                        Cell::text(&l.bank_ref),
                        Cell::text(&l.reference),
                        Cell::text(&l.counterparty),
                        Cell::text(l.status.as_str()),
                        amount_cell(&l.amount, c),
                    ]
                })
                .collect(),
            totals: Some(vec![
                Cell::text("total"),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Amount(lines_total, c),
            ]),
        },
        Sheet {
            name: "Unmatched entries".into(),
            header,
            columns: vec!["effective_at".into(), "entry".into(), "kind".into(), "reference".into(), "amount".into()],
            rows: r
                .unmatched_entries
                .iter()
                .map(|e| {
                    vec![
                        Cell::text(e.effective_at.to_rfc3339()),
                        Cell::text(e.journal_entry_id.to_string()),
                        Cell::text(&e.kind),
                        Cell::text(e.reference.clone().unwrap_or_default()),
                        amount_cell(&e.amount, c),
                    ]
                })
                .collect(),
            totals: Some(vec![
                Cell::text("total"),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Amount(entries_total, c),
            ]),
        },
    ])
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(import_statement)
        .service(list_lines)
        .service(match_line)
        .service(unmatch_line)
        .service(book_deposit)
        .service(reconciliation);
}
