//! `POST /v1/periods/{period}/close` and `GET /v1/periods`. Roles: finance, admin.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::periods::{self, CloseError, ClosedPeriod};
use crate::auth::Principal;
use crate::http::ApiError;
use crate::http::Write;
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

impl From<CloseError> for ApiError {
    fn from(e: CloseError) -> Self {
        match e {
            CloseError::Ledger(e) => e.into(),
            other => ApiError::conflict(other.to_string()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeriodList {
    pub data: Vec<ClosedPeriod>,
    /// Where the open period begins (the end of the last closed one), if any is closed.
    pub open_from: Option<chrono::DateTime<chrono::Utc>>,
}

/// Closes a month (`YYYY-MM`, in the programme office's zone): its trial balance
/// is kept and its postings hashed into the chain; no entry may be dated in it
/// afterwards (409 `period_closed`).
#[utoipa::path(tag = "ledger", params(("period" = String, Path, description = "YYYY-MM"),
    ("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])), responses(
    (status = 201, body = ClosedPeriod), (status = 409, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/periods/{period}/close")]
pub async fn close_period(
    state: web::Data<AppState>,
    write: Write,
    period: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require_finance()?;
    let period = period.into_inner();
    let days = crate::subsidy::routes::month_days(&period)
        .ok_or_else(|| ApiError::invalid("period", "must be a month, YYYY-MM"))?;
    let zone = state.settings.time_zone.clone();
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let bounds = crate::subsidy::routes::month_bounds(conn, days, &zone).await?;
        let now = clock.now(conn).await?;
        Ok::<_, ApiError>(periods::close(conn, &period, bounds, &zone, Some(principal.user_id), now).await?)
    })
    .await
}

/// The closed periods, oldest first, with their hashes.
#[utoipa::path(tag = "ledger", security(("bearer" = [])), responses((status = 200, body = PeriodList)))]
#[get("/v1/periods")]
pub async fn list_periods(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    let data = periods::list(&mut conn).await?;
    let open_from = data.last().map(|p| p.ends_at);
    Ok(HttpResponse::Ok().json(PeriodList { data, open_from }))
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(close_period).service(list_periods);
}
