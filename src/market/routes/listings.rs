//! Listings: create, change, close, one, search, availability by hour.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::events::{EventType, NewEvent, view_data};
use crate::http::extract::{JsonBody, NoQuery, Query, check_period};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, FieldError, Write};
use crate::market::energy::{Accelerator, Declaration, check_declaration};
use crate::market::listings::{self, ListingInsert, ListingRow, ListingStatus, SearchFilter, SearchSort};
use crate::market::orders::{self};
use crate::market::schedule::{WindowFields, is_whole_hour, parse_window};
use crate::market::views::*;
use crate::money::{Currency, parse_positive};
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

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
    /// What it sells: `{"kind": "gpu"|"npu", "vendor", "model"}`.
    pub accelerator: Option<Accelerator>,
    /// Board power per accelerator, in watts (1 to 100000). Without it, orders
    /// carry no energy estimate.
    pub board_power_w: Option<i32>,
    /// The data centre's PUE, a decimal string from 1 to 10 (e.g. `"1.3"`).
    pub pue: Option<String>,
    /// FP16/BF16 TFLOPS per accelerator (decimal string), for `sort=price_per_tflops`.
    pub performance_tflops: Option<String>,
}

fn text_field(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) -> String {
    let value = value.trim().to_string();
    if value.is_empty() || value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be 1 to {max} characters")));
    }
    value
}

fn check_window(errors: &mut Vec<FieldError>, from: DateTime<Utc>, until: DateTime<Utc>) {
    let fields = WindowFields { start: "available_from", end: "available_until" };
    if let Some(window) = parse_window(errors, from, until, fields)
        && window.span() > TimeDelta::days(3 * 366)
    {
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
    let row = new_listing_row(&principal, &body.value)?;
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(listing_view(insert_listing(conn, row, now).await?, None))
    })
    .await
}

/// The listing `b` describes for `principal`'s organisation, or every field
/// that is wrong with it (the API's create and the console's form).
pub fn new_listing_row(principal: &Principal, b: &NewListing) -> Result<ListingInsert, ApiError> {
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
    let energy = check_declaration(
        &mut errors,
        &Declaration {
            accelerator: b.accelerator.as_ref(),
            board_power_w: b.board_power_w,
            pue: b.pue.as_deref(),
            performance_tflops: b.performance_tflops.as_deref(),
        },
    );
    let status = b.status.unwrap_or(ListingStatus::Active);
    if status == ListingStatus::Closed {
        errors.push(FieldError::new("status", "a new listing is active or paused"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(ListingInsert {
        id: Uuid::now_v7(),
        provider_org_id: principal.org_id,
        gpu_model,
        gpu_memory_gb: b.gpu_memory_gb,
        gpus: b.gpus,
        region,
        interconnect,
        price_per_gpu_hour: price,
        currency: b.currency,
        available_from: b.available_from,
        available_until: b.available_until,
        min_hours,
        status,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        energy,
    })
}

/// Stores a checked new listing as of `now` (refused when its whole window has passed).
pub async fn insert_listing(
    conn: &mut diesel_async::AsyncPgConnection,
    row: ListingInsert,
    now: DateTime<Utc>,
) -> Result<ListingRow, ApiError> {
    refuse_a_past_window(row.available_until, now)?;
    let row = ListingInsert { created_at: now, updated_at: now, ..row };
    Ok(listings::insert(conn, &row).await?)
}

async fn visible_listing(state: &AppState, principal: &Principal, id: Uuid) -> Result<ListingRow, ApiError> {
    let mut conn = state.pool.get().await?;
    listings::find(&mut conn, id)
        .await?
        .filter(|l| listings::visible_to(l, principal))
        .ok_or_else(|| ApiError::missing("listing", id))
}

/// One listing. Roles: any; a paused or closed listing is visible to its provider and finance only.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = ListingView), (status = 404, body = Problem),
))]
#[get("/v1/listings/{id}")]
pub async fn get_listing(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    _: NoQuery,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(listing_view(visible_listing(&state, &principal, *id).await?, None)))
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
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Provider])?;
    let id = id.into_inner();
    let change = body.value;
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(listing_view(change_own_listing(conn, &principal, id, &change, now).await?, None))
    })
    .await
}

