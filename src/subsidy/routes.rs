//! HTTP handlers of programmes, grants and claims.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::claims::{self, ClaimView};
use super::programmes::{self, GrantRow, GrantStatus, NewGrant, NewProgramme, ProgrammeRow};
use super::projects::{AllocationFields, AllocationView, ProjectFields, ProjectView, check_allocation, check_project};
use super::rules::{Eligibility, parse_rate};
use crate::auth::model::TenantCategory;
use crate::auth::{Principal, Role};
use crate::db::schema::grants;
use crate::finance::spreadsheet::{self, Cell, Format, Sheet, amount_cell};
use crate::http::extract::{JsonBody, NoQuery, Query};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, FieldError};
use crate::http::{Write, WriteOp};
use crate::ledger::chart;
use crate::money::{Currency, format_amount, parse_amount};
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeRequest {
    pub name: String,
    pub sponsor: String,
    pub fiscal_year: i32,
    pub currency: Currency,
    /// Decimal string.
    pub budget: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Fraction of the subtotal the programme pays, e.g. `"0.7"`.
    pub default_rate: String,
    /// e.g. `{"sme": "0.8", "university": "0.9"}`.
    pub rates_by_category: Option<BTreeMap<TenantCategory, String>>,
    pub gpu_models: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub provider_ids: Option<Vec<Uuid>>,
    /// The reclaim rule, with `reclaim_window_hours` (both or neither): a
    /// grant whose orders used less than this fraction of their reserved
    /// GPU-hours over the window is flagged (`"0.2"`; more than 0, at most 1).
    pub reclaim_below_utilisation: Option<String>,
    /// The window the rule looks back over, 1 to 720 hours.
    pub reclaim_window_hours: Option<i32>,
    /// The anti-concentration rule: the most one tenant organisation may hold
    /// of the budget across its grants, a fraction in (0, 1], e.g. `"0.1"`.
    pub max_share_per_org: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeView {
    pub id: Uuid,
    pub name: String,
    pub sponsor: String,
    pub fiscal_year: i32,
    pub currency: String,
    pub budget: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub default_rate: String,
    pub rates_by_category: BTreeMap<String, String>,
    pub gpu_models: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub provider_ids: Option<Vec<Uuid>>,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub reclaim_below_utilisation: Option<String>,
    pub reclaim_window_hours: Option<i32>,
    /// The most one tenant organisation may hold of the budget (null: no cap).
    pub max_share_per_org: Option<String>,
}

/// The view of `p` with its per-organisation cap.
pub(crate) async fn programme_view_with_cap(
    conn: &mut diesel_async::AsyncPgConnection,
    p: ProgrammeRow,
) -> Result<ProgrammeView, ApiError> {
    let cap = super::projects::caps_of(conn, &[p.id]).await?.get(&p.id).copied();
    let mut view = programme_view(p)?;
    view.max_share_per_org = cap.map(|s| s.normalize().to_string());
    Ok(view)
}

pub(crate) fn programme_view(p: ProgrammeRow) -> Result<ProgrammeView, ApiError> {
    let c = p.currency;
    let rates = p.rates().into_iter().map(|(k, v)| (k, v.normalize().to_string())).collect();
    Ok(ProgrammeView {
        id: p.id,
        name: p.name,
        sponsor: p.sponsor,
        fiscal_year: p.fiscal_year,
        budget: format_amount(p.budget, c),
        currency: c.code().to_string(),
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        default_rate: p.default_rate.normalize().to_string(),
        rates_by_category: rates,
        gpu_models: p.eligible_gpu_models,
        regions: p.eligible_regions,
        provider_ids: p.eligible_provider_ids,
        journal_entry_id: p.journal_entry_id,
        created_at: p.created_at,
        reclaim_below_utilisation: p.reclaim_below_utilisation.map(|u| u.normalize().to_string()),
        reclaim_window_hours: p.reclaim_window_hours,
        max_share_per_org: None,
    })
}

fn name_field(errors: &mut Vec<FieldError>, field: &str, value: &str) -> String {
    let v = value.trim().to_string();
    if v.is_empty() || v.chars().count() > 200 {
        errors.push(FieldError::new(field, "must be 1 to 200 characters"));
    }
    v
}

/// Creates a programme and books its budget (`programme_budget`). Roles: finance, admin.
#[utoipa::path(tag = "subsidy", request_body = ProgrammeRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = ProgrammeView), (status = 422, body = Problem),
))]
#[post("/v1/programmes")]
pub async fn create_programme(
    state: web::Data<AppState>,
    write: Write<JsonBody<ProgrammeRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let b = &body.value;
    let mut errors = Vec::new();
    let name = name_field(&mut errors, "name", &b.name);
    let sponsor = name_field(&mut errors, "sponsor", &b.sponsor);
    if !(2000..=2200).contains(&b.fiscal_year) {
        errors.push(FieldError::new("fiscal_year", "must be a year between 2000 and 2200"));
    }
    let budget =
        parse_amount(&b.budget, b.currency).map_err(|e| errors.push(FieldError::new("budget", e.to_string()))).ok();
    let default_rate = parse_rate(&b.default_rate).map_err(|e| errors.push(FieldError::new("default_rate", e))).ok();
    let mut rates = BTreeMap::new();
    for (category, raw) in b.rates_by_category.iter().flatten() {
        match parse_rate(raw) {
            Ok(r) => {
                rates.insert(category.as_str().to_string(), r);
            }
            Err(e) => errors.push(FieldError::new(format!("rates_by_category.{}", category.as_str()), e)),
        }
    }
    if b.ends_at <= b.starts_at {
        errors.push(FieldError::new("ends_at", "must be after starts_at"));
    }
    let reclaim_rule =
        super::reclaim::parse_rule(b.reclaim_below_utilisation.as_deref(), b.reclaim_window_hours, &mut errors);
    let max_share = b
        .max_share_per_org
        .as_deref()
        .map(parse_rate)
        .transpose()
        .map_err(|e| errors.push(FieldError::new("max_share_per_org", e)))
        .ok()
        .flatten();
    let (Some(budget), Some(default_rate), true) = (budget, default_rate, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let new = NewProgramme {
        name,
        sponsor,
        fiscal_year: b.fiscal_year,
        currency: b.currency,
        budget,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        default_rate,
        rates_by_category: rates,
        eligibility: Eligibility {
            gpu_models: b.gpu_models.clone(),
            regions: b.regions.clone(),
            provider_ids: b.provider_ids.clone(),
        },
    };
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        let row = programmes::create_programme(conn, new, principal.actor(), now).await?;
        let row = super::reclaim::set_rule(conn, row, reclaim_rule).await?;
        if let Some(share) = max_share {
            super::projects::set_cap(conn, row.id, share).await?;
        }
        programme_view_with_cap(conn, row).await
    })
    .await
}

