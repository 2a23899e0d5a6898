//! Writing journal entries: thin, and always inside the caller's transaction.
//!
//! `post_entry` (or `post_entries`, many entries at once) is the one way money
//! moves. It locks the pending remainders and then the accounts it touches —
//! the remainders by ascending id, the accounts with a floor before those
//! without, each by ascending id (every writer takes them in that order, so
//! two writers cannot deadlock) — applies the rules of `rules.rs` in memory,
//! and writes the entry, its postings and the new figures. The caller
//! commits, so a marketplace order can reserve capacity and post in one
//! transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Numeric, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::LedgerError;
use super::model::{AccountState, Actor, EntryKind, PendingState, PostingKind};
use super::rules::{AppliedPosting, Movement, apply_movements};
use super::store::{AccountRow, entry_with_postings, is_unique_violation};
use crate::db::schema::{accounts, journal_entries, pending_remainders, postings};
use crate::money::Currency;

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
    let mut posted = post_entries_locked(conn, vec![entry], locked).await?;
    match (posted.pop(), posted.is_empty()) {
        (Some(one), true) => Ok(one),
        _ => Err(LedgerError::Corrupt("one entry was posted as another number of entries".into())),
    }
}

/// Writes many balanced journal entries inside the caller's transaction, in
/// at most three statements whatever their number: the pending remainders that any of
/// them resolves are locked at once, then every account any of them touches
/// (each set in the ledger's one order), and one statement writes them all.
/// The entries are applied in turn, each against the book as the ones before
/// it left it, so their running balances are those of posting them one by one.
/// All or nothing: if one entry is refused the call errs and, the caller's
/// transaction being rolled back, nothing is written. (An entry cannot resolve
/// a pending posting that another entry of the same call makes.)
pub async fn post_entries(
    conn: &mut AsyncPgConnection,
    entries: Vec<NewEntry>,
) -> Result<Vec<PostedEntry>, LedgerError> {
    post_entries_locked(conn, entries, BTreeMap::new()).await
}

/// `post_entries` for a caller that already holds some accounts' locks, as
/// `post_entry_locked`.
async fn post_entries_locked(
    conn: &mut AsyncPgConnection,
    entries: Vec<NewEntry>,
    locked: BTreeMap<Uuid, AccountState>,
) -> Result<Vec<PostedEntry>, LedgerError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut pendings = lock_pendings(conn, entries.iter().flat_map(|e| &e.movements)).await?;
    let mut account_ids: Vec<Uuid> = entries
        .iter()
        .flat_map(|e| &e.movements)
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

    let mut applied = Vec::with_capacity(entries.len());
    for entry in entries {
        let postings = apply_movements(&mut book, &mut pendings, &entry.movements)?;
        applied.push(AppliedEntry::new(entry, postings));
    }
    write_entries(conn, &applied, &pendings, &book).await?;
    Ok(applied.into_iter().map(|AppliedEntry { id, postings, .. }| PostedEntry { id, postings }).collect())
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

/// Recomputes, in order, the running balances of entries already applied
/// against a stand-in for some of their accounts, now that `book` holds those
/// accounts as locked. The order batch judges its orders with the accounts
/// that have a floor locked and those without one as stand-ins (they cannot
/// refuse an order), and locks the latter only to write (`batch.rs`).
/// `book` must hold the other accounts as they were when the entries were
/// first applied, so that replaying gives them the same figures.
pub fn replay(book: &mut BTreeMap<Uuid, AccountState>, entries: &mut [AppliedEntry]) -> Result<(), LedgerError> {
    for entry in entries {
        let applied = apply_movements(book, &mut BTreeMap::new(), &entry.entry.movements)?;
        if applied.len() != entry.postings.len() {
            return Err(LedgerError::Corrupt(format!("entry {} replayed to other postings", entry.id)));
        }
        for ((_, posting), again) in entry.postings.iter_mut().zip(applied) {
            *posting = again;
        }
    }
    Ok(())
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
    if entries.is_empty() {
        return Ok(());
    }
    let headers = EntryColumns::of(entries);
    let lines = PostingColumns::of(entries, pendings, book)?;
    let sql = format!("WITH e AS ({}), {}", EntryColumns::SQL, lines.sql(EntryColumns::PARAMETERS));
    lines.bind(headers.bind(crate::db::prepared(sql))).execute(conn).await?;
    Ok(())
}

