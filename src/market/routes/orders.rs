//! Quotes and orders: price, buy, list, one, cancel; settling elapsed hours on demand.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::principal::TokenPrincipal;
use crate::auth::{Principal, Role};
use crate::http::extract::{JsonBody, NoQuery, Query, check_period};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, Write};
use crate::market::charged::{self};
use crate::market::energy;
use crate::market::listings::{self};
use crate::market::orders::{self, OrderFilter, OrderRow, OrderStatus, Request};
use crate::market::settlement::{self};
use crate::market::views::*;
use crate::money::format_amount;
use crate::state::AppState;

use super::unit_price;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub listing_id: Uuid,
    pub gpus: i32,
    /// First hour (RFC 3339, whole hour).
    pub start: DateTime<Utc>,
    /// End, exclusive (whole hour).
    pub end: DateTime<Utc>,
    /// A grant of the tenant's to pay part of it.
    pub grant_id: Option<Uuid>,
}

impl OrderRequest {
    fn request(&self) -> Request {
        Request {
            listing_id: self.listing_id,
            gpus: self.gpus,
            start: self.start,
            end: self.end,
            grant_id: self.grant_id,
        }
    }
}

/// Prices a purchase without reserving anything. Roles: tenant.
#[utoipa::path(tag = "market", request_body = OrderRequest, security(("bearer" = [])), responses(
    (status = 200, body = QuoteView), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/quotes")]
pub async fn create_quote(
    state: web::Data<AppState>,
    principal: Principal,
    body: JsonBody<OrderRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Tenant])?;
    let request = body.value.request();
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    Ok(HttpResponse::Ok().json(quote(&mut conn, &principal, &request, state.settings.fee_rate, now).await?))
}

/// Prices `request` for `principal`, with its grant's terms when it names one
/// (the API's quote and the console's listing page).
pub async fn quote(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    request: &Request,
    fee_rate: Decimal,
    now: DateTime<Utc>,
) -> Result<QuoteView, ApiError> {
    let listing = listings::find(conn, request.listing_id)
        .await?
        .filter(|l| listings::visible_to(l, principal))
        .ok_or_else(|| ApiError::missing("listing", request.listing_id))?;
    let subsidy = match orders::purchase(request, &listing) {
        None => None,
        Some(purchase) => {
            let (terms, available) = crate::subsidy::programmes::quote_terms(conn, principal, &purchase).await?;
            Some(crate::market::pricing::SubsidyTerms { rate: terms.rate, available })
        }
    };
    let (hours, b) = orders::quote(request, &listing, fee_rate, subsidy, now)?;
    if let Some(grant) = request.grant_id {
        let allocations = crate::subsidy::projects::unlocked_allocation(conn, grant).await?;
        allocations.check(grant, &listing.gpu_model, b.gpu_hours)?;
    }
    let intensity = match listing.energy.board_power_w {
        Some(_) => energy::intensity(conn, &listing.region).await?,
        None => None,
    };
    let estimate = energy::estimate(i64::from(request.gpus), i64::from(hours), &listing.energy, intensity);
    Ok(QuoteView {
        listing_id: listing.id,
        gpus: request.gpus,
        hours,
        gpu_hours: b.gpu_hours,
        unit_price: unit_price(b.unit_price),
        subtotal: format_amount(b.subtotal, b.currency),
        subsidy: format_amount(b.subsidy, b.currency),
        subsidy_rate: b.subsidy_rate.normalize().to_string(),
        tenant_amount: format_amount(b.tenant_amount, b.currency),
        platform_fee: format_amount(b.platform_fee, b.currency),
        currency: b.currency.code().to_string(),
        energy_kwh: estimate.energy_kwh.map(energy::display),
        co2e_kg: estimate.co2e_kg.map(energy::display),
    })
}

/// One order's view, its charged figures read in one query.
pub async fn one_order_view(
    conn: &mut diesel_async::AsyncPgConnection,
    order: OrderRow,
    now: DateTime<Utc>,
) -> Result<OrderView, ApiError> {
    let mut charged = charged::charged_of(conn, std::slice::from_ref(&order)).await?;
    let figures = charged.remove(&order.id).ok_or_else(|| {
        ApiError::internal(crate::ledger::LedgerError::Corrupt(format!("order {} vanished", order.id)))
    })?;
    let usage = crate::market::usage::figures_of_orders(conn, std::slice::from_ref(&order)).await?;
    let metered = usage.get(&order.id).copied().unwrap_or_default();
    let estimate = crate::market::energy::Estimate::of(&order);
    Ok(order_view(order, now, &figures)?.with_usage(&metered, estimate))
}

/// Buys GPU-hours: reserves the capacity and writes the order's pending
/// postings in one transaction. Roles: tenant.
#[utoipa::path(tag = "market", request_body = OrderRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = OrderView),
    (status = 402, description = "The wallet does not hold enough", body = Problem),
    (status = 409, description = "`capacity_unavailable`", body = Problem),
    (status = 422, body = Problem),
))]
#[post("/v1/orders")]
pub async fn create_order(
    batcher: web::Data<crate::market::batcher::OrderBatcher>,
    // The token's user is checked in the batch's transaction, with every
    // other caller of the batch in one query.
    write: Write<JsonBody<OrderRequest>, TokenPrincipal>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal: TokenPrincipal(principal), body, op } = write;
    principal.require(&[Role::Tenant])?;
    let ask = crate::market::batch::OrderAsk { principal, request: body.value.request() };
    batcher.place(ask, op.into_batched()).await
}