/// Applies `change` to `principal`'s own listing `id` (another's is not
/// found), in the caller's transaction: the API's change and the console's.
pub async fn change_own_listing(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    id: Uuid,
    change: &ListingChange,
    now: DateTime<Utc>,
) -> Result<ListingRow, ApiError> {
    let current = listings::lock_for_update(conn, id)
        .await?
        .filter(|l| l.provider_org_id == principal.org_id)
        .ok_or_else(|| ApiError::missing("listing", id))?;
    if current.status == ListingStatus::Closed {
        return Err(ApiError::conflict("the listing is closed"));
    }
    let currency = current.currency;
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
    if until != current.available_until {
        refuse_a_past_window(until, now)?;
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
    let status = change.status.unwrap_or(current.status);
    let was = current.status;
    let before = (current.available_from, current.available_until);
    let row = ListingInsert {
        gpus,
        price_per_gpu_hour: price,
        available_from: from,
        available_until: until,
        min_hours,
        status,
        updated_at: now,
        ..current.into()
    };
    let saved = listings::save(conn, &row, before).await?;
    record_status_change(conn, was, saved.clone(), now).await?;
    Ok(saved)
}

/// `listing.paused` or `listing.closed` when a listing's status becomes
/// that, seen by its provider; other changes, and a status set again to
/// what it was, are not events.
async fn record_status_change(
    conn: &mut diesel_async::AsyncPgConnection,
    was: ListingStatus,
    listing: ListingRow,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let event_type = match listing.status {
        _ if listing.status == was => return Ok(()),
        ListingStatus::Paused => EventType::ListingPaused,
        ListingStatus::Closed => EventType::ListingClosed,
        ListingStatus::Active => return Ok(()),
    };
    let (id, provider) = (listing.id, listing.provider_org_id);
    let data = view_data(&listing_view(listing, None))?;
    crate::events::record(conn, NewEvent::new(event_type, now, id, vec![provider], data)).await?;
    Ok(())
}

/// Closes one's own listing for good: no new orders; existing ones stand.
/// Roles: provider (own listings).
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses((status = 200, body = ListingView), (status = 404, body = Problem)))]
#[post("/v1/listings/{id}/close")]
pub async fn close_listing(
    state: web::Data<AppState>,
    write: Write,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require(&[Role::Provider])?;
    let id = id.into_inner();
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(listing_view(close_own_listing(conn, &principal, id, now).await?, None))
    })
    .await
}

