//! Finance's reports, every figure derived from the postings: the programme
//! report and organisations' statements. Their reads are in
//! `finance::report_queries`; here the rows are shaped into what the API shows.

use std::collections::{BTreeMap, HashMap};

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::FinanceError;
use crate::auth::Principal;
use crate::auth::model::OrgKind;
use crate::finance::names::{self, OrgRef};
use crate::finance::report_queries::{self as queries, GroupRow, MovementRow, Movements, ProgrammeFigures};
use crate::finance::spreadsheet::{self, Cell, Format, Sheet, amount_cell};
use crate::http::ApiError;
use crate::http::extract::Query;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::market::energy::ProgrammeEnergy;
use crate::market::usage::UsageFigures;
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
        Ok(programme_sheets(&report, &programme.name, q.group_by, c, now)?)
    })
}

/// The programme report's sheets: its figures, and the groups with a totals row.
fn programme_sheets(
    r: &ProgrammeReport,
    name: &str,
    group_by: Option<GroupBy>,
    c: Currency,
    now: DateTime<Utc>,
) -> Result<Vec<Sheet>, FinanceError> {
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
) -> Result<ProgrammeReport, FinanceError> {
    let figures = queries::programme_figures(conn, programme, c).await?;
    let energy = crate::market::energy::programme_energy(conn, programme).await?;
    let groups = match group_by {
        None => None,
        Some(by) => Some(groups(conn, programme, c, by, time_zone).await?),
    };
    let usage = crate::market::usage::figures_of_programme(conn, programme).await?;
    Ok(programme_report_of(programme, c, &figures, &usage, &energy, groups)?)
}

/// The report from its sums: outstanding and unclaimed derived from them,
/// every amount shown with `c`'s places.
fn programme_report_of(
    programme: Uuid,
    c: Currency,
    f: &ProgrammeFigures,
    usage: &UsageFigures,
    energy: &ProgrammeEnergy,
    groups: Option<Vec<ReportGroup>>,
) -> Result<ProgrammeReport, LedgerError> {
    let minus = |a: Decimal, b: Decimal| a.checked_sub(b).ok_or(LedgerError::Overflow);
    let outstanding = minus(minus(minus(f.claimed, f.paid)?, f.written_off)?, f.advance_applied)?;
    let unclaimed = minus(f.spent, f.claimed)?;
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
        outstanding: format_amount(outstanding, c),
        unclaimed: format_amount(unclaimed, c),
        utilisation: usage.utilisation_shown(),
        energy_kwh: energy.energy_kwh.map(crate::market::energy::display),
        co2e_kg: energy.co2e_kg.map(crate::market::energy::display),
        krw_per_kwh: energy.price_per_kwh().map(|p| p.normalize().to_string()),
        groups,
    })
}

async fn groups(
    conn: &mut AsyncPgConnection,
    programme: Uuid,
    c: Currency,
    by: GroupBy,
    time_zone: &str,
) -> Result<Vec<ReportGroup>, FinanceError> {
    let rows = queries::group_rows(conn, programme, c, by, time_zone).await?;
    let orgs = names::orgs(conn, &group_org_ids(&rows, by)).await?;
    Ok(group_views(rows, c, &orgs))
}

/// The organisations the groups' keys name, when grouped by tenant or provider.
fn group_org_ids(rows: &[GroupRow], by: GroupBy) -> Vec<Uuid> {
    match by {
        GroupBy::Tenant | GroupBy::Provider => rows.iter().filter_map(|r| Uuid::parse_str(&r.key).ok()).collect(),
        GroupBy::GpuModel | GroupBy::Month => Vec::new(),
    }
}

/// The groups as the report shows them: an organisation's by its name, any
/// other (or an organisation no longer found) by its key.
fn group_views(rows: Vec<GroupRow>, c: Currency, orgs: &HashMap<Uuid, OrgRef>) -> Vec<ReportGroup> {
    rows.into_iter()
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
        .collect()
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
    movements: Movements,
) -> Result<(), LedgerError> {
    if movements.opening.is_zero() && movements.rows.is_empty() {
        return Ok(());
    }
    sections.push(section(name, c, movements)?);
    Ok(())
}

