//! Year-end settlement routes: `POST /v1/programmes/{id}/settle`,
//! `POST /v1/programmes/{id}/refunds` and the settlement statement
//! `GET /v1/reports/programmes/{id}/settlement`. Roles: finance, admin.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::programmes;
use super::year_end::{self, RefundView, SettlementOutcome};
use crate::auth::Principal;
use crate::db::schema::{grants, programme_refunds, programmes as programmes_table};
use crate::finance::reports::{self, GroupBy, ProgrammeReport, ReportGroup};
use crate::finance::spreadsheet::{self, Cell, Format, Sheet, amount_cell};
use crate::http::ApiError;
use crate::http::Write;
use crate::http::extract::{JsonBody, Query};
use crate::ledger::chart;
use crate::ledger::store as ledger_store;
use crate::money::{Currency, Money, format_amount, parse_amount};
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

/// Settles a programme after its fiscal year: closes its grants, claims what
/// is unclaimed, and books what it gave beyond its subsidy as a refund due.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = SettlementOutcome), (status = 404, body = Problem), (status = 409, body = Problem),
))]
#[post("/v1/programmes/{id}/settle")]
pub async fn settle_programme(
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
        Ok(year_end::settle(conn, id, principal.actor(), now).await?)
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Decimal string in the programme's currency.
    pub amount: String,
    /// The bank's reference for the transfer; once per programme.
    pub reference: String,
}

/// Records paying (part of) a settled programme's refund due back to it.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = RefundRequest, security(("bearer" = [])), responses(
    (status = 201, body = RefundView), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/programmes/{id}/refunds")]
pub async fn refund_programme(
    state: web::Data<AppState>,
    write: Write<JsonBody<RefundRequest>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let reference = body.value.reference.trim().to_string();
    if reference.is_empty() || reference.chars().count() > 200 {
        return Err(ApiError::invalid("reference", "must be 1 to 200 characters"));
    }
    let raw_amount = body.value.amount.clone();
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let programme =
            programmes::find_programme(conn, id).await?.ok_or_else(|| ApiError::missing("programme", id))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        Ok(year_end::refund(conn, id, amount, reference, principal.actor(), now).await?)
    })
    .await
}

/// One grant's part in the settlement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantLine {
    pub grant_id: Uuid,
    pub tenant_org_id: Uuid,
    pub status: super::programmes::GrantStatus,
    pub amount: String,
    pub spent: String,
    pub released: String,
}