/// Closes `principal`'s own listing `id` for good (another's is not found).
pub async fn close_own_listing(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<ListingRow, ApiError> {
    let current = listings::lock_for_update(conn, id)
        .await?
        .filter(|l| l.provider_org_id == principal.org_id)
        .ok_or_else(|| ApiError::missing("listing", id))?;
    let was = current.status;
    let before = (current.available_from, current.available_until);
    let row = ListingInsert { status: ListingStatus::Closed, updated_at: now, ..current.into() };
    let saved = listings::save(conn, &row, before).await?;
    record_status_change(conn, was, saved.clone(), now).await?;
    Ok(saved)
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum SortParam {
    #[serde(rename = "price")]
    Price,
    #[serde(rename = "-price")]
    PriceDesc,
    #[serde(rename = "available_from")]
    AvailableFrom,
    #[serde(rename = "energy")]
    Energy,
    #[serde(rename = "price_per_tflops")]
    PricePerTflops,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    pub gpu_model: Option<String>,
    pub region: Option<String>,
    /// GPUs that must be free in every hour of the window.
    pub min_gpus: Option<i32>,
    /// Memory per GPU (GB), at least.
    pub min_memory_gb: Option<i32>,
    /// Highest price per GPU-hour.
    pub max_price: Option<String>,
    pub currency: Option<Currency>,
    /// The window the GPUs must be free for (whole hours); the listing's own
    /// remaining window when absent.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `price` (default), `-price`, `available_from`, `energy` (estimated
    /// kWh per GPU-hour, least first) or `price_per_tflops` (cheapest per
    /// declared TFLOPS first). Listings without the figure come last.
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
    let mut conn = state.pool.get().await?;
    let now = state.clock.now(&mut conn).await?;
    Ok(HttpResponse::Ok().json(search_page(&mut conn, q, now).await?))
}

/// One page of the listing search: checks the query's filters and cursor and
/// runs the search (the API's handler and the console's market page).
pub async fn search_page(
    conn: &mut diesel_async::AsyncPgConnection,
    q: SearchQuery,
    now: DateTime<Utc>,
) -> Result<Page<ListingView>, ApiError> {
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
            parse_window(&mut errors, s, e, WindowFields::START_END);
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
        SortParam::Energy => SearchSort::Energy,
        SortParam::PricePerTflops => SearchSort::PricePerTflops,
    };
    let after: Option<listings::SearchCursor> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    // The cursor's sort value goes into SQL as a number or an instant: check it is one.
    if let Some((value, _)) = &after {
        let valid = match sort {
            SearchSort::Price | SearchSort::PriceDesc => value.parse::<Decimal>().is_ok(),
            SearchSort::AvailableFrom => value.parse::<DateTime<Utc>>().is_ok(),
            // Listings without the figure come last, after the cursor value "-".
            // A quotient PostgreSQL computed may have more digits than a Decimal holds.
            SearchSort::Energy | SearchSort::PricePerTflops => value == "-" || is_plain_decimal(value),
        };
        if !valid {
            return Err(ApiError::invalid("cursor", "is not a cursor this list gave out (for this sort)"));
        }
    }
    let filter = SearchFilter {
        gpu_model: q.gpu_model,
        region: q.region,
        currency: q.currency,
        max_price,
        min_memory_gb: q.min_memory_gb,
        min_gpus,
        start: q.start,
        end: q.end,
    };
    let rows = listings::search(conn, &filter, sort, now, after, limit + 1).await?;
    let key = move |r: &listings::SearchRow| -> listings::SearchCursor {
        let value = match sort {
            SearchSort::Price | SearchSort::PriceDesc => r.listing.price_per_gpu_hour.to_string(),
            SearchSort::AvailableFrom => r.listing.available_from.to_rfc3339(),
            SearchSort::Energy | SearchSort::PricePerTflops => r.sort_key.clone().unwrap_or_else(|| "-".into()),
        };
        (value, r.listing.id)
    };
    Ok(pagination::page(rows, limit, key, |r| listing_view(r.listing, Some(r.free_gpus))))
}

/// Digits with at most one point (what `numeric::text` gives for a positive
/// number): safe to hand to SQL as a `numeric`.
fn is_plain_decimal(value: &str) -> bool {
    let mut parts = value.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next().unwrap_or("0");
    value.len() <= 200
        && !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
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

/// Reserved and free GPUs, one row per hour. Roles: any who may see the listing.
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), AvailabilityQuery), security(("bearer" = [])),
    responses((status = 200, body = Availability), (status = 404, body = Problem)))]
#[get("/v1/listings/{id}/availability")]
pub async fn availability(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<AvailabilityQuery>,
) -> Result<HttpResponse, ApiError> {
    check_period(q.from, q.to)?;
    let listing = visible_listing(&state, &principal, *id).await?;
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

#[cfg(test)]
mod tests {
    use super::is_plain_decimal;

    #[test]
    fn sort_cursors_carry_plain_decimals_only() {
        assert!(is_plain_decimal("0.875"));
        assert!(is_plain_decimal("3.0318342597271349"));
        assert!(is_plain_decimal("12345678901234567890123456789012.5"));
        for bad in ["", ".5", "5.", "1e5", "-1", "1.2.3", "1); DROP", "NaN"] {
            assert!(!is_plain_decimal(bad), "{bad}");
        }
    }
}
