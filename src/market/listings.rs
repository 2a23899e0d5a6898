//! Listings and their per-hour capacity, in the database.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::db::schema::{listing_hours, listings};
use crate::ledger::model::text_enum_sql;
use crate::money::Currency;

text_enum_sql! {
    pub enum ListingStatus {
        Active => "active",
        Paused => "paused",
        Closed => "closed",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, PartialEq)]
#[diesel(table_name = listings, check_for_backend(diesel::pg::Pg))]
pub struct ListingRow {
    pub id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub gpu_memory_gb: i32,
    pub gpus: i32,
    pub region: String,
    pub interconnect: Option<String>,
    pub price_per_gpu_hour: Decimal,
    pub currency: Currency,
    pub available_from: DateTime<Utc>,
    pub available_until: DateTime<Utc>,
    pub min_hours: i32,
    pub status: ListingStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[diesel(embed)]
    pub energy: super::energy::Declared,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = listings)]
pub struct ListingInsert {
    pub id: Uuid,
    pub provider_org_id: Uuid,
    pub gpu_model: String,
    pub gpu_memory_gb: i32,
    pub gpus: i32,
    pub region: String,
    pub interconnect: Option<String>,
    pub price_per_gpu_hour: Decimal,
    pub currency: Currency,
    pub available_from: DateTime<Utc>,
    pub available_until: DateTime<Utc>,
    pub min_hours: i32,
    pub status: ListingStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[diesel(embed)]
    pub energy: super::energy::Declared,
}

impl From<ListingRow> for ListingInsert {
    fn from(l: ListingRow) -> Self {
        ListingInsert {
            id: l.id,
            provider_org_id: l.provider_org_id,
            gpu_model: l.gpu_model,
            gpu_memory_gb: l.gpu_memory_gb,
            gpus: l.gpus,
            region: l.region,
            interconnect: l.interconnect,
            price_per_gpu_hour: l.price_per_gpu_hour,
            currency: l.currency,
            available_from: l.available_from,
            available_until: l.available_until,
            min_hours: l.min_hours,
            status: l.status,
            created_at: l.created_at,
            updated_at: l.updated_at,
            energy: l.energy,
        }
    }
}

/// Whether `principal` may see `listing` at all: its provider and finance see
/// any; everyone else only active ones. A listing they may not see answers 404
/// to every route — reading, quoting or ordering — so its existence does not leak.
pub fn visible_to(listing: &ListingRow, principal: &crate::auth::Principal) -> bool {
    principal.is_finance() || listing.provider_org_id == principal.org_id || listing.status == ListingStatus::Active
}

/// Stores a new listing with a row for each hour of its window.
pub async fn insert(conn: &mut AsyncPgConnection, row: &ListingInsert) -> QueryResult<ListingRow> {
    let listing: ListingRow =
        diesel::insert_into(listings::table).values(row).returning(ListingRow::as_returning()).get_result(conn).await?;
    make_hours(conn, &listing, listing.available_from, listing.available_until).await?;
    Ok(listing)
}

/// The spans a window gained when it changed from `before` to `after`
/// (each `[from, until)`; none when it only shrank or stayed).
pub fn gained_spans(
    before: (DateTime<Utc>, DateTime<Utc>),
    after: (DateTime<Utc>, DateTime<Utc>),
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let (old_from, old_until) = before;
    let (new_from, new_until) = after;
    if new_until <= old_from || new_from >= old_until {
        // The windows do not meet: the whole new window is new.
        return vec![after];
    }
    let mut spans = Vec::new();
    if new_from < old_from {
        spans.push((new_from, old_from));
    }
    if new_until > old_until {
        spans.push((old_until, new_until));
    }
    spans
}

/// Makes the row of every hour in [`from`, `until`) of `listing` that has none. Hours
/// are made with the listing rather than by the first order of each hour:
/// an order then only locks and updates rows (no insert, foreign-key check or
/// index entry per hour on the path every order takes).
async fn make_hours(
    conn: &mut AsyncPgConnection,
    listing: &ListingRow,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO listing_hours (listing_id, hour, capacity, reserved) \
         SELECT $1, h, $2, 0 FROM generate_series($3::timestamptz, $4::timestamptz - interval '1 hour', interval '1 hour') AS h \
         ON CONFLICT (listing_id, hour) DO NOTHING",
    )
    .bind::<SqlUuid, _>(listing.id)
    .bind::<Int4, _>(listing.gpus)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(until)
    .execute(conn)
    .await
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ListingRow>> {
    listings::table.find(id).select(ListingRow::as_select()).first(conn).await.optional()
}

