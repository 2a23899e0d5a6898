//! Bank reconciliation (issue 11, item 4): bank statement files imported as
//! lines that are never changed, matched to the ledger entries that moved
//! `assets:bank` (`bank_match` decides), confirmed or undone by people, and a
//! reconciliation report that says whether the bank and the books agree with
//! nothing unexplained.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Date, Nullable, Numeric, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::FinanceError;
use super::bank_match::{Candidate, Line, Outcome, match_lines};
use crate::auth::OrgId;
use crate::db::schema::{bank_lines, bank_matches, bank_statements};
use crate::ledger::model::{Actor, text_enum, text_enum_sql};
use crate::money::{Currency, format_amount, parse_amount};

text_enum_sql! {
    /// A match between a line and an entry: suggested by the matcher (awaiting a
    /// person) or confirmed.
    pub enum MatchState {
        Suggested => "suggested",
        Confirmed => "confirmed",
    }
}

text_enum! {
    /// Where a line stands, from its live matches (not stored).
    pub enum BankLineStatus {
        /// A confirmed match.
        Matched => "matched",
        /// Only suggestions, awaiting a person.
        Suggested => "suggested",
        Unmatched => "unmatched",
    }
}

/// Which column of the file holds each field (the default layout's names).
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Columns {
    /// Column of the value date (`YYYY-MM-DD`); default `date`.
    pub date_column: Option<String>,
    /// Column of the signed amount (+ received, − paid); default `amount`.
    pub amount_column: Option<String>,
    /// Default `currency`.
    pub currency_column: Option<String>,
    /// Default `counterparty`.
    pub counterparty_column: Option<String>,
    /// Default `reference`.
    pub reference_column: Option<String>,
    /// The bank's own unique id of the line; default `bank_ref`.
    pub bank_ref_column: Option<String>,
}

/// One line of a statement file, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine {
    pub row: usize,
    pub date: NaiveDate,
    pub amount: Decimal,
    pub currency: Currency,
    pub counterparty: String,
    pub reference: String,
    pub bank_ref: String,
}

/// Parses a statement file. A bad row refuses the whole file, naming the row
/// (1 is the header) and the column.
pub fn parse_statement(bytes: &[u8], columns: &Columns) -> Result<Vec<ParsedLine>, FinanceError> {
    let name = |given: &Option<String>, default: &str| given.clone().unwrap_or_else(|| default.to_string());
    let wanted = [
        name(&columns.date_column, "date"),
        name(&columns.amount_column, "amount"),
        name(&columns.currency_column, "currency"),
        name(&columns.counterparty_column, "counterparty"),
        name(&columns.reference_column, "reference"),
        name(&columns.bank_ref_column, "bank_ref"),
    ];
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
    let headers = reader.headers().map_err(|e| FinanceError::InvalidFile { row: 1, why: e.to_string() })?.clone();
    let mut index = [0usize; 6];
    for (i, column) in wanted.iter().enumerate() {
        index[i] = headers
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| FinanceError::InvalidFile { row: 1, why: format!("no column named {column:?}") })?;
    }
    let mut lines = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let row = n + 2;
        let record = record.map_err(|e| FinanceError::InvalidFile { row, why: e.to_string() })?;
        if record.iter().any(|f| f.contains('\0')) {
            return Err(FinanceError::InvalidFile { row, why: "must not contain a NUL character".into() });
        }
        let field = |i: usize| record.get(index[i]).unwrap_or("").to_string();
        let bad = |column: &str, why: String| FinanceError::InvalidCell { row, column: column.to_string(), why };
        let date = NaiveDate::parse_from_str(&field(0), "%Y-%m-%d")
            .map_err(|_| bad(&wanted[0], "a date is YYYY-MM-DD".into()))?;
        let currency: Currency =
            field(2).parse().map_err(|e: crate::money::UnknownCurrency| bad(&wanted[2], e.to_string()))?;
        let raw = field(1);
        let (negative, digits) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, raw.strip_prefix('+').unwrap_or(&raw).to_string()),
        };
        let magnitude = parse_amount(&digits, currency).map_err(|e| bad(&wanted[1], e.to_string()))?;
        let amount = if negative { -magnitude } else { magnitude };
        let bank_ref = field(5);
        if bank_ref.is_empty() || bank_ref.chars().count() > 200 {
            return Err(bad(&wanted[5], "must be 1 to 200 characters".into()));
        }
        let (counterparty, reference) = (field(3), field(4));
        if counterparty.chars().count() > 500 || reference.chars().count() > 200 {
            return Err(bad(&wanted[4], "too long".into()));
        }
        lines.push(ParsedLine { row, date, amount, currency, counterparty, reference, bank_ref });
    }
    let mut seen = std::collections::HashSet::new();
    for l in &lines {
        if !seen.insert(l.bank_ref.clone()) {
            return Err(FinanceError::DuplicateBankRef { row: l.row, bank_ref: l.bank_ref.clone() });
        }
    }
    Ok(lines)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BankLineView {
    pub id: Uuid,
    pub row_number: i32,
    pub date: NaiveDate,
    pub amount: String,
    pub currency: String,
    pub counterparty: String,
    pub reference: String,
    pub bank_ref: String,
    /// `matched`, `suggested` (awaiting a person) or `unmatched`.
    pub status: BankLineStatus,
    /// The journal entries it is matched (or suggested) to.
    pub journal_entry_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefusedLine {
    pub row: usize,
    pub bank_ref: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub statement_id: Uuid,
    pub lines: Vec<BankLineView>,
    /// Lines already imported before (same `bank_ref`): refused one by one.
    pub refused: Vec<RefusedLine>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = bank_lines, check_for_backend(diesel::pg::Pg))]