/// One programme. Roles: finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = ProgrammeView), (status = 404, body = Problem),
))]
#[get("/v1/programmes/{id}")]
pub async fn get_programme(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let p = programmes::find_programme(&mut conn, id).await?.ok_or_else(|| ApiError::missing("programme", id))?;
    Ok(HttpResponse::Ok().json(programme_view_with_cap(&mut conn, p).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub tenant_org_id: Uuid,
    /// The cap: the most this grant pays, in the programme's currency.
    pub amount: String,
    /// Overrides the programme's rate for this grant.
    pub rate: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// The project (과제) the grant funds; grants naming the same agreement
    /// number in a programme belong to one project.
    #[serde(default)]
    pub project: Option<ProjectFields>,
    /// GPU-hours of one model the grant allocates beside its money cap.
    #[serde(default)]
    pub allocation: Option<AllocationFields>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub tenant_org_id: Uuid,
    pub currency: String,
    pub amount: String,
    pub rate: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// `active` or `closed`.
    pub status: GrantStatus,
    /// What the grant may still fund.
    pub available: String,
    /// What it has funded (settled).
    pub spent: String,
    /// What orders have reserved of it and not yet settled.
    pub committed: String,
    pub released: String,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// When the reclaim job found the grant's orders under its programme's rule.
    pub flagged_at: Option<DateTime<Utc>>,
    pub flag_reason: Option<String>,
    /// When finance reclaimed it (`POST /v1/grants/{id}/reclaim`), and why.
    pub reclaimed_at: Option<DateTime<Utc>>,
    pub reclaim_reason: Option<String>,
    /// Metered, over the orders it funded: GPU-hours used ÷ reserved (4
    /// places, half-even); null while none of them reported usage.
    pub utilisation: Option<String>,
    /// Metered: Σ energy_wh ÷ 1000 over its orders; null while none reported.
    pub energy_kwh: Option<String>,
    pub project: Option<ProjectView>,
    /// GPU-hours allocated, used by orders (net of cancellations) and left.
    pub allocation: Option<AllocationView>,
}

pub(crate) async fn grant_view(conn: &mut diesel_async::AsyncPgConnection, g: GrantRow) -> Result<GrantView, ApiError> {
    let mut views = grant_views(conn, vec![g]).await?;
    views.pop().ok_or_else(|| ApiError::internal(crate::ledger::LedgerError::Corrupt("a grant vanished".into())))
}

/// The views of `rows`, in their order, in two queries whatever their number:
/// their programmes (for the currency), then their accounts by code.
pub(crate) async fn grant_views(
    conn: &mut diesel_async::AsyncPgConnection,
    rows: Vec<GrantRow>,
) -> Result<Vec<GrantView>, programmes::GrantError> {
    use crate::db::schema::{accounts, programmes as programmes_table};
    use std::collections::HashMap;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let programme_ids: Vec<Uuid> = rows.iter().map(|g| g.programme_id).collect();
    let currencies: HashMap<Uuid, Currency> = programmes_table::table
        .filter(programmes_table::id.eq_any(&programme_ids))
        .select(ProgrammeRow::as_select())
        .load::<ProgrammeRow>(conn)
        .await?
        .into_iter()
        .map(|p| (p.id, p.currency))
        .collect();
    let grant_ids: Vec<Uuid> = rows.iter().map(|g| g.id).collect();
    let usage = crate::market::usage::figures_of_grants(conn, &grant_ids).await?;
    let codes: Vec<String> =
        rows.iter().flat_map(|g| [chart::grant_available_code(g.id), chart::grant_spent_code(g.id)]).collect();
    let found: HashMap<(String, Currency), crate::ledger::store::AccountRow> = accounts::table
        .filter(accounts::code.eq_any(&codes))
        .select(crate::ledger::store::AccountRow::as_select())
        .load::<crate::ledger::store::AccountRow>(conn)
        .await?
        .into_iter()
        .map(|a| ((a.code.clone(), a.currency), a))
        .collect();
    let grant_ids: Vec<Uuid> = rows.iter().map(|g| g.id).collect();
    let (mut projects, mut allocations) = super::projects::views_of(conn, &grant_ids).await?;
    rows.into_iter()
        .map(|g| {
            let c =
                *currencies.get(&g.programme_id).ok_or(programmes::GrantError::ProgrammeNotFound(g.programme_id))?;
            let account = |code: String| found.get(&(code, c));
            let avail = account(chart::grant_available_code(g.id))
                .map(|a| a.balances().available(crate::ledger::model::NormalSide::Credit))
                .unwrap_or_default();
            let (spent_posted, committed) = account(chart::grant_spent_code(g.id))
                .map(|a| (a.credits_posted - a.debits_posted, a.credits_pending - a.debits_pending))
                .unwrap_or_default();
            let metered = usage.get(&g.id).copied().unwrap_or_default();
            Ok(GrantView {
                id: g.id,
                programme_id: g.programme_id,
                tenant_org_id: g.tenant_org_id,
                currency: c.code().to_string(),
                amount: format_amount(g.amount, c),
                rate: g.rate.map(|r| r.normalize().to_string()),
                valid_from: g.valid_from,
                valid_until: g.valid_until,
                status: g.status,
                available: format_amount(avail, c),
                spent: format_amount(spent_posted, c),
                committed: format_amount(committed, c),
                released: format_amount(g.released, c),
                journal_entry_id: g.journal_entry_id,
                created_at: g.created_at,
                closed_at: g.closed_at,
                flagged_at: g.flagged_at,
                flag_reason: g.flag_reason,
                reclaimed_at: g.reclaimed_at,
                reclaim_reason: g.reclaim_reason,
                utilisation: metered.utilisation_shown(),
                energy_kwh: metered.energy_kwh_shown(),
                project: projects.remove(&g.id),
                allocation: allocations.remove(&g.id),
            })
        })
        .collect()
}

/// Grants part of a programme's budget to a tenant. Over-granting is refused
/// with 422 `budget_exhausted`. Roles: finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = GrantRequest, security(("bearer" = [])), responses(
    (status = 201, body = GrantView), (status = 404, body = Problem),
    (status = 422, description = "Invalid, or `budget_exhausted`", body = Problem),
))]
#[post("/v1/programmes/{id}/grants")]
pub async fn create_grant(write: Write<JsonBody<GrantRequest>>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    let programme_id = id.into_inner();
    grant_write(op, principal, programme_id, &body.value).await
}