/// Writes the entries' headers (`journal_entries`) alone: the first half of
/// `write_entries`, for a caller that must insert rows referring to the
/// entries before it locks the accounts (the order batch). `write_postings`
/// writes the rest.
pub async fn write_entry_headers(conn: &mut AsyncPgConnection, entries: &[AppliedEntry]) -> Result<(), LedgerError> {
    if entries.is_empty() {
        return Ok(());
    }
    let headers = EntryColumns::of(entries);
    headers.bind(crate::db::prepared(EntryColumns::SQL)).execute(conn).await?;
    Ok(())
}

/// The second half of `write_entries`: the postings, remainders and account
/// figures of entries whose headers `write_entry_headers` wrote.
pub async fn write_postings(
    conn: &mut AsyncPgConnection,
    entries: &[AppliedEntry],
    pendings: &BTreeMap<Uuid, PendingState>,
    book: &BTreeMap<Uuid, AccountState>,
) -> Result<(), LedgerError> {
    if entries.is_empty() {
        return Ok(());
    }
    let lines = PostingColumns::of(entries, pendings, book)?;
    let sql = format!("WITH {}", lines.sql(0));
    lines.bind(crate::db::prepared(sql)).execute(conn).await?;
    Ok(())
}

type BoxedQuery<'a> = crate::db::PreparedSql<'a>;

/// The entries' headers as parallel arrays, for one `unnest` insert.
struct EntryColumns<'a> {
    ids: Vec<Uuid>,
    kinds: Vec<&'static str>,
    effective: Vec<DateTime<Utc>>,
    actor_users: Vec<Option<Uuid>>,
    actor_orgs: Vec<Option<Uuid>>,
    memos: Vec<&'a str>,
    references: Vec<Option<&'a str>>,
    reverses: Vec<Option<Uuid>>,
    metadata: Vec<&'a serde_json::Value>,
}

impl<'a> EntryColumns<'a> {
    const PARAMETERS: usize = 9;
    const SQL: &'static str = "INSERT INTO journal_entries (id, kind, effective_at, actor_user_id, actor_org_id, memo, \
                                    reference, reverses_entry_id, metadata) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::uuid[], $5::uuid[], $6::text[], \
                              $7::text[], $8::uuid[], $9::jsonb[])";

    fn of(entries: &'a [AppliedEntry]) -> Self {
        EntryColumns {
            ids: entries.iter().map(|e| e.id).collect(),
            kinds: entries.iter().map(|e| e.entry.kind.as_str()).collect(),
            effective: entries.iter().map(|e| e.entry.effective_at).collect(),
            actor_users: entries.iter().map(|e| e.entry.actor.user_id).collect(),
            actor_orgs: entries.iter().map(|e| e.entry.actor.org_id).collect(),
            memos: entries.iter().map(|e| e.entry.memo.as_str()).collect(),
            references: entries.iter().map(|e| e.entry.reference.as_deref()).collect(),
            reverses: entries.iter().map(|e| e.entry.reverses_entry_id).collect(),
            metadata: entries.iter().map(|e| &e.entry.metadata).collect(),
        }
    }

    fn bind(self, query: BoxedQuery<'a>) -> BoxedQuery<'a> {
        use diesel::sql_types::{Jsonb, Nullable, Text, Timestamptz};
        query
            .bind::<Array<SqlUuid>, _>(self.ids)
            .bind::<Array<Text>, _>(self.kinds)
            .bind::<Array<Timestamptz>, _>(self.effective)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.actor_users)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.actor_orgs)
            .bind::<Array<Text>, _>(self.memos)
            .bind::<Array<Nullable<Text>>, _>(self.references)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.reverses)
            .bind::<Array<Jsonb>, _>(self.metadata)
    }
}