/// Reads a listing and holds a share lock on it for the transaction: concurrent
/// orders share it, while a change to the listing waits for them (and they for it).
pub async fn find_for_order(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ListingRow>> {
    listings::table.find(id).select(ListingRow::as_select()).for_share().first(conn).await.optional()
}

pub async fn lock_for_update(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ListingRow>> {
    listings::table.find(id).select(ListingRow::as_select()).for_update().first(conn).await.optional()
}

/// Stores a changed listing whose window was `before`; hours its window
/// gained get their rows (a change of price or status makes none).
pub async fn save(
    conn: &mut AsyncPgConnection,
    row: &ListingInsert,
    before: (DateTime<Utc>, DateTime<Utc>),
) -> QueryResult<ListingRow> {
    let listing: ListingRow = diesel::update(listings::table.find(row.id))
        .set(row)
        .returning(ListingRow::as_returning())
        .get_result(conn)
        .await?;
    for (from, until) in gained_spans(before, (listing.available_from, listing.available_until)) {
        make_hours(conn, &listing, from, until).await?;
    }
    Ok(listing)
}

/// Adds `gpus` to every hour in [`from`, `until`) of a listing. Fails with the
/// `listing_hours_within_capacity` check when any hour would go over capacity:
/// the database, not a read-then-write here, refuses to oversell.
pub async fn reserve(
    conn: &mut AsyncPgConnection,
    listing_id: Uuid,
    capacity: i32,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    gpus: i32,
) -> QueryResult<usize> {
    // Hours are taken in ascending order, so overlapping orders lock rows in the
    // same order and cannot deadlock.
    diesel::sql_query(
        "INSERT INTO listing_hours (listing_id, hour, capacity, reserved) \
         SELECT $1, h, $2, $5 FROM generate_series($3::timestamptz, $4::timestamptz - interval '1 hour', interval '1 hour') AS h \
         ORDER BY h \
         ON CONFLICT (listing_id, hour) DO UPDATE SET reserved = listing_hours.reserved + EXCLUDED.reserved",
    )
    .bind::<SqlUuid, _>(listing_id)
    .bind::<Int4, _>(capacity)
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(until)
    .bind::<Int4, _>(gpus)
    .execute(conn)
    .await
}

/// Gives back `gpus` for every hour in [`from`, `until`).
pub async fn release(
    conn: &mut AsyncPgConnection,
    listing_id: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    gpus: i32,
) -> QueryResult<usize> {
    diesel::update(
        listing_hours::table
            .filter(listing_hours::listing_id.eq(listing_id))
            .filter(listing_hours::hour.ge(from))
            .filter(listing_hours::hour.lt(until)),
    )
    .set(listing_hours::reserved.eq(listing_hours::reserved - gpus))
    .execute(conn)
    .await
}

/// Sets the capacity of every hour row; the check refuses going below what is sold.
pub async fn set_capacity(conn: &mut AsyncPgConnection, listing_id: Uuid, capacity: i32) -> QueryResult<usize> {
    diesel::update(listing_hours::table.filter(listing_hours::listing_id.eq(listing_id)))
        .set(listing_hours::capacity.eq(capacity))
        .execute(conn)
        .await
}

/// Whether any GPU is sold outside [`from`, `until`).
pub async fn sold_outside(
    conn: &mut AsyncPgConnection,
    listing_id: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        listing_hours::table
            .filter(listing_hours::listing_id.eq(listing_id))
            .filter(listing_hours::reserved.gt(0))
            .filter(listing_hours::hour.lt(from).or(listing_hours::hour.ge(until))),
    ))
    .get_result(conn)
    .await
}

