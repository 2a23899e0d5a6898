//! Orders: placing one (capacity and money in one transaction), and reading them.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::listings::{ListingRow, ListingStatus};
use super::pricing::{self, Breakdown, SubsidyTerms};
use crate::auth::Principal;
use crate::db::schema::orders;
use crate::http::FieldError;
use crate::ledger::LedgerError;
use crate::ledger::rules::Movement;
use crate::money::Currency;

crate::ledger::model::text_enum_sql! {
    pub enum OrderStatus {
        Reserved => "reserved",
        Active => "active",
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, PartialEq)]
#[diesel(table_name = orders, check_for_backend(diesel::pg::Pg))]
pub struct OrderRow {
    pub id: Uuid,
    pub tenant_org_id: Uuid,
    pub placed_by: Uuid,
    pub listing_id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub region: String,
    pub gpus: i32,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub hours: i32,
    pub currency: Currency,
    pub unit_price: Decimal,
    pub gpu_hours: i32,
    pub subtotal: Decimal,
    pub subsidy: Decimal,
    pub subsidy_rate: Decimal,
    pub tenant_amount: Decimal,
    pub platform_fee: Decimal,
    pub fee_rate: Decimal,
    pub grant_id: Option<Uuid>,
    pub status: OrderStatus,
    pub settled_hours: i32,
    pub charged_hours: i32,
    pub credited_gpu_hours: i32,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// kWh estimated when placed from the listing's declared power (`market::energy`).
    pub estimated_energy_kwh: Option<Decimal>,
    /// kgCO2e of that estimate at the region's grid intensity, when set.
    pub estimated_co2e_kg: Option<Decimal>,
}

impl OrderRow {
    /// The status as of `now`: a reserved order whose first hour has begun is active.
    pub fn status_at(&self, now: DateTime<Utc>) -> OrderStatus {
        if self.status == OrderStatus::Reserved && now >= self.start_at { OrderStatus::Active } else { self.status }
    }
}

/// Why an order is refused. The HTTP answer of each is chosen at the edge
/// (`impl From<OrderError> for ApiError` in `http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// Fields of the request are invalid (every one found, not only the first).
    #[error("{}", describe_fields(.0))]
    Invalid(Vec<FieldError>),
    /// No such listing, or one the caller may not see: both answer the same.
    #[error("listing {0} does not exist")]
    ListingNotFound(Uuid),
    #[error("the listing is {0} and takes no orders")]
    ListingClosed(ListingStatus),
    #[error("the listing has {0} GPUs")]
    MoreGpusThanListed(i32),
    #[error("not enough GPUs are free on this listing for every hour asked")]
    CapacityUnavailable,
    /// The grant the order names cannot pay for it.
    #[error(transparent)]
    Grant(#[from] crate::subsidy::programmes::GrantError),
    /// The grant's allocation of GPU-hours cannot cover the order.
    #[error(transparent)]
    Allocation(#[from] crate::subsidy::projects::AllocationError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
}

impl OrderError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        OrderError::Invalid(vec![FieldError::new(field, message)])
    }
}

fn describe_fields(fields: &[FieldError]) -> String {
    fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
}

/// What a tenant asks to buy.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub listing_id: Uuid,
    pub gpus: i32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub grant_id: Option<Uuid>,
}

/// What an order asks its grant to pay for, when it names one.
pub fn purchase<'a>(request: &Request, listing: &'a ListingRow) -> Option<crate::subsidy::programmes::Purchase<'a>> {
    Some(crate::subsidy::programmes::Purchase {
        grant_id: request.grant_id?,
        start: request.start,
        end: request.end,
        gpu_model: &listing.gpu_model,
        region: &listing.region,
        provider_org_id: listing.provider_org_id,
        currency: listing.currency,
    })
}

/// The longest order accepted: a year of hours.
pub const MAX_HOURS: i64 = 24 * 366;

/// Checks a request against a listing at `now`; returns the number of hours.
pub fn check_request(request: &Request, listing: &ListingRow, now: DateTime<Utc>) -> Result<i32, OrderError> {
    use super::schedule::{WindowFields, parse_window};
    let mut errors = Vec::new();
    let window = parse_window(&mut errors, request.start, request.end, WindowFields::START_END);
    if request.gpus <= 0 {
        errors.push(FieldError::new("gpus", "must be at least 1"));
    }
    let Some(window) = window.filter(|_| errors.is_empty()) else {
        return Err(OrderError::Invalid(errors));
    };
    let hours = window.hours();
    if hours > MAX_HOURS {
        return Err(OrderError::invalid("end", format!("an order lasts at most {MAX_HOURS} hours")));
    }
    if listing.status != ListingStatus::Active {
        return Err(OrderError::ListingClosed(listing.status));
    }
    if request.start < now {
        return Err(OrderError::invalid("start", "must not be in the past"));
    }
    if request.start < listing.available_from || request.end > listing.available_until {
        return Err(OrderError::invalid("start", "the hours asked for are outside the listing's availability"));
    }
    if hours < i64::from(listing.min_hours) {
        return Err(OrderError::invalid("end", format!("this listing sells at least {} hours", listing.min_hours)));
    }
    if request.gpus > listing.gpus {
        return Err(OrderError::MoreGpusThanListed(listing.gpus));
    }
    Ok(hours as i32)
}

