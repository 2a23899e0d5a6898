//! Finance's reports, every figure derived from the postings: the programme
//! report and organisations' statements.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::model::OrgKind;
use crate::finance::names::{self, OrgRef};
use crate::finance::spreadsheet::{self, Cell, Format, Sheet, amount_cell};
use crate::http::ApiError;
use crate::http::extract::{Query, check_period};
use crate::ledger::chart;
use crate::ledger::store::{self as ledger_store, AccountRow};
use crate::money::{Currency, format_amount};
use crate::state::AppState;
use crate::subsidy::programmes::find_programme;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Tenant,
    Provider,
    GpuModel,
    Month,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProgrammeReportQuery {
    /// `tenant`, `provider`, `gpu_model` or `month` (of the hours used, in the programme office's zone).
    #[param(value_type = Option<String>)]
    pub group_by: Option<GroupBy>,
    /// `json` (default), `csv` or `xlsx`: the figures, and the groups when asked for.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportGroup {
    /// The organisation's id, the GPU model or the month.
    pub key: String,
    /// For people: the organisation's name; the key otherwise.
    pub name: String,
    /// The organisation, when grouped by tenant or provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgRef>,
    pub committed: String,
    pub spent: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeReport {
    pub programme_id: Uuid,
    pub currency: String,
    /// Appropriated.
    pub budget: String,
    /// Moved to grants.
    pub granted: String,
    /// Reserved by orders, not yet settled.
    pub committed: String,
    /// Settled subsidy, net of outage refunds.
    pub spent: String,
    /// Returned by closed grants and grant withdrawals.
    pub released: String,
    /// Not granted.
    pub unallocated: String,
    /// In submitted claims.
    pub claimed: String,
    /// Received from the programme.
    pub paid: String,
    /// Claimed but disallowed by the programme, written off.
    pub written_off: String,
    /// Tranches the programme paid in advance of its claims.
    pub advanced: String,
    /// Of that, what settled submitted claims.
    pub advance_applied: String,
    /// Of that, what no claim has used yet (the programme's money the operator holds).
    pub advance_unapplied: String,
    /// claimed − paid − written off − advance applied.
    pub outstanding: String,
    /// Spent but not yet in any submitted claim.
    pub unclaimed: String,
    /// Metered, over the orders its grants funded: GPU-hours used ÷ GPU-hours
    /// reserved (4 places, half-even); null while none reported usage.
    pub utilisation: Option<String>,
    /// kWh of the orders its grants funded: each order's metered energy where
    /// usage was reported, else its estimate for the hours charged (null when
    /// no order has either; `market::energy::programme_energy`).
    pub energy_kwh: Option<String>,
    /// Their kgCO2e, at each order's region's intensity when it was placed.
    pub co2e_kg: Option<String>,
    /// Their subtotal ÷ their kWh, in the programme's currency, two fraction digits.
    pub krw_per_kwh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<ReportGroup>>,
}

#[derive(diesel::QueryableByName)]
struct Figures {
    #[diesel(sql_type = Numeric)]
    budget: Decimal,
    #[diesel(sql_type = Numeric)]
    granted: Decimal,
    #[diesel(sql_type = Numeric)]
    released: Decimal,
    #[diesel(sql_type = Numeric)]
    committed: Decimal,
    #[diesel(sql_type = Numeric)]
    spent: Decimal,
    #[diesel(sql_type = Numeric)]
    unallocated: Decimal,
    #[diesel(sql_type = Numeric)]
    claimed: Decimal,
    #[diesel(sql_type = Numeric)]
    paid: Decimal,
    #[diesel(sql_type = Numeric)]
    written_off: Decimal,
    #[diesel(sql_type = Numeric)]
    advanced: Decimal,
    #[diesel(sql_type = Numeric)]
    advance_applied: Decimal,
    #[diesel(sql_type = Numeric)]
    advance_unapplied: Decimal,
}

#[derive(diesel::QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Numeric)]
    committed: Decimal,
    #[diesel(sql_type = Numeric)]
    spent: Decimal,
}

