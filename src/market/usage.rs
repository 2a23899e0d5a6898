//! Usage metering (issue 12 item 3): what the provider's agent on the machines
//! reports per order and interval, and the utilisation and energy derived
//! from it for an order, a grant and a programme.
//!
//! - [`judge`] decides, without the database, which intervals of a request
//!   are new, which repeat what is stored, and what is refused;
//! - [`figures`] turns metered sums into `utilisation` and `energy_kwh`;
//! - the rest is thin storage: insert, list, and sums per order, grant and
//!   programme (`order_usage`, partitioned by month; see docs/architecture.md).
//!
//! **Definitions.** GPU-hours used = Σ `gpus_in_use` × `utilisation` ×
//! interval length in hours; GPU-hours reserved = the order's `gpus` ×
//! `charged_hours` (all its hours, or the hours begun when it was cancelled).
//! `utilisation` = used ÷ reserved, computed exactly (in GPU-seconds, so no
//! division happens before the last one) and rounded once, half-even, to 4
//! decimal places for display. `energy_kwh` = Σ `energy_wh` ÷ 1000, exact.
//! Both are `null` while nothing has been reported.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Numeric, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::orders::OrderRow;
use crate::db::schema::order_usage;
use crate::http::FieldError;

/// The most intervals one request may carry.
pub const MAX_INTERVALS: usize = 1000;
/// Fraction digits accepted: utilisation, memory (GB) and energy (Wh).
const UTILISATION_DIGITS: u32 = 6;
const MEASURE_DIGITS: u32 = 3;
const SECONDS_PER_HOUR: i64 = 3600;

/// One interval as the provider reports it (decimals as strings).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalInput {
    /// Start (RFC 3339, whole seconds), inside the order's hours.
    pub start: DateTime<Utc>,
    /// End, exclusive (whole seconds), after `start`, not after now.
    pub end: DateTime<Utc>,
    /// GPUs busy in the interval, 0 to the order's `gpus`.
    pub gpus_in_use: i32,
    /// Their mean utilisation, a fraction from `"0"` to `"1"` (up to 6 fraction digits).
    pub utilisation: String,
    /// Mean GPU memory in use, GB (≥ 0, up to 3 fraction digits).
    pub memory_used_gb: String,
    /// Energy drawn by the order's GPUs in the interval, Wh (≥ 0, up to 3 fraction digits).
    pub energy_wh: String,
}

/// A valid interval, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = order_usage, check_for_backend(diesel::pg::Pg))]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpus_in_use: i32,
    pub utilisation: Decimal,
    pub memory_used_gb: Decimal,
    pub energy_wh: Decimal,
}

impl Interval {
    fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// GPU-seconds used: `gpus_in_use × utilisation × seconds`.
    pub fn used_gpu_seconds(&self) -> Option<Decimal> {
        let seconds = Decimal::from((self.end - self.start).num_seconds());
        Decimal::from(self.gpus_in_use).checked_mul(self.utilisation)?.checked_mul(seconds)
    }
}

/// The hours of an order that may be metered: from its start to the end of
/// its charged hours (a cancelled order's cancelled hours are not), and only
/// what has already happened.
#[derive(Debug, Clone, Copy)]
pub struct Meterable {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub gpus: i32,
    pub now: DateTime<Utc>,
}

impl Meterable {
    pub fn of(order: &OrderRow, now: DateTime<Utc>) -> Self {
        Meterable {
            from: order.start_at,
            until: super::orders::hour_at(order, order.charged_hours),
            gpus: order.gpus,
            now,
        }
    }
}

fn parse_measure(raw: &str, digits: u32, max: Option<Decimal>) -> Result<Decimal, String> {
    let value: Decimal = raw.trim().parse().map_err(|_| format!("{raw:?} is not a decimal"))?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err("must not be negative".into());
    }
    if value.normalize().scale() > digits {
        return Err(format!("has more than {digits} fraction digits"));
    }
    if let Some(max) = max
        && value > max
    {
        return Err(format!("must be at most {max}"));
    }
    Ok(value.normalize())
}

