//! `GET /v1/reports/funding` and its reconciliation with the ledger.

use actix_web::http::header::{ContentDisposition, ContentType, DispositionParam, DispositionType};
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::check::{Reconciliation, reconcile};
use super::store::{self, Scope};
use super::{
    CurrencyFunding, Dimension, Node, Period, RATIO_PLACES, REPORTING_TIME_ZONE, aggregate, csv, currency_view,
    parse_group_by,
};
use crate::auth::Principal;
use crate::http::extract::Query;
use crate::http::{ApiError, FieldError};
use crate::money::Currency;
use crate::state::AppState;
use crate::subsidy::programmes::find_programme;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FundingFormat {
    Json,
    Csv,
    Xlsx,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FundingQuery {
    /// Hours bought that start at or after this instant (RFC 3339); from the beginning when absent.
    pub from: Option<DateTime<Utc>>,
    /// Hours bought that start before this instant; without end when absent.
    pub to: Option<DateTime<Utc>>,
    /// Only orders this programme subsidised (their tenants' co-payments included).
    pub programme_id: Option<Uuid>,
    /// Only this currency.
    pub currency: Option<Currency>,
    /// One or two of `month`, `tenant_category`, `tenant`, `provider`,
    /// `gpu_model`, `region`, `programme`, comma-separated (`month,tenant_category`).
    pub group_by: Option<String>,
    /// `json` (default) or `csv`.
    #[param(value_type = Option<String>)]
    pub format: Option<FundingFormat>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FundingReport {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub programme_id: Option<Uuid>,
    pub currency: Option<Currency>,
    pub group_by: Vec<Dimension>,
    /// The zone whose calendar months `month` groups by.
    pub time_zone: String,
    /// Fraction digits of the ratios.
    pub ratio_places: u32,
    /// One report per currency with orders in scope (the asked-for currency,
    /// or the programme's, always).
    pub currencies: Vec<CurrencyFunding>,
}

/// What the funding report covers.
#[derive(Debug, Clone, Default)]
pub struct FundingRequest {
    pub scope: Scope,
    pub group_by: Vec<Dimension>,
    /// The programme office's zone (`GPUHOUR_TIME_ZONE`); Seoul when absent.
    pub zone: Option<chrono_tz::Tz>,
}

/// The report's figures per currency (the programme's or the asked-for
/// currency is always present, zero when nothing was bought).
pub async fn compute(
    conn: &mut AsyncPgConnection,
    request: &FundingRequest,
) -> Result<Vec<(Currency, Node)>, ApiError> {
    let orders = store::load(conn, &request.scope).await?;
    let mut by_currency =
        aggregate(&orders, request.scope.period, request.zone.unwrap_or(REPORTING_TIME_ZONE), &request.group_by)
            .map_err(ApiError::internal)?;
    if let Some(c) = request.scope.currency {
        by_currency.entry(c).or_default();
    }
    Ok(by_currency.into_iter().collect())
}

/// The funding report (see `funding_report`).
pub async fn report(conn: &mut AsyncPgConnection, request: &FundingRequest) -> Result<FundingReport, ApiError> {
    let computed = compute(conn, request).await?;
    let currencies = computed
        .iter()
        .map(|(c, node)| currency_view(*c, node, &request.group_by))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(FundingReport {
        from: request.scope.period.from,
        to: request.scope.period.to,
        programme_id: request.scope.programme,
        currency: request.scope.currency,
        group_by: request.group_by.clone(),
        time_zone: request.zone.unwrap_or(REPORTING_TIME_ZONE).name().to_string(),
        ratio_places: RATIO_PLACES,
        currencies,
    })
}

/// Checks the query without the database: a period that ends after it begins,
/// a valid grouping.
pub fn check_query(q: &FundingQuery) -> Result<(Period, Vec<Dimension>), ApiError> {
    let mut errors = Vec::new();
    if let (Some(from), Some(to)) = (q.from, q.to)
        && to <= from
    {
        errors.push(FieldError::new("to", "must be after from"));
    }
    let group_by = match q.group_by.as_deref() {
        None => Vec::new(),
        Some(raw) => parse_group_by(raw).unwrap_or_else(|message| {
            errors.push(FieldError::new("group_by", message));
            Vec::new()
        }),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok((Period { from: q.from, to: q.to }, group_by))
}

/// The funding mix: of the GPU-hours bought in a period (on the hours, not on
/// when they were ordered), what public money (subsidy) and private money
/// (tenants' own) paid, with fees, ratios, and settled versus committed, from
/// the ledger's postings; grouped by one or two of month (Asia/Seoul), tenant
/// category, tenant, provider, GPU model, region, programme. `format=csv` gives
/// the same as CSV. Roles: finance, admin.
#[utoipa::path(tag = "reports", params(FundingQuery), security(("bearer" = [])), responses(
    (status = 200, body = FundingReport, description = "JSON, or text/csv with format=csv"),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[get("/v1/reports/funding")]
pub async fn funding_report(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<FundingQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let (period, group_by) = check_query(&q)?;
    let mut conn = state.pool.get().await?;
    let mut currency = q.currency;
    if let Some(id) = q.programme_id {
        let programme = find_programme(&mut conn, id).await?.ok_or_else(|| ApiError::missing("programme", id))?;
        let own = programme.currency;
        if currency.is_some_and(|c| c != own) {
            return Err(ApiError::invalid("currency", format!("programme {id} is in {own}")));
        }
        currency = Some(own);
    }
    let zone = state.settings.time_zone.parse::<chrono_tz::Tz>().ok();
    let request = FundingRequest { scope: Scope { period, currency, programme: q.programme_id }, group_by, zone };
    let report = report(&mut conn, &request).await?;
    match q.format.unwrap_or(FundingFormat::Json) {
        FundingFormat::Json => Ok(HttpResponse::Ok().json(report)),
        FundingFormat::Csv => Ok(HttpResponse::Ok()
            .insert_header(ContentType(mime::TEXT_CSV_UTF_8))
            .insert_header(ContentDisposition {
                disposition: DispositionType::Attachment,
                parameters: vec![DispositionParam::Filename("gpuhour-funding.csv".into())],
            })
            .body(csv(&report.group_by, &report.currencies))),
        FundingFormat::Xlsx => {
            let now = state.clock.now(&mut conn).await?;
            crate::finance::spreadsheet::download(
                crate::finance::spreadsheet::Format::Xlsx,
                "gpuhour-funding",
                &funding_sheets(&report, now),
            )
        }
    }
}

/// The report as spreadsheet sheets, one per currency: a row per group (a
/// first-level group's subtotal row before its subgroups), the total last.
pub fn funding_sheets(report: &FundingReport, now: DateTime<Utc>) -> Vec<crate::finance::spreadsheet::Sheet> {
    use super::FundingFigures;
    use crate::finance::spreadsheet::{Cell, Sheet, amount_cell};
    let dims: Vec<&str> = report.group_by.iter().map(|d| d.as_str()).collect();
    let header = crate::finance::spreadsheet::header_block(
        "funding mix: public and private money on the hours bought",
        now,
        report.to,
        vec![
            ("from", report.from.map(|t| t.to_rfc3339()).unwrap_or_else(|| "the beginning".into())),
            ("to", report.to.map(|t| t.to_rfc3339()).unwrap_or_else(|| "now".into())),
            ("programme", report.programme_id.map(|p| p.to_string()).unwrap_or_else(|| "all".into())),
            ("group by", if dims.is_empty() { "nothing".into() } else { dims.join(", ") }),
            ("months in", report.time_zone.clone()),
        ],
    );
    let mut columns = vec!["level".to_string()];
    for d in &dims {
        columns.push((*d).to_string());
        columns.push(format!("{d} name"));
    }
    for c in [
        "gpu_hours",
        "subtotal",
        "public",
        "private",
        "fees",
        "public_share",
        "private_per_public",
        "settled_subtotal",
        "settled_public",
        "settled_private",
        "committed_subtotal",
        "committed_public",
        "committed_private",
    ] {
        columns.push(c.to_string());
    }
    let figures = |f: &FundingFigures, c: Currency| {
        vec![
            Cell::Integer(f.gpu_hours),
            amount_cell(&f.subtotal, c),
            amount_cell(&f.public, c),
            amount_cell(&f.private, c),
            amount_cell(&f.fees, c),
            f.public_share.clone().map_or(Cell::Empty, Cell::Text),
            f.private_per_public.clone().map_or(Cell::Empty, Cell::Text),
            amount_cell(&f.settled.subtotal, c),
            amount_cell(&f.settled.public, c),
            amount_cell(&f.settled.private, c),
            amount_cell(&f.committed.subtotal, c),
            amount_cell(&f.committed.public, c),
            amount_cell(&f.committed.private, c),
        ]
    };
    fn walk(
        out: &mut Vec<Vec<crate::finance::spreadsheet::Cell>>,
        groups: &[super::FundingGroup],
        level: usize,
        keys: &mut Vec<(String, String)>,
        width: usize,
        c: Currency,
        figures: &dyn Fn(&super::FundingFigures, Currency) -> Vec<crate::finance::spreadsheet::Cell>,
    ) {
        use crate::finance::spreadsheet::Cell;
        for g in groups {
            keys.push((g.key.clone(), g.name.clone()));
            let mut row = vec![Cell::Integer(level as i64)];
            for i in 0..width {
                match keys.get(i) {
                    Some((k, n)) => row.extend([Cell::text(k), Cell::text(n)]),
                    None => row.extend([Cell::Empty, Cell::Empty]),
                }
            }
            row.extend(figures(&g.figures, c));
            out.push(row);
            if let Some(sub) = &g.groups {
                walk(out, sub, level + 1, keys, width, c, figures);
            }
            keys.pop();
        }
    }
    report
        .currencies
        .iter()
        .map(|section| {
            let c = section.currency;
            let mut rows = Vec::new();
            if let Some(groups) = &section.groups {
                walk(&mut rows, groups, 1, &mut Vec::new(), dims.len(), c, &figures);
            }
            let mut totals = vec![Cell::text("total")];
            totals.extend(std::iter::repeat_n(Cell::Empty, dims.len() * 2));
            totals.extend(figures(&section.total, c));
            Sheet {
                name: format!("Funding {}", c.code()),
                header: header.clone(),
                columns: columns.clone(),
                rows,
                totals: Some(totals),
            }
        })
        .collect()
}

/// Reconciles the funding report with the ledger over all time: every order's
/// hour-by-hour attribution against what its postings became, the totals
/// against the sums of the postings (and providers' earnings), each
/// programme's public money against its programme report. Roles: finance, admin.
#[utoipa::path(tag = "reports", security(("bearer" = [])), responses(
    (status = 200, body = Reconciliation), (status = 403, body = Problem),
))]
#[get("/v1/reports/funding/reconciliation")]
pub async fn funding_reconciliation(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(reconcile(&mut conn).await?))
}
