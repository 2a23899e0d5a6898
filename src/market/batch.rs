//! Placing orders, many at a time: the one order path.
//!
//! A batch of orders (one, from the demo; up to a few hundred, from the group
//! commit in `batcher.rs`) is placed in the caller's transaction with a fixed
//! number of statements, whatever its size: read every listing, grant,
//! programme, tenant and account id once; lock every hour and every account
//! the batch touches once, each set in ascending order; judge each order in
//! turn in memory against what the orders before it took; write what was
//! accepted in one statement per table. An order that is refused (a full hour,
//! an empty wallet, a spent grant, bad input) is judged as if it had never been
//! asked for and does not fail its neighbours.
//!
//! Locks are taken in the order listings → hours → grants' allocations →
//! accounts, and within each
//! set by ascending key, as every other writer takes them, so batches of two
//! processes cannot deadlock with each other or with a cancellation.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::energy;
use super::listings::{self, ListingRow};
use super::orders::{self, OrderAccounts, OrderError, OrderRow, OrderStatus, Request, SubsidyAccounts};
use super::pricing::{Breakdown, SubsidyTerms};
use crate::auth::Principal;
use crate::db::schema::{accounts, grants, organisations, programmes};
use crate::events::EventType;
use crate::ledger::model::{AccountState, EntryKind};
use crate::ledger::posting::{self as ledger_posting, AppliedEntry, NewEntry};
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::Currency;
use crate::subsidy::programmes::{GrantRow, GrantTerms, ProgrammeRow, category_of, grant_terms};
use crate::subsidy::projects::{self, AllocationBook};

/// One tenant's order, as asked.
#[derive(Debug, Clone)]
pub struct OrderAsk {
    pub principal: Principal,
    pub request: Request,
}

/// The hours a batch touches, locked: each hour's capacity and what is reserved.
#[derive(Debug, Default)]
pub struct HourBook {
    hours: BTreeMap<(Uuid, DateTime<Utc>), HourState>,
}

#[derive(Debug, Clone, Copy)]
struct HourState {
    capacity: i32,
    reserved: i32,
    changed: bool,
    /// Made by this batch to be locked: removed again if nothing was taken.
    made_here: bool,
}

fn each_hour(start: DateTime<Utc>, end: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
    std::iter::successors(Some(start), |h| Some(*h + TimeDelta::hours(1))).take_while(move |h| *h < end)
}

impl HourBook {
    pub fn insert(&mut self, listing: Uuid, hour: DateTime<Utc>, capacity: i32, reserved: i32) {
        self.hours.insert((listing, hour), HourState { capacity, reserved, changed: false, made_here: false });
    }

    fn mark_made_here(&mut self, listing: Uuid, hour: DateTime<Utc>) {
        if let Some(state) = self.hours.get_mut(&(listing, hour)) {
            state.made_here = true;
        }
    }

    /// Whether `gpus` are free in every hour of [`start`, `end`).
    pub fn check(&self, listing: Uuid, start: DateTime<Utc>, end: DateTime<Utc>, gpus: i32) -> Result<(), OrderError> {
        for hour in each_hour(start, end) {
            let state = self
                .hours
                .get(&(listing, hour))
                .ok_or_else(|| LedgerError::Corrupt(format!("hour {hour} of listing {listing} was not locked")))?;
            let wanted = state.reserved.checked_add(gpus).ok_or(OrderError::CapacityUnavailable)?;
            if wanted > state.capacity {
                return Err(OrderError::CapacityUnavailable);
            }
        }
        Ok(())
    }

    /// Takes `gpus` of every hour of [`start`, `end`); `check` said they are free.
    fn take(&mut self, listing: Uuid, start: DateTime<Utc>, end: DateTime<Utc>, gpus: i32) {
        for hour in each_hour(start, end) {
            if let Some(state) = self.hours.get_mut(&(listing, hour)) {
                state.reserved += gpus;
                state.changed = true;
            }
        }
    }

    /// The hours whose reservation changed, with what they now hold.
    fn changes(&self) -> (Vec<Uuid>, Vec<DateTime<Utc>>, Vec<i32>) {
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for ((listing, hour), state) in &self.hours {
            if state.changed {
                out.0.push(*listing);
                out.1.push(*hour);
                out.2.push(state.reserved);
            }
        }
        out
    }