/// The settlement statement: the programme's figures, what is due back or
/// still owed, and lines per grant, tenant, provider and month.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettlementStatement {
    pub programme_id: Uuid,
    pub name: String,
    pub sponsor: String,
    pub fiscal_year: i32,
    pub settled_at: Option<DateTime<Utc>>,
    pub figures: ProgrammeReport,
    /// Still owed back to the programme.
    pub refund_due: String,
    /// Paid back to it.
    pub refunded: String,
    pub by_grant: Vec<GrantLine>,
    pub by_tenant: Vec<ReportGroup>,
    pub by_provider: Vec<ReportGroup>,
    pub by_month: Vec<ReportGroup>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SettlementQuery {
    /// `json` (default), `csv` or `xlsx`.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// The settlement statement of a programme (before settlement: as it would
/// stand), as JSON or as a spreadsheet (`format=csv|xlsx`).
#[utoipa::path(tag = "reports", params(("id" = Uuid, Path), SettlementQuery), security(("bearer" = [])), responses(
    (status = 200, body = SettlementStatement,
        description = "JSON, or with `format=csv|xlsx` a download named `settlement-{id}.csv|xlsx`"),
    (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[get("/v1/reports/programmes/{id}/settlement")]
pub async fn settlement_statement(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<SettlementQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let programme =
        programmes::find_programme(&mut conn, id).await?.ok_or_else(|| ApiError::missing("programme", id))?;
    let c = programme.currency;
    let zone = state.settings.time_zone.clone();
    let settled_at: Option<DateTime<Utc>> =
        programmes_table::table.find(id).select(programmes_table::settled_at).first(&mut conn).await?;
    let groups =
        async |conn: &mut diesel_async::AsyncPgConnection, by: GroupBy| -> Result<Vec<ReportGroup>, ApiError> {
            Ok(reports::report(conn, id, c, Some(by), &zone).await?.groups.unwrap_or_default())
        };
    let by_tenant = groups(&mut conn, GroupBy::Tenant).await?;
    let by_provider = groups(&mut conn, GroupBy::Provider).await?;
    let by_month = groups(&mut conn, GroupBy::Month).await?;
    let figures = reports::report(&mut conn, id, c, None, &zone).await?;
    let due = ledger_store::account_by_code(&mut conn, &chart::programme_refund_due_code(id), c)
        .await?
        .map_or(Money::zero(c), |a| a.balance());
    let refunded: Vec<Decimal> = programme_refunds::table
        .filter(programme_refunds::programme_id.eq(id))
        .select(programme_refunds::amount)
        .load(&mut conn)
        .await?;
    let rows: Vec<programmes::GrantRow> = grants::table
        .filter(grants::programme_id.eq(id))
        .order(grants::created_at)
        .select(programmes::GrantRow::as_select())
        .load(&mut conn)
        .await?;
    let mut by_grant = Vec::with_capacity(rows.len());
    for g in rows {
        let spent = ledger_store::account_by_code(&mut conn, &chart::grant_spent_code(g.id), c)
            .await?
            .map_or(Money::zero(c), |a| a.balance());
        by_grant.push(GrantLine {
            grant_id: g.id,
            tenant_org_id: g.tenant_org_id,
            status: g.status,
            amount: format_amount(g.amount, c),
            spent: spent.formatted_amount(),
            released: format_amount(g.released, c),
        });
    }
    let statement = SettlementStatement {
        programme_id: id,
        name: programme.name,
        sponsor: programme.sponsor,
        fiscal_year: programme.fiscal_year,
        settled_at,
        figures,
        refund_due: due.formatted_amount(),
        refunded: format_amount(refunded.into_iter().sum(), c),
        by_grant,
        by_tenant,
        by_provider,
        by_month,
    };
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &statement, &format!("settlement-{id}"), || settlement_sheets(&statement, c, now))
}

/// The statement's sheets: the figures, then the lines per grant, tenant, provider and month.
fn settlement_sheets(s: &SettlementStatement, c: Currency, now: DateTime<Utc>) -> Result<Vec<Sheet>, ApiError> {
    let header = spreadsheet::header_block(
        "programme settlement statement",
        now,
        None,
        vec![
            ("programme", format!("{} ({})", s.name, s.programme_id)),
            ("sponsor", s.sponsor.clone()),
            ("fiscal year", s.fiscal_year.to_string()),
            ("settled at", s.settled_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "not settled".into())),
            ("currency", c.code().into()),
        ],
    );
    let f = &s.figures;
    let figures = [
        ("budget", &f.budget),
        ("granted", &f.granted),
        ("released", &f.released),
        ("spent", &f.spent),
        ("claimed", &f.claimed),
        ("advanced", &f.advanced),
        ("advance applied", &f.advance_applied),
        ("paid", &f.paid),
        ("written off", &f.written_off),
        ("outstanding", &f.outstanding),
        ("refund due", &s.refund_due),
        ("refunded", &s.refunded),
    ];
    let groups = |name: &str, key: &str, groups: &[ReportGroup]| -> Result<Sheet, ApiError> {
        let total = spreadsheet::sum_amounts(groups.iter().map(|g| g.spent.as_str()))?;
        Ok(Sheet {
            name: name.into(),
            header: header.clone(),
            columns: vec![key.into(), "spent".into()],
            rows: groups.iter().map(|g| vec![Cell::text(&g.key), amount_cell(&g.spent, c)]).collect(),
            totals: Some(vec![Cell::text("total"), Cell::Amount(total, c)]),
        })
    };
    let spent = spreadsheet::sum_amounts(s.by_grant.iter().map(|g| g.spent.as_str()))?;
    let released = spreadsheet::sum_amounts(s.by_grant.iter().map(|g| g.released.as_str()))?;
    let granted = spreadsheet::sum_amounts(s.by_grant.iter().map(|g| g.amount.as_str()))?;
    Ok(vec![
        Sheet {
            name: "Settlement".into(),
            header: header.clone(),
            columns: vec!["figure".into(), "amount".into()],
            rows: figures.iter().map(|(k, v)| vec![Cell::text(*k), amount_cell(v, c)]).collect(),
            totals: None,
        },
        Sheet {
            name: "By grant".into(),
            header: header.clone(),
            columns: vec![
                "grant".into(),
                "tenant".into(),
                "status".into(),
                "amount".into(),
                "spent".into(),
                "released".into(),
            ],
            rows: s
                .by_grant
                .iter()
                .map(|g| {
                    vec![
                        Cell::text(g.grant_id.to_string()),
                        Cell::text(g.tenant_org_id.to_string()),
                        Cell::text(g.status.as_str()),
                        amount_cell(&g.amount, c),
                        amount_cell(&g.spent, c),
                        amount_cell(&g.released, c),
                    ]
                })
                .collect(),
            totals: Some(vec![
                Cell::text("total"),
                Cell::Empty,
                Cell::Empty,
                Cell::Amount(granted, c),
                Cell::Amount(spent, c),
                Cell::Amount(released, c),
            ]),
        },
        groups("By tenant", "tenant", &s.by_tenant)?,
        groups("By provider", "provider", &s.by_provider)?,
        groups("By month", "month", &s.by_month)?,
    ])
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(settle_programme).service(refund_programme).service(settlement_statement);
}
