//! `POST /v1/programmes/{id}/advances`: a tranche the programme paid ahead.
//! Roles: finance, admin.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::advances::{self, AdvanceView};
use super::programmes;
use crate::http::ApiError;
use crate::http::Write;
use crate::http::extract::JsonBody;
use crate::money::parse_amount;
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    /// Decimal string in the programme's currency.
    pub amount: String,
    /// The bank's reference for the transfer; once per programme.
    pub reference: String,
    /// When the money arrived: not in the future, not in a closed period.
    pub received_at: DateTime<Utc>,
}

/// Records a tranche received from the programme (`assets:bank → advance`) and
/// applies what is unapplied to outstanding submitted claims, oldest first.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = AdvanceRequest, security(("bearer" = [])), responses(
    (status = 201, body = AdvanceView), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/programmes/{id}/advances")]
pub async fn record_advance(
    state: web::Data<AppState>,
    write: Write<JsonBody<AdvanceRequest>>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let programme_id = id.into_inner();
    let reference = body.value.reference.trim().to_string();
    if reference.is_empty() || reference.chars().count() > 200 {
        return Err(ApiError::invalid("reference", "must be 1 to 200 characters"));
    }
    let (raw_amount, received_at) = (body.value.amount.clone(), body.value.received_at);
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let programme = programmes::find_programme(conn, programme_id)
            .await?
            .ok_or_else(|| ApiError::missing("programme", programme_id))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        if received_at > now {
            return Err(ApiError::invalid("received_at", "must not be in the future"));
        }
        Ok(advances::record(conn, programme_id, amount, reference, received_at, principal.actor(), now).await?)
    })
    .await
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(record_advance);
}
