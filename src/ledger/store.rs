//! The ledger's database code: thin, and always inside the caller's transaction.
//!
//! `post_entry` is the one way money moves. It locks the pending remainders and
//! then the accounts it touches, each set in ascending id order (every writer
//! takes them in that order, so two writers cannot deadlock), applies the rules
//! of `rules.rs` in memory, and writes the entry, its postings and the new
//! figures. The caller commits, so a marketplace order can reserve capacity and
//! post in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Numeric, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::LedgerError;
use super::model::{
    AccountState, AccountType, Actor, Balances, EntryKind, Floor, NormalSide, PendingState, PostingKind,
};
use super::rules::{AppliedPosting, Movement, apply_movements};
use crate::db::schema::{accounts, journal_entries, pending_remainders, postings};
use crate::money::Currency;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, PartialEq)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
pub struct AccountRow {
    pub id: Uuid,
    pub code: String,
    pub currency: String,
    pub account_type: String,
    pub normal_side: String,
    pub floor: Option<String>,
    pub org_id: Option<Uuid>,
    pub debits_posted: Decimal,
    pub credits_posted: Decimal,
    pub debits_pending: Decimal,
    pub credits_pending: Decimal,
    pub created_at: DateTime<Utc>,
}

impl AccountRow {
    pub fn balances(&self) -> Balances {
        Balances {
            debits_posted: self.debits_posted,
            credits_posted: self.credits_posted,
            debits_pending: self.debits_pending,
            credits_pending: self.credits_pending,
        }
    }

    /// The typed view; stored text outside the known values means a damaged row.
    pub fn state(&self) -> Result<AccountState, LedgerError> {
        let corrupt = |what: &str| LedgerError::Corrupt(format!("account {} has an invalid {what}", self.id));
        Ok(AccountState {
            id: self.id,
            code: self.code.clone(),
            currency: self.currency.parse().map_err(|_| corrupt("currency"))?,
            account_type: self.account_type.parse().map_err(|_| corrupt("type"))?,
            normal_side: self.normal_side.parse().map_err(|_| corrupt("normal side"))?,
            floor: match &self.floor {
                None => None,
                Some(f) => Some(f.parse().map_err(|_| corrupt("floor"))?),
            },
            balances: self.balances(),
        })
    }
}

/// An account to create (see `chart.rs` for the codes).
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub code: String,
    pub currency: Currency,
    pub account_type: AccountType,
    pub normal_side: NormalSide,
    pub floor: Option<Floor>,
    pub org_id: Option<Uuid>,
}

#[derive(Insertable)]
#[diesel(table_name = accounts)]
struct AccountInsert<'a> {
    id: Uuid,
    code: &'a str,
    currency: &'a str,
    account_type: &'a str,
    normal_side: &'a str,
    floor: Option<&'a str>,
    org_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

/// Creates the accounts that do not exist yet (one per code and currency) and
/// returns all of them, existing or new, in the order asked.
pub async fn ensure_accounts(
    conn: &mut AsyncPgConnection,
    wanted: &[NewAccount],
    now: DateTime<Utc>,
) -> Result<Vec<AccountRow>, LedgerError> {
    let rows: Vec<AccountInsert<'_>> = wanted
        .iter()
        .map(|a| AccountInsert {
            id: Uuid::now_v7(),
            code: &a.code,
            currency: a.currency.code(),
            account_type: a.account_type.as_str(),
            normal_side: a.normal_side.as_str(),
            floor: a.floor.map(Floor::as_str),
            org_id: a.org_id,
            created_at: now,
        })
        .collect();
    diesel::insert_into(accounts::table)
        .values(&rows)
        .on_conflict((accounts::code, accounts::currency))
        .do_nothing()
        .execute(conn)
        .await?;
    let mut found = Vec::with_capacity(wanted.len());
    for a in wanted {
        let row = accounts::table
            .filter(accounts::code.eq(&a.code))
            .filter(accounts::currency.eq(a.currency.code()))
            .select(AccountRow::as_select())
            .first(conn)
            .await?;
        found.push(row);
    }
    Ok(found)
}