/// The lines with their running balance from the opening, and their sums by category.
fn section(name: &str, c: Currency, movements: Movements) -> Result<StatementSection, LedgerError> {
    let Movements { opening, rows } = movements;
    let plus = |a: Decimal, b: Decimal| a.checked_add(b).ok_or(LedgerError::Overflow);
    let mut balance = opening;
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        balance = plus(balance, r.amount)?;
        let cat = category(name, &r);
        let total = totals.entry(cat.clone()).or_default();
        *total = plus(*total, r.amount)?;
        lines.push(StatementLine {
            effective_at: r.effective_at,
            entry_id: r.entry_id,
            entry_kind: r.entry_kind,
            category: cat,
            memo: r.memo,
            reference: r.reference,
            amount: format_amount(r.amount, c),
            balance: format_amount(balance, c),
        });
    }
    Ok(StatementSection {
        section: name.into(),
        currency: c,
        opening_balance: format_amount(opening, c),
        closing_balance: format_amount(balance, c),
        totals: totals.into_iter().map(|(k, v)| (k, format_amount(v, c))).collect(),
        lines,
    })
}

/// A debit-normal account's movements as a statement shows them: positive
/// when what is owed grows.
fn debit_normal(movements: Movements) -> Movements {
    let Movements { opening, mut rows } = movements;
    rows.iter_mut().for_each(|r| r.amount = -r.amount);
    Movements { opening: -opening, rows }
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
    spreadsheet::respond(q.format, &statement, &format!("statement-{org_id}"), || {
        Ok(statement_sheets(&statement, now)?)
    })
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
) -> Result<Statement, FinanceError> {
    if crate::clock::is_backwards(from, to) {
        return Err(FinanceError::FromAfterTo);
    }
    if !principal.is_finance() && principal.org_id != org_id {
        return Err(FinanceError::OrgNotFound(org_id));
    }
    let org = crate::auth::store::org_by_id(conn, org_id).await?.ok_or(FinanceError::OrgNotFound(org_id))?;
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
                let movements = queries::movements(conn, &[wallet.id], from, bound).await?;
                push_section(&mut sections, "own_money", c, movements)?;
            }
            let spent = queries::grant_spent_accounts(conn, org.id, c).await?;
            if !spent.is_empty() {
                let ids: Vec<Uuid> = spent.iter().map(|a| a.id).collect();
                let movements = queries::movements(conn, &ids, from, bound).await?;
                push_section(&mut sections, "subsidy", c, movements)?;
            }
        } else if org.kind == OrgKind::Provider.as_str()
            && let Some(payable) = ledger_store::account_by_code(conn, &chart::provider_payable_code(org.id), c).await?
        {
            let movements = queries::movements(conn, &[payable.id], from, bound).await?;
            push_section(&mut sections, "payable", c, movements)?;
            if let Some(receivable) =
                ledger_store::account_by_code(conn, &chart::provider_receivable_code(org.id), c).await?
            {
                let movements = queries::movements(conn, &[receivable.id], from, bound).await?;
                push_section(&mut sections, "owed_by_provider", c, debit_normal(movements))?;
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
fn statement_sheets(s: &Statement, now: DateTime<Utc>) -> Result<Vec<Sheet>, FinanceError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn figures() -> ProgrammeFigures {
        // As the database returns them: numeric(_, 4).
        ProgrammeFigures {
            budget: dec!(100000000.0000),
            granted: dec!(3000000.0000),
            released: dec!(500000.0000),
            committed: dec!(120000.0000),
            spent: dec!(1234567.0000),
            unallocated: dec!(97500000.0000),
            claimed: dec!(1000000.0000),
            paid: dec!(600000.0000),
            written_off: dec!(50000.0000),
            advanced: dec!(400000.0000),
            advance_applied: dec!(250000.0000),
            advance_unapplied: dec!(150000.0000),
        }
    }

    #[test]
    fn the_programme_report_derives_outstanding_and_unclaimed_from_its_sums() {
        let id = Uuid::from_u128(7);
        let usage = UsageFigures { utilisation: Some(dec!(0.25)), energy_kwh: Some(dec!(100)) };
        let energy =
            ProgrammeEnergy { energy_kwh: Some(dec!(100)), co2e_kg: Some(dec!(42.5)), subtotal: Some(dec!(12345)) };
        let r = programme_report_of(id, Currency::Krw, &figures(), &usage, &energy, None).expect("report");
        assert_eq!(r.programme_id, id);
        assert_eq!(r.currency, "KRW");
        let money = [
            &r.budget,
            &r.granted,
            &r.committed,
            &r.spent,
            &r.released,
            &r.unallocated,
            &r.claimed,
            &r.paid,
            &r.written_off,
            &r.advanced,
            &r.advance_applied,
            &r.advance_unapplied,
        ];
        assert_eq!(
            money.map(String::as_str),
            [
                "100000000",
                "3000000",
                "120000",
                "1234567",
                "500000",
                "97500000",
                "1000000",
                "600000",
                "50000",
                "400000",
                "250000",
                "150000"
            ]
        );
        // 1,000,000 claimed − 600,000 paid − 50,000 written off − 250,000 of advance applied.
        assert_eq!(r.outstanding, "100000");
        // 1,234,567 spent − 1,000,000 claimed.
        assert_eq!(r.unclaimed, "234567");
        assert_eq!(r.utilisation.as_deref(), Some("0.2500"));
        assert_eq!((r.energy_kwh.as_deref(), r.co2e_kg.as_deref()), (Some("100"), Some("42.5")));
        // 12,345 ÷ 100 kWh.
        assert_eq!(r.krw_per_kwh.as_deref(), Some("123.45"));
        assert!(r.groups.is_none());
    }

    #[test]
    fn a_report_in_dollars_shows_cents_and_a_negative_outstanding_with_its_sign() {
        let f = ProgrammeFigures {
            budget: dec!(5000),
            claimed: dec!(10.1),
            paid: dec!(12.5),
            spent: dec!(7.25),
            ..ProgrammeFigures::default()
        };
        let r = programme_report_of(
            Uuid::nil(),
            Currency::Usd,
            &f,
            &UsageFigures::default(),
            &ProgrammeEnergy::default(),
            None,
        )
        .expect("report");
        assert_eq!((r.budget.as_str(), r.claimed.as_str(), r.granted.as_str()), ("5000.00", "10.10", "0.00"));
        assert_eq!((r.outstanding.as_str(), r.unclaimed.as_str()), ("-2.40", "-2.85"));
        assert_eq!((r.utilisation, r.energy_kwh, r.co2e_kg, r.krw_per_kwh), (None, None, None, None));
    }

    #[test]
    fn a_report_whose_sums_overflow_is_refused_not_wrapped() {
        let f = ProgrammeFigures { claimed: Decimal::MIN, paid: Decimal::MAX, ..ProgrammeFigures::default() };
        let r = programme_report_of(
            Uuid::nil(),
            Currency::Krw,
            &f,
            &UsageFigures::default(),
            &ProgrammeEnergy::default(),
            None,
        );
        assert_eq!(r.err(), Some(LedgerError::Overflow));
    }

    fn group(key: &str, committed: Decimal, spent: Decimal) -> GroupRow {
        GroupRow { key: key.into(), committed, spent }
    }

    #[test]
    fn groups_by_organisation_are_named_and_others_keep_their_key() {
        let known = Uuid::from_u128(1);
        let gone = Uuid::from_u128(2);
        let rows = vec![
            group(&known.to_string(), dec!(1500.0000), dec!(24024.0000)),
            group(&gone.to_string(), dec!(0), dec!(19219.0000)),
            group("not-a-uuid", dec!(3), dec!(4)),
        ];
        assert_eq!(group_org_ids(&rows, GroupBy::Tenant), vec![known, gone]);
        assert_eq!(group_org_ids(&rows, GroupBy::Provider), vec![known, gone]);
        assert!(group_org_ids(&rows, GroupBy::GpuModel).is_empty());
        assert!(group_org_ids(&rows, GroupBy::Month).is_empty());

        let acme = OrgRef { id: known, name: "ACME".into(), category: Some("sme".into()) };
        let orgs = HashMap::from([(known, acme.clone())]);
        let shown: Vec<_> = group_views(rows, Currency::Krw, &orgs)
            .into_iter()
            .map(|g| (g.key, g.name, g.org, g.committed, g.spent))
            .collect();
        assert_eq!(
            shown,
            vec![
                (known.to_string(), "ACME".into(), Some(acme), "1500".into(), "24024".into()),
                (gone.to_string(), gone.to_string(), None, "0".into(), "19219".into()),
                ("not-a-uuid".into(), "not-a-uuid".into(), None, "3".into(), "4".into()),
            ]
        );
    }

    fn movement(hour: u32, kind: &str, counter: &str, amount: Decimal) -> MovementRow {
        MovementRow {
            effective_at: Utc.with_ymd_and_hms(2026, 11, 2, hour, 0, 0).single().expect("instant"),
            entry_id: Uuid::from_u128(u128::from(hour)),
            entry_kind: kind.into(),
            memo: format!("{kind} at {hour}"),
            reference: None,
            counter_code: counter.into(),
            amount,
        }
    }

    #[test]
    fn a_providers_payable_runs_from_its_opening_and_sums_by_category() {
        let tenant_wallet = chart::tenant_wallet_code(Uuid::from_u128(9));
        let movements = Movements {
            opening: dec!(3000.0000),
            rows: vec![
                movement(1, "settlement", &tenant_wallet, dec!(10000.0000)),
                movement(2, "settlement", chart::PLATFORM_FEES, dec!(-1000.0000)),
                movement(3, "outage_credit", &tenant_wallet, dec!(-2000.0000)),
                movement(4, "cancellation", &tenant_wallet, dec!(2500.0000)),
                movement(5, "payout", "assets:bank", dec!(-5000.0000)),
            ],
        };
        let s = section("payable", Currency::Krw, movements).expect("section");
        assert_eq!((s.section.as_str(), s.currency.code()), ("payable", "KRW"));
        assert_eq!((s.opening_balance.as_str(), s.closing_balance.as_str()), ("3000", "7500"));
        let lines: Vec<_> =
            s.lines.iter().map(|l| (l.category.as_str(), l.amount.as_str(), l.balance.as_str())).collect();
        assert_eq!(
            lines,
            vec![
                ("earned", "10000", "13000"),
                ("fee", "-1000", "12000"),
                ("outage_credit", "-2000", "10000"),
                ("earned", "2500", "12500"),
                ("payout", "-5000", "7500"),
            ]
        );
        let totals: Vec<_> = s.totals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            totals,
            vec![("earned", "12500"), ("fee", "-1000"), ("outage_credit", "-2000"), ("payout", "-5000")]
        );
        assert_eq!(s.lines[0].memo, "settlement at 1");
        assert_eq!(s.lines[0].entry_kind, "settlement");
    }

    #[test]
    fn a_tenants_usage_is_one_category_and_other_kinds_keep_their_name() {
        let movements = Movements {
            opening: Decimal::ZERO,
            rows: vec![
                movement(1, "deposit", "assets:bank", dec!(100.5)),
                movement(2, "settlement", "liabilities:payable", dec!(-40.25)),
                movement(3, "cancellation", "liabilities:payable", dec!(-10)),
            ],
        };
        let s = section("own_money", Currency::Usd, movements).expect("section");
        assert_eq!((s.opening_balance.as_str(), s.closing_balance.as_str()), ("0.00", "50.25"));
        let totals: Vec<_> = s.totals.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(totals, vec![("deposit", "100.50"), ("usage", "-50.25")]);
    }

    #[test]
    fn a_section_without_opening_or_movement_is_left_out() {
        let mut sections = Vec::new();
        push_section(&mut sections, "subsidy", Currency::Krw, Movements { opening: Decimal::ZERO, rows: vec![] })
            .expect("pushed");
        assert!(sections.is_empty());
        push_section(&mut sections, "subsidy", Currency::Krw, Movements { opening: dec!(19219), rows: vec![] })
            .expect("pushed");
        let shown: Vec<_> =
            sections.iter().map(|s| (s.opening_balance.as_str(), s.closing_balance.as_str(), s.lines.len())).collect();
        assert_eq!(shown, vec![("19219", "19219", 0)]);
    }

    #[test]
    fn what_a_provider_owes_is_shown_positive_when_it_grows() {
        let owed = debit_normal(Movements {
            opening: dec!(-1601),
            rows: vec![movement(1, "outage_credit", "liabilities:payable", dec!(-6404))],
        });
        let s = section("owed_by_provider", Currency::Krw, owed).expect("section");
        assert_eq!((s.opening_balance.as_str(), s.closing_balance.as_str()), ("1601", "8005"));
        assert_eq!(s.lines[0].amount, "6404");
    }

    #[test]
    fn a_running_balance_that_overflows_is_refused() {
        let movements = Movements { opening: Decimal::MAX, rows: vec![movement(1, "deposit", "assets:bank", dec!(1))] };
        assert_eq!(section("own_money", Currency::Krw, movements).err(), Some(LedgerError::Overflow));
    }
}