struct LineRow {
    id: Uuid,
    row_number: i32,
    value_date: NaiveDate,
    amount: Decimal,
    currency: Currency,
    counterparty: String,
    reference: String,
    bank_ref: String,
}

/// Live matches per line: (state, entry).
async fn live_matches(
    conn: &mut AsyncPgConnection,
    lines: &[Uuid],
) -> QueryResult<HashMap<Uuid, Vec<(MatchState, Uuid)>>> {
    let rows: Vec<(Uuid, MatchState, Uuid)> = bank_matches::table
        .filter(bank_matches::bank_line_id.eq_any(lines))
        .filter(bank_matches::removed_at.is_null())
        .order(bank_matches::created_at)
        .select((bank_matches::bank_line_id, bank_matches::state, bank_matches::journal_entry_id))
        .load(conn)
        .await?;
    let mut by_line: HashMap<Uuid, Vec<(MatchState, Uuid)>> = HashMap::new();
    for (line, state, entry) in rows {
        by_line.entry(line).or_default().push((state, entry));
    }
    Ok(by_line)
}

fn view(row: LineRow, matches: &[(MatchState, Uuid)]) -> BankLineView {
    let status = if matches.iter().any(|(s, _)| *s == MatchState::Confirmed) {
        BankLineStatus::Matched
    } else if matches.is_empty() {
        BankLineStatus::Unmatched
    } else {
        BankLineStatus::Suggested
    };
    BankLineView {
        id: row.id,
        row_number: row.row_number,
        date: row.value_date,
        amount: format_amount(row.amount, row.currency),
        currency: row.currency.code().to_string(),
        counterparty: row.counterparty,
        reference: row.reference,
        bank_ref: row.bank_ref,
        status,
        journal_entry_ids: matches.iter().map(|(_, e)| *e).collect(),
    }
}

pub async fn line_views(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> Result<Vec<BankLineView>, FinanceError> {
    let rows: Vec<LineRow> = bank_lines::table
        .filter(bank_lines::id.eq_any(ids))
        .order((bank_lines::value_date, bank_lines::row_number))
        .select(LineRow::as_select())
        .load(conn)
        .await?;
    let matches = live_matches(conn, ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let m = matches.get(&r.id).cloned().unwrap_or_default();
            view(r, &m)
        })
        .collect())
}