    /// The hours this batch made but no order took: a refused order leaves
    /// nothing behind, not even an empty row.
    fn unused(&self) -> (Vec<Uuid>, Vec<DateTime<Utc>>) {
        self.hours
            .iter()
            .filter(|(_, s)| s.made_here && !s.changed)
            .map(|((listing, hour), _)| (*listing, *hour))
            .unzip()
    }
}

/// An order that passed every check made before locks: its listing, hours
/// and, with a grant, the grant's terms; and the ids of its accounts.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub ask: &'a OrderAsk,
    pub listing: &'a ListingRow,
    pub currency: Currency,
    pub grant: Option<GrantTerms>,
    pub accounts: OrderAccounts,
    pub subsidy: Option<SubsidyAccounts>,
    /// The grid intensity of the listing's region (gCO2e/kWh), when set.
    pub g_co2e_per_kwh: Option<Decimal>,
}

/// What judging an accepted order produced: its row and its entry.
#[derive(Debug)]
pub struct Accepted {
    pub order: OrderRow,
    pub entry: AppliedEntry,
}

/// Judges one order against the hours and accounts as the orders before it
/// in the batch left them, and takes what it needs only when every check
/// passes. A plain function: the rules of an order, without a database.
pub fn judge(
    candidate: &Candidate<'_>,
    hours: &mut HourBook,
    allocations: &mut AllocationBook,
    book: &mut BTreeMap<Uuid, AccountState>,
    fee_rate: Decimal,
    now: DateTime<Utc>,
) -> Result<Accepted, OrderError> {
    let (ask, listing) = (candidate.ask, candidate.listing);
    let request = &ask.request;
    orders::check_request(request, listing, now)?;
    hours.check(listing.id, request.start, request.end, request.gpus)?;
    let terms = match (&candidate.grant, &candidate.subsidy) {
        (Some(grant), Some(side)) => {
            let account = book.get(&side.grant_available).ok_or_else(|| {
                LedgerError::Corrupt(format!("grant account {} was not locked", side.grant_available))
            })?;
            Some(SubsidyTerms { rate: grant.rate, available: account.balances.available(account.normal_side) })
        }
        _ => None,
    };
    let (hour_count, breakdown) = orders::quote(request, listing, fee_rate, terms, now)?;
    if let Some(grant) = &candidate.grant {
        allocations.check(grant.grant_id, &listing.gpu_model, breakdown.gpu_hours)?;
    }
    let order_id = Uuid::now_v7();
    let movements = orders::order_movements(&breakdown, &candidate.accounts, candidate.subsidy.as_ref());
    if movements.is_empty() {
        return Err(OrderError::invalid("gpus", "an order must cost something"));
    }
    let mut entry = NewEntry::new(EntryKind::Order, now, movements);
    entry.actor = ask.principal.actor();
    entry.memo = format!("order {order_id}: {} × {} for {hour_count} h", request.gpus, listing.gpu_model);
    entry.metadata =
        serde_json::json!({ "order_id": order_id, "listing_id": listing.id, "grant_id": request.grant_id });
    let entry = ledger_posting::apply_to_book(book, entry)?;
    hours.take(listing.id, request.start, request.end, request.gpus);
    let drawn = candidate.grant.as_ref().filter(|g| allocations.has(g.grant_id));
    if let Some(grant) = drawn {
        allocations.draw(grant.grant_id, order_id, breakdown.gpu_hours);
    }
    let mut order = order_row(order_id, ask, listing, hour_count, &breakdown, entry.id, now)?;
    // An order drawing on an allocation names its grant even when the grant's
    // money is spent, so the hours can be given back on cancellation.
    if let (Some(grant), None) = (drawn, order.grant_id) {
        order.grant_id = Some(grant.grant_id);
    }
    let estimate =
        energy::estimate(i64::from(request.gpus), i64::from(hour_count), &listing.energy, candidate.g_co2e_per_kwh);
    order.estimated_energy_kwh = estimate.energy_kwh;
    order.estimated_co2e_kg = estimate.co2e_kg;
    Ok(Accepted { order, entry })
}