pub fn quote(
    request: &Request,
    listing: &ListingRow,
    fee_rate: Decimal,
    subsidy: Option<SubsidyTerms>,
    now: DateTime<Utc>,
) -> Result<(i32, Breakdown), OrderError> {
    let hours = check_request(request, listing, now)?;
    let currency = listing.currency;
    let breakdown = pricing::price(
        listing.price_per_gpu_hour,
        i64::from(request.gpus),
        i64::from(hours),
        currency,
        fee_rate,
        subsidy,
    )
    .map_err(|e| OrderError::invalid("gpus", e.to_string()))?;
    Ok((hours, breakdown))
}

/// The accounts an order's postings touch besides the subsidy side.
#[derive(Debug, Clone, Copy)]
pub struct OrderAccounts {
    pub wallet: Uuid,
    pub payable: Uuid,
    pub fees: Uuid,
}

/// The subsidy side's accounts of an order that names a grant.
#[derive(Debug, Clone, Copy)]
pub struct SubsidyAccounts {
    pub receivable: Uuid,
    pub grant_available: Uuid,
    pub grant_spent: Uuid,
}

/// The pending postings of an order, in a fixed order: tenant, subsidy, grant, fee.
pub fn order_movements(b: &Breakdown, accounts: &OrderAccounts, subsidy: Option<&SubsidyAccounts>) -> Vec<Movement> {
    let mut movements = Vec::with_capacity(4);
    if b.tenant_amount > Decimal::ZERO {
        movements.push(Movement::pending(accounts.wallet, accounts.payable, b.tenant_amount));
    }
    if let Some(side) = subsidy
        && b.subsidy > Decimal::ZERO
    {
        movements.push(Movement::pending(side.receivable, accounts.payable, b.subsidy));
        movements.push(Movement::pending(side.grant_available, side.grant_spent, b.subsidy));
    }
    if b.platform_fee > Decimal::ZERO {
        movements.push(Movement::pending(accounts.payable, accounts.fees, b.platform_fee));
    }
    movements
}

