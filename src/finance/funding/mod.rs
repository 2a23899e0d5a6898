//! The funding-mix report: of the GPU-hours bought through the market, how much
//! public money (subsidy) and how much private money (what tenants paid from
//! their own wallets) paid for them, by month, kind of organisation, tenant,
//! provider, GPU model, region or programme.
//!
//! The amounts are the ledger's: each order's pending postings (tenant wallet →
//! payable, subsidy receivable → payable, payable → platform fees), attributed
//! to the hours they pay for with the same schedule that settlement,
//! cancellation and outage credits use (`market::schedule`), so each hour
//! carries its share less what outages credited for that very hour. Hours
//! settled are `settled` (posted), charged hours not yet settled are
//! `committed` (pending); hours a cancellation freed carry nothing. This module
//! holds the plain rules; `store` reads the ledger, `check` reconciles the
//! report with it, `routes` serves both.

pub mod check;
pub mod routes;
pub mod store;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::names::OrgRef;
use crate::ledger::{LedgerError, chart};
use crate::market::schedule::PostingSchedule;
use crate::money::{Currency, format_amount, format_scaled};

/// The programme's time zone: report months are calendar months here (Korea
/// keeps no daylight saving, so they begin at 15:00 UTC the day before). One
/// named place, so that a configurable zone replaces this constant only.
pub const REPORTING_TIME_ZONE: Tz = chrono_tz::Asia::Seoul;

/// Fraction digits of `public_share` and `private_per_public`: the exact
/// quotient rounded half away from zero, for display only.
pub const RATIO_PLACES: u32 = 4;

/// Levels of grouping allowed at once (`month,tenant_category`).
pub const MAX_LEVELS: usize = 2;

/// What the report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Calendar month of the hour bought, in the reporting time zone (`2026-11`).
    Month,
    /// The tenant organisation's category (`sme`, `university`, …).
    TenantCategory,
    Tenant,
    Provider,
    GpuModel,
    Region,
    /// The programme that subsidised the order; `none` for unsubsidised orders.
    Programme,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Month,
        Dimension::TenantCategory,
        Dimension::Tenant,
        Dimension::Provider,
        Dimension::GpuModel,
        Dimension::Region,
        Dimension::Programme,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Month => "month",
            Dimension::TenantCategory => "tenant_category",
            Dimension::Tenant => "tenant",
            Dimension::Provider => "provider",
            Dimension::GpuModel => "gpu_model",
            Dimension::Region => "region",
            Dimension::Programme => "programme",
        }
    }
}

impl FromStr for Dimension {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
            format!("unknown grouping {s:?}: expected one of {}", names.join(", "))
        })
    }
}

/// Parses `group_by` (`month` or `month,tenant_category`): at most
/// `MAX_LEVELS` distinct dimensions, comma-separated.
pub fn parse_group_by(raw: &str) -> Result<Vec<Dimension>, String> {
    let mut dims = Vec::new();
    for part in raw.split(',') {
        let dim: Dimension = part.trim().parse()?;
        if dims.contains(&dim) {
            return Err(format!("{} is named twice", dim.as_str()));
        }
        dims.push(dim);
    }
    if dims.len() > MAX_LEVELS {
        return Err(format!("at most {MAX_LEVELS} levels of grouping (e.g. month,tenant_category)"));
    }
    Ok(dims)
}

/// Which money a pending posting of an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// tenant wallet → provider payable: the tenant's own money.
    Private,
    /// subsidy receivable → provider payable: the programme's money.
    Public { programme: Uuid },
    /// provider payable → platform fees: the operator's fee, borne by the provider.
    Fee,
    /// grant available → grant spent: the budget's memo of the public money,
    /// counted once already as `Public`.
    Memo,
}

/// Tells an order's pending posting by its accounts; `None` for a posting an
/// order never writes.
pub fn classify(debit_code: &str, credit_code: &str) -> Option<Source> {
    if debit_code.starts_with("liabilities:tenant:") && debit_code.ends_with(":wallet") {
        return Some(Source::Private);
    }
    if let Some(programme) = debit_code.strip_prefix("assets:subsidy-receivable:") {
        return Uuid::parse_str(programme).ok().map(|programme| Source::Public { programme });
    }
    if credit_code == chart::PLATFORM_FEES {
        return Some(Source::Fee);
    }
    if debit_code.starts_with("budget:grant:") && credit_code.starts_with("budget:grant:") {
        return Some(Source::Memo);
    }
    None
}