/// Places one tenant's order in the caller's transaction: a batch of one on
/// the one order path (`market::batch`). The demo places its orders so.
pub async fn place_order(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    request: &Request,
    fee_rate: Decimal,
    now: DateTime<Utc>,
) -> Result<OrderRow, ApiError> {
    let ask = crate::market::batch::OrderAsk { principal: *principal, request: *request };
    let mut answers = crate::market::batch::place_many(conn, std::slice::from_ref(&ask), fee_rate, now).await?;
    let answer = answers.pop().ok_or_else(|| ApiError::internal(std::io::Error::other("an order went unanswered")))?;
    answer.map_err(ApiError::from)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// Comma-separated statuses: `reserved,active,completed,cancelled`.
    pub status: Option<String>,
    /// Orders whose hours overlap [from, to).
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub listing_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Orders, newest first. Roles: tenant (its own), provider (on its listings),
/// finance and admin (all).
#[utoipa::path(tag = "market", params(OrderListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<OrderView>)),
))]
#[get("/v1/orders")]
pub async fn list_orders(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<OrderListQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    Ok(HttpResponse::Ok().json(orders_page(&mut conn, &principal, q, now).await?))
}

/// One page of the orders `principal` may see (the API's list and the
/// console's orders page).
pub async fn orders_page(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    q: OrderListQuery,
    now: DateTime<Utc>,
) -> Result<Page<OrderView>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    check_period(q.from, q.to)?;
    let before: Option<(DateTime<Utc>, Uuid)> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let statuses = match &q.status {
        None => None,
        Some(raw) => Some(
            raw.split(',')
                .map(|s| s.trim().parse::<OrderStatus>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::invalid("status", e))?,
        ),
    };
    let mut filter = OrderFilter {
        tenant_org_id: None,
        provider_org_id: None,
        listing_id: q.listing_id,
        statuses,
        now,
        from: q.from,
        to: q.to,
    };
    match principal.role {
        Role::Tenant => filter.tenant_org_id = Some(principal.org_id),
        Role::Provider => filter.provider_org_id = Some(principal.org_id),
        Role::Finance | Role::Admin => {}
    }
    let rows = orders::list(conn, &filter, before, limit + 1).await?;
    let page = pagination::page(rows, limit, |o| (o.created_at, o.id), |o| o);
    // The whole page's charged figures in one query: no query per order.
    let charged = charged::charged_of(conn, &page.data).await?;
    let usage = crate::market::usage::figures_of_orders(conn, &page.data).await?;
    let data = page
        .data
        .into_iter()
        .map(|order| {
            let figures = charged.get(&order.id).ok_or_else(|| {
                ApiError::internal(crate::ledger::LedgerError::Corrupt(format!("order {} has no figures", order.id)))
            })?;
            let metered = usage.get(&order.id).copied().unwrap_or_default();
            let estimate = crate::market::energy::Estimate::of(&order);
            Ok(order_view(order, now, figures)?.with_usage(&metered, estimate))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let next_cursor = page.next_cursor;
    Ok(Page { data, next_cursor })
}

/// One order. Roles: its tenant, its provider, finance, admin; anyone else gets 404.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = OrderView), (status = 404, body = Problem),
))]
#[get("/v1/orders/{id}")]
pub async fn get_order(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    let order = orders::find(&mut conn, id)
        .await?
        .filter(|o| orders::visible_to(o, &principal))
        .ok_or_else(|| ApiError::missing("order", id))?;
    Ok(HttpResponse::Ok().json(one_order_view(&mut conn, order, now).await?))
}

/// Cancels an order: before its start everything is released; after it, the
/// hours begun are charged and the rest released. Roles: the order's tenant.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = OrderView), (status = 404, body = Problem),
    (status = 409, description = "Already cancelled or completed, or every hour has begun", body = Problem),
))]
#[post("/v1/orders/{id}/cancel")]
pub async fn cancel_order(
    state: web::Data<AppState>,
    write: Write,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require(&[Role::Tenant])?;
    let id = id.into_inner();
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let order = settlement::cancel(conn, id, principal.org(), principal.actor(), now).await?;
        one_order_view(conn, order, now).await
    })
    .await
}

/// Settles every hour that has elapsed, now. Safe to repeat and to run
/// alongside the background settler. With an `Idempotency-Key`, a retry
/// replays the first run's answer and settles nothing. Roles: finance, admin.
#[utoipa::path(tag = "market", security(("bearer" = [])), params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = SettlementRun)))]
#[post("/v1/settlements/run")]
pub async fn run_settlement(state: web::Data<AppState>, write: Write) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require_finance()?;
    // Each batch of orders settles in its own transaction; the run as a whole is audited
    // once, and its answer stored under the key, when it is done.
    op.run_in_own_transactions(StatusCode::OK, async || {
        let settled = settlement::settle_all(&state.pool, state.clock).await?;
        let hours = settled.iter().map(|s| i64::from(s.hours)).sum();
        Ok(SettlementRun { orders: settled.len(), hours, settled })
    })
    .await
}