/// The entries' postings, the remainders they open and resolve, and the
/// figures of every account they touch, as parallel arrays.
struct PostingColumns {
    ids: Vec<Uuid>,
    entry_ids: Vec<Uuid>,
    effective: Vec<DateTime<Utc>>,
    kinds: Vec<&'static str>,
    pending_of: Vec<Option<Uuid>>,
    debits: Vec<Uuid>,
    credits: Vec<Uuid>,
    currencies: Vec<&'static str>,
    amounts: Vec<Decimal>,
    debit_balances: Vec<Decimal>,
    credit_balances: Vec<Decimal>,
    order: Vec<i32>,
    new_remainders: (Vec<Uuid>, Vec<Decimal>),
    resolved_remainders: (Vec<Uuid>, Vec<Decimal>),
    account_ids: Vec<Uuid>,
    figures: [Vec<Decimal>; 4],
}

impl PostingColumns {
    fn of(
        entries: &[AppliedEntry],
        pendings: &BTreeMap<Uuid, PendingState>,
        book: &BTreeMap<Uuid, AccountState>,
    ) -> Result<Self, LedgerError> {
        let all = || entries.iter().flat_map(|e| e.postings.iter().map(move |(id, p)| (e, *id, p)));
        // Only the accounts the entries touch: a batch's book also holds
        // accounts of orders that were refused.
        let mut touched: Vec<Uuid> = all().flat_map(|(_, _, p)| [p.debit_account_id, p.credit_account_id]).collect();
        touched.sort_unstable();
        touched.dedup();
        let mut figures: [Vec<Decimal>; 4] = Default::default();
        for id in &touched {
            let b = book.get(id).ok_or(LedgerError::UnknownAccount(*id))?.balances;
            figures[0].push(b.debits_posted);
            figures[1].push(b.credits_posted);
            figures[2].push(b.debits_pending);
            figures[3].push(b.credits_pending);
        }
        let count = all().count();
        Ok(PostingColumns {
            ids: all().map(|(_, id, _)| id).collect(),
            entry_ids: all().map(|(e, _, _)| e.id).collect(),
            effective: all().map(|(e, _, _)| e.entry.effective_at).collect(),
            kinds: all().map(|(_, _, p)| p.kind.as_str()).collect(),
            pending_of: all().map(|(_, _, p)| p.pending_posting_id).collect(),
            debits: all().map(|(_, _, p)| p.debit_account_id).collect(),
            credits: all().map(|(_, _, p)| p.credit_account_id).collect(),
            currencies: all().map(|(_, _, p)| p.currency.code()).collect(),
            amounts: all().map(|(_, _, p)| p.amount).collect(),
            debit_balances: all().map(|(_, _, p)| p.debit_account_balance).collect(),
            credit_balances: all().map(|(_, _, p)| p.credit_account_balance).collect(),
            order: (0..i32::try_from(count).map_err(|_| LedgerError::Corrupt("too many postings".into()))?).collect(),
            new_remainders: all()
                .filter(|(_, _, p)| p.kind == PostingKind::Pending)
                .map(|(_, id, p)| (id, p.amount))
                .unzip(),
            resolved_remainders: pendings.values().map(|p| (p.posting_id, p.remaining)).unzip(),
            account_ids: touched,
            figures,
        })
    }

