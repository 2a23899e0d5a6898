//! The reports' reads: the sums and movements `finance::reports` shapes into
//! the programme report and statements. Only database code lives here; what
//! is done with the rows is plain code in `reports`, tested without a database.
//! The statements are the ones docs/performance.md times: change them there first.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::sql_types::{Array, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::finance::reports::GroupBy;
use crate::ledger::LedgerError;
use crate::ledger::chart;
use crate::ledger::store::{self as ledger_store, AccountRow};
use crate::money::Currency;

/// A programme's sums from its accounts, postings and claims, in one currency.
#[derive(Debug, Clone, Default, PartialEq, diesel::QueryableByName)]
pub struct ProgrammeFigures {
    #[diesel(sql_type = Numeric)]
    pub budget: Decimal,
    #[diesel(sql_type = Numeric)]
    pub granted: Decimal,
    #[diesel(sql_type = Numeric)]
    pub released: Decimal,
    #[diesel(sql_type = Numeric)]
    pub committed: Decimal,
    #[diesel(sql_type = Numeric)]
    pub spent: Decimal,
    #[diesel(sql_type = Numeric)]
    pub unallocated: Decimal,
    #[diesel(sql_type = Numeric)]
    pub claimed: Decimal,
    #[diesel(sql_type = Numeric)]
    pub paid: Decimal,
    #[diesel(sql_type = Numeric)]
    pub written_off: Decimal,
    #[diesel(sql_type = Numeric)]
    pub advanced: Decimal,
    #[diesel(sql_type = Numeric)]
    pub advance_applied: Decimal,
    #[diesel(sql_type = Numeric)]
    pub advance_unapplied: Decimal,
}

/// The programme report's figures (see `reports::ProgrammeReport` for what each means).
pub async fn programme_figures(
    conn: &mut AsyncPgConnection,
    programme: Uuid,
    c: Currency,
) -> QueryResult<ProgrammeFigures> {
    diesel::sql_query(
        "WITH g AS (SELECT id FROM grants WHERE programme_id = $1), \
         spent_accounts AS (SELECT a.* FROM accounts a JOIN g ON a.code = 'budget:grant:' || g.id::text || ':spent' WHERE a.currency = $2), \
         available_accounts AS (SELECT a.id FROM accounts a JOIN g ON a.code = 'budget:grant:' || g.id::text || ':available' WHERE a.currency = $2), \
         unallocated AS (SELECT * FROM accounts WHERE code = 'budget:programme:' || $1::text || ':unallocated' AND currency = $2), \
         appropriation AS (SELECT * FROM accounts WHERE code = 'budget:programme:' || $1::text || ':appropriation' AND currency = $2), \
         receivable AS (SELECT * FROM accounts WHERE code = 'assets:subsidy-receivable:' || $1::text AND currency = $2), \
         advance AS (SELECT * FROM accounts WHERE code = 'liabilities:programme:' || $1::text || ':advance' AND currency = $2) \
         SELECT \
           coalesce((SELECT debits_posted - credits_posted FROM appropriation), 0) AS budget, \
           coalesce((SELECT sum(p.amount) FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                     WHERE e.kind = 'grant' AND p.credit_account_id IN (SELECT id FROM available_accounts)), 0) AS granted, \
           coalesce((SELECT sum(p.amount) FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                     WHERE e.kind = 'grant_release' AND p.debit_account_id IN (SELECT id FROM available_accounts)), 0) AS released, \
           coalesce((SELECT sum(credits_pending - debits_pending) FROM spent_accounts), 0) AS committed, \
           coalesce((SELECT sum(credits_posted - debits_posted) FROM spent_accounts), 0) AS spent, \
           coalesce((SELECT credits_posted - debits_posted FROM unallocated), 0) AS unallocated, \
           coalesce((SELECT sum(amount) FROM claims WHERE programme_id = $1 AND status = 'submitted'), 0) AS claimed, \
           coalesce((SELECT sum(p.amount) FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                     WHERE e.kind = 'claim_payment' AND p.credit_account_id IN (SELECT id FROM receivable)), 0) AS paid, \
           coalesce((SELECT sum(p.amount) FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                     WHERE e.kind = 'subsidy_write_off' AND p.credit_account_id IN (SELECT id FROM receivable)), 0) AS written_off, \
           coalesce((SELECT sum(p.amount) FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                     WHERE e.kind = 'advance' AND p.credit_account_id IN (SELECT id FROM advance)), 0) AS advanced, \
           coalesce((SELECT sum(p.amount) FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
                     WHERE e.kind = 'advance_application' AND p.credit_account_id IN (SELECT id FROM receivable)), 0) AS advance_applied, \
           coalesce((SELECT credits_posted - debits_posted FROM advance), 0) AS advance_unapplied",
    )
    .bind::<SqlUuid, _>(programme)
    .bind::<Text, _>(c.code())
    .get_result(conn)
    .await
}