/// Checks one interval's own fields against the order; errors name
/// `intervals[index].field`.
fn parse_interval(index: usize, input: &IntervalInput, window: &Meterable) -> Result<Interval, Vec<FieldError>> {
    let field = |name: &str| format!("intervals[{index}].{name}");
    let mut errors = Vec::new();
    for (name, at) in [("start", input.start), ("end", input.end)] {
        if at.timestamp_subsec_nanos() != 0 {
            errors.push(FieldError::new(field(name), "must be a whole second"));
        }
    }
    if input.start >= input.end {
        errors.push(FieldError::new(field("end"), "must be after start"));
    } else if input.start < window.from || input.end > window.until {
        errors.push(FieldError::new(
            field("start"),
            format!(
                "the interval is outside the order's hours [{}, {})",
                window.from.to_rfc3339(),
                window.until.to_rfc3339()
            ),
        ));
    } else if input.end > window.now {
        errors.push(FieldError::new(field("end"), "must not be in the future"));
    }
    if input.gpus_in_use < 0 || input.gpus_in_use > window.gpus {
        errors.push(FieldError::new(field("gpus_in_use"), format!("must be from 0 to the order's {}", window.gpus)));
    }
    let mut measure = |name: &str, raw: &str, digits: u32, max: Option<Decimal>| {
        parse_measure(raw, digits, max).map_err(|e| errors.push(FieldError::new(field(name), e))).ok()
    };
    let utilisation = measure("utilisation", &input.utilisation, UTILISATION_DIGITS, Some(Decimal::ONE));
    let memory = measure("memory_used_gb", &input.memory_used_gb, MEASURE_DIGITS, None);
    let energy = measure("energy_wh", &input.energy_wh, MEASURE_DIGITS, None);
    match (utilisation, memory, energy) {
        (Some(utilisation), Some(memory_used_gb), Some(energy_wh)) if errors.is_empty() => Ok(Interval {
            start: input.start,
            end: input.end,
            gpus_in_use: input.gpus_in_use,
            utilisation,
            memory_used_gb,
            energy_wh,
        }),
        _ => Err(errors),
    }
}

/// Judges a request's intervals against the order and what is already
/// stored for it; returns the intervals to store. All or nothing: any bad
/// interval refuses the request, every problem named by index and field.
///
/// An interval identical to a stored one (same start, end and figures) is a
/// repeat of an earlier report and is accepted without change, so an agent
/// may resend a batch whose answer it lost. One that overlaps a stored
/// interval without being identical, or another interval of the request, is
/// refused: usage is reported once per moment.
pub fn judge(
    window: &Meterable,
    stored: &[Interval],
    asked: &[IntervalInput],
) -> Result<Vec<Interval>, Vec<FieldError>> {
    if asked.is_empty() || asked.len() > MAX_INTERVALS {
        return Err(vec![FieldError::new("intervals", format!("give 1 to {MAX_INTERVALS} intervals"))]);
    }
    let mut errors = Vec::new();
    let mut valid: Vec<(usize, Interval)> = Vec::with_capacity(asked.len());
    for (index, input) in asked.iter().enumerate() {
        match parse_interval(index, input, window) {
            Ok(interval) => valid.push((index, interval)),
            Err(found) => errors.extend(found),
        }
    }
    // By start, each against the one reaching furthest so far: every
    // interval that overlaps an earlier one is named.
    let mut by_start: Vec<&(usize, Interval)> = valid.iter().collect();
    by_start.sort_by_key(|(index, i)| (i.start, *index));
    let mut furthest: Option<&(usize, Interval)> = None;
    for current in by_start {
        if let Some(reach) = furthest
            && reach.1.overlaps(&current.1)
        {
            let (index, other) = (reach.0.max(current.0), reach.0.min(current.0));
            errors.push(FieldError::new(format!("intervals[{index}].start"), format!("overlaps intervals[{other}]")));
        }
        if furthest.is_none_or(|reach| current.1.end > reach.1.end) {
            furthest = Some(current);
        }
    }
    let mut fresh = Vec::with_capacity(valid.len());
    for (index, interval) in valid {
        if stored.contains(&interval) {
            continue;
        }
        if let Some(clash) = stored.iter().find(|s| s.overlaps(&interval)) {
            errors.push(FieldError::new(
                format!("intervals[{index}].start"),
                format!(
                    "overlaps the interval already reported from {} to {} with other figures",
                    clash.start.to_rfc3339(),
                    clash.end.to_rfc3339()
                ),
            ));
            continue;
        }
        fresh.push(interval);
    }
    if errors.is_empty() { Ok(fresh) } else { Err(errors) }
}

