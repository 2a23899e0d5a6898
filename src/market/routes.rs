//! HTTP handlers of the marketplace.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::charged::{self, Charged, ChargedView};
use super::listings::{self, ListingInsert, ListingRow, ListingStatus, SearchFilter, SearchSort};
use super::orders::{self, OrderFilter, OrderRow, OrderStatus, Request};
use super::schedule::is_whole_hour;
use super::settlement::{self, Outage, OutageCredit, Settled};
use crate::auth::{Principal, Role};
use crate::http::extract::{JsonBody, NoQuery, Query, check_period, parse_uuid};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, FieldError, Write};
use crate::money::{Currency, format_amount, parse_positive};
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

fn currency_of(raw: &str) -> Currency {
    raw.parse().unwrap_or(Currency::Krw)
}

/// A unit price, without trailing zeros (`"1000.5"`).
fn unit_price(value: Decimal) -> String {
    value.normalize().to_string()
}

// ---------------------------------------------------------------- listings

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListingView {
    pub id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub gpu_memory_gb: i32,
    pub gpus: i32,
    pub region: String,
    pub interconnect: Option<String>,
    pub price_per_gpu_hour: String,
    pub currency: String,
    pub available_from: DateTime<Utc>,
    pub available_until: DateTime<Utc>,
    pub min_hours: i32,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In search results: GPUs free in every hour of the window asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_gpus: Option<i32>,
}

