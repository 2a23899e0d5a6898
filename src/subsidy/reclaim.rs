//! Reclaim (issue 12 item 4): a programme's rule flags grants whose
//! subsidised orders leave their GPUs idle, and finance takes back what such
//! a grant has not yet used.
//!
//! **The rule** (`reclaim_below_utilisation` u, `reclaim_window_hours` W, on
//! the programme), judged by [`judge`] at an instant `now`:
//! - a grant is judged only once W hours have fully elapsed since the first
//!   hour of its first order began (`first start + W ≤ now`);
//! - the window is `[now − W, now)`: only hours that have already elapsed;
//! - GPU-seconds reserved in it = Σ over the grant's orders of `gpus` × the
//!   seconds of the window inside the order's charged hours (a cancelled
//!   order's cancelled hours are not reserved);
//! - GPU-seconds used in it = Σ over reported intervals of `gpus_in_use` ×
//!   `utilisation` × the seconds of the interval inside the window (an
//!   interval reaching over the window's edge counts pro rata); hours nobody
//!   reported count as unused;
//! - the grant is flagged when something was reserved in the window and
//!   used ÷ reserved < u (exact decimals, no rounding).
//!
//! A flagged grant stays flagged (once per grant: the job only looks at
//! unflagged active grants, and the update that flags checks it again) and
//! its `grant.flagged` event is written in the same transaction.
//!
//! **Reclaiming** ([`reclaim`]) cancels every future hour of the grant's
//! orders exactly as `POST /v1/orders/{id}/cancel` would (hours begun are
//! charged, the rest voided: the tenant's share back to its wallet, the
//! subsidy's back to the grant), then closes the grant as `POST
//! /v1/grants/{id}/close` does (what it has left goes back to the programme's
//! unallocated budget), in one transaction.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::programmes::{self, GrantError, GrantRow, GrantStatus, ProgrammeRow};
use super::rules::parse_rate;
use crate::db::DbPoolError;
use crate::db::schema::{grants, order_usage, orders, programmes as programmes_table};
use crate::events::{EventType, NewEvent};
use crate::http::FieldError;
use crate::ledger::LedgerError;
use crate::ledger::model::Actor;
use crate::market::orders::{OrderRow, OrderStatus};
use crate::market::settlement::{self, SettleError};

/// The longest window a rule may look back over: 30 days.
pub const MAX_WINDOW_HOURS: i32 = 720;

/// A programme's reclaim rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReclaimRule {
    pub below_utilisation: Decimal,
    pub window_hours: i32,
}

impl ReclaimRule {
    pub fn of(programme: &ProgrammeRow) -> Option<Self> {
        Some(ReclaimRule {
            below_utilisation: programme.reclaim_below_utilisation?,
            window_hours: programme.reclaim_window_hours?,
        })
    }
}

/// Reads the rule of `POST /v1/programmes`: both fields or neither.
pub fn parse_rule(below: Option<&str>, window: Option<i32>, errors: &mut Vec<FieldError>) -> Option<ReclaimRule> {
    match (below, window) {
        (None, None) => None,
        (Some(_), None) => {
            errors.push(FieldError::new("reclaim_window_hours", "give it with reclaim_below_utilisation, or neither"));
            None
        }
        (None, Some(_)) => {
            errors.push(FieldError::new("reclaim_below_utilisation", "give it with reclaim_window_hours, or neither"));
            None
        }
        (Some(raw), Some(hours)) => {
            let below = parse_rate(raw).map_err(|e| errors.push(FieldError::new("reclaim_below_utilisation", e))).ok();
            if !(1..=MAX_WINDOW_HOURS).contains(&hours) {
                errors.push(FieldError::new("reclaim_window_hours", format!("must be 1 to {MAX_WINDOW_HOURS} hours")));
                return None;
            }
            Some(ReclaimRule { below_utilisation: below?, window_hours: hours })
        }
    }
}

/// Stores a new programme's rule (in its creating transaction).
pub async fn set_rule(
    conn: &mut AsyncPgConnection,
    programme: ProgrammeRow,
    rule: Option<ReclaimRule>,
) -> QueryResult<ProgrammeRow> {
    let Some(rule) = rule else { return Ok(programme) };
    diesel::update(programmes_table::table.find(programme.id))
        .set((
            programmes_table::reclaim_below_utilisation.eq(rule.below_utilisation),
            programmes_table::reclaim_window_hours.eq(rule.window_hours),
        ))
        .returning(ProgrammeRow::as_returning())
        .get_result(conn)
        .await
}

/// An order's charged hours: `[from, until)` on `gpus` GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub gpus: i32,
}