/// A programme's figures: budget, granted, committed, spent, released,
/// unallocated, claimed, paid, outstanding. Roles: finance, admin.
#[utoipa::path(tag = "reports", params(("id" = Uuid, Path), ProgrammeReportQuery), security(("bearer" = [])),
    responses((status = 200, body = ProgrammeReport,
        description = "JSON, or with `format=csv|xlsx` a download (`text/csv`, or the XLSX type) named `programme-{id}.csv|xlsx`"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
#[get("/v1/reports/programmes/{id}")]
pub async fn programme_report(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
    Query(q): Query<ProgrammeReportQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let programme = find_programme(&mut conn, id).await?.ok_or_else(|| ApiError::missing("programme", id))?;
    let c = programme.currency;
    let report = report(&mut conn, programme.id, c, q.group_by, &state.settings.time_zone).await?;
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &report, &format!("programme-{id}"), || {
        programme_sheets(&report, &programme.name, q.group_by, c, now)
    })
}

/// The programme report's sheets: its figures, and the groups with a totals row.
fn programme_sheets(
    r: &ProgrammeReport,
    name: &str,
    group_by: Option<GroupBy>,
    c: Currency,
    now: DateTime<Utc>,
) -> Result<Vec<Sheet>, ApiError> {
    let header = spreadsheet::header_block(
        "programme report",
        now,
        None,
        vec![("programme", format!("{name} ({})", r.programme_id)), ("currency", c.code().into())],
    );
    let figures = [
        ("budget", &r.budget),
        ("granted", &r.granted),
        ("committed", &r.committed),
        ("spent", &r.spent),
        ("released", &r.released),
        ("unallocated", &r.unallocated),
        ("claimed", &r.claimed),
        ("paid", &r.paid),
        ("written off", &r.written_off),
        ("advanced", &r.advanced),
        ("advance applied", &r.advance_applied),
        ("advance unapplied", &r.advance_unapplied),
        ("outstanding", &r.outstanding),
        ("unclaimed", &r.unclaimed),
    ];
    // Use and energy are not money: shown as the API shows them (text), an
    // empty cell where the report has none.
    let per_kwh = format!("{} per kWh", c.code());
    let use_and_energy = [
        ("utilisation", &r.utilisation),
        ("energy kWh", &r.energy_kwh),
        ("CO2e kg", &r.co2e_kg),
        (per_kwh.as_str(), &r.krw_per_kwh),
    ];
    let mut rows: Vec<Vec<Cell>> = figures.iter().map(|(k, v)| vec![Cell::text(*k), amount_cell(v, c)]).collect();
    rows.extend(use_and_energy.iter().map(|(k, v)| vec![Cell::text(*k), v.as_deref().map_or(Cell::Empty, Cell::text)]));
    let mut sheets = vec![Sheet {
        name: "Programme".into(),
        header: header.clone(),
        columns: vec!["figure".into(), "amount".into()],
        rows,
        totals: None,
    }];
    if let (Some(by), Some(groups)) = (group_by, &r.groups) {
        let key = serde_json::to_value(by).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let committed = spreadsheet::sum_amounts(groups.iter().map(|g| g.committed.as_str()))?;
        let spent = spreadsheet::sum_amounts(groups.iter().map(|g| g.spent.as_str()))?;
        sheets.push(Sheet {
            name: spreadsheet::sheet_name(&format!("By {key}")),
            header,
            columns: vec![key, "name".into(), "committed".into(), "spent".into()],
            rows: groups
                .iter()
                .map(|g| {
                    vec![
                        Cell::text(&g.key),
                        Cell::text(&g.name),
                        amount_cell(&g.committed, c),
                        amount_cell(&g.spent, c),
                    ]
                })
                .collect(),
            totals: Some(vec![Cell::text("total"), Cell::Empty, Cell::Amount(committed, c), Cell::Amount(spent, c)]),
        });
    }
    Ok(sheets)
}

/// The programme report from the postings (see `programme_report`).
pub async fn report(
    conn: &mut AsyncPgConnection,
    programme: Uuid,
    c: Currency,
    group_by: Option<GroupBy>,
    time_zone: &str,
) -> Result<ProgrammeReport, ApiError> {
    let f: Figures = diesel::sql_query(
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
    .await?;
    let energy = crate::market::energy::programme_energy(conn, programme).await?;
    let groups = match group_by {
        None => None,
        Some(by) => Some(groups(conn, programme, c, by, time_zone).await?),
    };
    let usage = crate::market::usage::figures_of_programme(conn, programme).await?;
    Ok(ProgrammeReport {
        programme_id: programme,
        currency: c.code().to_string(),
        budget: format_amount(f.budget, c),
        granted: format_amount(f.granted, c),
        committed: format_amount(f.committed, c),
        spent: format_amount(f.spent, c),
        released: format_amount(f.released, c),
        unallocated: format_amount(f.unallocated, c),
        claimed: format_amount(f.claimed, c),
        paid: format_amount(f.paid, c),
        written_off: format_amount(f.written_off, c),
        advanced: format_amount(f.advanced, c),
        advance_applied: format_amount(f.advance_applied, c),
        advance_unapplied: format_amount(f.advance_unapplied, c),
        outstanding: format_amount(f.claimed - f.paid - f.written_off - f.advance_applied, c),
        unclaimed: format_amount(f.spent - f.claimed, c),
        utilisation: usage.utilisation_shown(),
        energy_kwh: energy.energy_kwh.map(crate::market::energy::display),
        co2e_kg: energy.co2e_kg.map(crate::market::energy::display),
        krw_per_kwh: energy.price_per_kwh().map(|p| p.normalize().to_string()),
        groups,
    })
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

async fn groups(
    conn: &mut AsyncPgConnection,
    programme: Uuid,
    c: Currency,
    by: GroupBy,
    time_zone: &str,
) -> Result<Vec<ReportGroup>, ApiError> {
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
    let rows: Vec<GroupRow> = match by {
        GroupBy::Month => query.bind::<Text, _>(time_zone.to_string()).load(conn).await?,
        _ => query.load(conn).await?,
    };
    let by_org = matches!(by, GroupBy::Tenant | GroupBy::Provider);
    let ids: Vec<Uuid> =
        if by_org { rows.iter().filter_map(|r| Uuid::parse_str(&r.key).ok()).collect() } else { vec![] };
    let orgs = names::orgs(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let org = Uuid::parse_str(&r.key).ok().and_then(|id| orgs.get(&id)).cloned();
            ReportGroup {
                name: org.as_ref().map_or_else(|| r.key.clone(), |o| o.name.clone()),
                key: r.key,
                org,
                committed: format_amount(r.committed, c),
                spent: format_amount(r.spent, c),
            }
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// Start of the period (inclusive); the beginning when absent.
    pub from: Option<DateTime<Utc>>,
    /// End of the period (exclusive); now when absent.
    pub to: Option<DateTime<Utc>>,
    /// Only this currency's accounts.
    pub currency: Option<Currency>,
    /// `json` (default), `csv` or `xlsx`: a sheet per section.
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementLine {
    pub effective_at: DateTime<Utc>,
    pub entry_id: Uuid,
    pub entry_kind: String,
    /// For providers: `earned`, `fee`, `outage_credit`, `payout`, `adjustment`…
    pub category: String,
    pub memo: String,
    pub reference: Option<String>,
    /// Positive when the balance grows.
    pub amount: String,
    pub balance: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatementSection {
    /// `own_money` (a tenant's wallet), `subsidy` (paid for a tenant by its grants),
    /// `payable` (what the operator owes a provider) or `owed_by_provider` (its
    /// receivable: outage credits for hours already paid out).
    pub section: String,
    pub currency: Currency,
    pub opening_balance: String,
    pub closing_balance: String,
    /// Sum of the lines by category.
    pub totals: BTreeMap<String, String>,
    pub lines: Vec<StatementLine>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    pub org_id: Uuid,
    /// Who the statement is about.
    pub org: OrgRef,
    pub org_kind: String,
    pub from: Option<DateTime<Utc>>,
    pub to: DateTime<Utc>,
    pub sections: Vec<StatementSection>,
    /// Providers: per currency, what may be paid out now and what waits for
    /// the programme's payment (as of now, whatever the period).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payout_positions: Vec<crate::finance::payout_policy::PayoutPositionView>,
}

#[derive(diesel::QueryableByName)]
struct MovementRow {
    #[diesel(sql_type = Timestamptz)]
    effective_at: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    entry_id: Uuid,
    #[diesel(sql_type = Text)]
    entry_kind: String,
    #[diesel(sql_type = Text)]
    memo: String,
    #[diesel(sql_type = Nullable<Text>)]
    reference: Option<String>,
    #[diesel(sql_type = Text)]
    counter_code: String,
    /// Signed: positive when the accounts' (credit-normal) balance grows.
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

/// Posted movements of a set of credit-normal accounts: the opening balance
/// before `from`, and each movement in [`from`, `to`), in the order of their
/// dates (a settlement is dated by the hour it pays for, so it may be recorded
/// after a later-dated entry), then of recording.
async fn movements(
    conn: &mut AsyncPgConnection,
    accounts: &[Uuid],
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(Decimal, Vec<MovementRow>), ApiError> {
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
    Ok((opening.opening, rows))
}

fn category(section: &str, row: &MovementRow) -> String {
    match (section, row.entry_kind.as_str()) {
        ("payable", "settlement" | "cancellation") if row.counter_code == chart::PLATFORM_FEES => "fee".into(),
        ("payable", "settlement" | "cancellation") => "earned".into(),
        ("own_money" | "subsidy", "settlement" | "cancellation") => "usage".into(),
        (_, kind) => kind.into(),
    }
}

/// Adds a section, unless the currency had nothing at the opening and no movement.
fn push_section(
    sections: &mut Vec<StatementSection>,
    name: &str,
    c: Currency,
    opening: Decimal,
    rows: Vec<MovementRow>,
) {
    if opening.is_zero() && rows.is_empty() {
        return;
    }
    sections.push(section(name, c, opening, rows));
}

fn section(name: &str, c: Currency, opening: Decimal, rows: Vec<MovementRow>) -> StatementSection {
    let mut balance = opening;
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    let lines = rows
        .into_iter()
        .map(|r| {
            balance += r.amount;
            let cat = category(name, &r);
            *totals.entry(cat.clone()).or_default() += r.amount;
            StatementLine {
                effective_at: r.effective_at,
                entry_id: r.entry_id,
                entry_kind: r.entry_kind,
                category: cat,
                memo: r.memo,
                reference: r.reference,
                amount: format_amount(r.amount, c),
                balance: format_amount(balance, c),
            }
        })
        .collect();
    StatementSection {
        section: name.into(),
        currency: c,
        opening_balance: format_amount(opening, c),
        closing_balance: format_amount(balance, c),
        totals: totals.into_iter().map(|(k, v)| (k, format_amount(v, c))).collect(),
        lines,
    }
}

/// An organisation's statement for a period: opening balance, lines, closing
/// balance. Tenants get their own money and the subsidy paid for them apart;
/// providers their payable with earnings, fees, outage credits and payouts.
/// Roles: finance, admin, and the organisation itself (another's answers 404).
#[utoipa::path(tag = "reports", params(("org_id" = Uuid, Path), StatementQuery), security(("bearer" = [])),
    responses((status = 200, body = Statement,
        description = "JSON, or with `format=csv|xlsx` a download named `statement-{org_id}.csv|xlsx`, a sheet per section"),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
#[get("/v1/reports/statements/{org_id}")]
pub async fn statement(
    state: web::Data<AppState>,
    principal: Principal,
    org_id: web::Path<Uuid>,
    Query(q): Query<StatementQuery>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    let mut conn = state.pool.get().await?;
    let statement = org_statement(&mut conn, &state, &principal, org_id, q.from, q.to, q.currency).await?;
    let now = state.clock.now(&mut conn).await?;
    spreadsheet::respond(q.format, &statement, &format!("statement-{org_id}"), || statement_sheets(&statement, now))
}

/// An organisation's statement for [`from`, `to`) (to now without `to`), in
/// `currency` or all: what `GET /v1/reports/statements/{org_id}` answers, and
/// the console's earnings page shows. Another organisation's, for anyone but
/// finance, is not found.
pub async fn org_statement(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    principal: &Principal,
    org_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    currency: Option<Currency>,
) -> Result<Statement, ApiError> {
    check_period(from, to)?;
    if !principal.is_finance() && principal.org_id != org_id {
        return Err(ApiError::missing("organisation", org_id));
    }
    let org =
        crate::auth::store::org_by_id(conn, org_id).await?.ok_or_else(|| ApiError::missing("organisation", org_id))?;
    // Without `to`, everything up to now, the entries of this very instant included.
    let bound = to;
    let to = match to {
        Some(t) => t,
        None => state.clock.now(conn).await?,
    };
    let currencies: Vec<Currency> = currency.map(|c| vec![c]).unwrap_or_else(|| Currency::ALL.to_vec());
    let mut sections = Vec::new();
    let mut payout_positions = Vec::new();
    for c in currencies {
        if org.kind == OrgKind::Tenant.as_str() {
            if let Some(wallet) = ledger_store::account_by_code(conn, &chart::tenant_wallet_code(org.id), c).await? {
                let (opening, rows) = movements(conn, &[wallet.id], from, bound).await?;
                push_section(&mut sections, "own_money", c, opening, rows);
            }
            let spent = grant_spent_accounts(conn, org.id, c).await?;
            if !spent.is_empty() {
                let ids: Vec<Uuid> = spent.iter().map(|a| a.id).collect();
                let (opening, rows) = movements(conn, &ids, from, bound).await?;
                push_section(&mut sections, "subsidy", c, opening, rows);
            }
        } else if org.kind == OrgKind::Provider.as_str()
            && let Some(payable) = ledger_store::account_by_code(conn, &chart::provider_payable_code(org.id), c).await?
        {
            let (opening, rows) = movements(conn, &[payable.id], from, bound).await?;
            push_section(&mut sections, "payable", c, opening, rows);
            if let Some(receivable) =
                ledger_store::account_by_code(conn, &chart::provider_receivable_code(org.id), c).await?
            {
                // Debit-normal: shown positive when the provider owes more.
                let (opening, mut rows) = movements(conn, &[receivable.id], from, bound).await?;
                rows.iter_mut().for_each(|r| r.amount = -r.amount);
                push_section(&mut sections, "owed_by_provider", c, -opening, rows);
            }
            if let Some(position) =
                crate::finance::payouts::current_position(conn, org.id, c, state.settings.payout_advance_rate).await?
                && (position.payable != Decimal::ZERO || position.provider_receivable != Decimal::ZERO)
            {
                payout_positions.push(position.view(c));
            }
        }
    }
    Ok(Statement { org_id, org: OrgRef::from(&org), org_kind: org.kind, from, to, sections, payout_positions })
}

/// A sheet per section: the opening balance, a row per movement with the
/// running balance, and a totals row with the movements' sum and the closing balance.
fn statement_sheets(s: &Statement, now: DateTime<Utc>) -> Result<Vec<Sheet>, ApiError> {
    let mut sheets = Vec::with_capacity(s.sections.len());
    for section in &s.sections {
        let c = section.currency;
        let header = spreadsheet::header_block(
            "organisation statement",
            now,
            Some(s.to),
            vec![
                ("organisation", format!("{} ({})", s.org.name, s.org_id)),
                ("section", section.section.clone()),
                ("currency", c.code().into()),
                ("from", s.from.map(|t| t.to_rfc3339()).unwrap_or_else(|| "the beginning".into())),
                ("to", s.to.to_rfc3339()),
            ],
        );
        let mut rows = vec![vec![
            Cell::text("opening balance"),
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            Cell::Empty,
            amount_cell(&section.opening_balance, c),
        ]];
        rows.extend(section.lines.iter().map(|l| {
            vec![
                Cell::text(l.effective_at.to_rfc3339()),
                Cell::text(l.entry_id.to_string()),
                Cell::text(&l.category),
                Cell::text(&l.memo),
                Cell::text(l.reference.clone().unwrap_or_default()),
                amount_cell(&l.amount, c),
                amount_cell(&l.balance, c),
            ]
        }));
        let moved = spreadsheet::sum_amounts(section.lines.iter().map(|l| l.amount.as_str()))?;
        sheets.push(Sheet {
            name: spreadsheet::sheet_name(&format!("{} {}", section.section, c.code())),
            header,
            columns: ["effective_at", "entry", "category", "memo", "reference", "amount", "balance"]
                .map(String::from)
                .to_vec(),
            rows,
            totals: Some(vec![
                Cell::text("total / closing balance"),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
                Cell::Amount(moved, c),
                amount_cell(&section.closing_balance, c),
            ]),
        });
    }
    Ok(sheets)
}

async fn grant_spent_accounts(
    conn: &mut AsyncPgConnection,
    tenant: Uuid,
    c: Currency,
) -> Result<Vec<AccountRow>, ApiError> {
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
