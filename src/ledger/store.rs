//! The ledger's accounts and what was written: creating accounts, looking
//! them up, and reading entries, their postings and pending remainders —
//! always on the caller's connection, inside its transaction when it has one.
//! Writing entries is `posting.rs`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Numeric, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::LedgerError;
use super::model::{AccountState, AccountType, Balances, Floor, NormalSide, PostingKind};
use crate::db::schema::{accounts, journal_entries, postings};
use crate::money::{Currency, Money};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, PartialEq)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
pub struct AccountRow {
    pub id: Uuid,
    pub code: String,
    pub currency: Currency,
    pub account_type: AccountType,
    pub normal_side: NormalSide,
    pub floor: Option<Floor>,
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

    /// The posted balance in the account's normal direction.
    pub fn balance(&self) -> Money {
        Money::new(self.balances().posted_balance(self.normal_side), self.currency)
    }

    /// The posted balance less pending withdrawals.
    pub fn available(&self) -> Money {
        Money::new(self.balances().available(self.normal_side), self.currency)
    }

    /// The account as the posting code sees it.
    pub fn state(&self) -> AccountState {
        AccountState {
            id: self.id,
            code: self.code.clone(),
            currency: self.currency,
            account_type: self.account_type,
            normal_side: self.normal_side,
            floor: self.floor,
            balances: self.balances(),
        }
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
    currency: Currency,
    account_type: AccountType,
    normal_side: NormalSide,
    floor: Option<Floor>,
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
            currency: a.currency,
            account_type: a.account_type,
            normal_side: a.normal_side,
            floor: a.floor,
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
    entry_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    debit_account_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    credit_account_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    currency: Currency,
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
    Ok(pending_progress_of_many(conn, &[entry_id]).await?.remove(&entry_id).unwrap_or_default())
}

/// `pending_progress_of` for many entries in one statement: entry id → its
/// pending postings in posting order (an entry with none is left out).
pub async fn pending_progress_of_many(
    conn: &mut AsyncPgConnection,
    entry_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<PendingProgress>>, LedgerError> {
    if entry_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<ProgressRow> = crate::db::prepared(
        "SELECT p.entry_id, p.id, p.debit_account_id, p.credit_account_id, p.currency, p.amount, r.remaining, \
                coalesce((SELECT sum(c.amount) FROM postings c \
                          WHERE c.pending_posting_id = p.id AND c.kind = 'post_pending'), 0) AS posted \
         FROM postings p JOIN pending_remainders r ON r.posting_id = p.id \
         WHERE p.entry_id = ANY($1) AND p.kind = 'pending' ORDER BY p.entry_id, p.seq",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(entry_ids.to_vec())
    .load(conn)
    .await?;
    let mut by_entry: HashMap<Uuid, Vec<PendingProgress>> = HashMap::new();
    for r in rows {
        by_entry.entry(r.entry_id).or_default().push(PendingProgress {
            posting_id: r.id,
            debit_account_id: r.debit_account_id,
            credit_account_id: r.credit_account_id,
            currency: r.currency,
            amount: r.amount,
            posted: r.posted,
            remaining: r.remaining,
        });
    }
    Ok(by_entry)
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
    pub kind: PostingKind,
    pub pending_posting_id: Option<Uuid>,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub currency: Currency,
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

pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
}
