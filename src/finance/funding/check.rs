//! The funding report reconciled with the ledger, over all time: the figures
//! the report attributes to hours must add up to what the ledger holds.
//!
//! 1. per order and pending posting: the schedule's net charge of the settled
//!    hours equals what the ledger posted of it less what outages refunded, and
//!    that of the charged hours not yet settled equals what is still pending;
//! 2. per currency: the report's private, public and fee totals (settled and
//!    committed) equal the sums of the postings on tenant wallets, subsidy
//!    receivables and platform fees of settlements, cancellations and outage
//!    credits (committed: the orders' pending remainders), and `subtotal −
//!    fees` equals what providers earned (net credits to their payables);
//! 3. per programme: its public money equals the programme report's `spent`,
//!    and its committed public money the report's `committed`.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Numeric, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, Scope};
use super::{Amounts, Dimension, OrderFacts, Period, REPORTING_TIME_ZONE, aggregate};
use crate::db::schema::programmes;
use crate::finance::FinanceError;
use crate::money::{Currency, format_amount};

/// One way the report and the ledger disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Mismatch {
    /// `order_posting`, `totals` or `programme`.
    pub check: String,
    pub currency: String,
    /// The order, pending posting, figure or programme concerned.
    pub subject: String,
    /// What the ledger holds.
    pub ledger: String,
    /// What the report says.
    pub report: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reconciliation {
    pub ok: bool,
    /// Orders checked hour by hour.
    pub orders: usize,
    pub differences: Vec<Mismatch>,
}

/// What became of one pending posting in the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Posted by settlements and cancellations (`post_pending`).
    pub posted: Decimal,
    /// Paid back by outage credits (the posting reversed, `posted`).
    pub refunded: Decimal,
    /// Still pending.
    pub remaining: Decimal,
}

/// Check 1 for one order: the schedule against the ledger, posting by posting.
pub fn order_differences(order: &OrderFacts, outcomes: &HashMap<Uuid, Outcome>) -> Vec<Mismatch> {
    let c = order.currency;
    let mut out = Vec::new();
    for p in &order.postings {
        let ledger = outcomes.get(&p.posting_id).copied().unwrap_or_default();
        let settled = order.net(p, 0, order.settled_hours);
        let committed = order.net(p, order.settled_hours, order.charged_hours);
        for (what, in_ledger, in_report) in
            [("settled", ledger.posted - ledger.refunded, settled), ("committed", ledger.remaining, committed)]
        {
            if in_ledger != in_report {
                out.push(Mismatch {
                    check: "order_posting".into(),
                    currency: c.code().into(),
                    subject: format!("order {} posting {}", order.id, p.posting_id),
                    ledger: format_amount(in_ledger, c),
                    report: format_amount(in_report, c),
                    detail: format!("{what}: the hours' shares less their credits differ from the ledger"),
                });
            }
        }
    }
    out
}

/// Settled or committed sums of the ledger by source, for one currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerSums {
    pub private: Decimal,
    pub public: Decimal,
    pub fees: Decimal,
    /// Net credits to provider payables.
    pub earned: Decimal,
}

/// Check 2 for one currency and state (`settled` or `committed`).
pub fn total_differences(c: Currency, state: &str, report: &Amounts, ledger: &LedgerSums) -> Vec<Mismatch> {
    [
        ("private", ledger.private, report.private),
        ("public", ledger.public, report.public),
        ("fees", ledger.fees, report.fees),
        ("subtotal − fees (providers' earnings)", ledger.earned, report.subtotal() - report.fees),
    ]
    .into_iter()
    .filter(|(_, l, r)| l != r)
    .map(|(figure, l, r)| Mismatch {
        check: "totals".into(),
        currency: c.code().into(),
        subject: format!("{state} {figure}"),
        ledger: format_amount(l, c),
        report: format_amount(r, c),
        detail: format!("{state} {figure}: the report's total differs from the sum of the ledger's postings"),
    })
    .collect()
}