/// One pending posting of an order's `order` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderPosting {
    pub posting_id: Uuid,
    pub source: Source,
    pub amount: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeRef {
    pub id: Uuid,
    pub name: String,
}

/// What the report needs of one order: who and what it is (the order row), its
/// pending postings (the ledger) and the GPUs outages credited per hour.
#[derive(Debug, Clone)]
pub struct OrderFacts {
    pub id: Uuid,
    pub currency: Currency,
    pub tenant: OrgRef,
    pub provider: OrgRef,
    pub gpu_model: String,
    pub region: String,
    /// The programme whose receivable pays part of it (from its postings).
    pub programme: Option<ProgrammeRef>,
    pub start_at: DateTime<Utc>,
    pub hours: i32,
    pub gpus: i32,
    pub settled_hours: i32,
    pub charged_hours: i32,
    /// GPUs credited per hour index.
    pub credits: BTreeMap<i32, i32>,
    pub postings: Vec<OrderPosting>,
}

impl OrderFacts {
    fn schedule(&self, amount: Decimal) -> PostingSchedule<'_> {
        PostingSchedule { amount, hours: self.hours, gpus: self.gpus, currency: self.currency, credits: &self.credits }
    }

    /// The net charge of one pending posting for hours `[from, to)`.
    pub fn net(&self, posting: &OrderPosting, from: i32, to: i32) -> Decimal {
        self.schedule(posting.amount).net(from, to)
    }
}

/// The report's period on the hours bought: an hour counts when its start is
/// in `[from, to)`; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The first hour index (0..=`hours`) of an order starting at `start` whose
/// start is at or after `bound`.
pub fn first_hour_from(start: DateTime<Utc>, bound: DateTime<Utc>, hours: i32) -> i32 {
    if bound <= start {
        return 0;
    }
    let whole = (bound - start).num_hours();
    if whole >= i64::from(hours) {
        return hours;
    }
    // whole < hours ≤ MAX_HOURS: the index fits, and the instant exists.
    let index = whole as i32;
    if start + TimeDelta::hours(whole) < bound { index + 1 } else { index }
}

/// The instant the month after the one holding `t` begins, in `zone`; `None`
/// past the calendar's end.
pub fn next_month_start(t: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
    let local = t.with_timezone(&zone);
    let (year, month) = if local.month() == 12 { (local.year() + 1, 1) } else { (local.year(), local.month() + 1) };
    let day = NaiveDate::from_ymd_opt(year, month, 1)?;
    // Midnight may not exist where a zone springs forward at midnight: the
    // month then begins at the first instant that does.
    (0..=3)
        .filter_map(|h| day.and_hms_opt(h, 0, 0))
        .find_map(|naive| zone.from_local_datetime(&naive).earliest())
        .map(|d| d.with_timezone(&Utc))
}

/// The month label (`2026-11`) of the instant `t` in `zone`.
pub fn month_of(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%Y-%m").to_string()
}

/// A run of an order's hours `[from, to)` that falls in one month and one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub from: i32,
    pub to: i32,
    /// Posted (the hours are settled) rather than pending.
    pub settled: bool,
    pub month: String,
}

/// The order's charged hours that start in `period`, cut where the month
/// changes (in `zone`) and where settled hours end.
pub fn segments(order: &OrderFacts, period: Period, zone: Tz) -> Vec<Segment> {
    let charged = order.charged_hours.clamp(0, order.hours);
    let lo = period.from.map_or(0, |f| first_hour_from(order.start_at, f, charged));
    let hi = period.to.map_or(charged, |t| first_hour_from(order.start_at, t, charged));
    let mut out = Vec::new();
    let mut h = lo;
    while h < hi {
        let begins = order.start_at + TimeDelta::hours(i64::from(h));
        let month_ends = next_month_start(begins, zone).map_or(hi, |m| first_hour_from(order.start_at, m, charged));
        let settled = h < order.settled_hours;
        let mut end = month_ends.min(hi);
        if settled {
            end = end.min(order.settled_hours);
        }
        let end = end.max(h + 1);
        out.push(Segment { from: h, to: end, settled, month: month_of(begins, zone) });
        h = end;
    }
    out
}

/// GPU-hours, and money by source, of some hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub gpu_hours: i64,
    pub public: Decimal,
    pub private: Decimal,
    pub fees: Decimal,
}