/// Stores a parsed statement (refusing, line by line, bank references already
/// imported) and runs the matcher over every line still unmatched.
pub async fn import(
    conn: &mut AsyncPgConnection,
    lines: Vec<ParsedLine>,
    zone: &str,
    tolerance_days: i64,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ImportResult, FinanceError> {
    // One import at a time: the bank_ref check and the matcher see every line.
    diesel::sql_query("LOCK TABLE bank_statements IN EXCLUSIVE MODE").execute(conn).await?;
    let refs: Vec<String> = lines.iter().map(|l| l.bank_ref.clone()).collect();
    let existing: Vec<String> =
        bank_lines::table.filter(bank_lines::bank_ref.eq_any(&refs)).select(bank_lines::bank_ref).load(conn).await?;
    let (refused, fresh): (Vec<ParsedLine>, Vec<ParsedLine>) =
        lines.into_iter().partition(|l| existing.contains(&l.bank_ref));
    let statement_id = Uuid::now_v7();
    diesel::insert_into(bank_statements::table)
        .values((
            bank_statements::id.eq(statement_id),
            bank_statements::imported_by.eq(actor.user_id),
            bank_statements::imported_at.eq(now),
            bank_statements::lines.eq(fresh.len() as i32),
            bank_statements::refused.eq(refused.len() as i32),
        ))
        .execute(conn)
        .await?;
    let mut ids = Vec::with_capacity(fresh.len());
    for l in &fresh {
        let id = Uuid::now_v7();
        ids.push(id);
        diesel::insert_into(bank_lines::table)
            .values((
                bank_lines::id.eq(id),
                bank_lines::statement_id.eq(statement_id),
                bank_lines::row_number.eq(l.row as i32),
                bank_lines::value_date.eq(l.date),
                bank_lines::amount.eq(l.amount),
                bank_lines::currency.eq(l.currency),
                bank_lines::counterparty.eq(&l.counterparty),
                bank_lines::reference.eq(&l.reference),
                bank_lines::bank_ref.eq(&l.bank_ref),
                bank_lines::created_at.eq(now),
            ))
            .execute(conn)
            .await?;
    }
    run_matcher(conn, zone, tolerance_days, actor, now).await?;
    Ok(ImportResult {
        statement_id,
        lines: line_views(conn, &ids).await?,
        refused: refused
            .into_iter()
            .map(|l| RefusedLine { row: l.row, bank_ref: l.bank_ref, reason: "already imported".into() })
            .collect(),
    })
}

#[derive(QueryableByName)]
struct CandidateRow {
    #[diesel(sql_type = SqlUuid)]
    entry_id: Uuid,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Text)]
    currency: Currency,
    #[diesel(sql_type = Nullable<Text>)]
    reference: Option<String>,
}

/// Entries that moved `assets:bank` and no live match holds: what a line may match.
async fn candidates(conn: &mut AsyncPgConnection, zone: &str) -> QueryResult<Vec<CandidateRow>> {
    diesel::sql_query(
        "SELECT e.id AS entry_id, (e.effective_at AT TIME ZONE $1)::date AS day, p.currency, e.reference, \
                sum(CASE WHEN p.debit_account_id = a.id THEN p.amount ELSE -p.amount END) AS amount \
         FROM accounts a JOIN postings p ON p.debit_account_id = a.id OR p.credit_account_id = a.id \
         JOIN journal_entries e ON e.id = p.entry_id \
         WHERE a.code = 'assets:bank' AND p.kind = 'posted' \
           AND NOT EXISTS (SELECT 1 FROM bank_matches m WHERE m.journal_entry_id = e.id AND m.removed_at IS NULL) \
         GROUP BY e.id, e.effective_at, p.currency, e.reference \
         HAVING sum(CASE WHEN p.debit_account_id = a.id THEN p.amount ELSE -p.amount END) <> 0 \
         ORDER BY e.effective_at",
    )
    .bind::<Text, _>(zone)
    .load(conn)
    .await
}