#[derive(QueryableByName)]
struct OutcomeRow {
    #[diesel(sql_type = SqlUuid)]
    posting_id: Uuid,
    #[diesel(sql_type = Numeric)]
    posted: Decimal,
    #[diesel(sql_type = Numeric)]
    refunded: Decimal,
    #[diesel(sql_type = Numeric)]
    remaining: Decimal,
}

async fn outcomes(conn: &mut AsyncPgConnection) -> QueryResult<HashMap<Uuid, Outcome>> {
    let rows: Vec<OutcomeRow> = diesel::sql_query(
        "SELECT p.id AS posting_id, \
                coalesce((SELECT sum(c.amount) FROM postings c \
                          WHERE c.pending_posting_id = p.id AND c.kind = 'post_pending'), 0) AS posted, \
                coalesce((SELECT sum(x.amount) FROM journal_entries xe JOIN postings x ON x.entry_id = xe.id \
                          WHERE xe.kind = 'outage_credit' AND (xe.metadata ->> 'order_id')::uuid = o.id \
                            AND xe.metadata ? 'order_id' AND x.kind = 'posted' \
                            AND x.debit_account_id = p.credit_account_id \
                            AND x.credit_account_id = p.debit_account_id), 0) AS refunded, \
                r.remaining \
         FROM orders o JOIN postings p ON p.entry_id = o.journal_entry_id AND p.kind = 'pending' \
         JOIN pending_remainders r ON r.posting_id = p.id",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.posting_id, Outcome { posted: r.posted, refunded: r.refunded, remaining: r.remaining }))
        .collect())
}

#[derive(QueryableByName)]
struct SumsRow {
    #[diesel(sql_type = Text)]
    currency: Currency,
    #[diesel(sql_type = Numeric)]
    private: Decimal,
    #[diesel(sql_type = Numeric)]
    public: Decimal,
    #[diesel(sql_type = Numeric)]
    fees: Decimal,
    #[diesel(sql_type = Numeric)]
    earned: Decimal,
}

/// Signed sums by source of `{amount}` over postings `p` with accounts `d`
/// (debited) and `c` (credited): positive in the direction an order pays. The
/// reclassification of an outage refund the provider owes back (`provider
/// receivable → payable`) is not earnings, so it is left out.
const BY_SOURCE: &str = "\
    coalesce(sum(CASE WHEN d.code LIKE 'liabilities:tenant:%:wallet' THEN {amount} \
                      WHEN c.code LIKE 'liabilities:tenant:%:wallet' THEN -{amount} ELSE 0 END), 0) AS private, \
    coalesce(sum(CASE WHEN d.code LIKE 'assets:subsidy-receivable:%' THEN {amount} \
                      WHEN c.code LIKE 'assets:subsidy-receivable:%' THEN -{amount} ELSE 0 END), 0) AS public, \
    coalesce(sum(CASE WHEN c.code = 'revenue:platform-fees' THEN {amount} \
                      WHEN d.code = 'revenue:platform-fees' THEN -{amount} ELSE 0 END), 0) AS fees, \
    coalesce(sum(CASE WHEN c.code LIKE 'liabilities:provider:%:payable' \
                       AND d.code NOT LIKE 'assets:provider:%:receivable' THEN {amount} ELSE 0 END) \
           - sum(CASE WHEN d.code LIKE 'liabilities:provider:%:payable' THEN {amount} ELSE 0 END), 0) AS earned";