impl Amounts {
    /// What the hours cost: public plus private money (the order's subtotal, net
    /// of credits and cancellations).
    pub fn subtotal(&self) -> Decimal {
        self.public + self.private
    }

    fn add(&mut self, other: &Amounts) -> Result<(), LedgerError> {
        self.gpu_hours = self.gpu_hours.checked_add(other.gpu_hours).ok_or(LedgerError::Overflow)?;
        self.public = self.public.checked_add(other.public).ok_or(LedgerError::Overflow)?;
        self.private = self.private.checked_add(other.private).ok_or(LedgerError::Overflow)?;
        self.fees = self.fees.checked_add(other.fees).ok_or(LedgerError::Overflow)?;
        Ok(())
    }
}

/// Settled and committed figures of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub settled: Amounts,
    pub committed: Amounts,
}

impl Tally {
    pub fn all(&self) -> Result<Amounts, LedgerError> {
        let mut all = self.settled;
        all.add(&self.committed)?;
        Ok(all)
    }

    fn add(&mut self, settled: bool, amounts: &Amounts) -> Result<(), LedgerError> {
        if settled { self.settled.add(amounts) } else { self.committed.add(amounts) }
    }
}

/// What a segment of an order carries: its uncredited GPU-hours (an hour with
/// `g` of its GPUs credited counts `gpus − g`), and each pending posting's net
/// charge for those hours.
pub fn segment_amounts(order: &OrderFacts, segment: &Segment) -> Amounts {
    let credited: i64 =
        order.credits.range(segment.from..segment.to).map(|(_, &g)| i64::from(g.clamp(0, order.gpus))).sum();
    let mut amounts = Amounts {
        gpu_hours: i64::from(segment.to - segment.from) * i64::from(order.gpus) - credited,
        ..Amounts::default()
    };
    for posting in &order.postings {
        // One order's amounts are at most 10^15: these sums cannot overflow.
        let net = order.net(posting, segment.from, segment.to);
        match posting.source {
            Source::Private => amounts.private += net,
            Source::Public { .. } => amounts.public += net,
            Source::Fee => amounts.fees += net,
            Source::Memo => {}
        }
    }
    amounts
}

/// How a group is named: a stable `key` and a `name` for people, with the
/// organisation for tenants and providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLabel {
    pub key: String,
    pub name: String,
    pub org: Option<OrgRef>,
}

/// The name of the programme group of unsubsidised orders.
pub const UNSUBSIDISED: &str = "unsubsidised";

pub fn label(dim: Dimension, order: &OrderFacts, segment: &Segment) -> GroupLabel {
    let plain = |s: &str| GroupLabel { key: s.to_string(), name: s.to_string(), org: None };
    match dim {
        Dimension::Month => plain(&segment.month),
        Dimension::TenantCategory => plain(order.tenant.category.as_deref().unwrap_or("none")),
        Dimension::Tenant => GroupLabel {
            key: order.tenant.id.to_string(),
            name: order.tenant.name.clone(),
            org: Some(order.tenant.clone()),
        },
        Dimension::Provider => GroupLabel {
            key: order.provider.id.to_string(),
            name: order.provider.name.clone(),
            org: Some(order.provider.clone()),
        },
        Dimension::GpuModel => plain(&order.gpu_model),
        Dimension::Region => plain(&order.region),
        Dimension::Programme => match &order.programme {
            Some(p) => GroupLabel { key: p.id.to_string(), name: p.name.clone(), org: None },
            None => GroupLabel { key: "none".into(), name: UNSUBSIDISED.into(), org: None },
        },
    }
}

/// A group and its subgroups, ordered by name (then key: two tenants may share a name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub tally: Tally,
    pub children: BTreeMap<(String, String), (GroupLabel, Node)>,
}

impl Node {
    fn add(&mut self, path: &[GroupLabel], settled: bool, amounts: &Amounts) -> Result<(), LedgerError> {
        self.tally.add(settled, amounts)?;
        if let Some((first, rest)) = path.split_first() {
            let (_, child) = self
                .children
                .entry((first.name.clone(), first.key.clone()))
                .or_insert_with(|| (first.clone(), Node::default()));
            child.add(rest, settled, amounts)?;
        }
        Ok(())
    }
}