    /// The statement's common table expressions and final `UPDATE`, its
    /// parameters numbered after the `first` ones already bound.
    fn sql(&self, first: usize) -> String {
        let p = |n: usize| format!("${}", first + n);
        format!(
            "p AS ( \
               INSERT INTO postings (id, entry_id, kind, pending_posting_id, debit_account_id, credit_account_id, \
                                     currency, amount, debit_account_balance, credit_account_balance, effective_at) \
               SELECT v.id, v.entry_id, v.kind, v.pending, v.debit, v.credit, v.currency, v.amount, v.dbal, v.cbal, \
                      v.effective_at \
               FROM unnest({}::uuid[], {}::text[], {}::uuid[], {}::uuid[], {}::uuid[], {}::text[], \
                           {}::numeric[], {}::numeric[], {}::numeric[], {}::int4[], {}::uuid[], {}::timestamptz[]) \
                    AS v(id, kind, pending, debit, credit, currency, amount, dbal, cbal, ord, entry_id, effective_at) \
               ORDER BY v.ord), \
             r AS ( \
               INSERT INTO pending_remainders (posting_id, remaining) \
               SELECT * FROM unnest({}::uuid[], {}::numeric[])), \
             u AS ( \
               UPDATE pending_remainders AS t SET remaining = v.remaining \
               FROM unnest({}::uuid[], {}::numeric[]) AS v(posting_id, remaining) \
               WHERE t.posting_id = v.posting_id) \
             UPDATE accounts AS a SET debits_posted = v.dp, credits_posted = v.cp, \
                    debits_pending = v.dpe, credits_pending = v.cpe \
             FROM unnest({}::uuid[], {}::numeric[], {}::numeric[], {}::numeric[], {}::numeric[]) \
                  AS v(id, dp, cp, dpe, cpe) \
             WHERE a.id = v.id",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8),
            p(9),
            p(10),
            p(11),
            p(12),
            p(13),
            p(14),
            p(15),
            p(16),
            p(17),
            p(18),
            p(19),
            p(20),
            p(21),
        )
    }

    fn bind(self, query: BoxedQuery<'_>) -> BoxedQuery<'_> {
        use diesel::sql_types::{Int4, Nullable, Text, Timestamptz};
        let [dp, cp, dpe, cpe] = self.figures;
        query
            .bind::<Array<SqlUuid>, _>(self.ids)
            .bind::<Array<Text>, _>(self.kinds)
            .bind::<Array<Nullable<SqlUuid>>, _>(self.pending_of)
            .bind::<Array<SqlUuid>, _>(self.debits)
            .bind::<Array<SqlUuid>, _>(self.credits)
            .bind::<Array<Text>, _>(self.currencies)
            .bind::<Array<Numeric>, _>(self.amounts)
            .bind::<Array<Numeric>, _>(self.debit_balances)
            .bind::<Array<Numeric>, _>(self.credit_balances)
            .bind::<Array<Int4>, _>(self.order)
            .bind::<Array<SqlUuid>, _>(self.entry_ids)
            .bind::<Array<Timestamptz>, _>(self.effective)
            .bind::<Array<SqlUuid>, _>(self.new_remainders.0)
            .bind::<Array<Numeric>, _>(self.new_remainders.1)
            .bind::<Array<SqlUuid>, _>(self.resolved_remainders.0)
            .bind::<Array<Numeric>, _>(self.resolved_remainders.1)
            .bind::<Array<SqlUuid>, _>(self.account_ids)
            .bind::<Array<Numeric>, _>(dp)
            .bind::<Array<Numeric>, _>(cp)
            .bind::<Array<Numeric>, _>(dpe)
            .bind::<Array<Numeric>, _>(cpe)
    }
}

/// Locks the remainders of the pending postings that `movements` resolve.
async fn lock_pendings<'a>(
    conn: &mut AsyncPgConnection,
    movements: impl IntoIterator<Item = &'a Movement>,
) -> Result<BTreeMap<Uuid, PendingState>, LedgerError> {
    let mut ids: Vec<Uuid> = movements.into_iter().filter_map(Movement::pending_posting_id).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    // NO KEY UPDATE, not UPDATE: it does not block the KEY SHARE lock that a new
    // posting's foreign key takes on the pending posting it references.
    let rows: Vec<(Uuid, Decimal, Uuid, Uuid, Currency)> = pending_remainders::table
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
    Ok(rows
        .into_iter()
        .map(|(posting_id, remaining, debit_account_id, credit_account_id, currency)| {
            (posting_id, PendingState { posting_id, debit_account_id, credit_account_id, currency, remaining })
        })
        .collect())
}

