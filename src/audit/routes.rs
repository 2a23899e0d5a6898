//! `GET /v1/audit-log` (finance, admin).

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AuditFilter, AuditRow};
use crate::auth::Principal;
use crate::http::ApiError;
use crate::http::extract::{Query, check_period};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub method: String,
    pub route: String,
    pub path: String,
    pub status: u16,
    /// The id of what the write created or changed, when it has one.
    pub resource_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: r.at,
            request_id: r.request_id,
            user_id: r.user_id,
            org_id: r.org_id,
            method: r.method,
            route: r.route,
            path: r.path,
            status: r.status as u16,
            resource_id: r.resource_id,
            idempotency_key: r.idempotency_key,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    /// A route pattern, e.g. `/v1/journal-entries`.
    pub route: Option<String>,
    pub resource_id: Option<Uuid>,
    /// Entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this instant.
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Who wrote what, newest first. Roles: finance, admin.
#[utoipa::path(tag = "audit", params(AuditQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<AuditEntry>)),
    (status = 403, body = crate::http::problem::Problem),
))]
#[get("/v1/audit-log")]
pub async fn audit_log(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    check_period(q.from, q.to)?;
    let limit = pagination::limit(q.limit)?;
    let before: Option<i64> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let filter = AuditFilter {
        user_id: q.user_id,
        org_id: q.org_id,
        route: q.route,
        resource_id: q.resource_id,
        from: q.from,
        to: q.to,
    };
    let mut conn = state.pool.get().await?;
    let rows = super::list(&mut conn, &filter, before, limit + 1).await?;
    Ok(HttpResponse::Ok().json(pagination::page(rows, limit, |r| r.seq, AuditEntry::from)))
}
