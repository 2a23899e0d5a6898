//! Sandbox mode's routes (SPEC section 4): only mounted with `GPUHOUR_SANDBOX=1`.

pub mod seed_ledger;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::clock::{Clock, ClockError};
use crate::http::extract::{JsonBody, NoQuery};
use crate::http::{ApiError, Write};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClock {
    /// The new instant (RFC 3339); never earlier than the current one.
    pub now: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClockView {
    pub now: DateTime<Utc>,
}

/// Moves the sandbox clock forward. Roles: finance, admin.
#[utoipa::path(tag = "sandbox", request_body = SetClock, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 200, body = ClockView),
    (status = 422, description = "The clock never moves back", body = crate::http::problem::Problem),
))]
#[post("/v1/sandbox/clock")]
pub async fn set_clock(write: Write<JsonBody<SetClock>>) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let to = body.value.now;
    op.run(StatusCode::OK, async move |conn| match Clock::advance(conn, to).await {
        Ok(now) => Ok(ClockView { now }),
        Err(e @ ClockError::Backwards { .. }) => Err(ApiError::invalid("now", e.to_string())),
        Err(ClockError::Database(e)) => Err(e.into()),
    })
    .await
}

/// The sandbox clock's current instant. Roles: any.
#[utoipa::path(tag = "sandbox", security(("bearer" = [])), responses((status = 200, body = ClockView)))]
#[get("/v1/sandbox/clock")]
pub async fn get_clock(
    state: web::Data<AppState>,
    _principal: Principal,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(ClockView { now: state.clock.now(&mut conn).await? }))
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(set_clock).service(get_clock);
}
