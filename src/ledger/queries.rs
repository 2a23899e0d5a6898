//! Read models of the ledger: account lists, statements and point-in-time figures.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::LedgerError;
use super::model::Balances;
use super::store::AccountRow;
use crate::db::schema::accounts;

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub code_prefix: Option<String>,
    pub currency: Option<String>,
    pub org_id: Option<Uuid>,
    pub account_type: Option<String>,
}

/// Accounts ordered by (code, currency), after the cursor `after`.
pub async fn list_accounts(
    conn: &mut AsyncPgConnection,
    filter: &AccountFilter,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<Vec<AccountRow>, LedgerError> {
    let mut query = accounts::table.select(AccountRow::as_select()).into_boxed();
    if let Some(prefix) = &filter.code_prefix {
        query = query.filter(accounts::code.like(format!("{}%", escape_like(prefix))).escape('\\'));
    }
    if let Some(currency) = &filter.currency {
        query = query.filter(accounts::currency.eq(currency.clone()));
    }
    if let Some(org) = filter.org_id {
        query = query.filter(accounts::org_id.eq(org));
    }
    if let Some(t) = &filter.account_type {
        query = query.filter(accounts::account_type.eq(t.clone()));
    }
    if let Some((code, currency)) = after {
        query = query
            .filter(accounts::code.gt(code.clone()).or(accounts::code.eq(code).and(accounts::currency.gt(currency))));
    }
    Ok(query.order((accounts::code.asc(), accounts::currency.asc())).limit(limit).load(conn).await?)
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// One line of an account's statement.
#[derive(Debug, Clone, QueryableByName, PartialEq)]
pub struct StatementLine {
    #[diesel(sql_type = SqlUuid)]
    pub posting_id: Uuid,
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = SqlUuid)]
    pub entry_id: Uuid,
    #[diesel(sql_type = Text)]
    pub entry_kind: String,
    #[diesel(sql_type = Text)]
    pub memo: String,
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub pending_posting_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub side: String,
    #[diesel(sql_type = SqlUuid)]
    pub counter_account_id: Uuid,
    #[diesel(sql_type = Text)]
    pub counter_account_code: String,
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = Numeric)]
    pub balance: Decimal,
}

/// The postings of one account after `after_seq`, oldest first, each with the
/// account's posted balance right after it (stored when it was written).
pub async fn statement(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StatementLine>, LedgerError> {
    // Two index range scans (debit side, credit side) merged: each is bounded by
    // the page size, so a page costs the same on an account with a million lines.
    Ok(diesel::sql_query(
        "SELECT p.id AS posting_id, p.seq, p.entry_id, e.kind AS entry_kind, e.memo, p.effective_at, \
                p.kind, p.pending_posting_id, \
                CASE WHEN p.debit_account_id = $1 THEN 'debit' ELSE 'credit' END AS side, \
                ca.id AS counter_account_id, ca.code AS counter_account_code, p.amount, \
                CASE WHEN p.debit_account_id = $1 THEN p.debit_account_balance ELSE p.credit_account_balance END AS balance \
         FROM ((SELECT * FROM postings WHERE debit_account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) \
               UNION ALL \
               (SELECT * FROM postings WHERE credit_account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3)) p \
         JOIN journal_entries e ON e.id = p.entry_id \
         JOIN accounts ca ON ca.id = CASE WHEN p.debit_account_id = $1 THEN p.credit_account_id ELSE p.debit_account_id END \
         ORDER BY p.seq LIMIT $3",
    )
    .bind::<SqlUuid, _>(account_id)
    .bind::<BigInt, _>(after_seq)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, QueryableByName)]
struct FiguresRow {
    #[diesel(sql_type = SqlUuid)]
    account_id: Uuid,
    #[diesel(sql_type = Numeric)]
    dp: Decimal,
    #[diesel(sql_type = Numeric)]
    cp: Decimal,
    #[diesel(sql_type = Numeric)]
    dpe: Decimal,
    #[diesel(sql_type = Numeric)]
    cpe: Decimal,
}

/// Every account's four figures recomputed from the postings alone, counting
/// postings effective before `as_of` (all of them when `None`). Accounts
/// without postings are absent.
pub async fn figures_from_postings(
    conn: &mut AsyncPgConnection,
    as_of: Option<DateTime<Utc>>,
) -> Result<Vec<(Uuid, Balances)>, LedgerError> {
    // posted: posted += a; pending: pending += a;
    // post_pending: pending -= a, posted += a; void_pending: pending -= a.
    let rows: Vec<FiguresRow> = diesel::sql_query(
        "WITH p AS (SELECT * FROM postings WHERE $1::timestamptz IS NULL OR effective_at < $1), \
         m AS ( \
           SELECT debit_account_id AS account_id, \
                  CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END AS dp, 0::numeric AS cp, \
                  CASE kind WHEN 'pending' THEN amount WHEN 'posted' THEN 0 ELSE -amount END AS dpe, 0::numeric AS cpe \
           FROM p \
           UNION ALL \
           SELECT credit_account_id, 0, CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END, \
                  0, CASE kind WHEN 'pending' THEN amount WHEN 'posted' THEN 0 ELSE -amount END \
           FROM p) \
         SELECT account_id, sum(dp) AS dp, sum(cp) AS cp, sum(dpe) AS dpe, sum(cpe) AS cpe \
         FROM m GROUP BY account_id ORDER BY account_id",
    )
    .bind::<Nullable<Timestamptz>, _>(as_of)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.account_id,
                Balances { debits_posted: r.dp, credits_posted: r.cp, debits_pending: r.dpe, credits_pending: r.cpe },
            )
        })
        .collect())
}

