//! Usage metering: the provider reports an order's intervals; the order's
//! tenant, its provider and finance read them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::db::schema::order_usage;
use crate::http::extract::{JsonBody, Query};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, Write};
use crate::market::orders;
use crate::market::usage::{self, Interval, IntervalInput, Meterable};
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRequest {
    /// 1 to 1,000 intervals, none overlapping another.
    pub intervals: Vec<IntervalInput>,
}

/// What a usage report did, and the order's figures after it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    pub order_id: Uuid,
    /// Intervals stored by this request.
    pub stored: usize,
    /// Intervals identical to ones already stored: accepted, nothing changed.
    pub repeated: usize,
    /// GPU-hours used ÷ GPU-hours reserved (4 places, half-even); null while nothing is reported.
    pub utilisation: Option<String>,
    /// Σ energy_wh ÷ 1000, exact; null while nothing is reported.
    pub energy_kwh: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IntervalView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpus_in_use: i32,
    pub utilisation: String,
    pub memory_used_gb: String,
    pub energy_wh: String,
}

fn interval_view(i: Interval) -> IntervalView {
    IntervalView {
        start: i.start,
        end: i.end,
        gpus_in_use: i.gpus_in_use,
        utilisation: i.utilisation.normalize().to_string(),
        memory_used_gb: i.memory_used_gb.normalize().to_string(),
        energy_wh: i.energy_wh.normalize().to_string(),
    }
}

/// Reports an order's usage, interval by interval (the provider's agent on
/// the machines). All or nothing: one bad interval refuses the request (422
/// naming `intervals[i].field`) and stores nothing. An interval identical to
/// one already stored is a repeat, accepted without change; one overlapping
/// a stored interval with other figures is refused. Roles: the provider of
/// the order's listing (another provider's order is 404).
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = UsageRequest, security(("bearer" = [])), responses(
    (status = 200, body = UsageReport), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 422, description = "An interval outside the order's charged hours or in the future, overlapping, with more GPUs than the order's, a utilisation outside 0–1, a negative measure", body = Problem),
))]
#[post("/v1/orders/{id}/usage")]
pub async fn report_usage(
    state: web::Data<AppState>,
    write: Write<JsonBody<UsageRequest>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Provider])?;
    let id = id.into_inner();
    let clock = state.clock;
    let asked = body.value.intervals;
    op.run(StatusCode::OK, async move |conn| {
        // The order row first (the lock order every writer follows): two
        // reports for one order are judged one after the other.
        let order = orders::lock(conn, id)
            .await?
            .filter(|o| o.provider_org_id == principal.org_id)
            .ok_or_else(|| ApiError::missing("order", id))?;
        let now = clock.now(conn).await?;
        let window = Meterable::of(&order, now);
        let (from, until) = match (asked.iter().map(|i| i.start).min(), asked.iter().map(|i| i.end).max()) {
            (Some(from), Some(until)) => (from, until),
            _ => (window.from, window.from),
        };
        let stored = usage::stored_between(conn, order.id, from, until).await?;
        let fresh = usage::judge(&window, &stored, &asked).map_err(ApiError::validation)?;
        usage::insert(conn, order.id, &fresh, principal.actor().user_id, now).await?;
        let figures = usage::figures_of_orders(conn, std::slice::from_ref(&order)).await?;
        let f = figures.get(&order.id).copied().unwrap_or_default();
        Ok(UsageReport {
            order_id: order.id,
            stored: fresh.len(),
            repeated: asked.len() - fresh.len(),
            utilisation: f.utilisation_shown(),
            energy_kwh: f.energy_kwh_shown(),
        })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// An order's reported intervals, by start. Roles: the order's tenant, its
/// provider, finance, admin; anyone else gets 404.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), UsageListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<IntervalView>)), (status = 404, body = Problem),
))]
#[get("/v1/orders/{id}/usage")]
pub async fn list_usage(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<UsageListQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let limit = pagination::limit(q.limit)?;
    let after: Option<DateTime<Utc>> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut conn = state.pool.get().await?;
    let order = orders::find(&mut conn, id)
        .await?
        .filter(|o| orders::visible_to(o, &principal))
        .ok_or_else(|| ApiError::missing("order", id))?;
    let mut query = order_usage::table
        .filter(order_usage::order_id.eq(order.id))
        .order(order_usage::start)
        .limit(limit + 1)
        .select(Interval::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(order_usage::start.gt(after));
    }
    let rows: Vec<Interval> = query.load(&mut conn).await?;
    Ok(HttpResponse::Ok().json(pagination::page(rows, limit, |i| i.start, interval_view)))
}