/// The report's figures per currency, grouped by `dims` in order.
pub fn aggregate(
    orders: &[OrderFacts],
    period: Period,
    zone: Tz,
    dims: &[Dimension],
) -> Result<BTreeMap<Currency, Node>, LedgerError> {
    let mut by_currency: BTreeMap<Currency, Node> = BTreeMap::new();
    for order in orders {
        for segment in segments(order, period, zone) {
            let amounts = segment_amounts(order, &segment);
            let path: Vec<GroupLabel> = dims.iter().map(|d| label(*d, order, &segment)).collect();
            by_currency.entry(order.currency).or_default().add(&path, segment.settled, &amounts)?;
        }
    }
    Ok(by_currency)
}

/// `numerator ÷ denominator`, exact, then rounded half away from zero to
/// `places` for display; `None` when the denominator is zero.
pub fn ratio(numerator: Decimal, denominator: Decimal, places: u32) -> Option<String> {
    if denominator.is_zero() {
        return None;
    }
    numerator.checked_div(denominator).map(|q| format_scaled(q, places))
}

/// Settled or committed figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FundingPart {
    pub gpu_hours: i64,
    pub subtotal: String,
    pub public: String,
    pub private: String,
    pub fees: String,
}

impl FundingPart {
    fn of(a: &Amounts, c: Currency) -> Self {
        FundingPart {
            gpu_hours: a.gpu_hours,
            subtotal: format_amount(a.subtotal(), c),
            public: format_amount(a.public, c),
            private: format_amount(a.private, c),
            fees: format_amount(a.fees, c),
        }
    }
}

/// A group's (or the total's) figures: settled and committed together, then apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FundingFigures {
    /// GPU-hours bought (charged) in the period, less those credited for outages.
    pub gpu_hours: i64,
    /// What they cost: `public + private`.
    pub subtotal: String,
    /// Paid by subsidy programmes.
    pub public: String,
    /// Paid by tenants from their own money, unsubsidised orders included.
    pub private: String,
    /// Platform fees, borne by the providers: they earned `subtotal − fees`.
    pub fees: String,
    /// `public ÷ subtotal`, rounded to `ratio_places`; null when the subtotal is 0.
    pub public_share: Option<String>,
    /// Private money per unit of public money (`private ÷ public`), rounded to
    /// `ratio_places`; null when public is 0.
    pub private_per_public: Option<String>,
    /// Hours settled: posted in the ledger.
    pub settled: FundingPart,
    /// Hours charged but not yet settled: pending in the ledger.
    pub committed: FundingPart,
}

impl FundingFigures {
    pub fn of(t: &Tally, c: Currency) -> Result<Self, LedgerError> {
        let all = t.all()?;
        Ok(FundingFigures {
            gpu_hours: all.gpu_hours,
            subtotal: format_amount(all.subtotal(), c),
            public: format_amount(all.public, c),
            private: format_amount(all.private, c),
            fees: format_amount(all.fees, c),
            public_share: ratio(all.public, all.subtotal(), RATIO_PLACES),
            private_per_public: ratio(all.private, all.public, RATIO_PLACES),
            settled: FundingPart::of(&t.settled, c),
            committed: FundingPart::of(&t.committed, c),
        })
    }
}

/// One group of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(no_recursion)]
pub struct FundingGroup {
    /// The dimension of this level (`month`, `tenant`, …).
    pub by: Dimension,
    /// Stable: the month (`2026-11`), category, organisation or programme id
    /// (`none` for unsubsidised orders), GPU model or region.
    pub key: String,
    /// For people: the organisation's or programme's name; the key otherwise.
    pub name: String,
    /// The organisation, when grouped by tenant or provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgRef>,
    #[serde(flatten)]
    pub figures: FundingFigures,
    /// The next level, when two are asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<FundingGroup>>,
}

/// One currency's report: money of different currencies is never added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CurrencyFunding {
    pub currency: Currency,
    pub total: FundingFigures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<FundingGroup>>,
}

fn group_views(node: &Node, dims: &[Dimension], c: Currency) -> Result<Option<Vec<FundingGroup>>, LedgerError> {
    let Some((by, rest)) = dims.split_first() else { return Ok(None) };
    let mut groups = Vec::with_capacity(node.children.len());
    for (label, child) in node.children.values() {
        groups.push(FundingGroup {
            by: *by,
            key: label.key.clone(),
            name: label.name.clone(),
            org: label.org.clone(),
            figures: FundingFigures::of(&child.tally, c)?,
            groups: group_views(child, rest, c)?,
        });
    }
    Ok(Some(groups))
}

