//! `POST /v1/grants/{id}/reclaim`: finance takes back what an idle grant has
//! not used (see `subsidy::reclaim`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::reclaim;
use super::routes::{GrantView, grant_view};
use crate::events::{EventType, NewEvent};
use crate::http::extract::JsonBody;
use crate::http::{ApiError, Write};
use crate::market::routes::one_order_view;
use crate::market::views::OrderView;
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReclaimRequest {
    /// Why the grant is reclaimed (1 to 500 characters); kept on the grant and in the audit log.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReclaimView {
    /// The grant, closed, with what it released to the programme.
    pub grant: GrantView,
    /// The orders whose future hours were cancelled, as cancellation left them.
    pub cancelled_orders: Vec<OrderView>,
}

/// Reclaims a grant in one transaction: cancels the future hours of its
/// orders exactly as a cancellation does (hours begun are charged, the rest
/// refunded to the tenant and to the grant), releases what the grant has
/// left to the programme and closes it. Emits `grant.reclaimed`. Roles:
/// finance, admin.
#[utoipa::path(tag = "subsidy", params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ReclaimRequest, security(("bearer" = [])), responses(
    (status = 200, body = ReclaimView), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "The grant is already closed", body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/grants/{id}/reclaim")]
pub async fn reclaim_grant(
    state: web::Data<AppState>,
    write: Write<JsonBody<ReclaimRequest>>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    reclaim_write(op, principal, id.into_inner(), &body.value, state.clock).await
}

/// The reclaim of grant `id` by `principal`, through `op` (the API's and the
/// console's form): checks, the write, its audit record and its event.
pub async fn reclaim_write(
    op: crate::http::WriteOp,
    principal: crate::auth::Principal,
    id: uuid::Uuid,
    request: &ReclaimRequest,
    clock: crate::clock::Clock,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let reason = request.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid("reason", "must be 1 to 500 characters"));
    }
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let done = reclaim::reclaim(conn, id, &reason, principal.actor(), now).await?;
        let tenant = done.grant.tenant_org_id;
        let grant = grant_view(conn, done.grant).await?;
        let mut cancelled_orders = Vec::with_capacity(done.cancelled.len());
        for order in done.cancelled {
            cancelled_orders.push(one_order_view(conn, order, now).await?);
        }
        let view = ReclaimView { grant, cancelled_orders };
        let data = serde_json::value::to_raw_value(&view).map_err(ApiError::internal)?;
        crate::events::record(conn, NewEvent::new(EventType::GrantReclaimed, now, id, vec![tenant], data)).await?;
        Ok(view)
    })
    .await
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(reclaim_grant);
}