/// Looks an account up by its code and currency.
pub async fn account_by_code(
    conn: &mut AsyncPgConnection,
    code: &str,
    currency: Currency,
) -> Result<Option<AccountRow>, LedgerError> {
    Ok(accounts::table
        .filter(accounts::code.eq(code))
        .filter(accounts::currency.eq(currency.code()))
        .select(AccountRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The ids of the accounts with `codes` in `currency`, in the order asked.
/// Every such account is created with its owner, so a missing one means damaged
/// data (`Corrupt`), never bad input.
pub async fn required_account_ids<const N: usize>(
    conn: &mut AsyncPgConnection,
    codes: &[String; N],
    currency: Currency,
) -> Result<[Uuid; N], LedgerError> {
    let rows: Vec<(String, Uuid)> = accounts::table
        .filter(accounts::code.eq_any(codes))
        .filter(accounts::currency.eq(currency.code()))
        .select((accounts::code, accounts::id))
        .load(conn)
        .await?;
    let found: std::collections::HashMap<String, Uuid> = rows.into_iter().collect();
    let mut ids = [Uuid::nil(); N];
    for (slot, code) in ids.iter_mut().zip(codes) {
        *slot =
            *found.get(code).ok_or_else(|| LedgerError::Corrupt(format!("account {code} {currency} is missing")))?;
    }
    Ok(ids)
}

/// A pending posting with its progress: its amount, what later postings posted
/// of it, and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingProgress {
    pub posting_id: Uuid,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub currency: Currency,
    pub amount: Decimal,
    pub posted: Decimal,
    pub remaining: Decimal,
}

#[derive(QueryableByName)]
struct ProgressRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    debit_account_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    credit_account_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    currency: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Numeric)]
    posted: Decimal,
    #[diesel(sql_type = Numeric)]
    remaining: Decimal,
}

/// The pending postings an entry made, in posting order, with their progress.
pub async fn pending_progress_of(
    conn: &mut AsyncPgConnection,
    entry_id: Uuid,
) -> Result<Vec<PendingProgress>, LedgerError> {
    let rows: Vec<ProgressRow> = diesel::sql_query(
        "SELECT p.id, p.debit_account_id, p.credit_account_id, p.currency, p.amount, r.remaining, \
                coalesce((SELECT sum(c.amount) FROM postings c \
                          WHERE c.pending_posting_id = p.id AND c.kind = 'post_pending'), 0) AS posted \
         FROM postings p JOIN pending_remainders r ON r.posting_id = p.id \
         WHERE p.entry_id = $1 AND p.kind = 'pending' ORDER BY p.seq",
    )
    .bind::<SqlUuid, _>(entry_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let currency = r
                .currency
                .parse()
                .map_err(|_| LedgerError::Corrupt(format!("posting {} has an invalid currency", r.id)))?;
            Ok(PendingProgress {
                posting_id: r.id,
                debit_account_id: r.debit_account_id,
                credit_account_id: r.credit_account_id,
                currency,
                amount: r.amount,
                posted: r.posted,
                remaining: r.remaining,
            })
        })
        .collect()
}

/// The code and type of each of `ids`, for showing postings by name.
pub async fn account_labels(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, (String, String)>, LedgerError> {
    let rows: Vec<(Uuid, String, String)> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .select((accounts::id, accounts::code, accounts::account_type))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|(id, code, account_type)| (id, (code, account_type))).collect())
}

pub async fn account_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Option<AccountRow>, LedgerError> {
    Ok(accounts::table.find(id).select(AccountRow::as_select()).first(conn).await.optional()?)
}

/// A journal entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub kind: EntryKind,
    pub effective_at: DateTime<Utc>,
    pub actor: Actor,
    pub memo: String,
    pub reference: Option<String>,
    pub reverses_entry_id: Option<Uuid>,
    pub metadata: serde_json::Value,
    pub movements: Vec<Movement>,
}

impl NewEntry {
    pub fn new(kind: EntryKind, effective_at: DateTime<Utc>, movements: Vec<Movement>) -> Self {
        NewEntry {
            kind,
            effective_at,
            actor: Actor::default(),
            memo: String::new(),
            reference: None,
            reverses_entry_id: None,
            metadata: serde_json::Value::Object(Default::default()),
            movements,
        }
    }
}