/// Reserved GPUs per hour in [`from`, `until`), for the hours that have any row.
pub async fn reserved_by_hour(
    conn: &mut AsyncPgConnection,
    listing_id: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<Vec<(DateTime<Utc>, i32)>> {
    listing_hours::table
        .filter(listing_hours::listing_id.eq(listing_id))
        .filter(listing_hours::hour.ge(from))
        .filter(listing_hours::hour.lt(until))
        .order(listing_hours::hour)
        .select((listing_hours::hour, listing_hours::reserved))
        .load(conn)
        .await
}

/// One of a provider's own listings with the GPU-hours sold in it.
#[derive(Debug, Clone, QueryableByName)]
pub struct OwnListing {
    #[diesel(embed)]
    pub listing: ListingRow,
    /// GPU-hours reserved by orders, over the whole window.
    #[diesel(sql_type = BigInt)]
    pub reserved_gpu_hours: i64,
}

/// `provider`'s listings, newest first (by id, which is time-ordered), after
/// the cursor `before`, whatever their status.
pub async fn of_provider(
    conn: &mut AsyncPgConnection,
    provider: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<OwnListing>> {
    diesel::sql_query(
        "SELECT l.*, coalesce((SELECT sum(h.reserved) FROM listing_hours h WHERE h.listing_id = l.id), 0)::int8 \
           AS reserved_gpu_hours \
         FROM listings l \
         WHERE l.provider_org_id = $1 AND ($2::uuid IS NULL OR l.id < $2) \
         ORDER BY l.id DESC LIMIT $3",
    )
    .bind::<SqlUuid, _>(provider)
    .bind::<Nullable<SqlUuid>, _>(before)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// The share of a listing's GPU-hours that is sold, in tenths of a percent
/// rounded down (display only; `None` for a window without hours).
pub fn reserved_per_mille(listing: &ListingRow, reserved_gpu_hours: i64) -> Option<i64> {
    let hours = (listing.available_until - listing.available_from).num_hours();
    let capacity = hours.checked_mul(i64::from(listing.gpus)).filter(|c| *c > 0)?;
    reserved_gpu_hours.checked_mul(1000).map(|r| r / capacity)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchSort {
    Price,
    PriceDesc,
    AvailableFrom,
    /// Estimated kWh per GPU-hour (board power × PUE ÷ 1000), least first.
    Energy,
    /// Price per GPU-hour ÷ declared TFLOPS, least first.
    PricePerTflops,
}

#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub gpu_model: Option<String>,
    pub region: Option<String>,
    pub currency: Option<Currency>,
    pub max_price: Option<Decimal>,
    /// Memory per GPU, at least.
    pub min_memory_gb: Option<i32>,
    pub min_gpus: i32,
    /// The window the GPUs must be free for; the listing's own window from
    /// `now` on when absent.
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct SearchRow {
    #[diesel(embed)]
    pub listing: ListingRow,
    #[diesel(sql_type = Int4)]
    pub free_gpus: i32,
    /// The sort value as SQL computed it (energy and price per TFLOPS sorts),
    /// as text, so a cursor compares exactly what the database compares.
    #[diesel(sql_type = Nullable<Text>)]
    pub sort_key: Option<String>,
}

/// The search cursor: the sort value (price or start, as text) and the id.
pub type SearchCursor = (String, Uuid);

/// Active listings matching `filter` with at least `min_gpus` free in every
/// hour of the window, sorted, after `after`.
pub async fn search(
    conn: &mut AsyncPgConnection,
    filter: &SearchFilter,
    sort: SearchSort,
    now: DateTime<Utc>,
    after: Option<SearchCursor>,
    limit: i64,
) -> QueryResult<Vec<SearchRow>> {
    // The sort value of the energy and price-per-TFLOPS sorts; NULL (no
    // figure declared) sorts last, the cursor's "-" standing for it.
    let key = match sort {
        SearchSort::Energy => "l.board_power_w * coalesce(l.pue, 1) / 1000",
        SearchSort::PricePerTflops => "l.price_per_gpu_hour / l.performance_tflops",
        _ => "NULL::numeric",
    };
    // ('-' is never cast: a folded constant cast would fail the query.)
    let keyed_keyset = format!(
        "(CASE WHEN $10::text = '-' THEN ({key}) IS NULL AND l.id > $11 \
          ELSE ({key}) > nullif($10, '-')::numeric OR (({key}) = nullif($10, '-')::numeric AND l.id > $11) \
               OR ({key}) IS NULL END)"
    );
    let (order, keyset) = match sort {
        SearchSort::Price => {
            ("l.price_per_gpu_hour ASC, l.id ASC", "(l.price_per_gpu_hour, l.id) > ($10::numeric, $11)")
        }
        SearchSort::PriceDesc => {
            ("l.price_per_gpu_hour DESC, l.id DESC", "(l.price_per_gpu_hour, l.id) < ($10::numeric, $11)")
        }
        SearchSort::AvailableFrom => {
            ("l.available_from ASC, l.id ASC", "(l.available_from, l.id) > ($10::timestamptz, $11)")
        }
        SearchSort::Energy | SearchSort::PricePerTflops => {
            ("l.sort_key_n ASC NULLS LAST, l.id ASC", keyed_keyset.as_str())
        }
    };
    let keyset = if after.is_some() { keyset } else { "$10::text IS NULL AND $11::uuid IS NULL" };
    // The window: the one asked for, or the rest of the listing's own.
    let sql = format!(
        "SELECT * FROM ( \
           SELECT l.*, ({key}) AS sort_key_n, ({key})::text AS sort_key, l.gpus - coalesce(( \
               SELECT max(h.reserved) FROM listing_hours h \
               WHERE h.listing_id = l.id \
                 AND h.hour >= coalesce($6, greatest(l.available_from, date_trunc('hour', $9::timestamptz))) \
                 AND h.hour < coalesce($7, l.available_until)), 0) AS free_gpus \
           FROM listings l \
           WHERE l.status = 'active' \
             AND ($1::text IS NULL OR l.gpu_model = $1) \
             AND ($2::text IS NULL OR l.region = $2) \
             AND ($3::text IS NULL OR l.currency = $3) \
             AND ($4::numeric IS NULL OR l.price_per_gpu_hour <= $4) \
             AND ($12::int4 IS NULL OR l.gpu_memory_gb >= $12) \
             AND ($6::timestamptz IS NULL OR l.available_from <= $6) \
             AND ($7::timestamptz IS NULL OR l.available_until >= $7) \
             AND l.available_until > $9 \
             AND {keyset} \
         ) l WHERE l.free_gpus >= $5 \
         ORDER BY {order} LIMIT $8"
    );
    let (cursor_value, cursor_id) = match after {
        Some((v, id)) => (Some(v), Some(id)),
        None => (None, None),
    };
    diesel::sql_query(sql)
        .bind::<Nullable<Text>, _>(&filter.gpu_model)
        .bind::<Nullable<Text>, _>(&filter.region)
        .bind::<Nullable<Text>, _>(&filter.currency)
        .bind::<Nullable<Numeric>, _>(filter.max_price)
        .bind::<Int4, _>(filter.min_gpus)
        .bind::<Nullable<Timestamptz>, _>(filter.start)
        .bind::<Nullable<Timestamptz>, _>(filter.end)
        .bind::<BigInt, _>(limit)
        .bind::<Timestamptz, _>(now)
        .bind::<Nullable<Text>, _>(cursor_value)
        .bind::<Nullable<SqlUuid>, _>(cursor_id)
        .bind::<Nullable<Int4>, _>(filter.min_memory_gb)
        .load(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        format!("2026-12-01T{hour:02}:00:00Z").parse().expect("instant")
    }

    #[test]
    fn only_the_hours_a_window_gains_are_made() {
        // Price or status changed, window the same: nothing to make.
        assert_eq!(gained_spans((at(2), at(8)), (at(2), at(8))), vec![]);
        // Shrunk at both ends: nothing to make.
        assert_eq!(gained_spans((at(2), at(8)), (at(3), at(7))), vec![]);
        // Grown at both ends: the two new spans, not the hours it had.
        assert_eq!(gained_spans((at(2), at(8)), (at(0), at(10))), vec![(at(0), at(2)), (at(8), at(10))]);
        // Moved later, overlapping: the tail.
        assert_eq!(gained_spans((at(2), at(8)), (at(5), at(12))), vec![(at(8), at(12))]);
        // Moved past the old window: all of it.
        assert_eq!(gained_spans((at(2), at(8)), (at(8), at(12))), vec![(at(8), at(12))]);
    }

    fn listing(gpus: i32, hours: i64) -> ListingRow {
        let from: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().expect("instant");
        ListingRow {
            id: Uuid::nil(),
            provider_org_id: Uuid::nil(),
            gpu_model: "H100".into(),
            gpu_memory_gb: 80,
            gpus,
            region: "kr".into(),
            interconnect: None,
            price_per_gpu_hour: Decimal::ONE,
            currency: Currency::Krw,
            available_from: from,
            available_until: from + chrono::TimeDelta::hours(hours),
            min_hours: 1,
            status: ListingStatus::Active,
            created_at: from,
            updated_at: from,
            energy: Default::default(),
        }
    }

    #[test]
    fn the_reserved_share_is_of_all_gpu_hours_rounded_down() {
        // 8 GPUs × 72 hours = 576 GPU-hours; 8 sold is 1.38…%.
        assert_eq!(reserved_per_mille(&listing(8, 72), 8), Some(13));
        assert_eq!(reserved_per_mille(&listing(8, 72), 576), Some(1000));
        assert_eq!(reserved_per_mille(&listing(8, 72), 0), Some(0));
        assert_eq!(reserved_per_mille(&listing(8, 0), 0), None);
    }
}