/// Metered sums of some orders' intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metered {
    pub used_gpu_seconds: Decimal,
    pub energy_wh: Decimal,
    pub intervals: i64,
}

impl Metered {
    pub fn of(intervals: &[Interval]) -> Option<Self> {
        let mut sum = Metered::default();
        for i in intervals {
            sum.used_gpu_seconds = sum.used_gpu_seconds.checked_add(i.used_gpu_seconds()?)?;
            sum.energy_wh = sum.energy_wh.checked_add(i.energy_wh)?;
            sum.intervals += 1;
        }
        Some(sum)
    }
}

/// Utilisation and energy as the views show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageFigures {
    /// GPU-hours used ÷ GPU-hours reserved, exact.
    pub utilisation: Option<Decimal>,
    pub energy_kwh: Option<Decimal>,
}

impl UsageFigures {
    /// `utilisation` rounded half-even to 4 places, as shown (`"0.2500"`).
    pub fn utilisation_shown(&self) -> Option<String> {
        self.utilisation.map(|u| {
            let mut r = u.round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven);
            r.rescale(4);
            r.to_string()
        })
    }

    /// `energy_kwh` as every energy figure is shown (`market::energy::display`).
    pub fn energy_kwh_shown(&self) -> Option<String> {
        self.energy_kwh.map(super::energy::display)
    }
}

/// The figures of metered sums over `reserved_gpu_hours`: both `None` when
/// nothing was reported; utilisation `None` too when nothing was reserved.
pub fn figures(metered: Option<&Metered>, reserved_gpu_hours: i64) -> UsageFigures {
    let Some(m) = metered.filter(|m| m.intervals > 0) else {
        return UsageFigures::default();
    };
    let reserved_seconds = reserved_gpu_hours.checked_mul(SECONDS_PER_HOUR).map(Decimal::from);
    let utilisation = reserved_seconds.filter(|s| !s.is_zero()).and_then(|s| m.used_gpu_seconds.checked_div(s));
    let energy_kwh = m.energy_wh.checked_div(Decimal::from(1000));
    UsageFigures { utilisation, energy_kwh }
}

/// GPU-hours an order reserved: `gpus × charged_hours`.
pub fn reserved_gpu_hours(order: &OrderRow) -> i64 {
    i64::from(order.gpus) * i64::from(order.charged_hours)
}

// ---- storage ----------------------------------------------------------------

/// The stored intervals of an order overlapping [from, until), by start.
pub async fn stored_between(
    conn: &mut AsyncPgConnection,
    order_id: Uuid,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> QueryResult<Vec<Interval>> {
    order_usage::table
        .filter(order_usage::order_id.eq(order_id))
        .filter(order_usage::start.lt(until))
        .filter(order_usage::end.gt(from))
        .order(order_usage::start)
        .select(Interval::as_select())
        .load(conn)
        .await
}

#[derive(Insertable)]
#[diesel(table_name = order_usage)]
struct NewInterval<'a> {
    order_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    gpus_in_use: i32,
    utilisation: &'a Decimal,
    memory_used_gb: &'a Decimal,
    energy_wh: &'a Decimal,
    reported_by: Option<Uuid>,
    reported_at: DateTime<Utc>,
}

