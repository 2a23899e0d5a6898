//! Settlement, cancellation and outage credits: everything that later resolves
//! an order's pending postings. Each works in one transaction, locking the
//! order rows first (several at once by ascending id: a settlement batch, an
//! outage's orders), then capacity, then the ledger.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::listings;
use super::orders::{self, OrderRow, OrderStatus};
use super::schedule::{PostingSchedule, hours_begun, hours_elapsed};
use crate::auth::OrgId;
use crate::db::DbPoolError;
use crate::db::schema::{order_hour_credits, orders as orders_table};
use crate::events::EventType;
use crate::ledger::LedgerError;
use crate::ledger::chart;
use crate::ledger::model::{Actor, EntryKind};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;

/// Why settling, cancelling or crediting an order failed. The HTTP answer of
/// each is chosen at the edge (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// No such order, or not the caller's (the same answer: no existence leak).
    #[error("order {0} does not exist")]
    OrderNotFound(Uuid),
    #[error("the order is already {0}")]
    AlreadyEnded(OrderStatus),
    #[error("every hour of this order has begun: there is nothing left to cancel")]
    NothingLeftToCancel,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("database pool error")]
    Pool(#[from] DbPoolError),
}

/// One order's settlement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Settled {
    pub order_id: Uuid,
    /// Hours settled by this run.
    pub hours: i32,
    pub settled_hours: i32,
    pub status: OrderStatus,
    /// One `settlement` entry per hour settled, dated at the hour's start (the
    /// hour it pays for); an hour whose shares were all credited has none.
    pub journal_entry_ids: Vec<Uuid>,
}