/// Writes new orders in one statement. Its text is the same whatever the
/// number of orders (one array per column), so each connection prepares it
/// once instead of planning a new multi-row `INSERT` for every batch.
pub async fn insert_many(conn: &mut AsyncPgConnection, rows: &[&OrderRow]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Int4, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
    if rows.is_empty() {
        return Ok(());
    }
    fn column<'r, T>(rows: &[&'r OrderRow], value: impl Fn(&'r OrderRow) -> T) -> Vec<T> {
        rows.iter().map(|r| value(r)).collect()
    }
    crate::db::prepared(
        "INSERT INTO orders (id, tenant_org_id, placed_by, listing_id, provider_org_id, gpu_model, region, gpus, \
                             start_at, end_at, hours, currency, unit_price, gpu_hours, subtotal, subsidy, \
                             subsidy_rate, tenant_amount, platform_fee, fee_rate, grant_id, status, settled_hours, \
                             charged_hours, credited_gpu_hours, journal_entry_id, created_at, cancelled_at, \
                             estimated_energy_kwh, estimated_co2e_kg) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], \
                              $8::int4[], $9::timestamptz[], $10::timestamptz[], $11::int4[], $12::text[], \
                              $13::numeric[], $14::int4[], $15::numeric[], $16::numeric[], $17::numeric[], \
                              $18::numeric[], $19::numeric[], $20::numeric[], $21::uuid[], $22::text[], \
                              $23::int4[], $24::int4[], $25::int4[], $26::uuid[], $27::timestamptz[], \
                              $28::timestamptz[], $29::numeric[], $30::numeric[])",
    )
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.id))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.tenant_org_id))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.placed_by))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.listing_id))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.provider_org_id))
    .bind::<Array<Text>, _>(column(rows, |r| r.gpu_model.as_str()))
    .bind::<Array<Text>, _>(column(rows, |r| r.region.as_str()))
    .bind::<Array<Int4>, _>(column(rows, |r| r.gpus))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.start_at))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.end_at))
    .bind::<Array<Int4>, _>(column(rows, |r| r.hours))
    .bind::<Array<Text>, _>(column(rows, |r| r.currency))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.unit_price))
    .bind::<Array<Int4>, _>(column(rows, |r| r.gpu_hours))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.subtotal))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.subsidy))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.subsidy_rate))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.tenant_amount))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.platform_fee))
    .bind::<Array<Numeric>, _>(column(rows, |r| r.fee_rate))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(rows, |r| r.grant_id))
    .bind::<Array<Text>, _>(column(rows, |r| r.status))
    .bind::<Array<Int4>, _>(column(rows, |r| r.settled_hours))
    .bind::<Array<Int4>, _>(column(rows, |r| r.charged_hours))
    .bind::<Array<Int4>, _>(column(rows, |r| r.credited_gpu_hours))
    .bind::<Array<SqlUuid>, _>(column(rows, |r| r.journal_entry_id))
    .bind::<Array<Timestamptz>, _>(column(rows, |r| r.created_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(rows, |r| r.cancelled_at))
    .bind::<Array<Nullable<Numeric>>, _>(column(rows, |r| r.estimated_energy_kwh))
    .bind::<Array<Nullable<Numeric>>, _>(column(rows, |r| r.estimated_co2e_kg))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<OrderRow>> {
    orders::table.find(id).select(OrderRow::as_select()).first(conn).await.optional()
}

pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<OrderRow>> {
    orders::table.find(id).select(OrderRow::as_select()).for_update().first(conn).await.optional()
}

/// Whether `principal` may see `order`: its tenant, its provider, or finance.
pub fn visible_to(order: &OrderRow, principal: &Principal) -> bool {
    principal.is_finance() || order.tenant_org_id == principal.org_id || order.provider_org_id == principal.org_id
}

#[derive(Debug)]
pub struct OrderFilter {
    pub tenant_org_id: Option<Uuid>,
    pub provider_org_id: Option<Uuid>,
    pub listing_id: Option<Uuid>,
    pub statuses: Option<Vec<OrderStatus>>,
    /// The instant statuses are judged at (a reserved order that has begun is active).
    pub now: DateTime<Utc>,
    /// Orders whose hours overlap [from, to).
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Newest first, before the cursor (created_at, id).
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &OrderFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<OrderRow>> {
    let mut q = orders::table.select(OrderRow::as_select()).into_boxed();
    if let Some(org) = filter.tenant_org_id {
        q = q.filter(orders::tenant_org_id.eq(org));
    }
    if let Some(org) = filter.provider_org_id {
        q = q.filter(orders::provider_org_id.eq(org));
    }
    if let Some(listing) = filter.listing_id {
        q = q.filter(orders::listing_id.eq(listing));
    }
    if let Some(statuses) = &filter.statuses {
        use diesel::pg::Pg;
        use diesel::sql_types::Bool;
        type Condition = Box<dyn BoxableExpression<orders::table, Pg, SqlType = Bool>>;
        let now = filter.now;
        let mut any: Option<Condition> = None;
        for status in statuses {
            let this: Condition = match status {
                OrderStatus::Reserved => {
                    Box::new(orders::status.eq(OrderStatus::Reserved).and(orders::start_at.gt(now)))
                }
                OrderStatus::Active => Box::new(
                    orders::status
                        .eq(OrderStatus::Active)
                        .or(orders::status.eq(OrderStatus::Reserved).and(orders::start_at.le(now))),
                ),
                other => Box::new(orders::status.eq(*other)),
            };
            any = Some(match any {
                None => this,
                Some(previous) => Box::new(previous.or(this)),
            });
        }
        if let Some(condition) = any {
            q = q.filter(condition);
        }
    }
    if let Some(from) = filter.from {
        q = q.filter(orders::end_at.gt(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(orders::start_at.lt(to));
    }
    if let Some((at, id)) = before {
        q = q.filter(orders::created_at.lt(at).or(orders::created_at.eq(at).and(orders::id.lt(id))));
    }
    q.order((orders::created_at.desc(), orders::id.desc())).limit(limit).load(conn).await
}

/// The hour at which the `n`th hour (0-based) of an order begins.
pub fn hour_at(order: &OrderRow, n: i32) -> DateTime<Utc> {
    order.start_at + TimeDelta::hours(i64::from(n))
}

/// The index (from 0) of the order's hour that starts at `hour`.
pub fn hour_index(order: &OrderRow, hour: DateTime<Utc>) -> i32 {
    // Orders last at most MAX_HOURS, so the index fits an i32.
    (hour - order.start_at).num_hours() as i32
}

/// An order of one GPU-hour with the given amounts, for unit tests of what is
/// figured from an order's row.
#[cfg(test)]
pub(crate) fn sample_order(tenant_amount: Decimal, subsidy: Decimal, platform_fee: Decimal) -> OrderRow {
    let now = chrono::Utc::now();
    OrderRow {
        id: Uuid::nil(),
        tenant_org_id: Uuid::nil(),
        placed_by: Uuid::nil(),
        listing_id: Uuid::nil(),
        provider_org_id: Uuid::nil(),
        gpu_model: "H100".into(),
        region: "kr".into(),
        gpus: 1,
        start_at: now,
        end_at: now,
        hours: 1,
        currency: Currency::Krw,
        unit_price: rust_decimal_macros::dec!(1),
        gpu_hours: 1,
        subtotal: tenant_amount + subsidy,
        subsidy,
        subsidy_rate: rust_decimal_macros::dec!(0.8),
        tenant_amount,
        platform_fee,
        fee_rate: Decimal::ZERO,
        grant_id: None,
        status: OrderStatus::Active,
        settled_hours: 0,
        charged_hours: 1,
        credited_gpu_hours: 0,
        journal_entry_id: Uuid::nil(),
        created_at: now,
        cancelled_at: None,
        estimated_energy_kwh: None,
        estimated_co2e_kg: None,
    }
}