/// Creates a grant (`POST /v1/programmes/{id}/grants`): the API's handler and
/// the console's form both write through here.
pub(crate) async fn grant_write(
    op: WriteOp,
    principal: Principal,
    programme_id: Uuid,
    b: &GrantRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut errors = Vec::new();
    let rate = b
        .rate
        .as_deref()
        .map(parse_rate)
        .transpose()
        .map_err(|e| errors.push(FieldError::new("rate", e)))
        .ok()
        .flatten();
    if b.valid_until <= b.valid_from {
        errors.push(FieldError::new("valid_until", "must be after valid_from"));
    }
    let project = b.project.as_ref().map(|p| check_project(&mut errors, p));
    let allocation = b.allocation.as_ref().map(|a| check_allocation(&mut errors, a));
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (raw_amount, tenant, from, until) = (b.amount.clone(), b.tenant_org_id, b.valid_from, b.valid_until);
    let clock = op.state().clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let programme = programmes::find_programme(conn, programme_id)
            .await?
            .ok_or_else(|| ApiError::missing("programme", programme_id))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        super::projects::enforce_cap(conn, &programme, tenant, amount).await?;
        let grant =
            NewGrant { programme_id, tenant_org_id: tenant, amount, rate, valid_from: from, valid_until: until };
        let row = programmes::insert_grant(conn, grant, principal.actor(), now).await?;
        super::projects::attach(conn, &row, project.as_ref(), allocation.as_ref(), now).await?;
        programmes::announce_grant(conn, row.clone(), now).await?;
        grant_view(conn, row).await
    })
    .await
}