fn listing_view(l: ListingRow, free_gpus: Option<i32>) -> ListingView {
    ListingView {
        id: l.id,
        provider_org_id: l.provider_org_id,
        gpu_model: l.gpu_model,
        gpu_memory_gb: l.gpu_memory_gb,
        gpus: l.gpus,
        region: l.region,
        interconnect: l.interconnect,
        price_per_gpu_hour: unit_price(l.price_per_gpu_hour),
        currency: l.currency,
        available_from: l.available_from,
        available_until: l.available_until,
        min_hours: l.min_hours,
        status: l.status,
        created_at: l.created_at,
        updated_at: l.updated_at,
        free_gpus,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewListing {
    /// e.g. `H100-SXM5-80GB`.
    pub gpu_model: String,
    pub gpu_memory_gb: i32,
    pub gpus: i32,
    pub region: String,
    pub interconnect: Option<String>,
    /// Decimal string; up to four fraction digits beyond the currency's.
    pub price_per_gpu_hour: String,
    pub currency: Currency,
    /// RFC 3339, on a whole hour.
    pub available_from: DateTime<Utc>,
    pub available_until: DateTime<Utc>,
    pub min_hours: Option<i32>,
    /// `active` (default) or `paused`.
    pub status: Option<ListingStatus>,
}

fn text_field(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) -> String {
    let value = value.trim().to_string();
    if value.is_empty() || value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be 1 to {max} characters")));
    }
    value
}

fn check_window(errors: &mut Vec<FieldError>, from: DateTime<Utc>, until: DateTime<Utc>) {
    if !is_whole_hour(from) {
        errors.push(FieldError::new("available_from", "must be on a whole hour"));
    }
    if !is_whole_hour(until) {
        errors.push(FieldError::new("available_until", "must be on a whole hour"));
    }
    if until <= from {
        errors.push(FieldError::new("available_until", "must be after available_from"));
    } else if until - from > TimeDelta::days(3 * 366) {
        errors.push(FieldError::new("available_until", "a listing spans at most three years"));
    }
}

/// A listing sells hours from now on: one whose whole window has passed could
/// never sell anything, and is a mistake (a wrong year, say).
fn refuse_a_past_window(until: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ApiError> {
    if until <= now {
        return Err(ApiError::invalid("available_until", "the listing's whole window is in the past"));
    }
    Ok(())
}

fn check_counts(errors: &mut Vec<FieldError>, gpus: i32, min_hours: i32) {
    if !(1..=100_000).contains(&gpus) {
        errors.push(FieldError::new("gpus", "must be between 1 and 100000"));
    }
    if !(1..=orders::MAX_HOURS as i32).contains(&min_hours) {
        errors.push(FieldError::new("min_hours", "must be between 1 and 8784"));
    }
}

fn parse_price(errors: &mut Vec<FieldError>, raw: &str, currency: Currency) -> Decimal {
    parse_positive(raw, currency.unit_price_digits())
        .map_err(|e| errors.push(FieldError::new("price_per_gpu_hour", e.to_string())))
        .unwrap_or(Decimal::ONE)
}

/// Lists GPU capacity for sale. Roles: provider.
#[utoipa::path(tag = "market", request_body = NewListing, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = ListingView), (status = 403, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/listings")]
pub async fn create_listing(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewListing>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Provider])?;
    let b = &body.value;
    let mut errors = Vec::new();
    let gpu_model = text_field(&mut errors, "gpu_model", &b.gpu_model, 100);
    let region = text_field(&mut errors, "region", &b.region, 100);
    let interconnect = b.interconnect.as_deref().map(|i| text_field(&mut errors, "interconnect", i, 100));
    if !(1..=10_000).contains(&b.gpu_memory_gb) {
        errors.push(FieldError::new("gpu_memory_gb", "must be between 1 and 10000"));
    }
    let min_hours = b.min_hours.unwrap_or(1);
    check_counts(&mut errors, b.gpus, min_hours);
    check_window(&mut errors, b.available_from, b.available_until);
    let price = parse_price(&mut errors, &b.price_per_gpu_hour, b.currency);
    let status = b.status.unwrap_or(ListingStatus::Active);
    if status == ListingStatus::Closed {
        errors.push(FieldError::new("status", "a new listing is active or paused"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let clock = state.clock;
    let row = ListingInsert {
        id: Uuid::now_v7(),
        provider_org_id: principal.org_id,
        gpu_model,
        gpu_memory_gb: b.gpu_memory_gb,
        gpus: b.gpus,
        region,
        interconnect,
        price_per_gpu_hour: price,
        currency: b.currency.code().to_string(),
        available_from: b.available_from,
        available_until: b.available_until,
        min_hours,
        status: status.as_str().to_string(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        refuse_a_past_window(row.available_until, now)?;
        let row = ListingInsert { created_at: now, updated_at: now, ..row };
        Ok(listing_view(listings::insert(conn, &row).await?, None))
    })
    .await
}

async fn visible_listing(state: &AppState, principal: &Principal, raw_id: &str) -> Result<ListingRow, ApiError> {
    let id = parse_uuid("id", raw_id)?;
    let mut conn = state.pool.get().await?;
    listings::find(&mut conn, id)
        .await?
        .filter(|l| listings::visible_to(l, principal))
        .ok_or_else(|| ApiError::not_found(format!("listing {id} does not exist")))
}

/// One listing. Roles: any; a paused or closed listing is visible to its provider and finance only.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = ListingView), (status = 404, body = Problem),
))]
#[get("/v1/listings/{id}")]
pub async fn get_listing(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(listing_view(visible_listing(&state, &principal, &id).await?, None)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingChange {
    /// Applies to new orders only.
    pub price_per_gpu_hour: Option<String>,
    pub status: Option<ListingStatus>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    /// Never below what is already sold in any hour.
    pub gpus: Option<i32>,
    pub min_hours: Option<i32>,
}

/// Changes one's own listing: price (new orders only), status, window, GPUs.
/// Roles: provider (own listings; another's answers 404).
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ListingChange, security(("bearer" = [])), responses(
    (status = 200, body = ListingView), (status = 404, body = Problem),
    (status = 409, description = "Would leave sold hours outside the listing, or below capacity", body = Problem),
))]
#[patch("/v1/listings/{id}")]
pub async fn change_listing(
    state: web::Data<AppState>,
    write: Write<JsonBody<ListingChange>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Provider])?;
    let id = parse_uuid("id", &id)?;
    let change = body.value;
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let current = listings::lock_for_update(conn, id)
            .await?
            .filter(|l| l.provider_org_id == principal.org_id)
            .ok_or_else(|| ApiError::not_found(format!("listing {id} does not exist")))?;
        if current.status == ListingStatus::Closed.as_str() {
            return Err(ApiError::conflict("the listing is closed"));
        }
        let currency = currency_of(&current.currency);
        let mut errors = Vec::new();
        let price = match &change.price_per_gpu_hour {
            Some(raw) => parse_price(&mut errors, raw, currency),
            None => current.price_per_gpu_hour,
        };
        let from = change.available_from.unwrap_or(current.available_from);
        let until = change.available_until.unwrap_or(current.available_until);
        let gpus = change.gpus.unwrap_or(current.gpus);
        let min_hours = change.min_hours.unwrap_or(current.min_hours);
        check_window(&mut errors, from, until);
        check_counts(&mut errors, gpus, min_hours);
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let updated_at = clock.now(conn).await?;
        if until != current.available_until {
            refuse_a_past_window(until, updated_at)?;
        }
        if (from, until) != (current.available_from, current.available_until)
            && listings::sold_outside(conn, id, from, until).await?
        {
            return Err(ApiError::conflict("GPUs are already sold in hours outside the new window"));
        }
        if gpus != current.gpus {
            listings::set_capacity(conn, id, gpus).await.map_err(|e| match e {
                diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::CheckViolation, _) => {
                    ApiError::conflict(format!("more than {gpus} GPUs are already sold in some hour"))
                }
                other => other.into(),
            })?;
        }
        let status = change.status.map(|s| s.as_str().to_string()).unwrap_or_else(|| current.status.clone());
        let row = ListingInsert {
            gpus,
            price_per_gpu_hour: price,
            available_from: from,
            available_until: until,
            min_hours,
            status,
            updated_at,
            ..current.into()
        };
        Ok(listing_view(listings::save(conn, &row).await?, None))
    })
    .await
}