pub fn currency_view(c: Currency, node: &Node, dims: &[Dimension]) -> Result<CurrencyFunding, LedgerError> {
    Ok(CurrencyFunding { currency: c, total: FundingFigures::of(&node.tally, c)?, groups: group_views(node, dims, c)? })
}

const CSV_FIGURES: &str = "gpu_hours,subtotal,public,private,fees,public_share,private_per_public,\
settled_gpu_hours,settled_subtotal,settled_public,settled_private,settled_fees,\
committed_gpu_hours,committed_subtotal,committed_public,committed_private,committed_fees";

fn csv_figures(out: &mut String, f: &FundingFigures) {
    let part = |p: &FundingPart| format!("{},{},{},{},{}", p.gpu_hours, p.subtotal, p.public, p.private, p.fees);
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{}",
        f.gpu_hours,
        f.subtotal,
        f.public,
        f.private,
        f.fees,
        f.public_share.as_deref().unwrap_or(""),
        f.private_per_public.as_deref().unwrap_or(""),
        part(&f.settled),
        part(&f.committed),
    );
}

/// The report as CSV: per currency, a row per group (a first-level group's row
/// is the subtotal of its subgroups' rows, which follow it) and a total row.
/// `level` is 1 or 2 for groups and 0 for the total; a level's `key` and
/// `name` columns are empty on rows above it.
pub fn csv(dims: &[Dimension], currencies: &[CurrencyFunding]) -> String {
    let mut out = String::from("currency,level");
    for d in dims {
        let _ = write!(out, ",{0},{0}_name", d.as_str());
    }
    let _ = writeln!(out, ",{CSV_FIGURES}");
    fn rows(
        out: &mut String,
        c: Currency,
        level: usize,
        keys: &mut Vec<(String, String)>,
        groups: &[FundingGroup],
        width: usize,
    ) {
        for g in groups {
            keys.push((
                crate::finance::spreadsheet::csv_field(&g.key),
                crate::finance::spreadsheet::csv_field(&g.name),
            ));
            let _ = write!(out, "{},{}", c.code(), level);
            for i in 0..width {
                match keys.get(i) {
                    Some((k, n)) => {
                        let _ = write!(out, ",{k},{n}");
                    }
                    None => out.push_str(",,"),
                }
            }
            out.push(',');
            csv_figures(out, &g.figures);
            if let Some(sub) = &g.groups {
                rows(out, c, level + 1, keys, sub, width);
            }
            keys.pop();
        }
    }
    for section in currencies {
        if let Some(groups) = &section.groups {
            rows(&mut out, section.currency, 1, &mut Vec::new(), groups, dims.len());
        }
        let _ = write!(out, "{},0", section.currency.code());
        out.push_str(&",,".repeat(dims.len()));
        out.push(',');
        csv_figures(&mut out, &section.total);
    }
    out
}

/// Thousands, millions and billions with one decimal, for a one-line summary.
pub fn compact(value: Decimal) -> String {
    let (scale, suffix) = if value.abs() >= Decimal::from(1_000_000_000) {
        (Decimal::from(1_000_000_000), "B")
    } else if value.abs() >= Decimal::from(1_000_000) {
        (Decimal::from(1_000_000), "M")
    } else if value.abs() >= Decimal::from(1_000) {
        (Decimal::from(1_000), "k")
    } else {
        return format_scaled(value, 0);
    };
    format!("{}{suffix}", format_scaled(value / scale, 1))
}

/// A currency's unit as people say it.
fn unit_name(c: Currency) -> &'static str {
    match c {
        Currency::Krw => "won",
        Currency::Usd => "dollar",
        Currency::Eur => "euro",
        Currency::Jpy => "yen",
    }
}

/// One line for people: "public 25.3M KRW, private 31.8M KRW, 1.26 private won
/// per public won" (settled and committed together).
pub fn summary_line(c: Currency, tally: &Tally) -> Result<String, LedgerError> {
    let all = tally.all()?;
    let per = match ratio(all.private, all.public, 2) {
        Some(r) => format!("{r} private {0} per public {0}", unit_name(c)),
        None => "no public money".into(),
    };
    Ok(format!("public {} {c}, private {} {c}, {per}", compact(all.public), compact(all.private)))
}

#[cfg(test)]
mod tests;