/// Stores judged intervals in one statement.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    order_id: Uuid,
    intervals: &[Interval],
    reported_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    if intervals.is_empty() {
        return Ok(0);
    }
    let rows: Vec<NewInterval<'_>> = intervals
        .iter()
        .map(|i| NewInterval {
            order_id,
            start: i.start,
            end: i.end,
            gpus_in_use: i.gpus_in_use,
            utilisation: &i.utilisation,
            memory_used_gb: &i.memory_used_gb,
            energy_wh: &i.energy_wh,
            reported_by,
            reported_at: now,
        })
        .collect();
    diesel::insert_into(order_usage::table).values(&rows).execute(conn).await
}

#[derive(QueryableByName)]
struct MeteredRow {
    #[diesel(sql_type = SqlUuid)]
    key: Uuid,
    #[diesel(sql_type = Numeric)]
    used_gpu_seconds: Decimal,
    #[diesel(sql_type = Numeric)]
    energy_wh: Decimal,
    #[diesel(sql_type = BigInt)]
    intervals: i64,
}

const METERED_COLUMNS: &str = "sum(u.gpus_in_use * u.utilisation * extract(epoch FROM u.\"end\" - u.start)) AS used_gpu_seconds, \
     sum(u.energy_wh) AS energy_wh, count(*) AS intervals";

async fn metered_by(conn: &mut AsyncPgConnection, sql: String, ids: &[Uuid]) -> QueryResult<HashMap<Uuid, Metered>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<MeteredRow> = diesel::sql_query(sql).bind::<Array<SqlUuid>, _>(ids).load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (r.key, Metered { used_gpu_seconds: r.used_gpu_seconds, energy_wh: r.energy_wh, intervals: r.intervals })
        })
        .collect())
}

/// Metered sums per order, for a page of orders in one query.
pub async fn metered_by_order(conn: &mut AsyncPgConnection, order_ids: &[Uuid]) -> QueryResult<HashMap<Uuid, Metered>> {
    let sql =
        format!("SELECT u.order_id AS key, {METERED_COLUMNS} FROM order_usage u WHERE u.order_id = ANY($1) GROUP BY 1");
    metered_by(conn, sql, order_ids).await
}

/// The figures of each order of `orders` (a page of them in one query).
pub async fn figures_of_orders(
    conn: &mut AsyncPgConnection,
    orders: &[OrderRow],
) -> QueryResult<HashMap<Uuid, UsageFigures>> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let metered = metered_by_order(conn, &ids).await?;
    Ok(orders.iter().map(|o| (o.id, figures(metered.get(&o.id), reserved_gpu_hours(o)))).collect())
}

#[derive(QueryableByName)]
struct ReservedRow {
    #[diesel(sql_type = SqlUuid)]
    key: Uuid,
    #[diesel(sql_type = BigInt)]
    gpu_hours: i64,
}

/// Figures per grant, over the orders each funded: two queries for any number of grants.
pub async fn figures_of_grants(
    conn: &mut AsyncPgConnection,
    grant_ids: &[Uuid],
) -> QueryResult<HashMap<Uuid, UsageFigures>> {
    if grant_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT o.grant_id AS key, {METERED_COLUMNS} FROM order_usage u JOIN orders o ON o.id = u.order_id \
         WHERE o.grant_id = ANY($1) GROUP BY 1"
    );
    let metered = metered_by(conn, sql, grant_ids).await?;
    let reserved: Vec<ReservedRow> = diesel::sql_query(
        "SELECT grant_id AS key, sum(gpus::bigint * charged_hours)::bigint AS gpu_hours FROM orders \
         WHERE grant_id = ANY($1) GROUP BY 1",
    )
    .bind::<Array<SqlUuid>, _>(grant_ids)
    .load(conn)
    .await?;
    let reserved: HashMap<Uuid, i64> = reserved.into_iter().map(|r| (r.key, r.gpu_hours)).collect();
    Ok(grant_ids.iter().map(|g| (*g, figures(metered.get(g), reserved.get(g).copied().unwrap_or(0)))).collect())
}

