//! HTTP handlers of the subsidy corrections (`corrections`). Roles: finance, admin.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::claims::{self, ClaimView};
use super::corrections::{self, CreditNoteView, NewCreditNote};
use super::programmes;
use super::routes::{GrantView, grant_view};
use crate::http::ApiError;
use crate::http::Write;
use crate::http::extract::JsonBody;
use crate::money::parse_amount;
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

/// Why a correction is made: required, kept in the journal and the audit log.
fn reason(raw: &str) -> Result<String, ApiError> {
    let reason = raw.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "must be 1 to 500 characters"));
    }
    Ok(reason)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountWithReason {
    /// Decimal string in the programme's currency.
    pub amount: String,
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteRequest {
    pub grant_id: Uuid,
    pub provider_org_id: Uuid,
    /// The order it corrects, if it is about one.
    pub order_id: Option<Uuid>,
    /// Decimal string in the programme's currency.
    pub amount: String,
    pub reason: String,
}

/// Voids a draft claim; its postings may be claimed again.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = VoidRequest, security(("bearer" = [])), responses(
    (status = 200, body = ClaimView), (status = 404, body = Problem), (status = 409, body = Problem),
))]
#[post("/v1/claims/{id}/void")]
pub async fn void_claim(
    state: web::Data<AppState>,
    write: Write<JsonBody<VoidRequest>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let reason = reason(&body.value.reason)?;
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let claim = corrections::void_claim(conn, id, reason, now).await?;
        Ok(claims::view(conn, claim).await?)
    })
    .await
}

/// Writes off an amount of a submitted claim that the programme disallowed:
/// `expenses:subsidy-disallowed → subsidy receivable`.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = AmountWithReason, security(("bearer" = [])), responses(
    (status = 201, body = ClaimView), (status = 404, body = Problem), (status = 409, body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/claims/{id}/write-offs")]
pub async fn write_off(
    state: web::Data<AppState>,
    write: Write<JsonBody<AmountWithReason>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let reason = reason(&body.value.reason)?;
    let raw_amount = body.value.amount.clone();
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let claim = claims::find(conn, id).await?.ok_or_else(|| ApiError::missing("claim", id))?;
        let programme = programmes::find_programme(conn, claim.programme_id)
            .await?
            .ok_or_else(|| ApiError::not_found("programme missing"))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        let claim = corrections::write_off(conn, id, amount, reason, principal.actor(), now).await?;
        Ok(claims::view(conn, claim).await?)
    })
    .await
}

/// Gives subsidy back to a programme (goodwill, a correction): the provider's
/// payable and the grant's spent come down; the next claim nets it.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = CreditNoteRequest, security(("bearer" = [])), responses(
    (status = 201, body = CreditNoteView), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/programmes/{id}/credit-notes")]
pub async fn credit_note(
    state: web::Data<AppState>,
    write: Write<JsonBody<CreditNoteRequest>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let programme_id = id.into_inner();
    let b = &body.value;
    let reason = reason(&b.reason)?;
    let (grant_id, provider_org_id, order_id, raw_amount) =
        (b.grant_id, b.provider_org_id, b.order_id, b.amount.clone());
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let programme = programmes::find_programme(conn, programme_id)
            .await?
            .ok_or_else(|| ApiError::missing("programme", programme_id))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        let note = NewCreditNote { programme_id, grant_id, provider_org_id, order_id, amount, reason };
        Ok(corrections::credit_note(conn, note, principal.actor(), now).await?)
    })
    .await
}

/// Withdraws part of a grant back to the programme's unallocated budget.
#[utoipa::path(tag = "subsidy", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = AmountWithReason, security(("bearer" = [])), responses(
    (status = 201, body = GrantView), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/grants/{id}/withdrawals")]
pub async fn withdraw(
    state: web::Data<AppState>,
    write: Write<JsonBody<AmountWithReason>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let reason = reason(&body.value.reason)?;
    let raw_amount = body.value.amount.clone();
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let grant = programmes::find_grant(conn, id).await?.ok_or_else(|| ApiError::missing("grant", id))?;
        let programme = programmes::find_programme(conn, grant.programme_id)
            .await?
            .ok_or_else(|| ApiError::not_found("programme missing"))?;
        let amount =
            parse_amount(&raw_amount, programme.currency).map_err(|e| ApiError::invalid("amount", e.to_string()))?;
        let now = clock.now(conn).await?;
        let row = corrections::withdraw(conn, id, amount, reason, principal.actor(), now).await?;
        grant_view(conn, row).await
    })
    .await
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(void_claim).service(write_off).service(credit_note).service(withdraw);
}