/// What `post_entry` wrote: the entry's id and its postings' ids, in the order of
/// the movements (so a caller can keep the ids of the pending postings it made).
#[derive(Debug, Clone)]
pub struct PostedEntry {
    pub id: Uuid,
    pub postings: Vec<(Uuid, AppliedPosting)>,
}

/// Writes one balanced journal entry inside the caller's transaction.
pub async fn post_entry(conn: &mut AsyncPgConnection, entry: NewEntry) -> Result<PostedEntry, LedgerError> {
    post_entry_locked(conn, entry, BTreeMap::new()).await
}

/// `post_entry` for a caller that already holds the locks of some accounts
/// (taken with `lock_accounts`, in this transaction): their states are used as
/// they are instead of being locked and read again. When `locked` holds every
/// account the entry touches, no account is read again at all.
pub async fn post_entry_locked(
    conn: &mut AsyncPgConnection,
    entry: NewEntry,
    locked: BTreeMap<Uuid, AccountState>,
) -> Result<PostedEntry, LedgerError> {
    let mut pendings = lock_pendings(conn, &entry.movements).await?;
    let mut account_ids: Vec<Uuid> = entry
        .movements
        .iter()
        .flat_map(|m| match *m {
            Movement::Transfer { debit, credit, .. } => vec![debit, credit],
            _ => vec![],
        })
        .chain(pendings.values().flat_map(|p| [p.debit_account_id, p.credit_account_id]))
        .collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    let mut book = if account_ids.iter().all(|id| locked.contains_key(id)) {
        locked.into_iter().filter(|(id, _)| account_ids.binary_search(id).is_ok()).collect()
    } else {
        lock_accounts(conn, &account_ids).await?
    };

    let applied = apply_movements(&mut book, &mut pendings, &entry.movements)?;
    let written = [AppliedEntry::new(entry, applied)];
    write_entries(conn, &written, &pendings, &book).await?;
    let [AppliedEntry { id, postings, .. }] = written;
    Ok(PostedEntry { id, postings })
}

/// An entry whose rules have run against a locked book: ready to be written.
#[derive(Debug, Clone)]
pub struct AppliedEntry {
    pub id: Uuid,
    pub entry: NewEntry,
    pub postings: Vec<(Uuid, AppliedPosting)>,
}

impl AppliedEntry {
    fn new(entry: NewEntry, applied: Vec<AppliedPosting>) -> Self {
        let postings = applied.into_iter().map(|p| (Uuid::now_v7(), p)).collect();
        AppliedEntry { id: Uuid::now_v7(), entry, postings }
    }
}

/// Applies an entry of transfers to `book` (accounts already locked in this
/// transaction), all or nothing: on error the book is as it was, so the next
/// entry of a batch is judged as if this one had never been asked for.
pub fn apply_to_book(book: &mut BTreeMap<Uuid, AccountState>, entry: NewEntry) -> Result<AppliedEntry, LedgerError> {
    let mut scratch = BTreeMap::new();
    for movement in &entry.movements {
        let Movement::Transfer { debit, credit, .. } = *movement else {
            return Err(LedgerError::Corrupt("a batched entry resolves no pending posting".into()));
        };
        for id in [debit, credit] {
            let account = book.get(&id).ok_or(LedgerError::UnknownAccount(id))?;
            scratch.entry(id).or_insert_with(|| account.clone());
        }
    }
    let applied = apply_movements(&mut scratch, &mut BTreeMap::new(), &entry.movements)?;
    book.extend(scratch);
    Ok(AppliedEntry::new(entry, applied))
}