async fn ledger_sums(
    conn: &mut AsyncPgConnection,
) -> QueryResult<(HashMap<Currency, LedgerSums>, HashMap<Currency, LedgerSums>)> {
    let settled: Vec<SumsRow> = diesel::sql_query(format!(
        "SELECT p.currency, {} \
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id \
         JOIN accounts d ON d.id = p.debit_account_id JOIN accounts c ON c.id = p.credit_account_id \
         WHERE e.kind IN ('settlement', 'cancellation', 'outage_credit') AND p.kind IN ('posted', 'post_pending') \
         GROUP BY p.currency",
        BY_SOURCE.replace("{amount}", "p.amount")
    ))
    .load(conn)
    .await?;
    let committed: Vec<SumsRow> = diesel::sql_query(format!(
        "SELECT p.currency, {} \
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id AND e.kind = 'order' \
         JOIN pending_remainders r ON r.posting_id = p.id \
         JOIN accounts d ON d.id = p.debit_account_id JOIN accounts c ON c.id = p.credit_account_id \
         WHERE p.kind = 'pending' \
         GROUP BY p.currency",
        BY_SOURCE.replace("{amount}", "r.remaining")
    ))
    .load(conn)
    .await?;
    let by_currency = |rows: Vec<SumsRow>| {
        rows.into_iter()
            .map(|r| (r.currency, LedgerSums { private: r.private, public: r.public, fees: r.fees, earned: r.earned }))
            .collect()
    };
    Ok((by_currency(settled), by_currency(committed)))
}

/// Runs the three checks over every order and programme.
pub async fn reconcile(conn: &mut AsyncPgConnection) -> Result<Reconciliation, FinanceError> {
    let orders = store::load(conn, &Scope::default()).await?;
    let outcomes = outcomes(conn).await?;
    let mut differences: Vec<Mismatch> = orders.iter().flat_map(|o| order_differences(o, &outcomes)).collect();

    let report = aggregate(&orders, Period::default(), REPORTING_TIME_ZONE, &[Dimension::Programme])
        .map_err(FinanceError::FundingFigures)?;
    let (settled, committed) = ledger_sums(conn).await?;
    for c in Currency::ALL {
        let node = report.get(&c).cloned().unwrap_or_default();
        let zero = LedgerSums::default();
        differences.extend(total_differences(c, "settled", &node.tally.settled, settled.get(&c).unwrap_or(&zero)));
        differences.extend(total_differences(
            c,
            "committed",
            &node.tally.committed,
            committed.get(&c).unwrap_or(&zero),
        ));
    }

    let all: Vec<(Uuid, Currency)> =
        programmes::table.select((programmes::id, programmes::currency)).order(programmes::id).load(conn).await?;
    for (id, c) in all {
        let programme = crate::finance::reports::report(conn, id, c, None, crate::config::DEFAULT_TIME_ZONE).await?;
        let group = report
            .get(&c)
            .and_then(|node| node.children.values().find(|(label, _)| label.key == id.to_string()))
            .map(|(_, node)| node.tally)
            .unwrap_or_default();
        // Credit notes give subsidy back without being tied to hours: the
        // programme's spent is net of them, the hours' public money is not.
        let credited: Vec<Decimal> = crate::db::schema::credit_notes::table
            .filter(crate::db::schema::credit_notes::programme_id.eq(id))
            .select(crate::db::schema::credit_notes::amount)
            .load(conn)
            .await?;
        let credited: Decimal = credited.into_iter().sum();
        let spent_before_credits = programme
            .spent
            .parse::<Decimal>()
            .map(|spent| format_amount(spent + credited, c))
            .unwrap_or_else(|_| programme.spent.clone());
        for (figure, in_ledger, in_report) in [
            ("spent", spent_before_credits, format_amount(group.settled.public, c)),
            ("committed", programme.committed, format_amount(group.committed.public, c)),
        ] {
            if in_ledger != in_report {
                differences.push(Mismatch {
                    check: "programme".into(),
                    currency: c.code().into(),
                    subject: format!("programme {id} {figure}"),
                    ledger: in_ledger,
                    report: in_report,
                    detail: format!("the programme report's {figure} differs from the funding report's public money"),
                });
            }
        }
    }
    Ok(Reconciliation { ok: differences.is_empty(), orders: orders.len(), differences })
}