/// Closes a grant and returns what it has left to the programme. Roles: finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses((status = 200, body = GrantView), (status = 404, body = Problem)))]
#[post("/v1/grants/{id}/close")]
pub async fn close_grant(write: Write, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    let id = id.into_inner();
    close_grant_write(op, principal, id).await
}

/// Closes a grant (`POST /v1/grants/{id}/close`), for the API and the console.
pub(crate) async fn close_grant_write(op: WriteOp, principal: Principal, id: Uuid) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let clock = op.state().clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let row = programmes::close_grant(conn, id, principal.actor(), now).await?;
        grant_view(conn, row).await
    })
    .await
}

/// One grant. Roles: finance, admin, and the grant's tenant.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = GrantView), (status = 404, body = Problem),
))]
#[get("/v1/grants/{id}")]
pub async fn get_grant(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let grant = programmes::find_grant(&mut conn, id)
        .await?
        .filter(|g| principal.is_finance() || g.tenant_org_id == principal.org_id)
        .ok_or_else(|| ApiError::missing("grant", id))?;
    Ok(HttpResponse::Ok().json(grant_view(&mut conn, grant).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantListQuery {
    pub programme_id: Option<Uuid>,
    pub tenant_org_id: Option<Uuid>,
    /// `true`: only grants the reclaim job has flagged; `false`: only the others.
    pub flagged: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Grants, oldest first. Roles: finance and admin (all), tenants (their own).
#[utoipa::path(tag = "subsidy", params(GrantListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<GrantView>)),
))]
#[get("/v1/grants")]
pub async fn list_grants(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<GrantListQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(grants_page(&mut conn, &principal, q).await?))
}