/// Figures of a programme, over the orders its grants funded.
pub async fn figures_of_programme(conn: &mut AsyncPgConnection, programme_id: Uuid) -> QueryResult<UsageFigures> {
    let sql = format!(
        "SELECT g.programme_id AS key, {METERED_COLUMNS} FROM order_usage u JOIN orders o ON o.id = u.order_id \
         JOIN grants g ON g.id = o.grant_id WHERE g.programme_id = ANY($1) GROUP BY 1"
    );
    let metered = metered_by(conn, sql, &[programme_id]).await?;
    let reserved: Vec<ReservedRow> = diesel::sql_query(
        "SELECT g.programme_id AS key, sum(o.gpus::bigint * o.charged_hours)::bigint AS gpu_hours \
         FROM orders o JOIN grants g ON g.id = o.grant_id WHERE g.programme_id = $1 GROUP BY 1",
    )
    .bind::<SqlUuid, _>(programme_id)
    .load(conn)
    .await?;
    let reserved = reserved.iter().map(|r| r.gpu_hours).sum();
    Ok(figures(metered.get(&programme_id), reserved))
}

/// Makes the partitions of `order_usage` for the month of `now` and the
/// `months` after it (see the migration's `gpuhour_usage_partitions_ahead`);
/// returns how many were made.
pub async fn ensure_partitions(conn: &mut AsyncPgConnection, now: DateTime<Utc>, months: i32) -> QueryResult<i32> {
    #[derive(QueryableByName)]
    struct Made {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        made: i32,
    }
    let made: Made = diesel::sql_query("SELECT gpuhour_usage_partitions_ahead($1, $2) AS made")
        .bind::<diesel::sql_types::Date, _>(now.date_naive())
        .bind::<diesel::sql_types::Integer, _>(months + 1)
        .get_result(conn)
        .await?;
    Ok(made.made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("instant") + chrono::Duration::hours(hour)
    }

    fn window() -> Meterable {
        Meterable { from: at(0), until: at(10), gpus: 2, now: at(20) }
    }

    fn input(start: i64, end: i64, gpus: i32, utilisation: &str, energy: &str) -> IntervalInput {
        IntervalInput {
            start: at(start),
            end: at(end),
            gpus_in_use: gpus,
            utilisation: utilisation.into(),
            memory_used_gb: "40.5".into(),
            energy_wh: energy.into(),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn good_intervals_are_taken_in_full() {
        let asked = [input(0, 1, 2, "0.5", "700"), input(1, 2, 1, "1", "350.125")];
        let taken = judge(&window(), &[], &asked).expect("valid");
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[1].energy_wh, "350.125".parse::<Decimal>().expect("decimal"));
    }

    #[test]
    fn each_bad_interval_is_named_by_index_and_field() {
        let asked = [
            input(0, 1, 3, "0.5", "1"),        // more GPUs than the order
            input(1, 2, 2, "1.5", "1"),        // utilisation over 1
            input(2, 3, 2, "0.5", "-1"),       // negative energy
            input(9, 11, 2, "0.5", "1"),       // past the order's end
            input(4, 4, 2, "0.5", "1"),        // empty
            input(5, 6, -1, "0.1234567", "1"), // negative GPUs, too many digits
        ];
        let errors = fields(judge(&window(), &[], &asked).expect_err("refused"));
        assert_eq!(
            errors,
            [
                "intervals[0].gpus_in_use",
                "intervals[1].utilisation",
                "intervals[2].energy_wh",
                "intervals[3].start",
                "intervals[4].end",
                "intervals[5].gpus_in_use",
                "intervals[5].utilisation",
            ]
        );
    }

    #[test]
    fn the_future_and_cancelled_hours_cannot_be_metered() {
        let running = Meterable { now: at(3), ..window() };
        assert_eq!(
            fields(judge(&running, &[], &[input(2, 4, 1, "1", "1")]).expect_err("future")),
            ["intervals[0].end"]
        );
        let cancelled = Meterable { until: at(3), ..window() };
        assert_eq!(
            fields(judge(&cancelled, &[], &[input(3, 4, 1, "1", "1")]).expect_err("cancelled hour")),
            ["intervals[0].start"]
        );
    }

    #[test]
    fn overlaps_are_refused_and_repeats_are_idempotent() {
        let stored = judge(&window(), &[], &[input(0, 2, 2, "0.5", "10")]).expect("first");
        // The same interval again: nothing new, no error.
        assert_eq!(judge(&window(), &stored, &[input(0, 2, 2, "0.50", "10.0")]).expect("repeat"), vec![]);
        // Another interval over it: refused.
        let errors = judge(&window(), &stored, &[input(2, 3, 2, "0.5", "1"), input(1, 3, 2, "0.5", "1")]);
        assert_eq!(fields(errors.expect_err("overlap")), ["intervals[1].start", "intervals[1].start"]);
        // Two intervals of one request over each other.
        let errors = judge(&window(), &[], &[input(3, 5, 2, "0.5", "1"), input(4, 6, 2, "0.5", "1")]);
        assert_eq!(fields(errors.expect_err("overlap")), ["intervals[1].start"]);
        // A long one over two short ones names both.
        let errors = judge(
            &window(),
            &[],
            &[input(3, 4, 2, "0.5", "1"), input(0, 9, 2, "0.5", "1"), input(5, 6, 2, "0.5", "1")],
        );
        assert_eq!(fields(errors.expect_err("overlap")), ["intervals[1].start", "intervals[2].start"]);
    }

    #[test]
    fn sub_second_instants_and_empty_or_huge_requests_are_refused() {
        let mut odd = input(0, 1, 1, "1", "1");
        odd.start += chrono::Duration::milliseconds(500);
        assert_eq!(fields(judge(&window(), &[], &[odd]).expect_err("subsecond")), ["intervals[0].start"]);
        assert_eq!(fields(judge(&window(), &[], &[]).expect_err("empty")), ["intervals"]);
        let many: Vec<IntervalInput> = (0..=MAX_INTERVALS).map(|_| input(0, 1, 1, "1", "1")).collect();
        assert_eq!(fields(judge(&window(), &[], &many).expect_err("too many")), ["intervals"]);
    }

    #[test]
    fn utilisation_is_used_over_reserved_gpu_hours() {
        // 2 GPUs × 10 h reserved; 5 h reported at 2 GPUs × 0.5: 5 GPU-hours used.
        let intervals: Vec<Interval> =
            judge(&window(), &[], &(0..5).map(|h| input(h, h + 1, 2, "0.5", "1250.5")).collect::<Vec<_>>())
                .expect("valid");
        let metered = Metered::of(&intervals).expect("sums");
        let f = figures(Some(&metered), 20);
        assert_eq!(f.utilisation, Some("0.25".parse().expect("decimal")));
        assert_eq!(f.utilisation_shown().as_deref(), Some("0.2500"));
        assert_eq!(f.energy_kwh_shown().as_deref(), Some("6.2525"));
        assert_eq!(figures(None, 20), UsageFigures::default());
    }

    #[test]
    fn utilisation_is_rounded_half_even_only_when_shown() {
        // 1 GPU-second of 3 GPU-hours: 1/10800 = 0.0000925… → 0.0001.
        let m = Metered { used_gpu_seconds: Decimal::ONE, energy_wh: Decimal::ZERO, intervals: 1 };
        assert_eq!(figures(Some(&m), 3).utilisation_shown().as_deref(), Some("0.0001"));
        // Exactly half-way at the fifth place: 0.00005 rounds to the even 0.0000.
        let half = Metered { used_gpu_seconds: Decimal::new(18, 1), energy_wh: Decimal::ZERO, intervals: 1 };
        assert_eq!(figures(Some(&half), 10).utilisation_shown().as_deref(), Some("0.0000"));
        assert_eq!(figures(Some(&m), 0).utilisation, None);
    }
}