fn order_row(
    id: Uuid,
    ask: &OrderAsk,
    listing: &ListingRow,
    hours: i32,
    breakdown: &Breakdown,
    entry_id: Uuid,
    now: DateTime<Utc>,
) -> Result<OrderRow, OrderError> {
    let request = &ask.request;
    Ok(OrderRow {
        id,
        tenant_org_id: ask.principal.org_id,
        placed_by: ask.principal.user_id,
        listing_id: listing.id,
        provider_org_id: listing.provider_org_id,
        gpu_model: listing.gpu_model.clone(),
        region: listing.region.clone(),
        gpus: request.gpus,
        start_at: request.start,
        end_at: request.end,
        hours,
        currency: breakdown.currency,
        unit_price: breakdown.unit_price,
        gpu_hours: i32::try_from(breakdown.gpu_hours).map_err(|_| OrderError::invalid("gpus", "too many GPU-hours"))?,
        subtotal: breakdown.subtotal,
        subsidy: breakdown.subsidy,
        subsidy_rate: breakdown.subsidy_rate,
        tenant_amount: breakdown.tenant_amount,
        platform_fee: breakdown.platform_fee,
        fee_rate: breakdown.fee_rate,
        grant_id: if breakdown.subsidy > Decimal::ZERO { request.grant_id } else { None },
        status: OrderStatus::Reserved,
        settled_hours: 0,
        charged_hours: hours,
        credited_gpu_hours: 0,
        journal_entry_id: entry_id,
        created_at: now,
        cancelled_at: None,
        estimated_energy_kwh: None,
        estimated_co2e_kg: None,
    })
}

fn sorted_unique<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort_unstable();
    items.dedup();
    items
}

/// Places `asks` in the caller's transaction: one answer per ask, in order.
/// The outer error is the batch's own (the database failed); the caller then
/// rolls back and may retry the asks one by one.
pub async fn place_many(
    conn: &mut AsyncPgConnection,
    asks: &[OrderAsk],
    fee_rate: Decimal,
    now: DateTime<Utc>,
) -> Result<Vec<Result<OrderRow, OrderError>>, OrderError> {
    let (answers, postings) = place_many_deferred(conn, asks, fee_rate, now).await?;
    postings.write(conn).await?;
    Ok(answers.into_iter().map(|a| a.map(|placed| placed.order)).collect())
}

/// An accepted order, with its API view as JSON text: its `order.reserved`
/// event's data, and the answer to the request that placed it.
#[derive(Debug)]
pub struct Placed {
    pub order: OrderRow,
    pub view: Box<serde_json::value::RawValue>,
}

/// What `place_many_deferred` leaves for last: the accepted orders' postings
/// and the figures of the accounts without a floor (a provider's payable, a
/// programme's receivable, the platform's fees), which many batches share.
/// Those rows are locked only here, so that a batch holds them for two
/// statements and its commit, not for all of its work.
#[must_use = "the orders' money is not written until the postings are"]
pub struct DeferredPostings {
    entries: Vec<AppliedEntry>,
    /// The accounts with a floor the batch locked, as they were before any
    /// of its orders was judged.
    locked: BTreeMap<Uuid, AccountState>,
}

impl DeferredPostings {
    /// Locks the accounts without a floor the accepted orders touch, works
    /// out each posting's running balances against their real figures, and
    /// writes the postings and every touched account's figures.
    pub async fn write(self, conn: &mut AsyncPgConnection) -> Result<(), LedgerError> {
        let DeferredPostings { mut entries, locked: mut book } = self;
        if entries.is_empty() {
            return Ok(());
        }
        let shared = sorted_unique(
            entries
                .iter()
                .flat_map(|e| e.postings.iter().flat_map(|(_, p)| [p.debit_account_id, p.credit_account_id]))
                .filter(|id| !book.contains_key(id))
                .collect(),
        );
        book.extend(ledger_posting::lock_accounts(conn, &shared).await?);
        ledger_posting::replay(&mut book, &mut entries)?;
        ledger_posting::write_postings(conn, &entries, &BTreeMap::new(), &book).await?;
        Ok(())
    }
}