/// Matches every line that has no live match yet.
pub async fn run_matcher(
    conn: &mut AsyncPgConnection,
    zone: &str,
    tolerance_days: i64,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<(), FinanceError> {
    let open: Vec<LineRow> = bank_lines::table
        .filter(diesel::dsl::not(diesel::dsl::exists(
            bank_matches::table
                .filter(bank_matches::bank_line_id.eq(bank_lines::id))
                .filter(bank_matches::removed_at.is_null()),
        )))
        .order((bank_lines::value_date, bank_lines::row_number))
        .select(LineRow::as_select())
        .load(conn)
        .await?;
    if open.is_empty() {
        return Ok(());
    }
    let lines: Vec<Line> = open
        .iter()
        .map(|r| Line {
            id: r.id,
            date: r.value_date,
            amount: r.amount,
            currency: r.currency,
            reference: r.reference.clone(),
            bank_ref: r.bank_ref.clone(),
        })
        .collect();
    let candidates: Vec<Candidate> = candidates(conn, zone)
        .await?
        .into_iter()
        .map(|c| Candidate {
            entry_id: c.entry_id,
            date: c.day,
            amount: c.amount,
            currency: c.currency,
            reference: c.reference,
        })
        .collect();
    for (line, outcome) in match_lines(&lines, &candidates, tolerance_days) {
        let (entries, state, method) = match outcome {
            Outcome::Matched { entries, method } => (entries, MatchState::Confirmed, method),
            Outcome::Suggested { entry } => (vec![entry], MatchState::Suggested, "amount_date"),
            Outcome::Unmatched => continue,
        };
        for entry in entries {
            insert_match(conn, line, entry, state, method, actor, now).await?;
        }
    }
    Ok(())
}

async fn insert_match(
    conn: &mut AsyncPgConnection,
    line: Uuid,
    entry: Uuid,
    state: MatchState,
    method: &str,
    actor: Actor,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::insert_into(bank_matches::table)
        .values((
            bank_matches::id.eq(Uuid::now_v7()),
            bank_matches::bank_line_id.eq(line),
            bank_matches::journal_entry_id.eq(entry),
            bank_matches::state.eq(state),
            bank_matches::method.eq(method),
            bank_matches::created_by.eq(actor.user_id),
            bank_matches::created_at.eq(now),
        ))
        .execute(conn)
        .await
}

async fn lock_line(conn: &mut AsyncPgConnection, id: Uuid) -> Result<LineRow, FinanceError> {
    bank_lines::table
        .find(id)
        .select(LineRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(FinanceError::LineNotFound(id))
}

async fn remove_live(conn: &mut AsyncPgConnection, line: Uuid, actor: Actor, now: DateTime<Utc>) -> QueryResult<usize> {
    diesel::update(
        bank_matches::table.filter(bank_matches::bank_line_id.eq(line)).filter(bank_matches::removed_at.is_null()),
    )
    .set((bank_matches::removed_at.eq(now), bank_matches::removed_by.eq(actor.user_id)))
    .execute(conn)
    .await
}

/// A person matches a line: with no entries named, confirms what was
/// suggested; otherwise matches the entries named, whose bank amounts must add
/// up to the line's (or, for one entry, to the line's together with the other
/// lines already matched to it).
pub async fn match_line(
    conn: &mut AsyncPgConnection,
    line_id: Uuid,
    entries: Vec<Uuid>,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<BankLineView, FinanceError> {
    let line = lock_line(conn, line_id).await?;
    let live = live_matches(conn, &[line_id]).await?.remove(&line_id).unwrap_or_default();
    if entries.is_empty() {
        let suggested: Vec<Uuid> = live.iter().filter(|(s, _)| *s == MatchState::Suggested).map(|(_, e)| *e).collect();
        if suggested.is_empty() {
            return Err(FinanceError::NothingSuggested);
        }
        remove_live(conn, line_id, actor, now).await?;
        for e in suggested {
            insert_match(conn, line_id, e, MatchState::Confirmed, "manual", actor, now).await?;
        }
    } else {
        if live.iter().any(|(s, _)| *s == MatchState::Confirmed) {
            return Err(FinanceError::AlreadyMatched);
        }
        let all = bank_amounts(conn).await?;
        let mut total = Decimal::ZERO;
        for e in &entries {
            let (amount, currency) = all.get(e).cloned().ok_or(FinanceError::EntryNotInBank(*e))?;
            if currency != line.currency {
                return Err(FinanceError::EntryInOtherCurrency { entry: *e, currency });
            }
            total += amount;
        }
        let fits = total == line.amount
            || (entries.len() == 1 && {
                let others = lines_matched_to(conn, entries[0]).await?;
                others + line.amount == total
            });
        if !fits {
            return Err(FinanceError::AmountsDiffer { entries: total, line: line.amount });
        }
        remove_live(conn, line_id, actor, now).await?;
        for e in entries {
            insert_match(conn, line_id, e, MatchState::Confirmed, "manual", actor, now).await?;
        }
    }
    Ok(line_views(conn, &[line_id]).await?.remove(0))
}

async fn lines_matched_to(conn: &mut AsyncPgConnection, entry: Uuid) -> QueryResult<Decimal> {
    let amounts: Vec<Decimal> = bank_lines::table
        .filter(diesel::dsl::exists(
            bank_matches::table
                .filter(bank_matches::bank_line_id.eq(bank_lines::id))
                .filter(bank_matches::journal_entry_id.eq(entry))
                .filter(bank_matches::removed_at.is_null())
                .filter(bank_matches::state.eq(MatchState::Confirmed)),
        ))
        .select(bank_lines::amount)
        .load(conn)
        .await?;
    Ok(amounts.into_iter().sum())
}

/// Every entry's effect on the bank (signed) and its currency.
async fn bank_amounts(conn: &mut AsyncPgConnection) -> QueryResult<HashMap<Uuid, (Decimal, Currency)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        entry_id: Uuid,
        #[diesel(sql_type = Numeric)]
        amount: Decimal,
        #[diesel(sql_type = Text)]
        currency: Currency,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT p.entry_id, p.currency, sum(CASE WHEN p.debit_account_id = a.id THEN p.amount ELSE -p.amount END) AS amount \
         FROM accounts a JOIN postings p ON p.debit_account_id = a.id OR p.credit_account_id = a.id \
         WHERE a.code = 'assets:bank' AND p.kind = 'posted' GROUP BY p.entry_id, p.currency",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.entry_id, (r.amount, r.currency))).collect())
}

/// A person undoes a line's matches (kept, marked removed, for the audit).
pub async fn unmatch_line(
    conn: &mut AsyncPgConnection,
    line_id: Uuid,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<BankLineView, FinanceError> {
    lock_line(conn, line_id).await?;
    if remove_live(conn, line_id, actor, now).await? == 0 {
        return Err(FinanceError::NothingToUnmatch);
    }
    Ok(line_views(conn, &[line_id]).await?.remove(0))
}

/// Books an unmatched receipt as a deposit for the tenant its reference names,
/// and matches the line to it.
pub async fn book_deposit(
    conn: &mut AsyncPgConnection,
    line_id: Uuid,
    tenant: OrgId,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<BankLineView, FinanceError> {
    let line = lock_line(conn, line_id).await?;
    if !live_matches(conn, &[line_id]).await?.get(&line_id).is_none_or(Vec::is_empty) {
        return Err(FinanceError::LineNotFree);
    }
    if line.amount <= Decimal::ZERO {
        return Err(FinanceError::NotAReceipt);
    }
    let currency = line.currency;
    let deposit =
        super::deposits::deposit(conn, tenant.0, line.amount, currency, line.bank_ref.clone(), actor, now).await?;
    insert_match(conn, line_id, deposit.id, MatchState::Confirmed, "deposit", actor, now).await?;
    Ok(line_views(conn, &[line_id]).await?.remove(0))
}

/// The reconciliation as of an instant, per currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reconciliation {
    pub as_of: DateTime<Utc>,
    pub currency: String,
    /// The sum of the statement lines dated before `as_of` (in the programme office's zone).
    pub statement_balance: String,
    /// `assets:bank` as of `as_of` (entries effective before it).
    pub ledger_balance: String,
    /// Lines with no confirmed match.
    pub unmatched_lines: Vec<BankLineView>,
    /// Entries that moved the bank with no line matched to them (in transit, or unexplained).
    pub unmatched_entries: Vec<UnmatchedEntry>,
    /// Balances agree and nothing is left unexplained.
    pub reconciled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnmatchedEntry {
    pub journal_entry_id: Uuid,
    pub kind: String,
    pub effective_at: DateTime<Utc>,
    pub amount: String,
    pub reference: Option<String>,
}

pub async fn reconciliation(
    conn: &mut AsyncPgConnection,
    as_of: DateTime<Utc>,
    currency: Currency,
    zone: &str,
) -> Result<Reconciliation, FinanceError> {
    #[derive(QueryableByName)]
    struct Day {
        #[diesel(sql_type = Date)]
        day: NaiveDate,
    }
    // A line dated D counts from the start of D in the programme office's zone.
    let cut: Day = diesel::sql_query(
        "SELECT ($1::timestamptz AT TIME ZONE $2)::date + CASE WHEN ($1::timestamptz AT TIME ZONE $2)::time > '00:00' THEN 1 ELSE 0 END AS day",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(as_of)
    .bind::<Text, _>(zone)
    .get_result(conn)
    .await?;
    let lines: Vec<LineRow> = bank_lines::table
        .filter(bank_lines::currency.eq(currency))
        .filter(bank_lines::value_date.lt(cut.day))
        .order((bank_lines::value_date, bank_lines::row_number))
        .select(LineRow::as_select())
        .load(conn)
        .await?;
    let statement_balance: Decimal = lines.iter().map(|l| l.amount).sum();
    let ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
    let matches = live_matches(conn, &ids).await?;
    let unmatched_lines: Vec<BankLineView> = lines
        .into_iter()
        .map(|l| {
            let m = matches.get(&l.id).cloned().unwrap_or_default();
            view(l, &m)
        })
        .filter(|v| v.status != BankLineStatus::Matched)
        .collect();
    #[derive(QueryableByName)]
    struct EntryRow {
        #[diesel(sql_type = SqlUuid)]
        entry_id: Uuid,
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        effective_at: DateTime<Utc>,
        #[diesel(sql_type = Numeric)]
        amount: Decimal,
        #[diesel(sql_type = Nullable<Text>)]
        reference: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        matched: bool,
    }
    let entries: Vec<EntryRow> = diesel::sql_query(
        "SELECT e.id AS entry_id, e.kind, e.effective_at, e.reference, \
                sum(CASE WHEN p.debit_account_id = a.id THEN p.amount ELSE -p.amount END) AS amount, \
                EXISTS (SELECT 1 FROM bank_matches m WHERE m.journal_entry_id = e.id AND m.removed_at IS NULL \
                        AND m.state = 'confirmed') AS matched \
         FROM accounts a JOIN postings p ON p.debit_account_id = a.id OR p.credit_account_id = a.id \
         JOIN journal_entries e ON e.id = p.entry_id \
         WHERE a.code = 'assets:bank' AND a.currency = $1 AND p.kind = 'posted' AND e.effective_at < $2 \
         GROUP BY e.id, e.kind, e.effective_at, e.reference ORDER BY e.effective_at",
    )
    .bind::<Text, _>(currency.code())
    .bind::<diesel::sql_types::Timestamptz, _>(as_of)
    .load(conn)
    .await?;
    let ledger_balance: Decimal = entries.iter().map(|e| e.amount).sum();
    let unmatched_entries: Vec<UnmatchedEntry> = entries
        .into_iter()
        .filter(|e| !e.matched && e.amount != Decimal::ZERO)
        .map(|e| UnmatchedEntry {
            journal_entry_id: e.entry_id,
            kind: e.kind,
            effective_at: e.effective_at,
            amount: format_amount(e.amount, currency),
            reference: e.reference,
        })
        .collect();
    let reconciled = statement_balance == ledger_balance && unmatched_lines.is_empty() && unmatched_entries.is_empty();
    Ok(Reconciliation {
        as_of,
        currency: currency.code().into(),
        statement_balance: format_amount(statement_balance, currency),
        ledger_balance: format_amount(ledger_balance, currency),
        unmatched_lines,
        unmatched_entries,
        reconciled,
    })
}

/// Lines by status, for people working through them.
pub async fn list_lines(
    conn: &mut AsyncPgConnection,
    status: Option<BankLineStatus>,
) -> Result<Vec<BankLineView>, FinanceError> {
    let ids: Vec<Uuid> = bank_lines::table.select(bank_lines::id).load(conn).await?;
    let all = line_views(conn, &ids).await?;
    let mut by_date: BTreeMap<(NaiveDate, i32, Uuid), BankLineView> = BTreeMap::new();
    for v in all.into_iter().filter(|v| status.is_none_or(|s| v.status == s)) {
        by_date.insert((v.date, v.row_number, v.id), v);
    }
    Ok(by_date.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn defaults() -> Columns {
        Columns {
            date_column: None,
            amount_column: None,
            currency_column: None,
            counterparty_column: None,
            reference_column: None,
            bank_ref_column: None,
        }
    }

    #[test]
    fn a_statement_parses_with_signed_amounts_and_other_layouts() {
        let file = b"date,amount,currency,counterparty,reference,bank_ref\n2026-11-03,500000,KRW,ACME Lab,wire-acme,B1\n2026-11-05,-70000,KRW,Hanriver DC,P-9,B2\n";
        let lines = parse_statement(file, &defaults()).expect("parses");
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].amount, lines[1].amount, lines[1].row), (dec!(500000), dec!(-70000), 3));
        let other = b"Value Date,Betrag,Currency,Payer,Memo,Id\n2026-11-03,+12.50,USD,x,y,Z1\n";
        let columns = Columns {
            date_column: Some("Value Date".into()),
            amount_column: Some("Betrag".into()),
            currency_column: Some("Currency".into()),
            counterparty_column: Some("Payer".into()),
            reference_column: Some("Memo".into()),
            bank_ref_column: Some("Id".into()),
        };
        assert_eq!(parse_statement(other, &columns).expect("parses")[0].amount, dec!(12.50));
    }

    #[test]
    fn a_bad_row_refuses_the_file_and_names_the_row() {
        let file = b"date,amount,currency,counterparty,reference,bank_ref\n2026-11-03,500000,KRW,a,b,B1\n2026-11-04,12.5,KRW,a,b,B2\n";
        let e = parse_statement(file, &defaults()).expect_err("refused");
        assert!(matches!(&e, FinanceError::InvalidCell { row: 3, column, .. } if column == "amount"), "{e}");
        let twice =
            b"date,amount,currency,counterparty,reference,bank_ref\n2026-11-03,1,KRW,a,b,B1\n2026-11-04,2,KRW,a,b,B1\n";
        assert!(matches!(parse_statement(twice, &defaults()), Err(FinanceError::DuplicateBankRef { row: 3, .. })));
        let no_column = b"date,amount\n2026-11-03,1\n";
        let e = parse_statement(no_column, &defaults()).expect_err("refused");
        assert_eq!(e.to_string(), "row 1: no column named \"currency\"");
    }
}