/// Writes applied entries in one statement — the entries, their postings, the
/// new and changed remainders and every touched account's figures from `book`
/// — so that the accounts' locks are held for one round trip after the rules
/// have run. (Foreign keys between the parts are checked at the end of the
/// statement.)
pub async fn write_entries(
    conn: &mut AsyncPgConnection,
    entries: &[AppliedEntry],
    pendings: &BTreeMap<Uuid, PendingState>,
    book: &BTreeMap<Uuid, AccountState>,
) -> Result<(), LedgerError> {
    use diesel::sql_types::{Int4, Jsonb, Nullable, Text, Timestamptz};
    if entries.is_empty() {
        return Ok(());
    }
    let entry_ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let entry_kinds: Vec<&str> = entries.iter().map(|e| e.entry.kind.as_str()).collect();
    let effective: Vec<DateTime<Utc>> = entries.iter().map(|e| e.entry.effective_at).collect();
    let actor_users: Vec<Option<Uuid>> = entries.iter().map(|e| e.entry.actor.user_id).collect();
    let actor_orgs: Vec<Option<Uuid>> = entries.iter().map(|e| e.entry.actor.org_id).collect();
    let memos: Vec<&str> = entries.iter().map(|e| e.entry.memo.as_str()).collect();
    let references: Vec<Option<&str>> = entries.iter().map(|e| e.entry.reference.as_deref()).collect();
    let reverses: Vec<Option<Uuid>> = entries.iter().map(|e| e.entry.reverses_entry_id).collect();
    let metadata: Vec<&serde_json::Value> = entries.iter().map(|e| &e.entry.metadata).collect();
    let all = || entries.iter().flat_map(|e| e.postings.iter().map(move |(id, p)| (e, *id, p)));
    let posting_ids: Vec<Uuid> = all().map(|(_, id, _)| id).collect();
    let posting_entries: Vec<Uuid> = all().map(|(e, _, _)| e.id).collect();
    let posting_effective: Vec<DateTime<Utc>> = all().map(|(e, _, _)| e.entry.effective_at).collect();
    let kinds: Vec<&str> = all().map(|(_, _, p)| p.kind.as_str()).collect();
    let pending_of: Vec<Option<Uuid>> = all().map(|(_, _, p)| p.pending_posting_id).collect();
    let debits: Vec<Uuid> = all().map(|(_, _, p)| p.debit_account_id).collect();
    let credits: Vec<Uuid> = all().map(|(_, _, p)| p.credit_account_id).collect();
    let currencies: Vec<&str> = all().map(|(_, _, p)| p.currency.code()).collect();
    let amounts: Vec<Decimal> = all().map(|(_, _, p)| p.amount).collect();
    let debit_balances: Vec<Decimal> = all().map(|(_, _, p)| p.debit_account_balance).collect();
    let credit_balances: Vec<Decimal> = all().map(|(_, _, p)| p.credit_account_balance).collect();
    let order: Vec<i32> = (0..posting_ids.len() as i32).collect();
    let (new_ids, new_remaining): (Vec<Uuid>, Vec<Decimal>) =
        all().filter(|(_, _, p)| p.kind == PostingKind::Pending).map(|(_, id, p)| (id, p.amount)).unzip();
    let (resolved_ids, resolved_remaining): (Vec<Uuid>, Vec<Decimal>) =
        pendings.values().map(|p| (p.posting_id, p.remaining)).unzip();
    // Only the accounts the entries touch: a batch's book also holds accounts
    // of orders that were refused.
    let mut touched: Vec<Uuid> = all().flat_map(|(_, _, p)| [p.debit_account_id, p.credit_account_id]).collect();
    touched.sort_unstable();
    touched.dedup();
    let mut account_ids = Vec::with_capacity(touched.len());
    let mut figures: [Vec<Decimal>; 4] = Default::default();
    for id in touched {
        let account = book.get(&id).ok_or(LedgerError::UnknownAccount(id))?;
        account_ids.push(id);
        let b = account.balances;
        figures[0].push(b.debits_posted);
        figures[1].push(b.credits_posted);
        figures[2].push(b.debits_pending);
        figures[3].push(b.credits_pending);
    }
    let [dp, cp, dpe, cpe] = figures;
    diesel::sql_query(
        "WITH e AS ( \
           INSERT INTO journal_entries (id, kind, effective_at, actor_user_id, actor_org_id, memo, reference, \
                                        reverses_entry_id, metadata) \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::uuid[], $5::uuid[], $6::text[], \
                                $7::text[], $8::uuid[], $9::jsonb[])), \
         p AS ( \
           INSERT INTO postings (id, entry_id, kind, pending_posting_id, debit_account_id, credit_account_id, \
                                 currency, amount, debit_account_balance, credit_account_balance, effective_at) \
           SELECT v.id, v.entry_id, v.kind, v.pending, v.debit, v.credit, v.currency, v.amount, v.dbal, v.cbal, \
                  v.effective_at \
           FROM unnest($10::uuid[], $11::text[], $12::uuid[], $13::uuid[], $14::uuid[], $15::text[], \
                       $16::numeric[], $17::numeric[], $18::numeric[], $19::int4[], $29::uuid[], \
                       $30::timestamptz[]) \
                AS v(id, kind, pending, debit, credit, currency, amount, dbal, cbal, ord, entry_id, effective_at) \
           ORDER BY v.ord), \
         r AS ( \
           INSERT INTO pending_remainders (posting_id, remaining) \
           SELECT * FROM unnest($20::uuid[], $21::numeric[])), \
         u AS ( \
           UPDATE pending_remainders AS t SET remaining = v.remaining \
           FROM unnest($22::uuid[], $23::numeric[]) AS v(posting_id, remaining) \
           WHERE t.posting_id = v.posting_id) \
         UPDATE accounts AS a SET debits_posted = v.dp, credits_posted = v.cp, \
                debits_pending = v.dpe, credits_pending = v.cpe \
         FROM unnest($24::uuid[], $25::numeric[], $26::numeric[], $27::numeric[], $28::numeric[]) \
              AS v(id, dp, cp, dpe, cpe) \
         WHERE a.id = v.id",
    )
    .bind::<Array<SqlUuid>, _>(entry_ids)
    .bind::<Array<Text>, _>(entry_kinds)
    .bind::<Array<Timestamptz>, _>(effective)
    .bind::<Array<Nullable<SqlUuid>>, _>(actor_users)
    .bind::<Array<Nullable<SqlUuid>>, _>(actor_orgs)
    .bind::<Array<Text>, _>(memos)
    .bind::<Array<Nullable<Text>>, _>(references)
    .bind::<Array<Nullable<SqlUuid>>, _>(reverses)
    .bind::<Array<Jsonb>, _>(metadata)
    .bind::<Array<SqlUuid>, _>(posting_ids)
    .bind::<Array<Text>, _>(kinds)
    .bind::<Array<Nullable<SqlUuid>>, _>(pending_of)
    .bind::<Array<SqlUuid>, _>(debits)
    .bind::<Array<SqlUuid>, _>(credits)
    .bind::<Array<Text>, _>(currencies)
    .bind::<Array<Numeric>, _>(amounts)
    .bind::<Array<Numeric>, _>(debit_balances)
    .bind::<Array<Numeric>, _>(credit_balances)
    .bind::<Array<Int4>, _>(order)
    .bind::<Array<SqlUuid>, _>(new_ids)
    .bind::<Array<Numeric>, _>(new_remaining)
    .bind::<Array<SqlUuid>, _>(resolved_ids)
    .bind::<Array<Numeric>, _>(resolved_remaining)
    .bind::<Array<SqlUuid>, _>(account_ids)
    .bind::<Array<Numeric>, _>(dp)
    .bind::<Array<Numeric>, _>(cp)
    .bind::<Array<Numeric>, _>(dpe)
    .bind::<Array<Numeric>, _>(cpe)
    .bind::<Array<SqlUuid>, _>(posting_entries)
    .bind::<Array<Timestamptz>, _>(posting_effective)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the remainders of the pending postings that `movements` resolve.
async fn lock_pendings(
    conn: &mut AsyncPgConnection,
    movements: &[Movement],
) -> Result<BTreeMap<Uuid, PendingState>, LedgerError> {
    let mut ids: Vec<Uuid> = movements.iter().filter_map(Movement::pending_posting_id).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    // NO KEY UPDATE, not UPDATE: it does not block the KEY SHARE lock that a new
    // posting's foreign key takes on the pending posting it references.
    let rows: Vec<(Uuid, Decimal, Uuid, Uuid, String)> = pending_remainders::table
        .inner_join(postings::table)
        .filter(pending_remainders::posting_id.eq_any(&ids))
        .order(pending_remainders::posting_id)
        .select((
            pending_remainders::posting_id,
            pending_remainders::remaining,
            postings::debit_account_id,
            postings::credit_account_id,
            postings::currency,
        ))
        .for_no_key_update()
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(posting_id, remaining, debit_account_id, credit_account_id, currency)| {
            let currency = currency
                .parse()
                .map_err(|_| LedgerError::Corrupt(format!("posting {posting_id} has an invalid currency")))?;
            Ok((posting_id, PendingState { posting_id, debit_account_id, credit_account_id, currency, remaining }))
        })
        .collect()
}