/// Orders with an elapsed, unsettled hour at `now`, or reserved ones whose
/// first hour has begun (ids only; each is then settled under its own lock).
pub async fn due(conn: &mut AsyncPgConnection, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<Uuid>> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let rows: Vec<Due> = diesel::sql_query(
        "SELECT id FROM orders \
         WHERE status IN ('reserved', 'active') AND start_at <= $1 \
           AND (status = 'reserved' OR start_at + (settled_hours + 1) * interval '1 hour' <= $1) \
         ORDER BY start_at LIMIT $2",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Settles one order up to `now`, if another settler does not hold it already
/// (`SKIP LOCKED`: settlers on several processes share the work, never repeat it).
pub async fn settle_order(
    conn: &mut AsyncPgConnection,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Settled>, SettleError> {
    Ok(settle_orders(conn, &[order_id], now).await?.pop())
}

/// Settles the orders `ids` up to `now` in the caller's transaction, in a fixed
/// number of statements whatever their number: their rows locked at once (by
/// id; those another settler holds are skipped), their hour credits and
/// pending postings read at once, every hour's entry posted with one
/// `post_entries`, their progress written and their events recorded at once.
/// Each order's entries are those `settle_order` would have posted alone.
/// Returns the orders that settled an hour, in the order of `ids`.
pub async fn settle_orders(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Settled>, SettleError> {
    let locked: Vec<OrderRow> = orders_table::table
        .filter(orders_table::id.eq_any(ids))
        .order(orders_table::id)
        .select(OrderRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let mut by_id: HashMap<Uuid, OrderRow> = locked.into_iter().map(|o| (o.id, o)).collect();
    // In the caller's order (the settler's: oldest start first), each order once.
    let orders: Vec<OrderRow> = ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .filter(|o| o.status == OrderStatus::Reserved || o.status == OrderStatus::Active)
        .collect();

    // What changes for each order: the hours it settles up to (`upto`), or,
    // with none to settle (`upto` = its `settled_hours`), only its start.
    let changing: Vec<(&OrderRow, i32)> = orders
        .iter()
        .map(|o| (o, hours_elapsed(o.start_at, now, o.charged_hours)))
        .filter(|&(o, upto)| upto > o.settled_hours || (now >= o.start_at && o.status == OrderStatus::Reserved))
        .map(|(o, upto)| (o, upto.max(o.settled_hours)))
        .collect();
    if changing.is_empty() {
        return Ok(Vec::new());
    }

    let settling: Vec<&OrderRow> =
        changing.iter().filter(|(o, upto)| *upto > o.settled_hours).map(|(o, _)| *o).collect();
    let mut credits = hour_credits_of_many(conn, &settling).await?;
    let reservations: Vec<Uuid> = settling.iter().map(|o| o.journal_entry_id).collect();
    let mut pendings = ledger_store::pending_progress_of_many(conn, &reservations).await?;
    // An hour in a closed period is settled in the open one: the closed
    // period's books are final (the database refuses entries dated in it).
    let open_from = if changing.iter().any(|(o, upto)| !hours_to_settle(o, *upto).is_empty()) {
        crate::ledger::periods::closed_until(conn).await?
    } else {
        None
    };
    let mut entries = Vec::new();
    // How many of `entries` each of `changing` posts, in turn.
    let mut entry_counts = Vec::with_capacity(changing.len());
    for &(order, upto) in &changing {
        let credits = credits.remove(&order.id).unwrap_or_default();
        let mut progress = pendings.remove(&order.journal_entry_id).unwrap_or_default();
        let own = settlement_entries(order, &credits, &mut progress, upto, open_from);
        entry_counts.push(own.len());
        entries.extend(own);
    }
    let mut posted = ledger_posting::post_entries(conn, entries).await?.into_iter().map(|e| e.id);

    let status_after = |o: &OrderRow, upto: i32| {
        if upto > o.settled_hours && upto >= o.charged_hours { OrderStatus::Completed } else { OrderStatus::Active }
    };
    let mut progress: Vec<(Uuid, i32, OrderStatus)> =
        changing.iter().map(|&(o, upto)| (o.id, upto, status_after(o, upto))).collect();
    progress.sort_unstable_by_key(|(id, _, _)| *id);
    let mut updated: HashMap<Uuid, OrderRow> =
        set_progress(conn, &progress).await?.into_iter().map(|o| (o.id, o)).collect();

    // `order.started` and `order.completed` go with the status changes that
    // mean them, made under the orders' row locks: an order leaves `reserved`
    // and reaches `completed` once each, whichever settler gets there.
    let mut events = Vec::new();
    let mut settled = Vec::with_capacity(settling.len());
    for (&(order, upto), count) in changing.iter().zip(entry_counts) {
        let row = updated
            .remove(&order.id)
            .ok_or_else(|| LedgerError::Corrupt(format!("order {} vanished while settled", order.id)))?;
        if order.status == OrderStatus::Reserved {
            events.push((EventType::OrderStarted, row.clone()));
        }
        if upto == order.settled_hours {
            continue;
        }
        settled.push(Settled {
            order_id: order.id,
            hours: upto - order.settled_hours,
            settled_hours: upto,
            status: row.status,
            journal_entry_ids: posted.by_ref().take(count).collect(),
        });
        if row.status == OrderStatus::Completed {
            events.push((EventType::OrderCompleted, row));
        }
    }
    record_order_events(conn, events, now).await?;
    Ok(settled)
}

/// The hours of `order` that settling it up to `upto` settles: from its
/// `settled_hours` up to `upto` (never past its last hour).
fn hours_to_settle(order: &OrderRow, upto: i32) -> std::ops::Range<i32> {
    order.settled_hours..upto.min(order.hours)
}

/// What settling hour `hour` of `order` moves: of each of its pending
/// postings, the hour's share less what outages credited for this very hour;
/// the last hour closes the reservation. `pendings` advance by what is posted.
pub fn hour_movements(
    order: &OrderRow,
    credits: &BTreeMap<i32, i32>,
    pendings: &mut [ledger_store::PendingProgress],
    hour: i32,
) -> Vec<Movement> {
    let mut movements = Vec::new();
    for p in pendings.iter_mut() {
        let schedule = PostingSchedule {
            amount: p.amount,
            hours: order.hours,
            gpus: order.gpus,
            currency: order.currency,
            credits,
        };
        let amount = if hour == order.hours - 1 { p.remaining } else { schedule.net(hour, hour + 1).min(p.remaining) };
        if amount > Decimal::ZERO {
            movements.push(Movement::PostPending { pending_posting_id: p.posting_id, amount });
            // amount ≤ remaining, and posted + remaining is the posting's amount: neither can overflow.
            p.remaining -= amount;
            p.posted += amount;
        }
    }
    movements
}

/// The `settlement` entries of `order`'s hours from its `settled_hours` up to
/// `upto`, one per hour dated at the start of the hour it pays for — so usage
/// falls in the day, month and claim period it was used in, however late the
/// settler runs — or at `open_from` (the end of the last closed period) if
/// that is later. An hour whose shares were all credited has none.
/// `pendings` advance as the entries would post them.
pub fn settlement_entries(
    order: &OrderRow,
    credits: &BTreeMap<i32, i32>,
    pendings: &mut [ledger_store::PendingProgress],
    upto: i32,
    open_from: Option<DateTime<Utc>>,
) -> Vec<NewEntry> {
    let mut entries = Vec::new();
    for hour in hours_to_settle(order, upto) {
        let movements = hour_movements(order, credits, pendings, hour);
        if movements.is_empty() {
            continue;
        }
        let dated = orders::hour_at(order, hour).max(open_from.unwrap_or(DateTime::<Utc>::MIN_UTC));
        let mut entry = NewEntry::new(EntryKind::Settlement, dated, movements);
        entry.memo = format!("order {}: hour {} of {}", order.id, hour + 1, order.hours);
        entry.metadata = serde_json::json!({"order_id": order.id, "from_hour": hour, "to_hour": hour + 1});
        entries.push(entry);
    }
    entries
}

/// GPUs credited per hour of an order (hour index from its start → GPUs).
pub async fn hour_credits_of(conn: &mut AsyncPgConnection, order: &OrderRow) -> QueryResult<BTreeMap<i32, i32>> {
    Ok(hour_credits_of_many(conn, &[order]).await?.remove(&order.id).unwrap_or_default())
}

/// `hour_credits_of` for many orders in one statement (none if none of them
/// was ever credited): order id → its credits; an order without any is left out.
pub async fn hour_credits_of_many(
    conn: &mut AsyncPgConnection,
    orders: &[&OrderRow],
) -> QueryResult<HashMap<Uuid, BTreeMap<i32, i32>>> {
    let credited: HashMap<Uuid, &OrderRow> =
        orders.iter().filter(|o| o.credited_gpu_hours != 0).map(|o| (o.id, *o)).collect();
    if credited.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = credited.keys().copied().collect();
    let rows: Vec<(Uuid, DateTime<Utc>, i32)> = order_hour_credits::table
        .filter(order_hour_credits::order_id.eq_any(&ids))
        .select((order_hour_credits::order_id, order_hour_credits::hour, order_hour_credits::gpus))
        .load(conn)
        .await?;
    let mut by_order: HashMap<Uuid, BTreeMap<i32, i32>> = HashMap::new();
    for (id, hour, gpus) in rows {
        if let Some(order) = credited.get(&id) {
            by_order.entry(id).or_default().insert(orders::hour_index(order, hour), gpus);
        }
    }
    Ok(by_order)
}

/// Writes the orders' settled hours and statuses, (id, settled, status) by
/// ascending id, in one statement; returns the rows as changed.
async fn set_progress(
    conn: &mut AsyncPgConnection,
    progress: &[(Uuid, i32, OrderStatus)],
) -> QueryResult<Vec<OrderRow>> {
    use diesel::sql_types::{Array, Int4, Text, Uuid as SqlUuid};
    if progress.is_empty() {
        return Ok(Vec::new());
    }
    crate::db::prepared(
        "UPDATE orders AS o SET settled_hours = v.settled_hours, status = v.status \
         FROM unnest($1::uuid[], $2::int4[], $3::text[]) AS v(id, settled_hours, status) \
         WHERE o.id = v.id RETURNING o.*",
    )
    .bind::<Array<SqlUuid>, _>(progress.iter().map(|p| p.0).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(progress.iter().map(|p| p.1).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(progress.iter().map(|p| p.2.as_str()).collect::<Vec<_>>())
    .load(conn)
    .await
}

/// Records orders' events with their views as of now, in the caller's transaction.
async fn record_order_events(
    conn: &mut AsyncPgConnection,
    events: Vec<(EventType, OrderRow)>,
    now: DateTime<Utc>,
) -> Result<(), SettleError> {
    if events.is_empty() {
        return Ok(());
    }
    let events = super::views::order_events(conn, events, now).await?;
    crate::events::record_many(conn, &events).await?;
    Ok(())
}

/// Cancels an order (its tenant only; anyone else gets 404). Before the start
/// everything is voided and every hour freed; after it, the hours begun are
/// charged (posted) and the rest voided and freed.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    order_id: Uuid,
    tenant_org: OrgId,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<OrderRow, SettleError> {
    let order = orders::lock(conn, order_id)
        .await?
        .filter(|o| o.tenant_org_id == tenant_org.0)
        .ok_or(SettleError::OrderNotFound(order_id))?;
    if order.status == OrderStatus::Cancelled || order.status == OrderStatus::Completed {
        return Err(SettleError::AlreadyEnded(order.status));
    }
    let begun = hours_begun(order.start_at, now, order.hours);
    if begun >= order.hours {
        return Err(SettleError::NothingLeftToCancel);
    }
    // Capacity before ledger: the lock order every writer follows.
    let free_from = orders::hour_at(&order, begun);
    listings::release(conn, order.listing_id, free_from, order.end_at, order.gpus).await?;

    let currency = order.currency;
    let credits = hour_credits_of(conn, &order).await?;
    // The hours freed go back to the grant's allocation, still before the
    // ledger: less what outages already gave back for those very hours.
    let voided_gpu_hours: i64 =
        (begun..order.hours).map(|h| i64::from(order.gpus - credits.get(&h).copied().unwrap_or(0)).max(0)).sum();
    crate::subsidy::projects::give_back(conn, &[(order.id, voided_gpu_hours)]).await?;
    let mut pendings = ledger_store::pending_progress_of(conn, order.journal_entry_id).await?;
    // Hours that have fully elapsed settle as the settler would have settled
    // them, each dated by its hour; the cancellation charges the hour under way.
    let elapsed = hours_elapsed(order.start_at, now, order.hours);
    let mut entries = Vec::new();
    if !hours_to_settle(&order, elapsed).is_empty() {
        let open_from = crate::ledger::periods::closed_until(conn).await?;
        entries = settlement_entries(&order, &credits, &mut pendings, elapsed, open_from);
    }
    let charged_from = elapsed.max(order.settled_hours);
    let mut movements = Vec::new();
    for p in &pendings {
        // Hours begun are charged, less what outages credited for them.
        let schedule =
            PostingSchedule { amount: p.amount, hours: order.hours, gpus: order.gpus, currency, credits: &credits };
        let post = schedule.net(charged_from, begun).max(Decimal::ZERO).min(p.remaining);
        if post > Decimal::ZERO {
            movements.push(Movement::PostPending { pending_posting_id: p.posting_id, amount: post });
        }
        let void = p.remaining - post;
        if void > Decimal::ZERO {
            movements.push(Movement::VoidPending { pending_posting_id: p.posting_id, amount: void });
        }
    }
    if !movements.is_empty() {
        let mut entry = NewEntry::new(EntryKind::Cancellation, now, movements);
        entry.actor = actor;
        entry.memo = format!("order {}: cancelled with {begun} of {} hours begun", order.id, order.hours);
        entry.metadata = serde_json::json!({"order_id": order.id, "charged_hours": begun});
        entries.push(entry);
    }
    ledger_posting::post_entries(conn, entries).await?;
    let updated = diesel::update(orders_table::table.find(order.id))
        .set((
            orders_table::status.eq(OrderStatus::Cancelled),
            orders_table::charged_hours.eq(begun),
            orders_table::settled_hours.eq(begun),
            orders_table::cancelled_at.eq(now),
        ))
        .returning(OrderRow::as_returning())
        .get_result(conn)
        .await?;
    // An order cancelled after its first hour began, before the settler saw
    // it begin, has started too: it leaves `reserved` here, not there.
    let mut events = Vec::new();
    if order.status == OrderStatus::Reserved && begun > 0 {
        events.push((EventType::OrderStarted, updated.clone()));
    }
    events.push((EventType::OrderCancelled, updated.clone()));
    record_order_events(conn, events, now).await?;
    Ok(updated)
}

/// What one outage credited to one order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutageCredit {
    pub order_id: Uuid,
    /// GPU-hours credited.
    pub gpu_hours: i32,
    /// The tenant's share released from its reservation (hours not yet settled).
    pub voided: String,
    /// The tenant's share paid back to its wallet (hours already settled).
    pub refunded: String,
    /// This order's `outage_credit` entry.
    pub journal_entry_id: Option<Uuid>,
}

/// An order's charged hours, as the outage allocation sees them.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub order_id: Uuid,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub gpus: i32,
}

/// An outage report.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    pub id: Uuid,
    pub listing_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpus: i32,
}

/// Allocates an outage's GPUs, hour by hour, to the orders running then, in the
/// order given (oldest first), never more GPU-hours per order and hour than it
/// bought or than earlier outages already credited. Returns GPU-hours per order and hour.
pub fn allocate(
    orders: &[Running],
    already: &BTreeMap<(Uuid, DateTime<Utc>), i32>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    gpus: i32,
) -> BTreeMap<(Uuid, DateTime<Utc>), i32> {
    let mut credited = BTreeMap::new();
    let mut hour = start;
    while hour < end {
        let mut left = gpus;
        for &Running { order_id: id, from, until, gpus: order_gpus } in orders {
            if left == 0 {
                break;
            }
            if hour < from || hour >= until {
                continue;
            }
            let open = order_gpus - already.get(&(id, hour)).copied().unwrap_or(0);
            let take = open.min(left);
            if take > 0 {
                credited.insert((id, hour), take);
                left -= take;
            }
        }
        hour += TimeDelta::hours(1);
    }
    credited
}

/// Credits an outage on a listing back to the orders it hit, one `outage_credit`
/// entry per order: for each of the order's pending postings, the share of the
/// lost GPU-hours is voided where not yet settled and refunded (the posting
/// reversed) where settled. Returns the entries and the credits.
pub async fn credit_outage(
    conn: &mut AsyncPgConnection,
    outage: Outage,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<(Vec<Uuid>, Vec<OutageCredit>), SettleError> {
    let Outage { id: outage_id, listing_id, start, end, gpus } = outage;
    // Lock the orders it may touch (by id: the order every locker follows).
    let hit: Vec<OrderRow> = orders_table::table
        .filter(orders_table::listing_id.eq(listing_id))
        .filter(orders_table::start_at.lt(end))
        .filter(orders_table::end_at.gt(start))
        .order(orders_table::id)
        .select(OrderRow::as_select())
        .for_update()
        .load(conn)
        .await?;
    let mut by_age: Vec<&OrderRow> = hit.iter().filter(|o| o.charged_hours > 0).collect();
    by_age.sort_by_key(|o| (o.created_at, o.id));
    let windows: Vec<Running> = by_age
        .iter()
        .map(|o| Running { order_id: o.id, from: o.start_at, until: orders::hour_at(o, o.charged_hours), gpus: o.gpus })
        .collect();
    let ids: Vec<Uuid> = hit.iter().map(|o| o.id).collect();
    let already: BTreeMap<(Uuid, DateTime<Utc>), i32> = order_hour_credits::table
        .filter(order_hour_credits::order_id.eq_any(&ids))
        .filter(order_hour_credits::hour.ge(start))
        .filter(order_hour_credits::hour.lt(end))
        .select((order_hour_credits::order_id, order_hour_credits::hour, order_hour_credits::gpus))
        .load::<(Uuid, DateTime<Utc>, i32)>(conn)
        .await?
        .into_iter()
        .map(|(o, h, g)| ((o, h), g))
        .collect();
    let credited = allocate(&windows, &already, start, end, gpus);
    // The GPU-hours lost go back to the grants' allocations, before any account is locked.
    let mut lost_by_order: BTreeMap<Uuid, i64> = BTreeMap::new();
    for ((order, _), g) in &credited {
        *lost_by_order.entry(*order).or_default() += i64::from(*g);
    }
    crate::subsidy::projects::give_back(conn, &lost_by_order.into_iter().collect::<Vec<_>>()).await?;

    let mut entry_ids = Vec::new();
    let mut credits = Vec::new();
    let mut credited_rows = Vec::new();
    for order in &hit {
        let mut movements = Vec::new();
        // Per hour of the order: GPUs credited before this outage, and after it.
        let mut changed: Vec<(i32, i32, i32)> = Vec::new();
        for ((id, hour), g) in credited.range((order.id, start)..=(order.id, end)) {
            if *id != order.id {
                continue;
            }
            let before = already.get(&(order.id, *hour)).copied().unwrap_or(0);
            changed.push((orders::hour_index(order, *hour), before, before + *g));
            diesel::insert_into(order_hour_credits::table)
                .values((
                    order_hour_credits::order_id.eq(order.id),
                    order_hour_credits::hour.eq(*hour),
                    order_hour_credits::gpus.eq(*g),
                ))
                .on_conflict((order_hour_credits::order_id, order_hour_credits::hour))
                .do_update()
                .set(order_hour_credits::gpus.eq(order_hour_credits::gpus + *g))
                .execute(conn)
                .await?;
        }
        let lost: i64 = changed.iter().map(|(_, before, after)| i64::from(after - before)).sum();
        if lost == 0 {
            continue;
        }
        let currency = order.currency;
        let no_credits = BTreeMap::new();
        let pendings = ledger_store::pending_progress_of(conn, order.journal_entry_id).await?;
        let (mut voided, mut refunded) = (Decimal::ZERO, Decimal::ZERO);
        for p in &pendings {
            let schedule = PostingSchedule {
                amount: p.amount,
                hours: order.hours,
                gpus: order.gpus,
                currency,
                credits: &no_credits,
            };
            // Each hour gives back its own share: voided from the reservation
            // while the hour is unsettled, refunded once it has been posted.
            let (mut void, mut refund) = (Decimal::ZERO, Decimal::ZERO);
            for &(hour, before, after) in &changed {
                let credit = schedule.credit_increase(hour, before, after);
                if hour < order.settled_hours {
                    refund += credit;
                } else {
                    void += credit;
                }
            }
            // Never more than is left reserved (defensive: the schedule keeps it so).
            let excess = (void - p.remaining).max(Decimal::ZERO);
            void -= excess;
            refund += excess;
            if void > Decimal::ZERO {
                movements.push(Movement::VoidPending { pending_posting_id: p.posting_id, amount: void });
            }
            if refund > Decimal::ZERO {
                movements.push(Movement::posted(p.credit_account_id, p.debit_account_id, refund));
            }
            // The tenant's own posting comes first when the tenant pays anything.
            if order.tenant_amount > Decimal::ZERO && p.posting_id == pendings[0].posting_id {
                voided = void;
                refunded = refund;
            }
        }
        let credited_row = diesel::update(orders_table::table.find(order.id))
            .set(orders_table::credited_gpu_hours.eq(orders_table::credited_gpu_hours + lost as i32))
            .returning(OrderRow::as_returning())
            .get_result(conn)
            .await?;
        credited_rows.push((EventType::OrderCredited, credited_row));
        // Refunds for hours the provider was already paid out for must not
        // leave its payable negative: that part becomes a receivable from the
        // provider, recovered by its next payout.
        let mut locked = BTreeMap::new();
        if movements.iter().any(|m| matches!(m, Movement::Transfer { .. })) {
            let codes = [
                chart::provider_payable_code(order.provider_org_id),
                chart::provider_receivable_code(order.provider_org_id),
            ];
            let [payable, receivable] = ledger_store::required_account_ids(conn, &codes, currency).await?;
            // Every account the entry can touch, in one call, so that they are
            // locked in the ledger's order (an account with a floor, the
            // tenant's wallet, before the payable). Safe ahead of the order's
            // remainders: only a holder of the order row (locked above) ever
            // locks those.
            let mut ids: Vec<Uuid> = pendings
                .iter()
                .flat_map(|p| [p.debit_account_id, p.credit_account_id])
                .chain([payable, receivable])
                .collect();
            ids.sort_unstable();
            ids.dedup();
            locked = ledger_posting::lock_accounts(conn, &ids).await?;
            let before = locked
                .get(&payable)
                .map(|a| a.balances.posted_balance(crate::ledger::model::NormalSide::Credit))
                .unwrap_or_default();
            let change: Decimal = movements
                .iter()
                .map(|m| match *m {
                    Movement::Transfer { credit, amount, .. } if credit == payable => amount,
                    Movement::Transfer { debit, amount, .. } if debit == payable => -amount,
                    _ => Decimal::ZERO,
                })
                .sum();
            let owed = crate::finance::payout_policy::shortfall(before, change);
            if owed > Decimal::ZERO {
                movements.push(Movement::posted(receivable, payable, owed));
            }
        }
        // One entry per order, so every figure of it traces back to its order.
        let entry_id = if movements.is_empty() {
            None
        } else {
            let mut entry = NewEntry::new(EntryKind::OutageCredit, now, movements);
            entry.actor = actor;
            entry.memo = format!("outage {outage_id}: {lost} GPU-hours of order {} credited", order.id);
            entry.metadata =
                serde_json::json!({"order_id": order.id, "outage_id": outage_id, "listing_id": listing_id});
            let id = ledger_posting::post_entry_locked(conn, entry, locked).await?.id;
            entry_ids.push(id);
            Some(id)
        };
        credits.push(OutageCredit {
            order_id: order.id,
            gpu_hours: lost as i32,
            voided: crate::money::format_amount(voided, currency),
            refunded: crate::money::format_amount(refunded, currency),
            journal_entry_id: entry_id,
        });
    }
    // Read once every credit is posted, so each view shows its refund.
    record_order_events(conn, credited_rows, now).await?;
    Ok((entry_ids, credits))
}

/// Settles every order due at the clock's `now`, and returns what it settled.
/// The due orders are taken [`SETTLE_BATCH`] at a time and each batch settles
/// in one transaction (`settle_orders`): a round trip per statement, not per
/// hour and order, is what lets a settler keep up with a large market. Safe to
/// run from several processes at once.
pub async fn settle_all(pool: &crate::db::DbPool, clock: crate::clock::Clock) -> Result<Vec<Settled>, SettleError> {
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    let mut settled = Vec::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let batch = due(&mut conn, now, SETTLE_BATCH).await?;
        let fresh: Vec<Uuid> = batch.into_iter().filter(|id| seen.insert(*id)).collect();
        if fresh.is_empty() {
            return Ok(settled);
        }
        let done = crate::db::transaction(&mut conn, async |c| settle_orders(c, &fresh, now).await).await?;
        settled.extend(done);
    }
}

/// Due orders settled per transaction by `settle_all`: large enough that the
/// statements per batch are few per order, small enough that a batch's locks
/// (its orders' rows, their providers' payables) are held briefly.
pub const SETTLE_BATCH: i64 = 200;

/// The background settler of `gpuhour serve`: settles what is due every `interval`.
pub async fn run_settler(pool: crate::db::DbPool, clock: crate::clock::Clock, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match settle_all(&pool, clock).await {
            Ok(done) if !done.is_empty() => tracing::info!(orders = done.len(), "settled"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "settlement run failed; retrying at the next tick"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    use super::*;
    use crate::ledger::store::PendingProgress;
    use crate::money::Currency;

    fn t(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).single().expect("time")
    }

    /// An order of `gpus` GPUs for `hours` hours from 10:00, `settled` of them settled.
    fn order(gpus: i32, hours: i32, settled: i32) -> OrderRow {
        let mut o = orders::sample_order(dec!(1000), Decimal::ZERO, Decimal::ZERO);
        o.id = Uuid::from_u128(7);
        o.gpus = gpus;
        o.hours = hours;
        o.charged_hours = hours;
        o.settled_hours = settled;
        o.start_at = t(10);
        o.end_at = t(10) + TimeDelta::hours(i64::from(hours));
        o
    }

    fn pending(n: u128, amount: Decimal, remaining: Decimal) -> PendingProgress {
        PendingProgress {
            posting_id: Uuid::from_u128(n),
            debit_account_id: Uuid::from_u128(100 + n),
            credit_account_id: Uuid::from_u128(200 + n),
            currency: Currency::Krw,
            amount,
            posted: amount - remaining,
            remaining,
        }
    }

    /// (pending posting, amount) of each movement.
    fn posts(movements: &[Movement]) -> Vec<(u128, Decimal)> {
        movements
            .iter()
            .map(|m| match *m {
                Movement::PostPending { pending_posting_id, amount } => (pending_posting_id.as_u128(), amount),
                ref other => panic!("a settlement only posts pending postings: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn each_hour_posts_its_floored_share_and_the_last_hour_the_rest() {
        let o = order(1, 3, 0);
        let none = BTreeMap::new();
        let mut pendings = vec![pending(1, dec!(1000), dec!(1000)), pending(2, dec!(100), dec!(100))];
        let hours: Vec<Vec<(u128, Decimal)>> =
            (0..3).map(|h| posts(&hour_movements(&o, &none, &mut pendings, h))).collect();
        assert_eq!(
            hours,
            vec![
                vec![(1, dec!(333)), (2, dec!(33))],
                vec![(1, dec!(333)), (2, dec!(33))],
                vec![(1, dec!(334)), (2, dec!(34))],
            ]
        );
        assert_eq!(
            pendings.iter().map(|p| (p.posted, p.remaining)).collect::<Vec<_>>(),
            [(dec!(1000), Decimal::ZERO), (dec!(100), Decimal::ZERO)]
        );
    }

    #[test]
    fn a_credited_hour_posts_only_what_the_outage_left() {
        // 2 GPUs × 4 h of 8,000: 2,000 an hour. Hour 1 lost one GPU, hour 2
        // both; the outage voided 1,000 + 2,000 from the reservation.
        let o = order(2, 4, 0);
        let credits = BTreeMap::from([(1, 1), (2, 2)]);
        let mut pendings = vec![pending(1, dec!(8000), dec!(5000))];
        let hours: Vec<Vec<(u128, Decimal)>> =
            (0..4).map(|h| posts(&hour_movements(&o, &credits, &mut pendings, h))).collect();
        assert_eq!(hours, vec![vec![(1, dec!(2000))], vec![(1, dec!(1000))], vec![], vec![(1, dec!(2000))]]);
        assert_eq!((pendings[0].posted, pendings[0].remaining), (dec!(8000), Decimal::ZERO));
    }

    #[test]
    fn entries_cover_the_unsettled_elapsed_hours_dated_by_hour_or_the_open_period() {
        // Hour 0 settled already; hour 2 fully credited (voided: 2,000 less remains).
        let o = order(2, 4, 1);
        let credits = BTreeMap::from([(2, 2)]);
        let mut pendings = vec![pending(1, dec!(8000), dec!(4000))];
        // The period closed at 11:30: hour 1 (11:00) is settled in the open one.
        let open_from = t(11) + TimeDelta::minutes(30);
        let entries = settlement_entries(&o, &credits, &mut pendings, 9, Some(open_from));
        type Seen = (DateTime<Utc>, String, serde_json::Value, Vec<(u128, Decimal)>);
        let seen: Vec<Seen> = entries
            .iter()
            .map(|e| {
                assert_eq!(e.kind, EntryKind::Settlement);
                (e.effective_at, e.memo.clone(), e.metadata.clone(), posts(&e.movements))
            })
            .collect();
        let id = o.id;
        assert_eq!(
            seen,
            vec![
                (
                    open_from,
                    format!("order {id}: hour 2 of 4"),
                    serde_json::json!({"order_id": id, "from_hour": 1, "to_hour": 2}),
                    vec![(1, dec!(2000))]
                ),
                (
                    t(13),
                    format!("order {id}: hour 4 of 4"),
                    serde_json::json!({"order_id": id, "from_hour": 3, "to_hour": 4}),
                    vec![(1, dec!(2000))]
                ),
            ],
            "no entry for the credited hour, none past the last"
        );
        assert_eq!(pendings[0].remaining, Decimal::ZERO);
        assert!(settlement_entries(&o, &credits, &mut pendings, 1, None).is_empty(), "nothing left to settle");
    }
}