/// One account's four figures from its postings effective before `before`
/// (the half-open rule every report follows: `as_of` means "before this
/// instant"). Two index range scans, one per side of the account.
pub async fn account_figures_before(
    conn: &mut AsyncPgConnection,
    account_id: Uuid,
    before: DateTime<Utc>,
) -> Result<Balances, LedgerError> {
    // As in `figures_from_postings`: posted and post_pending move posted
    // figures; pending adds to the pending ones, post_pending and void_pending take off.
    let rows: Vec<FiguresRow> = diesel::sql_query(
        "WITH m AS ( \
           SELECT CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END AS dp, 0::numeric AS cp, \
                  CASE kind WHEN 'pending' THEN amount WHEN 'posted' THEN 0 ELSE -amount END AS dpe, \
                  0::numeric AS cpe \
           FROM postings WHERE debit_account_id = $1 AND effective_at < $2 \
           UNION ALL \
           SELECT 0, CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END, \
                  0, CASE kind WHEN 'pending' THEN amount WHEN 'posted' THEN 0 ELSE -amount END \
           FROM postings WHERE credit_account_id = $1 AND effective_at < $2) \
         SELECT $1 AS account_id, coalesce(sum(dp), 0) AS dp, coalesce(sum(cp), 0) AS cp, \
                coalesce(sum(dpe), 0) AS dpe, coalesce(sum(cpe), 0) AS cpe FROM m",
    )
    .bind::<SqlUuid, _>(account_id)
    .bind::<Timestamptz, _>(before)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| Balances { debits_posted: r.dp, credits_posted: r.cp, debits_pending: r.dpe, credits_pending: r.cpe })
        .unwrap_or_default())
}

/// Every account as of `as_of` (now when `None`), ordered by code and currency.
pub async fn trial_balance(
    conn: &mut AsyncPgConnection,
    as_of: Option<DateTime<Utc>>,
) -> Result<Vec<AccountRow>, LedgerError> {
    let mut rows: Vec<AccountRow> = accounts::table
        .select(AccountRow::as_select())
        .order((accounts::code.asc(), accounts::currency.asc()))
        .load(conn)
        .await?;
    let Some(instant) = as_of else {
        return Ok(rows);
    };
    let figures: std::collections::HashMap<Uuid, Balances> =
        figures_from_postings(conn, Some(instant)).await?.into_iter().collect();
    rows.retain(|r| r.created_at < instant || figures.contains_key(&r.id));
    for row in &mut rows {
        let b = figures.get(&row.id).copied().unwrap_or_default();
        row.debits_posted = b.debits_posted;
        row.credits_posted = b.credits_posted;
        row.debits_pending = b.debits_pending;
        row.credits_pending = b.credits_pending;
    }
    Ok(rows)
}
