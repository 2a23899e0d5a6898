//! `GET /v1/audit-log` (finance, admin).

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AuditFilter, AuditRow};
use crate::auth::Principal;
use crate::finance::spreadsheet::{self, Cell, Format, Sheet};
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
    /// `json` (default), `csv` or `xlsx`: the same page as a sheet.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// Who wrote what, newest first. Roles: finance, admin.
#[utoipa::path(tag = "audit", params(AuditQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<AuditEntry>),
        description = "JSON, or with `format=csv|xlsx` the page as a download named `audit-log.csv|xlsx`"),
    (status = 403, body = crate::http::problem::Problem),
    (status = 422, body = crate::http::problem::Problem),
))]
#[get("/v1/audit-log")]
pub async fn audit_log(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    let filter = filter_of(&q);
    let page = audit_page(&mut conn, q.limit, q.cursor.as_deref(), &filter).await?;
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &page, "audit-log", || Ok(vec![audit_sheet(&page.data, &filter, now)]))
}

fn filter_of(q: &AuditQuery) -> AuditFilter {
    AuditFilter {
        user_id: q.user_id,
        org_id: q.org_id,
        route: q.route.clone(),
        resource_id: q.resource_id,
        from: q.from,
        to: q.to,
    }
}

/// A page of the audit log, newest first (`GET /v1/audit-log`), for the API and the console.
pub(crate) async fn audit_page(
    conn: &mut diesel_async::AsyncPgConnection,
    limit: Option<i64>,
    cursor: Option<&str>,
    filter: &AuditFilter,
) -> Result<Page<AuditEntry>, ApiError> {
    check_period(filter.from, filter.to)?;
    let limit = pagination::limit(limit)?;
    let before: Option<i64> = cursor.map(decode_cursor).transpose()?;
    let rows = super::list(conn, filter, before, limit + 1).await?;
    Ok(pagination::page(rows, limit, |r| r.seq, AuditEntry::from))
}

/// The page as one sheet: a row per record, and a totals row counting them.
fn audit_sheet(entries: &[AuditEntry], filter: &AuditFilter, now: DateTime<Utc>) -> Sheet {
    let mut parameters = Vec::new();
    let mut named = |name: &'static str, value: Option<String>| {
        if let Some(v) = value {
            parameters.push((name, v));
        }
    };
    named("user_id", filter.user_id.map(|v| v.to_string()));
    named("org_id", filter.org_id.map(|v| v.to_string()));
    named("route", filter.route.clone());
    named("resource_id", filter.resource_id.map(|v| v.to_string()));
    named("from", filter.from.map(|v| v.to_rfc3339()));
    named("to", filter.to.map(|v| v.to_rfc3339()));
    let text = |v: Option<String>| v.map_or(Cell::Empty, Cell::Text);
    Sheet {
        name: "Audit log".into(),
        header: spreadsheet::header_block("audit log (newest first, one page)", now, filter.to, parameters),
        columns: ["at", "method", "route", "path", "status", "user_id", "org_id", "resource_id", "request_id", "id"]
            .map(String::from)
            .to_vec(),
        rows: entries
            .iter()
            .map(|e| {
                vec![
                    Cell::text(e.at.to_rfc3339()),
                    Cell::text(&e.method),
                    Cell::text(&e.route),
                    Cell::text(&e.path),
                    Cell::Integer(i64::from(e.status)),
                    text(e.user_id.map(|v| v.to_string())),
                    text(e.org_id.map(|v| v.to_string())),
                    text(e.resource_id.map(|v| v.to_string())),
                    text(e.request_id.clone()),
                    Cell::text(e.id.to_string()),
                ]
            })
            .collect(),
        totals: Some(vec![Cell::text("records"), Cell::Integer(entries.len() as i64)]),
    }
}