/// One group's committed and spent: `key` is an organisation's id (as text),
/// a GPU model or a month (`YYYY-MM`).
#[derive(Debug, Clone, PartialEq, diesel::QueryableByName)]
pub struct GroupRow {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Numeric)]
    pub committed: Decimal,
    #[diesel(sql_type = Numeric)]
    pub spent: Decimal,
}

/// Committed and spent per tenant: the sums of the tenants' grants' spent
/// accounts (credits are what orders drew, debits what credits and
/// cancellations gave back), for tenants whose grants were ever drawn on.
const BY_TENANT_FROM_GRANT_ACCOUNTS: &str = "\
    SELECT g.tenant_org_id::text AS key, \
           sum(a.credits_pending - a.debits_pending) AS committed, \
           sum(a.credits_posted - a.debits_posted) AS spent \
    FROM grants g JOIN accounts a ON a.code = 'budget:grant:' || g.id::text || ':spent' AND a.currency = $2 \
    WHERE g.programme_id = $1 \
    GROUP BY 1 \
    HAVING sum(a.credits_posted + a.debits_posted + a.credits_pending + a.debits_pending) > 0 \
    ORDER BY 1";

/// The programme's committed and spent per group, in the order of their keys.
pub async fn group_rows(
    conn: &mut AsyncPgConnection,
    programme: Uuid,
    c: Currency,
    by: GroupBy,
    time_zone: &str,
) -> QueryResult<Vec<GroupRow>> {
    // Spent is grouped by the month of the hour it paid for (settlements are
    // dated by their hour); committed by the order's start. Months are the
    // programme office's (`GPUHOUR_TIME_ZONE`).
    let (spent_key, committed_key) = match by {
        GroupBy::Tenant => ("o.tenant_org_id::text", "o.tenant_org_id::text"),
        GroupBy::Provider => ("o.provider_org_id::text", "o.provider_org_id::text"),
        GroupBy::GpuModel => ("o.gpu_model", "o.gpu_model"),
        GroupBy::Month => {
            ("to_char(p.effective_at AT TIME ZONE $3, 'YYYY-MM')", "to_char(o.start_at AT TIME ZONE $3, 'YYYY-MM')")
        }
    };
    let sql = format!(
        "WITH spent_accounts AS ( \
           SELECT a.id FROM grants g JOIN accounts a ON a.code = 'budget:grant:' || g.id::text || ':spent' \
           WHERE g.programme_id = $1 AND a.currency = $2), \
         spent AS ( \
           SELECT {spent_key} AS key, \
                  sum(CASE WHEN p.credit_account_id IN (SELECT id FROM spent_accounts) THEN p.amount ELSE -p.amount END) AS amount \
           FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
           JOIN orders o ON o.id = (e.metadata ->> 'order_id')::uuid \
           WHERE p.kind IN ('posted', 'post_pending') \
             AND (p.credit_account_id IN (SELECT id FROM spent_accounts) OR p.debit_account_id IN (SELECT id FROM spent_accounts)) \
           GROUP BY 1), \
         committed AS ( \
           SELECT {committed_key} AS key, sum(r.remaining) AS amount \
           FROM postings p JOIN pending_remainders r ON r.posting_id = p.id \
           JOIN journal_entries e ON e.id = p.entry_id \
           JOIN orders o ON o.id = (e.metadata ->> 'order_id')::uuid \
           WHERE p.kind = 'pending' AND p.credit_account_id IN (SELECT id FROM spent_accounts) AND r.remaining > 0 \
           GROUP BY 1) \
         SELECT coalesce(s.key, c.key) AS key, coalesce(c.amount, 0) AS committed, coalesce(s.amount, 0) AS spent \
         FROM spent s FULL JOIN committed c ON c.key = s.key ORDER BY 1"
    );
    // A grant is one tenant's, so by tenant the figures are the grants' own
    // spent accounts, summed per tenant: as many rows as grants, whatever the
    // number of orders (the postings' way reads every order's postings).
    let sql = if matches!(by, GroupBy::Tenant) { BY_TENANT_FROM_GRANT_ACCOUNTS.to_string() } else { sql };
    let query = diesel::sql_query(sql).into_boxed().bind::<SqlUuid, _>(programme).bind::<Text, _>(c.code());
    match by {
        GroupBy::Month => query.bind::<Text, _>(time_zone.to_string()).load(conn).await,
        _ => query.load(conn).await,
    }
}

