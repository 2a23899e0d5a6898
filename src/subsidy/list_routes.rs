//! Lists finance staff and the console page through: `GET /v1/programmes` and
//! `GET /v1/claims`, with filters and cursor pagination. Roles: finance, admin.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::claims::ClaimRow;
use super::programmes::ProgrammeRow;
use super::routes::{ProgrammeView, programme_view};
use crate::auth::Principal;
use crate::db::schema::{claims, programmes};
use crate::http::ApiError;
use crate::http::extract::Query;
use crate::http::pagination::{self, Page, decode_cursor};
use crate::money::{Currency, format_amount};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProgrammeListQuery {
    pub fiscal_year: Option<i32>,
    #[param(value_type = Option<String>)]
    pub currency: Option<Currency>,
    /// `open` or `settled` (after its year-end settlement).
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Programmes, oldest first.
#[utoipa::path(tag = "subsidy", params(ProgrammeListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<ProgrammeView>)),
))]
#[get("/v1/programmes")]
pub async fn list_programmes(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<ProgrammeListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(programmes_page(&mut conn, q).await?))
}

/// A page of programmes (`GET /v1/programmes`), for the API and the console.
pub(crate) async fn programmes_page(
    conn: &mut diesel_async::AsyncPgConnection,
    q: ProgrammeListQuery,
) -> Result<Page<ProgrammeView>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut query =
        programmes::table.select(ProgrammeRow::as_select()).order(programmes::id).limit(limit + 1).into_boxed();
    if let Some(y) = q.fiscal_year {
        query = query.filter(programmes::fiscal_year.eq(y));
    }
    if let Some(c) = q.currency {
        query = query.filter(programmes::currency.eq(c));
    }
    match q.status.as_deref() {
        None => {}
        Some("open") => query = query.filter(programmes::settled_at.is_null()),
        Some("settled") => query = query.filter(programmes::settled_at.is_not_null()),
        Some(_) => return Err(ApiError::invalid("status", "must be open or settled")),
    }
    if let Some(a) = after {
        query = query.filter(programmes::id.gt(a));
    }
    let rows: Vec<ProgrammeRow> = query.load(conn).await?;
    pagination::try_page(rows, limit, |p| p.id, programme_view)
}

/// A claim as a list shows it (`GET /v1/claims/{id}` has its lines and payments).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimSummary {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub status: super::claims::ClaimStatus,
    pub amount: String,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClaimListQuery {
    pub programme_id: Option<Uuid>,
    /// `draft`, `submitted` or `void`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Claims, oldest first.
#[utoipa::path(tag = "subsidy", params(ClaimListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<ClaimSummary>)),
))]
#[get("/v1/claims")]
pub async fn list_claims(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<ClaimListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(claims_page(&mut conn, q).await?))
}

/// A page of claims (`GET /v1/claims`), for the API and the console.
pub(crate) async fn claims_page(
    conn: &mut diesel_async::AsyncPgConnection,
    q: ClaimListQuery,
) -> Result<Page<ClaimSummary>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut query = claims::table.select(ClaimRow::as_select()).order(claims::id).limit(limit + 1).into_boxed();
    if let Some(p) = q.programme_id {
        query = query.filter(claims::programme_id.eq(p));
    }
    if let Some(s) = q.status.as_deref() {
        let status: super::claims::ClaimStatus =
            s.parse().map_err(|_| ApiError::invalid("status", "must be draft, submitted or void"))?;
        query = query.filter(claims::status.eq(status));
    }
    if let Some(a) = after {
        query = query.filter(claims::id.gt(a));
    }
    let rows: Vec<ClaimRow> = query.load(conn).await?;
    let currencies: std::collections::HashMap<Uuid, Currency> = programmes::table
        .filter(programmes::id.eq_any(rows.iter().map(|c| c.programme_id).collect::<Vec<_>>()))
        .select((programmes::id, programmes::currency))
        .load(conn)
        .await?
        .into_iter()
        .collect();
    Ok(pagination::page(
        rows,
        limit,
        |c| c.id,
        |c| {
            let amount = match currencies.get(&c.programme_id).copied() {
                Some(currency) => format_amount(c.amount, currency),
                None => c.amount.normalize().to_string(),
            };
            ClaimSummary {
                id: c.id,
                programme_id: c.programme_id,
                period_start: c.period_start,
                period_end: c.period_end,
                status: c.status,
                amount,
                created_at: c.created_at,
                submitted_at: c.submitted_at,
            }
        },
    ))
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_programmes).service(list_claims);
}