/// A page of the grants `principal` may see (`GET /v1/grants`).
pub(crate) async fn grants_page(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    q: GrantListQuery,
) -> Result<Page<GrantView>, ApiError> {
    principal.require(&[Role::Tenant, Role::Finance, Role::Admin])?;
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut query = grants::table.select(GrantRow::as_select()).order(grants::id).limit(limit + 1).into_boxed();
    if !principal.is_finance() {
        query = query.filter(grants::tenant_org_id.eq(principal.org_id));
    } else if let Some(t) = q.tenant_org_id {
        query = query.filter(grants::tenant_org_id.eq(t));
    }
    if let Some(p) = q.programme_id {
        query = query.filter(grants::programme_id.eq(p));
    }
    match q.flagged {
        Some(true) => query = query.filter(grants::flagged_at.is_not_null()),
        Some(false) => query = query.filter(grants::flagged_at.is_null()),
        None => {}
    }
    if let Some(a) = after {
        query = query.filter(grants::id.gt(a));
    }
    let mut rows: Vec<GrantRow> = query.load(conn).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    // One page is three queries: the grants, their programmes, their accounts.
    let data = grant_views(conn, rows).await?;
    let next_cursor = if more { data.last().map(|g| pagination::encode_cursor(&g.id)) } else { None };
    Ok(Page { data, next_cursor })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub programme_id: Uuid,
    /// Start of the period (inclusive); with `period_end`, instead of `month`.
    pub period_start: Option<DateTime<Utc>>,
    /// End of the period (exclusive).
    pub period_end: Option<DateTime<Utc>>,
    /// A calendar month, `YYYY-MM`, in the programme office's zone
    /// (`GPUHOUR_TIME_ZONE`, Asia/Seoul by default): instead of the two instants.
    pub month: Option<String>,
}

/// The first day of a `YYYY-MM` month and of the month after it.
pub fn month_days(month: &str) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
    let bytes = month.as_bytes();
    if bytes.len() != 7 || bytes[4] != b'-' {
        return None;
    }
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some((first, next))
}

/// The instants a month's first days begin at in `zone` (PostgreSQL knows the zones).
pub async fn month_bounds(
    conn: &mut diesel_async::AsyncPgConnection,
    (first, next): (chrono::NaiveDate, chrono::NaiveDate),
    zone: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    #[derive(diesel::QueryableByName)]
    struct Bounds {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        start: DateTime<Utc>,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        end: DateTime<Utc>,
    }
    let b: Bounds =
        diesel::sql_query("SELECT $1::timestamp AT TIME ZONE $3 AS start, $2::timestamp AT TIME ZONE $3 AS end")
            .bind::<diesel::sql_types::Timestamp, _>(first.and_time(chrono::NaiveTime::MIN))
            .bind::<diesel::sql_types::Timestamp, _>(next.and_time(chrono::NaiveTime::MIN))
            .bind::<diesel::sql_types::Text, _>(zone)
            .get_result(conn)
            .await?;
    Ok((b.start, b.end))
}

/// Gathers every settled subsidy of a period not yet claimed into a draft
/// claim, with lines per provider and per tenant. The period is two instants
/// (`[period_start, period_end)`) or a `month` in the programme office's zone.
/// Roles: finance, admin.
#[utoipa::path(tag = "subsidy", request_body = ClaimRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = ClaimView), (status = 409, description = "Nothing to claim", body = Problem),
    ))]
#[post("/v1/claims")]
pub async fn create_claim(write: Write<JsonBody<ClaimRequest>>) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    claim_write(op, principal, body.value).await
}