/// A reported interval, as the rule reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpus_in_use: i32,
    pub utilisation: Decimal,
}

/// What the rule finds for a grant at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No order has begun, or W hours have not yet passed since the first did.
    TooEarly,
    /// Nothing was reserved in the window: no idle GPUs to take back.
    NothingReserved,
    /// Utilisation over the window (exact) at or above the threshold.
    Within(Decimal),
    /// Below the threshold: flag it.
    Below { utilisation: Decimal, from: DateTime<Utc>, until: DateTime<Utc> },
}

fn overlap_seconds(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> i64 {
    let start = a.0.max(b.0);
    let end = a.1.min(b.1);
    if end > start { (end - start).num_seconds() } else { 0 }
}

/// The rule, as a plain function (see the module's documentation); `None`
/// only if a sum overflowed (never with real figures: the job logs it).
pub fn judge(rule: ReclaimRule, now: DateTime<Utc>, held: &[Held], used: &[Used]) -> Option<Verdict> {
    let window = TimeDelta::hours(i64::from(rule.window_hours));
    let Some(first) = held.iter().map(|h| h.from).min() else { return Some(Verdict::TooEarly) };
    if now < first + window {
        return Some(Verdict::TooEarly);
    }
    let span = (now - window, now);
    let mut reserved = Decimal::ZERO;
    for h in held {
        let gpu_seconds = i64::from(h.gpus).checked_mul(overlap_seconds((h.from, h.until), span))?;
        reserved = reserved.checked_add(Decimal::from(gpu_seconds))?;
    }
    if reserved.is_zero() {
        return Some(Verdict::NothingReserved);
    }
    let mut busy = Decimal::ZERO;
    for u in used {
        let seconds = Decimal::from(overlap_seconds((u.start, u.end), span));
        busy = busy.checked_add(Decimal::from(u.gpus_in_use).checked_mul(u.utilisation)?.checked_mul(seconds)?)?;
    }
    let utilisation = busy.checked_div(reserved)?;
    Some(if utilisation < rule.below_utilisation {
        Verdict::Below { utilisation, from: span.0, until: span.1 }
    } else {
        Verdict::Within(utilisation)
    })
}

fn flag_reason(rule: ReclaimRule, utilisation: Decimal, from: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let shown = crate::market::usage::UsageFigures { utilisation: Some(utilisation), energy_kwh: None };
    format!(
        "utilisation {} from {} to {} is below the programme's {} over {} hours",
        shown.utilisation_shown().unwrap_or_default(),
        from.to_rfc3339(),
        until.to_rfc3339(),
        rule.below_utilisation.normalize(),
        rule.window_hours
    )
}

/// Judges one grant and flags it if the rule says so, in the caller's
/// transaction; returns the flagged row.
async fn judge_and_flag(
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    rule: ReclaimRule,
    now: DateTime<Utc>,
) -> Result<Option<GrantRow>, GrantError> {
    let held: Vec<Held> = orders::table
        .filter(orders::grant_id.eq(grant_id))
        .filter(orders::charged_hours.gt(0))
        .select(OrderRow::as_select())
        .load::<OrderRow>(conn)
        .await?
        .iter()
        .map(|o| Held { from: o.start_at, until: crate::market::orders::hour_at(o, o.charged_hours), gpus: o.gpus })
        .collect();
    let from = now - TimeDelta::hours(i64::from(rule.window_hours));
    let used: Vec<Used> = order_usage::table
        .inner_join(orders::table.on(orders::id.eq(order_usage::order_id)))
        .filter(orders::grant_id.eq(grant_id))
        .filter(order_usage::end.gt(from))
        .filter(order_usage::start.lt(now))
        .select((order_usage::start, order_usage::end, order_usage::gpus_in_use, order_usage::utilisation))
        .load::<(DateTime<Utc>, DateTime<Utc>, i32, Decimal)>(conn)
        .await?
        .into_iter()
        .map(|(start, end, gpus_in_use, utilisation)| Used { start, end, gpus_in_use, utilisation })
        .collect();
    let verdict = judge(rule, now, &held, &used);
    if verdict.is_none() {
        tracing::warn!(%grant_id, "the reclaim rule's sums overflowed; the grant is not judged");
    }
    let Some(Verdict::Below { utilisation, from, until }) = verdict else {
        return Ok(None);
    };
    // Checked again as it is written: another process's job may have flagged
    // it since this one looked, and a grant is flagged once.
    let flagged: Option<GrantRow> = diesel::update(
        grants::table
            .find(grant_id)
            .filter(grants::flagged_at.is_null())
            .filter(grants::status.eq(GrantStatus::Active)),
    )
    .set((grants::flagged_at.eq(now), grants::flag_reason.eq(flag_reason(rule, utilisation, from, until))))
    .returning(GrantRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    Ok(flagged)
}

/// Flags every active, unflagged grant whose programme has a rule and whose
/// orders fall below it at `now`, each in its own transaction with its
/// `grant.flagged` event. Returns the grants flagged. The periodic job of
/// `gpuhour serve` runs it; tests call it.
pub async fn flag_grants(pool: &crate::db::DbPool, clock: crate::clock::Clock) -> Result<Vec<Uuid>, ReclaimError> {
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    let candidates: Vec<(Uuid, Option<Decimal>, Option<i32>)> = grants::table
        .inner_join(programmes_table::table.on(programmes_table::id.eq(grants::programme_id)))
        .filter(grants::status.eq(GrantStatus::Active))
        .filter(grants::flagged_at.is_null())
        .filter(programmes_table::reclaim_window_hours.is_not_null())
        .order(grants::id)
        .select((grants::id, programmes_table::reclaim_below_utilisation, programmes_table::reclaim_window_hours))
        .load(&mut conn)
        .await?;
    let mut flagged = Vec::new();
    for (grant_id, below, window) in candidates {
        let (Some(below_utilisation), Some(window_hours)) = (below, window) else { continue };
        let rule = ReclaimRule { below_utilisation, window_hours };
        let done = crate::db::transaction(&mut conn, async |c| {
            let Some(row) = judge_and_flag(c, grant_id, rule, now).await? else { return Ok(None) };
            let view = super::routes::grant_views(c, vec![row.clone()])
                .await?
                .pop()
                .ok_or_else(|| GrantError::Ledger(LedgerError::Corrupt("a grant vanished".into())))?;
            let data = serde_json::value::to_raw_value(&view).map_err(ReclaimError::EventData)?;
            crate::events::record(
                c,
                NewEvent::new(EventType::GrantFlagged, now, row.id, vec![row.tenant_org_id], data),
            )
            .await?;
            Ok::<_, ReclaimError>(Some(row.id))
        })
        .await?;
        flagged.extend(done);
    }
    Ok(flagged)
}

/// The periodic job of `gpuhour serve`: keeps `order_usage`'s coming months'
/// partitions made, and flags grants under their programme's rule, every `interval`.
pub async fn run_usage_jobs(pool: crate::db::DbPool, clock: crate::clock::Clock, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match pool.get().await {
            Ok(mut conn) => {
                let made = match clock.now(&mut conn).await {
                    Ok(now) => crate::market::usage::ensure_partitions(&mut conn, now, 3).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = made {
                    tracing::warn!(error = ?e, "making order_usage partitions failed; retrying at the next tick");
                }
            }
            Err(e) => tracing::warn!(error = ?e, "no connection for the usage jobs"),
        }
        match flag_grants(&pool, clock).await {
            Ok(done) if !done.is_empty() => tracing::info!(grants = done.len(), "grants flagged for reclaim"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "flagging grants failed; retrying at the next tick"),
        }
    }
}

/// Why a reclaim is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReclaimError {
    #[error("grant {0} does not exist")]
    GrantNotFound(Uuid),
    #[error("the grant is already closed")]
    AlreadyClosed,
    /// An order naming the grant was placed while it was being reclaimed.
    #[error("an order was placed on this grant while it was being reclaimed; retry")]
    OrderPlacedMeanwhile,
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// The `grant.flagged` event's data could not be made of the grant's view.
    #[error("the grant's view could not be serialised")]
    EventData(#[source] serde_json::Error),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] DbPoolError),
}

/// What a reclaim did.
#[derive(Debug)]
pub struct Reclaimed {
    pub grant: GrantRow,
    pub cancelled: Vec<OrderRow>,
}

/// Orders of a grant with hours not yet begun at `now`, by id.
async fn orders_with_future_hours(
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Uuid>> {
    orders::table
        .filter(orders::grant_id.eq(grant_id))
        .filter(orders::status.eq_any([OrderStatus::Reserved, OrderStatus::Active]))
        // The last hour begins at end − 1 h (an hour under way counts as
        // begun): before that instant some hour is still to come.
        .filter(orders::end_at.gt(now + TimeDelta::hours(1)))
        .order(orders::id)
        .select(orders::id)
        .load(conn)
        .await
}

/// Reclaims a grant (see the module's documentation), in the caller's transaction.
pub async fn reclaim(
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    reason: &str,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<Reclaimed, ReclaimError> {
    let grant = super::programmes::lock_grant(conn, grant_id).await?.ok_or(ReclaimError::GrantNotFound(grant_id))?;
    if grant.status != GrantStatus::Active {
        return Err(ReclaimError::AlreadyClosed);
    }
    let mut cancelled = Vec::new();
    for order_id in orders_with_future_hours(conn, grant.id, now).await? {
        let tenant = grant.tenant_org_id;
        match settlement::cancel(conn, order_id, crate::auth::OrgId(tenant), actor, now).await {
            Ok(order) => cancelled.push(order),
            // Ended, or its last hour began, since it was read: nothing to take back.
            Err(SettleError::AlreadyEnded(_) | SettleError::NothingLeftToCancel) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let closed = programmes::close_grant(conn, grant.id, actor, now).await?;
    // An order placed on the grant by a batch that read it active before this
    // transaction locked it: refuse rather than leave its hours funded.
    if !orders_with_future_hours(conn, grant.id, now).await?.is_empty() {
        return Err(ReclaimError::OrderPlacedMeanwhile);
    }
    let grant = diesel::update(grants::table.find(closed.id))
        .set((grants::reclaimed_at.eq(now), grants::reclaim_reason.eq(reason)))
        .returning(GrantRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(Reclaimed { grant, cancelled })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("instant") + TimeDelta::hours(hour)
    }

    fn rule() -> ReclaimRule {
        ReclaimRule { below_utilisation: "0.2".parse().expect("decimal"), window_hours: 72 }
    }

    fn used(from: i64, to: i64, gpus: i32, utilisation: &str) -> Used {
        Used { start: at(from), end: at(to), gpus_in_use: gpus, utilisation: utilisation.parse().expect("decimal") }
    }

    #[test]
    fn a_grant_is_judged_only_once_the_window_has_elapsed_since_its_first_order_began() {
        let held = [Held { from: at(0), until: at(100), gpus: 2 }];
        assert_eq!(judge(rule(), at(71), &held, &[]).expect("sums"), Verdict::TooEarly);
        assert_eq!(
            judge(rule(), at(72), &held, &[]).expect("sums"),
            Verdict::Below { utilisation: Decimal::ZERO, from: at(0), until: at(72) }
        );
        assert_eq!(judge(rule(), at(500), &[], &[]).expect("sums"), Verdict::TooEarly);
    }

    #[test]
    fn only_elapsed_reserved_hours_in_the_window_count() {
        // 2 GPUs from hour 0 to 100; at hour 80 the window is [8, 80): 144 GPU-hours reserved.
        let held = [Held { from: at(0), until: at(100), gpus: 2 }];
        // 28.8 GPU-hours used in the window (36 h × 2 × 0.4): 0.2 exactly, not below.
        let exactly = [used(8, 44, 2, "0.4")];
        assert_eq!(
            judge(rule(), at(80), &held, &exactly).expect("sums"),
            Verdict::Within("0.2".parse().expect("decimal"))
        );
        // An interval reaching over the window's start counts pro rata: [0, 44) has 36 h inside.
        let straddling = [used(0, 44, 2, "0.4")];
        assert_eq!(
            judge(rule(), at(80), &held, &straddling).expect("sums"),
            Verdict::Within("0.2".parse().expect("decimal"))
        );
        // A little less is below.
        let less = [used(8, 43, 2, "0.4")];
        assert!(matches!(judge(rule(), at(80), &held, &less).expect("sums"), Verdict::Below { .. }));
    }

    #[test]
    fn cancelled_or_ended_hours_reserve_nothing() {
        // The order ended at hour 10; at hour 100 the window [28, 100) holds none of it.
        let held = [Held { from: at(0), until: at(10), gpus: 4 }];
        assert_eq!(judge(rule(), at(100), &held, &[]).expect("sums"), Verdict::NothingReserved);
    }

    #[test]
    fn the_rule_is_both_fields_or_neither() {
        let mut errors = Vec::new();
        assert_eq!(parse_rule(None, None, &mut errors), None);
        assert_eq!(parse_rule(Some("0.2"), Some(72), &mut errors), Some(rule()));
        assert!(errors.is_empty());
        for (below, window, field) in [
            (Some("0.2"), None, "reclaim_window_hours"),
            (None, Some(72), "reclaim_below_utilisation"),
            (Some("1.5"), Some(72), "reclaim_below_utilisation"),
            (Some("0"), Some(72), "reclaim_below_utilisation"),
            (Some("0.2"), Some(0), "reclaim_window_hours"),
            (Some("0.2"), Some(721), "reclaim_window_hours"),
        ] {
            let mut errors = Vec::new();
            assert_eq!(parse_rule(below, window, &mut errors), None);
            assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), [field], "{below:?} {window:?}");
        }
    }
}