/// One posted movement of a set of credit-normal accounts.
#[derive(Debug, Clone, PartialEq, diesel::QueryableByName)]
pub struct MovementRow {
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    pub entry_id: Uuid,
    #[diesel(sql_type = Text)]
    pub entry_kind: String,
    #[diesel(sql_type = Text)]
    pub memo: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub reference: Option<String>,
    /// The code of the account on the other side of the posting.
    #[diesel(sql_type = Text)]
    pub counter_code: String,
    /// Signed: positive when the accounts' (credit-normal) balance grows.
    #[diesel(sql_type = Numeric)]
    pub amount: Decimal,
}

/// What a set of accounts held before a period, and how it moved during it.
#[derive(Debug, Clone, PartialEq)]
pub struct Movements {
    pub opening: Decimal,
    pub rows: Vec<MovementRow>,
}

/// Posted movements of a set of credit-normal accounts: the opening balance
/// before `from`, and each movement in [`from`, `to`), in the order of their
/// dates (a settlement is dated by the hour it pays for, so it may be recorded
/// after a later-dated entry), then of recording.
pub async fn movements(
    conn: &mut AsyncPgConnection,
    accounts: &[Uuid],
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> QueryResult<Movements> {
    #[derive(diesel::QueryableByName)]
    struct Opening {
        #[diesel(sql_type = Numeric)]
        opening: Decimal,
    }
    let opening: Opening = diesel::sql_query(
        "SELECT coalesce(sum(CASE WHEN credit_account_id = ANY($1) THEN amount ELSE -amount END), 0) AS opening \
         FROM postings WHERE kind IN ('posted', 'post_pending') \
           AND (credit_account_id = ANY($1) OR debit_account_id = ANY($1)) \
           AND $2::timestamptz IS NOT NULL AND effective_at < $2",
    )
    .bind::<Array<SqlUuid>, _>(accounts)
    .bind::<Nullable<Timestamptz>, _>(from)
    .get_result(conn)
    .await?;
    let rows: Vec<MovementRow> = diesel::sql_query(
        "SELECT p.effective_at, e.id AS entry_id, e.kind AS entry_kind, e.memo, e.reference, ca.code AS counter_code, \
                CASE WHEN p.credit_account_id = ANY($1) THEN p.amount ELSE -p.amount END AS amount \
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
         JOIN accounts ca ON ca.id = CASE WHEN p.credit_account_id = ANY($1) THEN p.debit_account_id ELSE p.credit_account_id END \
         WHERE p.kind IN ('posted', 'post_pending') \
           AND (p.credit_account_id = ANY($1) OR p.debit_account_id = ANY($1)) \
           AND ($2::timestamptz IS NULL OR p.effective_at >= $2) AND ($3::timestamptz IS NULL OR p.effective_at < $3) \
         ORDER BY p.effective_at, p.seq",
    )
    .bind::<Array<SqlUuid>, _>(accounts)
    .bind::<Nullable<Timestamptz>, _>(from)
    .bind::<Nullable<Timestamptz>, _>(to)
    .load(conn)
    .await?;
    Ok(Movements { opening: opening.opening, rows })
}

/// The spent accounts, in `c`, of the tenant's grants.
pub async fn grant_spent_accounts(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    c: Currency,
) -> Result<Vec<AccountRow>, LedgerError> {
    use crate::db::schema::grants;
    use diesel::{ExpressionMethods, QueryDsl};
    let ids: Vec<Uuid> = grants::table.filter(grants::tenant_org_id.eq(tenant)).select(grants::id).load(conn).await?;
    let mut accounts = Vec::new();
    for id in ids {
        if let Some(a) = ledger_store::account_by_code(conn, &chart::grant_spent_code(id), c).await? {
            accounts.push(a);
        }
    }
    Ok(accounts)
}