/// Creates a draft claim (`POST /v1/claims`), for the API and the console.
pub(crate) async fn claim_write(
    op: WriteOp,
    principal: Principal,
    request: ClaimRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let ClaimRequest { programme_id, period_start, period_end, month } = request;
    enum Period {
        Instants(DateTime<Utc>, DateTime<Utc>),
        Month(chrono::NaiveDate, chrono::NaiveDate),
    }
    let period = match (period_start, period_end, month) {
        (Some(start), Some(end), None) if end > start => Period::Instants(start, end),
        (Some(_), Some(_), None) => return Err(ApiError::invalid("period_end", "must be after period_start")),
        (None, None, Some(m)) => {
            let days = month_days(&m).ok_or_else(|| ApiError::invalid("month", "must be a month, YYYY-MM"))?;
            Period::Month(days.0, days.1)
        }
        _ => return Err(ApiError::invalid("period_start", "give period_start and period_end, or month")),
    };
    let zone = op.state().settings.time_zone.clone();
    let clock = op.state().clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let (period_start, period_end) = match period {
            Period::Instants(start, end) => (start, end),
            Period::Month(first, next) => month_bounds(conn, (first, next), &zone).await?,
        };
        let now = clock.now(conn).await?;
        let claim = claims::create_claim(conn, programme_id, period_start, period_end, principal.actor(), now).await?;
        Ok(claims::view(conn, claim).await?)
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClaimQuery {
    /// `json` (default), `csv` or `xlsx`: the claim's figures, its lines by provider and by tenant, its payments.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// One claim with its lines, payments and what is outstanding. Roles: finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ClaimQuery), security(("bearer" = [])), responses(
    (status = 200, body = ClaimView,
        description = "JSON, or with `format=csv|xlsx` a download named `claim-{id}.csv|xlsx`"),
    (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[get("/v1/claims/{id}")]
pub async fn get_claim(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<ClaimQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let claim = claims::find(&mut conn, id).await?.ok_or_else(|| ApiError::missing("claim", id))?;
    let view = claims::view(&mut conn, claim).await?;
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &view, &format!("claim-{id}"), || claim_sheets(&view, now))
}

/// The claim's sheets: its figures; its lines by provider and by tenant, each
/// totalling the claimed amount; its payments.
fn claim_sheets(v: &claims::ClaimView, now: DateTime<Utc>) -> Result<Vec<Sheet>, ApiError> {
    let c = v.currency;
    let header = spreadsheet::header_block(
        "subsidy claim",
        now,
        None,
        vec![
            ("claim", v.id.to_string()),
            ("programme", v.programme_id.to_string()),
            ("period", format!("{} to {}", v.period_start.to_rfc3339(), v.period_end.to_rfc3339())),
            ("status", v.status.to_string()),
            ("currency", c.code().into()),
        ],
    );
    let figures = [
        ("amount", &v.amount),
        ("paid", &v.paid),
        ("written off", &v.written_off),
        ("advance applied", &v.advance_applied),
        ("outstanding", &v.outstanding),
    ];
    let lines = |name: &str, key: &str, lines: &[claims::ClaimLine]| -> Result<Sheet, ApiError> {
        let total = spreadsheet::sum_amounts(lines.iter().map(|l| l.amount.as_str()))?;
        Ok(Sheet {
            name: name.into(),
            header: header.clone(),
            columns: vec![key.into(), "name".into(), "amount".into()],
            rows: lines
                .iter()
                .map(|l| {
                    let name = l.org.as_ref().map(|o| o.name.clone()).unwrap_or_default();
                    vec![Cell::text(l.org_id.to_string()), Cell::text(name), amount_cell(&l.amount, c)]
                })
                .collect(),
            totals: Some(vec![Cell::text("total"), Cell::Empty, Cell::Amount(total, c)]),
        })
    };
    let paid = spreadsheet::sum_amounts(v.payments.iter().map(|p| p.amount.as_str()))?;
    Ok(vec![
        Sheet {
            name: "Claim".into(),
            header: header.clone(),
            columns: vec!["figure".into(), "amount".into()],
            rows: figures.iter().map(|(k, a)| vec![Cell::text(*k), amount_cell(a, c)]).collect(),
            totals: None,
        },
        lines("By provider", "provider", &v.lines_by_provider)?,
        lines("By tenant", "tenant", &v.lines_by_tenant)?,
        Sheet {
            name: "Payments".into(),
            header: header.clone(),
            columns: vec!["paid_at".into(), "reference".into(), "entry".into(), "amount".into()],
            rows: v
                .payments
                .iter()
                .map(|p| {
                    vec![
                        Cell::text(p.paid_at.to_rfc3339()),
                        Cell::text(&p.reference),
                        Cell::text(p.journal_entry_id.to_string()),
                        amount_cell(&p.amount, c),
                    ]
                })
                .collect(),
            totals: Some(vec![Cell::text("total"), Cell::Empty, Cell::Empty, Cell::Amount(paid, c)]),
        },
    ])
}

/// Submits a draft claim to the programme. Roles: finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses((status = 200, body = ClaimView), (status = 409, body = Problem)))]
#[post("/v1/claims/{id}/submit")]
pub async fn submit_claim(write: Write, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    let id = id.into_inner();
    submit_claim_write(op, principal, id).await
}

/// Submits a draft claim (`POST /v1/claims/{id}/submit`), for the API and the console.
pub(crate) async fn submit_claim_write(op: WriteOp, principal: Principal, id: Uuid) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let clock = op.state().clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let claim = claims::submit(conn, id, principal.actor(), now).await?;
        Ok(claims::view(conn, claim).await?)
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub amount: String,
    /// The bank's reference for the programme's transfer. One already
    /// recorded for a claim payment is refused (409 `duplicate_reference`)...
    pub reference: String,
    /// ...unless this is `true`: another transfer that carries the same
    /// reference. The payment's journal entry records the override.
    #[serde(default)]
    pub allow_duplicate_reference: bool,
}

/// Records the programme's payment on a submitted claim (full, partial or
/// more); the outstanding amount shows the difference. Roles: finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = PaymentRequest, security(("bearer" = [])), responses(
    (status = 201, body = ClaimView),
    (status = 409, description = "The claim is not submitted, or `duplicate_reference`: the bank reference is already recorded", body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/claims/{id}/payments")]
pub async fn pay_claim(write: Write<JsonBody<PaymentRequest>>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    let id = id.into_inner();
    payment_write(op, principal, id, &body.value).await
}

/// Records a claim payment (`POST /v1/claims/{id}/payments`), for the API and the console.
pub(crate) async fn payment_write(
    op: WriteOp,
    principal: Principal,
    id: Uuid,
    request: &PaymentRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let reference = request.reference.trim().to_string();
    if reference.is_empty() || reference.chars().count() > 200 {
        return Err(ApiError::invalid("reference", "must be 1 to 200 characters"));
    }
    let raw_amount = request.amount.clone();
    let allow_duplicate_reference = request.allow_duplicate_reference;
    let clock = op.state().clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let claim = claims::find(conn, id).await?.ok_or_else(|| ApiError::missing("claim", id))?;
        let programme = programmes::find_programme(conn, claim.programme_id)
            .await?
            .ok_or_else(|| ApiError::not_found("programme missing"))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        let claim = claims::pay(conn, id, amount, reference, allow_duplicate_reference, principal.actor(), now).await?;
        Ok(claims::view(conn, claim).await?)
    })
    .await
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_programme)
        .service(get_programme)
        .service(create_grant)
        .service(close_grant)
        .service(get_grant)
        .service(list_grants)
        .service(create_claim)
        .service(get_claim)
        .service(submit_claim)
        .service(pay_claim);
}

#[cfg(test)]
mod tests {
    use super::month_days;
    use chrono::NaiveDate;

    #[test]
    fn months_are_year_dash_month() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(month_days("2026-11"), Some((d(2026, 11, 1), d(2026, 12, 1))));
        assert_eq!(month_days("2026-12"), Some((d(2026, 12, 1), d(2027, 1, 1))));
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "2026-11-01", ""] {
            assert_eq!(month_days(bad), None, "{bad}");
        }
    }
}