/// `place_many` up to the postings: judges every order with the accounts that
/// have a floor locked (a tenant's wallet, a grant's available), writes the
/// hours, entries, orders, allocation draws and events, and returns the
/// postings for the caller to write last (`DeferredPostings::write`) in the
/// same transaction, after anything else it has to write.
pub async fn place_many_deferred(
    conn: &mut AsyncPgConnection,
    asks: &[OrderAsk],
    fee_rate: Decimal,
    now: DateTime<Utc>,
) -> Result<(Vec<Result<Placed, OrderError>>, DeferredPostings), OrderError> {
    let mut answers: Vec<Option<Result<Placed, OrderError>>> = asks.iter().map(|_| None).collect();

    // Listings (shared locks: a listing's window and status hold till commit),
    // grants, programmes and tenants, each read once.
    let listing_ids = sorted_unique(asks.iter().map(|a| a.request.listing_id).collect());
    let listing_rows: HashMap<Uuid, ListingRow> = crate::db::schema::listings::table
        .filter(crate::db::schema::listings::id.eq_any(&listing_ids))
        .order(crate::db::schema::listings::id)
        .select(ListingRow::as_select())
        .for_share()
        .load(conn)
        .await?
        .into_iter()
        .map(|l| (l.id, l))
        .collect();
    let grant_ids = sorted_unique(asks.iter().filter_map(|a| a.request.grant_id).collect());
    let (grant_rows, programme_rows, categories) =
        if grant_ids.is_empty() { Default::default() } else { read_grant_rows(conn, &grant_ids, asks).await? };

    // Checks that need no lock, and the codes of every account.
    let mut candidates = Vec::with_capacity(asks.len());
    let mut codes: Vec<(String, Currency)> = Vec::new();
    for (i, ask) in asks.iter().enumerate() {
        let listing = listing_rows
            .get(&ask.request.listing_id)
            .filter(|l| listings::visible_to(l, &ask.principal))
            .ok_or(OrderError::ListingNotFound(ask.request.listing_id));
        let prepared = listing.and_then(|listing| {
            let grant = match orders::purchase(&ask.request, listing) {
                None => None,
                Some(purchase) => {
                    let grant = grant_rows.get(&purchase.grant_id);
                    let programme = grant.and_then(|g| programme_rows.get(&g.programme_id));
                    let category = categories.get(&ask.principal.org_id).and_then(Option::as_deref);
                    Some(grant_terms(&ask.principal, &purchase, grant, programme, category)?)
                }
            };
            orders::check_request(&ask.request, listing, now)?;
            let currency = listing.currency;
            Ok((listing, currency, grant))
        });
        match prepared {
            Err(e) => answers[i] = Some(Err(e)),
            Ok((listing, currency, grant)) => {
                codes.push((chart::tenant_wallet_code(ask.principal.org_id), currency));
                codes.push((chart::provider_payable_code(listing.provider_org_id), currency));
                codes.push((chart::PLATFORM_FEES.to_string(), currency));
                if let Some(g) = &grant {
                    codes.extend(g.account_codes().into_iter().map(|c| (c, g.currency)));
                }
                candidates.push((i, listing, currency, grant));
            }
        }
    }
    let known = accounts_by_code(conn, codes).await?;
    let regions = sorted_unique(
        candidates.iter().filter(|c| c.1.energy.board_power_w.is_some()).map(|c| c.1.region.clone()).collect(),
    );
    let intensities = energy::intensities(conn, &regions).await?;
    let id_of = |code: String, currency: Currency| {
        known
            .get(&(code.clone(), currency))
            .map(|a| a.id)
            .ok_or_else(|| LedgerError::Corrupt(format!("account {code} {currency} is missing")))
    };
    let mut ready: Vec<(usize, Candidate<'_>)> = Vec::with_capacity(candidates.len());
    for (i, listing, currency, grant) in candidates {
        let ask = &asks[i];
        let accounts = (|| {
            Ok::<_, LedgerError>(OrderAccounts {
                wallet: id_of(chart::tenant_wallet_code(ask.principal.org_id), currency)?,
                payable: id_of(chart::provider_payable_code(listing.provider_org_id), currency)?,
                fees: id_of(chart::PLATFORM_FEES.to_string(), currency)?,
            })
        })();
        let subsidy = grant
            .map(|g| {
                let [receivable, available, spent] = g.account_codes();
                Ok::<_, LedgerError>(SubsidyAccounts {
                    receivable: id_of(receivable, g.currency)?,
                    grant_available: id_of(available, g.currency)?,
                    grant_spent: id_of(spent, g.currency)?,
                })
            })
            .transpose();
        match (accounts, subsidy) {
            (Ok(accounts), Ok(subsidy)) => {
                let g_co2e_per_kwh = intensities.get(&listing.region).copied();
                ready.push((i, Candidate { ask, listing, currency, grant, accounts, subsidy, g_co2e_per_kwh }))
            }
            (Err(e), _) | (_, Err(e)) => answers[i] = Some(Err(e.into())),
        }
    }

    // Locks: every hour, every allocation, then the accounts with a floor,
    // each set in ascending order. Accounts without a floor cannot refuse an
    // order, so orders are judged against stand-ins for them (their rows read
    // above, unlocked) and they are locked only to write the postings.
    let mut hours = lock_hours(conn, &ready).await?;
    let allocation_grants = sorted_unique(ready.iter().filter_map(|(_, c)| c.grant.map(|g| g.grant_id)).collect());
    let mut allocations = projects::lock_allocations(conn, &allocation_grants).await?;
    let mut touched: Vec<Uuid> = Vec::new();
    for (_, c) in &ready {
        touched.extend([c.accounts.wallet, c.accounts.payable, c.accounts.fees]);
        if let Some(s) = &c.subsidy {
            touched.extend([s.receivable, s.grant_available, s.grant_spent]);
        }
    }
    let touched = sorted_unique(touched);
    let stand_ins: BTreeMap<Uuid, AccountState> = known.into_values().map(|a| (a.id, a)).collect();
    let (with_floor, without_floor): (Vec<Uuid>, Vec<Uuid>) =
        touched.into_iter().partition(|id| stand_ins.get(id).is_some_and(|a| a.floor.is_some()));
    let locked = ledger_posting::lock_accounts(conn, &with_floor).await?;
    let mut book = locked.clone();
    book.extend(without_floor.iter().filter_map(|id| stand_ins.get(id).map(|a| (*id, a.clone()))));

    // Judge each order in turn; write what was accepted.
    let mut accepted = Vec::with_capacity(ready.len());
    for (i, candidate) in &ready {
        match judge(candidate, &mut hours, &mut allocations, &mut book, fee_rate, now) {
            Ok(a) => accepted.push((*i, a)),
            Err(e) => answers[*i] = Some(Err(e)),
        }
    }
    write_hours(conn, &hours).await?;
    // The entries go to the deferred postings, the rows to the answers: each
    // moved once, not copied.
    let (accepted, entries): (Vec<(usize, OrderRow)>, Vec<AppliedEntry>) =
        accepted.into_iter().map(|(i, a)| ((i, a.order), a.entry)).unzip();
    if !accepted.is_empty() {
        ledger_posting::write_entry_headers(conn, &entries).await?;
        let rows: Vec<&OrderRow> = accepted.iter().map(|(_, order)| order).collect();
        orders::insert_many(conn, &rows).await?;
        projects::write_draws(conn, &allocations).await?;
        // One `order.reserved` per accepted order, in one statement: the
        // views are built from what was just written, without reading it
        // back, and each serves as its order's answer too.
        let events = accepted
            .iter()
            .map(|(_, order)| {
                let figures = super::charged::when_placed(order)?;
                super::views::order_event(EventType::OrderReserved, order.clone(), now, &figures)
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        crate::events::record_many(conn, &events).await?;
        for ((i, order), event) in accepted.into_iter().zip(events) {
            answers[i] = Some(Ok(Placed { order, view: event.data }));
        }
    }
    let answers = answers
        .into_iter()
        .map(|a| a.ok_or_else(|| LedgerError::Corrupt("an order was not judged".into())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((answers, DeferredPostings { entries, locked }))
}

type GrantRows = (HashMap<Uuid, GrantRow>, HashMap<Uuid, ProgrammeRow>, HashMap<Uuid, Option<String>>);

/// The grants the asks name, their programmes, and the rate category of each
/// tenant that names one. Read without locks, as a quote reads them: what a
/// grant has left is read from its account once that is locked.
async fn read_grant_rows(
    conn: &mut AsyncPgConnection,
    grant_ids: &[Uuid],
    asks: &[OrderAsk],
) -> QueryResult<GrantRows> {
    let grant_rows: HashMap<Uuid, GrantRow> = grants::table
        .filter(grants::id.eq_any(grant_ids))
        .select(GrantRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    let programme_ids = sorted_unique(grant_rows.values().map(|g| g.programme_id).collect());
    let programme_rows: HashMap<Uuid, ProgrammeRow> = programmes::table
        .filter(programmes::id.eq_any(&programme_ids))
        .select(ProgrammeRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let tenants =
        sorted_unique(asks.iter().filter(|a| a.request.grant_id.is_some()).map(|a| a.principal.org_id).collect());
    let categories = organisations::table
        .filter(organisations::id.eq_any(&tenants))
        .select(crate::auth::store::OrgRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, category_of(Some(&o))))
        .collect();
    Ok((grant_rows, programme_rows, categories))
}

/// Accounts by code and currency, in one query, read without locks: their
/// ids, and stand-ins for judging (see `place_many_deferred`). Every such
/// account is created with its owner, so a missing one means damaged data.
async fn accounts_by_code(
    conn: &mut AsyncPgConnection,
    wanted: Vec<(String, Currency)>,
) -> Result<HashMap<(String, Currency), AccountState>, OrderError> {
    let wanted = sorted_unique(wanted.into_iter().map(|(code, c)| (code, c.code().to_string())).collect());
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let codes: Vec<&str> = wanted.iter().map(|(code, _)| code.as_str()).collect();
    let currencies = sorted_unique(wanted.iter().map(|(_, c)| c.as_str()).collect());
    let rows: Vec<ledger_store::AccountRow> = accounts::table
        .filter(accounts::code.eq_any(codes))
        .filter(accounts::currency.eq_any(currencies))
        .select(ledger_store::AccountRow::as_select())
        .load(conn)
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let state = row.state();
            ((state.code.clone(), state.currency), state)
        })
        .collect())
}

/// Locks and reads every hour the candidates ask for, in (listing, hour)
/// order. A listing's hour rows are made with the listing
/// (`listings::insert`), so this is one statement; an hour found without its
/// row (a listing stored before rows were made so) gets one here, which the
/// batch removes again if no order takes it.
async fn lock_hours(conn: &mut AsyncPgConnection, ready: &[(usize, Candidate<'_>)]) -> QueryResult<HourBook> {
    let mut book = HourBook::default();
    if ready.is_empty() {
        return Ok(book);
    }
    let windows = HourWindows {
        listing_ids: ready.iter().map(|(_, c)| c.listing.id).collect(),
        capacities: ready.iter().map(|(_, c)| c.listing.gpus).collect(),
        starts: ready.iter().map(|(_, c)| c.ask.request.start).collect(),
        ends: ready.iter().map(|(_, c)| c.ask.request.end).collect(),
    };
    let mut rows = lock_hour_rows(conn, &windows).await?;
    let wanted: usize = ready
        .iter()
        .map(|(_, c)| usize::try_from((c.ask.request.end - c.ask.request.start).num_hours()).unwrap_or(0))
        .sum();
    let mut made = Vec::new();
    // Windows that share an hour return its row once per window, so a full
    // set of rows is exactly one per wanted hour.
    if rows.len() < wanted {
        made = make_missing_hours(conn, &windows).await?;
        rows = lock_hour_rows(conn, &windows).await?;
    }
    for r in rows {
        book.insert(r.listing_id, r.hour, r.capacity, r.reserved);
    }
    for (listing_id, hour) in made {
        book.mark_made_here(listing_id, hour);
    }
    Ok(book)
}

/// The hour windows of a batch's candidates, as parallel arrays for `unnest`.
struct HourWindows {
    listing_ids: Vec<Uuid>,
    capacities: Vec<i32>,
    starts: Vec<DateTime<Utc>>,
    ends: Vec<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct HourRow {
    #[diesel(sql_type = SqlUuid)]
    listing_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    capacity: i32,
    #[diesel(sql_type = Int4)]
    reserved: i32,
}

async fn lock_hour_rows(conn: &mut AsyncPgConnection, windows: &HourWindows) -> QueryResult<Vec<HourRow>> {
    crate::db::prepared(
        // Joined from the windows, so each is an index range scan (a filter
        // over listing_hours read the whole table for every batch). A row two
        // windows share comes twice; locking it twice is harmless.
        "SELECT h.listing_id, h.hour, h.capacity, h.reserved \
         FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS w(listing_id, s, e) \
              JOIN listing_hours h ON h.listing_id = w.listing_id AND h.hour >= w.s AND h.hour < w.e \
         ORDER BY h.listing_id, h.hour \
         FOR UPDATE OF h",
    )
    .bind::<Array<SqlUuid>, _>(&windows.listing_ids)
    .bind::<Array<Timestamptz>, _>(&windows.starts)
    .bind::<Array<Timestamptz>, _>(&windows.ends)
    .load(conn)
    .await
}

/// Makes the rows the windows lack; answers the (listing, hour) of each made.
async fn make_missing_hours(
    conn: &mut AsyncPgConnection,
    windows: &HourWindows,
) -> QueryResult<Vec<(Uuid, DateTime<Utc>)>> {
    #[derive(QueryableByName)]
    struct Made {
        #[diesel(sql_type = SqlUuid)]
        listing_id: Uuid,
        #[diesel(sql_type = Timestamptz)]
        hour: DateTime<Utc>,
    }
    let made: Vec<Made> = diesel::sql_query(
        "INSERT INTO listing_hours (listing_id, hour, capacity, reserved) \
         SELECT w.listing_id, h, w.capacity, 0 \
         FROM unnest($1::uuid[], $2::int4[], $3::timestamptz[], $4::timestamptz[]) AS w(listing_id, capacity, s, e) \
              CROSS JOIN LATERAL generate_series(w.s, w.e - interval '1 hour', interval '1 hour') AS h \
         ORDER BY 1, 2 \
         ON CONFLICT (listing_id, hour) DO NOTHING \
         RETURNING listing_id, hour",
    )
    .bind::<Array<SqlUuid>, _>(&windows.listing_ids)
    .bind::<Array<Int4>, _>(&windows.capacities)
    .bind::<Array<Timestamptz>, _>(&windows.starts)
    .bind::<Array<Timestamptz>, _>(&windows.ends)
    .load(conn)
    .await?;
    Ok(made.into_iter().map(|m| (m.listing_id, m.hour)).collect())
}

/// Writes every hour whose reservation changed, in one statement, and removes
/// the rows this batch made that no order took. The database's own check
/// (`listing_hours_within_capacity`) stays the last word.
async fn write_hours(conn: &mut AsyncPgConnection, hours: &HourBook) -> QueryResult<()> {
    let (unused_listings, unused_hours) = hours.unused();
    if !unused_listings.is_empty() {
        crate::db::prepared(
            "DELETE FROM listing_hours AS t USING unnest($1::uuid[], $2::timestamptz[]) AS v(listing_id, hour) \
             WHERE t.listing_id = v.listing_id AND t.hour = v.hour",
        )
        .bind::<Array<SqlUuid>, _>(unused_listings)
        .bind::<Array<Timestamptz>, _>(unused_hours)
        .execute(conn)
        .await?;
    }
    let (listing_ids, hour_starts, reserved) = hours.changes();
    if listing_ids.is_empty() {
        return Ok(());
    }
    crate::db::prepared(
        "UPDATE listing_hours AS t SET reserved = v.reserved \
         FROM unnest($1::uuid[], $2::timestamptz[], $3::int4[]) AS v(listing_id, hour, reserved) \
         WHERE t.listing_id = v.listing_id AND t.hour = v.hour",
    )
    .bind::<Array<SqlUuid>, _>(listing_ids)
    .bind::<Array<Timestamptz>, _>(hour_starts)
    .bind::<Array<Int4>, _>(reserved)
    .execute(conn)
    .await?;
    Ok(())
}