/// Locks `ids` in the ledger's one order — the accounts with a floor first,
/// then those without, each by ascending id — and returns their states. A
/// caller that must read a balance before deciding what to post (an order
/// reading what a grant has left) locks with this first; `post_entry` then
/// finds the locks held. A caller that locks in two steps must lock accounts
/// with a floor in the first and accounts without in the second (the order
/// batch does), never the other way round.
pub async fn lock_accounts(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, AccountState>, LedgerError> {
    let rows: Vec<AccountRow> = accounts::table
        .filter(accounts::id.eq_any(ids))
        .order((accounts::floor.is_null(), accounts::id))
        .select(AccountRow::as_select())
        .for_no_key_update()
        .load(conn)
        .await?;
    Ok(rows.iter().map(|r| (r.id, r.state())).collect())
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
    if lines.iter().any(|p| p.kind != PostingKind::Posted) {
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

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::ledger::model::{AccountType, Balances, Floor};
    use crate::ledger::rules::normal_side_of;

    fn account(n: u128, account_type: AccountType, floor: Option<Floor>, credits_posted: Decimal) -> AccountState {
        AccountState {
            id: Uuid::from_u128(n),
            code: format!("test:{n}"),
            currency: Currency::Krw,
            account_type,
            normal_side: normal_side_of(account_type),
            floor,
            balances: Balances { credits_posted, ..Balances::default() },
        }
    }

    /// A batch judges against a stand-in for the payable (no floor), then
    /// replays against the payable as locked: the wallet's figures come out
    /// the same, the payable's are the real ones, and a refused order that
    /// never reached the book changes nothing.
    #[test]
    fn replay_gives_the_locked_figures_to_accounts_judged_as_stand_ins() {
        let wallet = account(1, AccountType::Liability, Some(Floor::NoOverdraft), dec!(100));
        let stale_payable = account(2, AccountType::Liability, None, dec!(0));
        let locked_payable = account(2, AccountType::Liability, None, dec!(5000));
        let (w, p) = (wallet.id, stale_payable.id);
        let before: BTreeMap<Uuid, AccountState> = [(w, wallet.clone())].into();
        let mut judging = before.clone();
        judging.insert(p, stale_payable);
        let now = Utc::now();
        let order = |amount| NewEntry::new(EntryKind::Order, now, vec![Movement::posted(w, p, amount)]);
        let first = apply_to_book(&mut judging, order(dec!(30))).expect("fits");
        assert!(apply_to_book(&mut judging, order(dec!(80))).is_err(), "70 left in the wallet");
        let second = apply_to_book(&mut judging, order(dec!(70))).expect("fits exactly");
        let ids: Vec<Uuid> = [&first, &second].iter().flat_map(|e| e.postings.iter().map(|(id, _)| *id)).collect();

        let mut book = before;
        book.insert(p, locked_payable);
        let mut entries = vec![first, second];
        replay(&mut book, &mut entries).expect("replays");

        let lines: Vec<(Decimal, Decimal)> = entries
            .iter()
            .flat_map(|e| &e.postings)
            .map(|(_, l)| (l.debit_account_balance, l.credit_account_balance))
            .collect();
        assert_eq!(lines, vec![(dec!(70), dec!(5030)), (dec!(0), dec!(5100))]);
        let kept: Vec<Uuid> = entries.iter().flat_map(|e| e.postings.iter().map(|(id, _)| *id)).collect();
        assert_eq!(kept, ids, "postings keep their ids");
        assert_eq!(book[&w].balances, judging[&w].balances);
        assert_eq!(book[&p].balances.credits_posted, dec!(5100));
    }
}