/// Closes one's own listing for good: no new orders; existing ones stand.
/// Roles: provider (own listings).
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses((status = 200, body = ListingView), (status = 404, body = Problem)))]
#[post("/v1/listings/{id}/close")]
pub async fn close_listing(
    state: web::Data<AppState>,
    write: Write,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require(&[Role::Provider])?;
    let id = parse_uuid("id", &id)?;
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let current = listings::lock_for_update(conn, id)
            .await?
            .filter(|l| l.provider_org_id == principal.org_id)
            .ok_or_else(|| ApiError::not_found(format!("listing {id} does not exist")))?;
        let now = clock.now(conn).await?;
        let row =
            ListingInsert { status: ListingStatus::Closed.as_str().to_string(), updated_at: now, ..current.into() };
        Ok(listing_view(listings::save(conn, &row).await?, None))
    })
    .await
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum SortParam {
    #[serde(rename = "price")]
    Price,
    #[serde(rename = "-price")]
    PriceDesc,
    #[serde(rename = "available_from")]
    AvailableFrom,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    pub gpu_model: Option<String>,
    pub region: Option<String>,
    /// GPUs that must be free in every hour of the window.
    pub min_gpus: Option<i32>,
    /// Highest price per GPU-hour.
    pub max_price: Option<String>,
    pub currency: Option<Currency>,
    /// The window the GPUs must be free for (whole hours); the listing's own
    /// remaining window when absent.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `price` (default), `-price` or `available_from`.
    #[param(value_type = Option<String>)]
    pub sort: Option<SortParam>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Searches active listings that really have the GPUs free. Roles: any.
#[utoipa::path(tag = "market", params(SearchQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<ListingView>)), (status = 422, body = Problem),
))]
#[get("/v1/listings")]
pub async fn search_listings(
    state: web::Data<AppState>,
    _principal: Principal,
    Query(q): Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let mut errors = Vec::new();
    let max_price = q.max_price.as_deref().and_then(|raw| {
        parse_positive(raw, 12).map_err(|e| errors.push(FieldError::new("max_price", e.to_string()))).ok()
    });
    // With a window, a listing must have at least one GPU free in every hour of
    // it; without one, every active listing shows, with what it has free.
    let min_gpus = q.min_gpus.unwrap_or(if q.start.is_some() { 1 } else { 0 });
    if !(0..=100_000).contains(&min_gpus) {
        errors.push(FieldError::new("min_gpus", "must be between 0 and 100000"));
    }
    match (q.start, q.end) {
        (Some(s), Some(e)) => {
            if !is_whole_hour(s) {
                errors.push(FieldError::new("start", "must be on a whole hour"));
            }
            if !is_whole_hour(e) {
                errors.push(FieldError::new("end", "must be on a whole hour"));
            }
            if e <= s {
                errors.push(FieldError::new("end", "must be after start"));
            }
        }
        (None, None) => {}
        _ => errors.push(FieldError::new("end", "start and end go together")),
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let sort = match q.sort.unwrap_or(SortParam::Price) {
        SortParam::Price => SearchSort::Price,
        SortParam::PriceDesc => SearchSort::PriceDesc,
        SortParam::AvailableFrom => SearchSort::AvailableFrom,
    };
    let after: Option<listings::SearchCursor> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    // The cursor's sort value goes into SQL as a number or an instant: check it is one.
    if let Some((value, _)) = &after {
        let valid = match sort {
            SearchSort::Price | SearchSort::PriceDesc => value.parse::<Decimal>().is_ok(),
            SearchSort::AvailableFrom => value.parse::<DateTime<Utc>>().is_ok(),
        };
        if !valid {
            return Err(ApiError::invalid("cursor", "is not a cursor this list gave out (for this sort)"));
        }
    }
    let filter = SearchFilter {
        gpu_model: q.gpu_model,
        region: q.region,
        currency: q.currency.map(|c| c.code().to_string()),
        max_price,
        min_gpus,
        start: q.start,
        end: q.end,
    };
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    let rows = listings::search(&mut conn, &filter, sort, now, after, limit + 1).await?;
    let key = move |r: &listings::SearchRow| -> listings::SearchCursor {
        let value = match sort {
            SearchSort::Price | SearchSort::PriceDesc => r.listing.price_per_gpu_hour.to_string(),
            SearchSort::AvailableFrom => r.listing.available_from.to_rfc3339(),
        };
        (value, r.listing.id)
    };
    Ok(HttpResponse::Ok().json(pagination::page(rows, limit, key, |r| listing_view(r.listing, Some(r.free_gpus)))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// First hour (whole hour); the listing's start when absent.
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive, whole hour); at most 31 days after `from`, the listing's end by default.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HourAvailability {
    pub hour: DateTime<Utc>,
    pub reserved: i32,
    pub free: i32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Availability {
    pub data: Vec<HourAvailability>,
}

/// Reserved and free GPUs, one row per hour. Roles: any who may see the listing.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), AvailabilityQuery), security(("bearer" = [])),
    responses((status = 200, body = Availability), (status = 404, body = Problem)))]
#[get("/v1/listings/{id}/availability")]
pub async fn availability(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    Query(q): Query<AvailabilityQuery>,
) -> Result<HttpResponse, ApiError> {
    check_period(q.from, q.to)?;
    let listing = visible_listing(&state, &principal, &id).await?;
    let from = q.from.unwrap_or(listing.available_from).max(listing.available_from);
    let to = q.to.unwrap_or(listing.available_until).min(listing.available_until);
    if !is_whole_hour(from) || !is_whole_hour(to) {
        return Err(ApiError::invalid("from", "from and to must be on whole hours"));
    }
    if to - from > TimeDelta::days(31) {
        return Err(ApiError::invalid("to", "ask for at most 31 days at a time"));
    }
    let mut conn = state.pool.get().await?;
    let reserved: std::collections::HashMap<DateTime<Utc>, i32> =
        listings::reserved_by_hour(&mut conn, listing.id, from, to).await?.into_iter().collect();
    let mut data = Vec::new();
    let mut hour = from;
    while hour < to {
        let r = reserved.get(&hour).copied().unwrap_or(0);
        data.push(HourAvailability { hour, reserved: r, free: listing.gpus - r });
        hour += TimeDelta::hours(1);
    }
    Ok(HttpResponse::Ok().json(Availability { data }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOutage {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// GPUs out of service in every hour of the window.
    pub gpus: i32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutageView {
    pub id: Uuid,
    pub listing_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpus: i32,
    /// Each credited order's `outage_credit` entry is in `credits`.
    pub credits: Vec<OutageCredit>,
}

/// Reports an outage: the GPU-hours it cost the orders running then are
/// credited back to their tenants and programme and taken off the provider's
/// payable. Roles: provider (own listings).
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = NewOutage, security(("bearer" = [])), responses(
    (status = 201, body = OutageView), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/listings/{id}/outages")]
pub async fn report_outage(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewOutage>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Provider])?;
    let id = parse_uuid("id", &id)?;
    let NewOutage { start, end, gpus } = body.value;
    let mut errors = Vec::new();
    if !is_whole_hour(start) {
        errors.push(FieldError::new("start", "must be on a whole hour"));
    }
    if !is_whole_hour(end) {
        errors.push(FieldError::new("end", "must be on a whole hour"));
    }
    if end <= start {
        errors.push(FieldError::new("end", "must be after start"));
    } else if end - start > TimeDelta::days(31) {
        errors.push(FieldError::new("end", "report at most 31 days at a time"));
    }
    if gpus <= 0 {
        errors.push(FieldError::new("gpus", "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        record_outage(conn, &principal, id, NewOutage { start, end, gpus }, now).await
    })
    .await
}

/// Records a provider's outage on its own listing and credits the orders it
/// hit, in the caller's transaction (the handler's effect; the demo's too).
pub async fn record_outage(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    id: Uuid,
    outage: NewOutage,
    now: DateTime<Utc>,
) -> Result<OutageView, ApiError> {
    use crate::db::schema::outages;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let NewOutage { start, end, gpus } = outage;
    let listing = listings::find_for_order(conn, id)
        .await?
        .filter(|l| l.provider_org_id == principal.org_id)
        .ok_or_else(|| ApiError::not_found(format!("listing {id} does not exist")))?;
    if gpus > listing.gpus {
        return Err(ApiError::invalid("gpus", format!("the listing has {} GPUs", listing.gpus)));
    }
    let outage_id = Uuid::now_v7();
    diesel::insert_into(outages::table)
        .values((
            outages::id.eq(outage_id),
            outages::listing_id.eq(id),
            outages::reported_by.eq(principal.user_id),
            outages::start_at.eq(start),
            outages::end_at.eq(end),
            outages::gpus.eq(gpus),
            outages::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let (entries, credits) = settlement::credit_outage(
        conn,
        Outage { id: outage_id, listing_id: id, start, end, gpus },
        principal.actor(),
        now,
    )
    .await?;
    diesel::update(outages::table.find(outage_id))
        .set(outages::journal_entry_id.eq(<[Uuid]>::first(&entries).copied()))
        .execute(conn)
        .await?;
    Ok(OutageView { id: outage_id, listing_id: id, start, end, gpus, credits })
}

// ---------------------------------------------------------------- orders

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

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub listing_id: Uuid,
    pub gpus: i32,
    pub hours: i32,
    pub gpu_hours: i64,
    pub unit_price: String,
    pub subtotal: String,
    pub subsidy: String,
    pub subsidy_rate: String,
    pub tenant_amount: String,
    pub platform_fee: String,
    pub currency: String,
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
    let listing = listings::find(&mut conn, request.listing_id)
        .await?
        .filter(|l| listings::visible_to(l, &principal))
        .ok_or_else(|| ApiError::not_found(format!("listing {} does not exist", request.listing_id)))?;
    let subsidy = match orders::purchase(&request, &listing) {
        None => None,
        Some(purchase) => {
            let (terms, available) = crate::subsidy::programmes::quote_terms(&mut conn, &principal, &purchase).await?;
            Some(super::pricing::SubsidyTerms { rate: terms.rate, available })
        }
    };
    let (hours, b) = orders::quote(&request, &listing, state.settings.fee_rate, subsidy, now)?;
    Ok(HttpResponse::Ok().json(QuoteView {
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
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// `reserved`, `active`, `completed` or `cancelled`.
    pub status: String,
    pub listing_id: Uuid,
    pub tenant_org_id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub region: String,
    pub gpus: i32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub hours: i32,
    pub gpu_hours: i32,
    pub unit_price: String,
    pub subtotal: String,
    pub subsidy: String,
    pub subsidy_rate: String,
    pub tenant_amount: String,
    pub platform_fee: String,
    pub currency: String,
    pub grant_id: Option<Uuid>,
    /// Hours whose share has been posted.
    pub settled_hours: i32,
    /// Hours charged in all (fewer than `hours` after a cancellation).
    pub charged_hours: i32,
    /// GPU-hours credited back for outages.
    pub credited_gpu_hours: i32,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// What the order has really cost so far, from the ledger: the figures
    /// above are the breakdown when it was placed; these account for
    /// settlements, outage credits, refunds and a cancellation.
    pub charged: ChargedView,
}

pub fn order_view(o: OrderRow, now: DateTime<Utc>, charged: &Charged) -> Result<OrderView, ApiError> {
    let c = currency_of(&o.currency);
    let charged = charged::view(charged)?;
    Ok(OrderView {
        id: o.id,
        status: o.status_at(now),
        listing_id: o.listing_id,
        tenant_org_id: o.tenant_org_id,
        provider_org_id: o.provider_org_id,
        gpu_model: o.gpu_model,
        region: o.region,
        gpus: o.gpus,
        start: o.start_at,
        end: o.end_at,
        hours: o.hours,
        gpu_hours: o.gpu_hours,
        unit_price: unit_price(o.unit_price),
        subtotal: format_amount(o.subtotal, c),
        subsidy: format_amount(o.subsidy, c),
        subsidy_rate: o.subsidy_rate.normalize().to_string(),
        tenant_amount: format_amount(o.tenant_amount, c),
        platform_fee: format_amount(o.platform_fee, c),
        currency: o.currency,
        grant_id: o.grant_id,
        settled_hours: o.settled_hours,
        charged_hours: o.charged_hours,
        credited_gpu_hours: o.credited_gpu_hours,
        journal_entry_id: o.journal_entry_id,
        created_at: o.created_at,
        cancelled_at: o.cancelled_at,
        charged,
    })
}

/// One order's view, its charged figures read in one query.
async fn one_order_view(
    conn: &mut diesel_async::AsyncPgConnection,
    order: OrderRow,
    now: DateTime<Utc>,
) -> Result<OrderView, ApiError> {
    let mut charged = charged::charged_of(conn, std::slice::from_ref(&order)).await?;
    let figures = charged.remove(&order.id).ok_or_else(|| {
        ApiError::internal(crate::ledger::LedgerError::Corrupt(format!("order {} vanished", order.id)))
    })?;
    order_view(order, now, &figures)
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
    batcher: web::Data<super::batcher::OrderBatcher>,
    write: Write<JsonBody<OrderRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Tenant])?;
    let ask = super::batch::OrderAsk { principal, request: body.value.request() };
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
    let ask = super::batch::OrderAsk { principal: *principal, request: *request };
    let mut answers = super::batch::place_many(conn, std::slice::from_ref(&ask), fee_rate, now).await?;
    answers.pop().unwrap_or_else(|| Err(ApiError::internal(std::io::Error::other("an order went unanswered"))))
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
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
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
    let rows = orders::list(&mut conn, &filter, before, limit + 1).await?;
    let page = pagination::page(rows, limit, |o| (o.created_at, o.id), |o| o);
    // The whole page's charged figures in one query: no query per order.
    let charged = charged::charged_of(&mut conn, &page.data).await?;
    let data = page
        .data
        .into_iter()
        .map(|order| {
            let figures = charged.get(&order.id).ok_or_else(|| {
                ApiError::internal(crate::ledger::LedgerError::Corrupt(format!("order {} has no figures", order.id)))
            })?;
            order_view(order, now, figures)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let next_cursor = page.next_cursor;
    Ok(HttpResponse::Ok().json(Page { data, next_cursor }))
}

/// One order. Roles: its tenant, its provider, finance, admin; anyone else gets 404.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = OrderView), (status = 404, body = Problem),
))]
#[get("/v1/orders/{id}")]
pub async fn get_order(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    let id = parse_uuid("id", &id)?;
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    let order = orders::find(&mut conn, id)
        .await?
        .filter(|o| orders::visible_to(o, &principal))
        .ok_or_else(|| ApiError::not_found(format!("order {id} does not exist")))?;
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
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require(&[Role::Tenant])?;
    let id = parse_uuid("id", &id)?;
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        let order = settlement::cancel(conn, id, principal.org_id, principal.actor(), now).await?;
        one_order_view(conn, order, now).await
    })
    .await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettlementRun {
    /// Orders settled by this run.
    pub orders: usize,
    /// Hours settled in all.
    pub hours: i64,
    pub settled: Vec<Settled>,
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
    // Each order settles in its own transaction; the run as a whole is audited
    // once, and its answer stored under the key, when it is done.
    op.run_in_own_transactions(StatusCode::OK, async || {
        let settled = settlement::settle_all(&state.pool, state.clock).await?;
        let hours = settled.iter().map(|s| i64::from(s.hours)).sum();
        Ok(SettlementRun { orders: settled.len(), hours, settled })
    })
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_listing)
        .service(search_listings)
        .service(get_listing)
        .service(change_listing)
        .service(close_listing)
        .service(availability)
        .service(report_outage)
        .service(create_quote)
        .service(create_order)
        .service(list_orders)
        .service(get_order)
        .service(cancel_order)
        .service(run_settlement);
}