/// Locks `ids` (sorted) in ascending order and returns their states. A caller
/// that must read a balance before deciding what to post (an order reading what
/// a grant has left) locks with this first; `post_entry` then finds the locks held.
pub async fn lock_accounts(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, AccountState>, LedgerError> {
    let rows: Vec<AccountRow> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .order(accounts::id)
        .select(AccountRow::as_select())
        .for_no_key_update()
        .load(conn)
        .await?;
    rows.iter().map(|r| Ok((r.id, r.state()?))).collect()
}

#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = journal_entries, check_for_backend(diesel::pg::Pg))]
pub struct EntryRow {
    pub id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_org_id: Option<Uuid>,
    pub memo: String,
    pub reference: Option<String>,
    pub reverses_entry_id: Option<Uuid>,
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = postings, check_for_backend(diesel::pg::Pg))]
pub struct PostingRow {
    pub id: Uuid,
    pub seq: i64,
    pub entry_id: Uuid,
    pub kind: String,
    pub pending_posting_id: Option<Uuid>,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub currency: String,
    pub amount: Decimal,
    pub debit_account_balance: Decimal,
    pub credit_account_balance: Decimal,
    pub effective_at: DateTime<Utc>,
}

pub async fn entry_with_postings(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Option<(EntryRow, Vec<PostingRow>)>, LedgerError> {
    let Some(entry) = journal_entries::table.find(id).select(EntryRow::as_select()).first(conn).await.optional()?
    else {
        return Ok(None);
    };
    let lines = postings::table
        .filter(postings::entry_id.eq(id))
        .order(postings::seq)
        .select(PostingRow::as_select())
        .load(conn)
        .await?;
    Ok(Some((entry, lines)))
}

/// Writes a `reversal` of `entry_id`: every posting with its sides swapped.
/// Only entries made of posted postings can be reversed; reservations are
/// released by voiding them (cancellation), and a reversal is not reversed again.
pub async fn reverse_entry(
    conn: &mut AsyncPgConnection,
    entry_id: Uuid,
    actor: Actor,
    memo: String,
    effective_at: DateTime<Utc>,
) -> Result<PostedEntry, LedgerError> {
    let (entry, lines) = entry_with_postings(conn, entry_id).await?.ok_or(LedgerError::EntryNotFound(entry_id))?;
    if entry.kind == EntryKind::Reversal.as_str() {
        return Err(LedgerError::NotReversible("it is itself a reversal".into()));
    }
    if lines.iter().any(|p| p.kind != PostingKind::Posted.as_str()) {
        return Err(LedgerError::NotReversible(
            "it holds pending postings or resolves them; release a reservation by voiding it".into(),
        ));
    }
    super::rules::reversible(&entry.kind).map_err(LedgerError::NotReversible)?;
    let already = journal_entries::table
        .filter(journal_entries::reverses_entry_id.eq(entry_id))
        .select(journal_entries::id)
        .first::<Uuid>(conn)
        .await
        .optional()?;
    if let Some(reversal) = already {
        return Err(LedgerError::NotReversible(format!("it was already reversed by {reversal}")));
    }
    let movements = lines.iter().map(|p| Movement::posted(p.credit_account_id, p.debit_account_id, p.amount)).collect();
    let mut reversal = NewEntry::new(EntryKind::Reversal, effective_at, movements);
    reversal.actor = actor;
    reversal.memo = memo;
    reversal.reverses_entry_id = Some(entry_id);
    reversal.metadata = serde_json::json!({ "reverses_kind": entry.kind });
    post_entry(conn, reversal).await.map_err(|e| match e {
        // Two reversals racing: the unique index on reverses_entry_id lets one win.
        LedgerError::Database(ref db) if is_unique_violation(&db.0) => {
            LedgerError::NotReversible("it was already reversed".into())
        }
        other => other,
    })
}

pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}
