//! What a provider's listing has earned and what its outages gave back, read
//! from the orders' postings (as `charged` reads what a tenant paid): the
//! same postings the provider's payable and the API's order views come from.
//!
//! - [`listing_revenue`]: gross (what tenants and programmes are charged for
//!   the listing's orders), the platform fee, and net (what the payable gets);
//! - [`outage_credits`]: each outage's `outage_credit` entries, split into
//!   what went back to tenants, to programmes, and the fee returned.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::prelude::*;
use diesel::sql_types::{Array, Numeric, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::charged::{self, PendingOutcome};
use super::orders::{self, OrderFilter, OrderRow};
use crate::auth::OrgId;
use crate::ledger::{LedgerError, chart};

/// Orders read per round trip when a listing's revenue is summed.
const BATCH: i64 = 500;

/// Money a provider's orders brought in, in the listing's currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revenue {
    /// What tenants and programmes are charged (posted, less refunds, plus
    /// what is still reserved for hours to come).
    pub gross: Decimal,
    /// The platform's fee on it, likewise.
    pub fees: Decimal,
    /// `gross − fees`: what the provider's payable receives.
    pub net: Decimal,
}

/// The fee an order charges its provider, as charged: its fee posting (the
/// last pending posting, when the order has a fee) posted, less refunds, plus
/// what is still reserved.
pub fn fee_charged(order: &OrderRow, postings: &[PendingOutcome]) -> Result<Decimal, LedgerError> {
    if order.platform_fee <= Decimal::ZERO {
        return Ok(Decimal::ZERO);
    }
    let fee = postings
        .last()
        .filter(|p| p.amount == order.platform_fee)
        .ok_or_else(|| LedgerError::Corrupt(format!("order {}: its fee posting is missing", order.id)))?;
    fee.posted.checked_sub(fee.refunded).and_then(|n| n.checked_add(fee.remaining)).ok_or(LedgerError::Overflow)
}

/// Adds one order's charged figures to `sum`.
pub fn add_order(sum: Revenue, order: &OrderRow, postings: &[PendingOutcome]) -> Result<Revenue, LedgerError> {
    let gross = charged::charged(order, postings)?.subtotal()?;
    let fee = fee_charged(order, postings)?;
    let add = |a: Decimal, b: Decimal| a.checked_add(b).ok_or(LedgerError::Overflow);
    let (gross, fees) = (add(sum.gross, gross)?, add(sum.fees, fee)?);
    Ok(Revenue { gross, fees, net: gross.checked_sub(fees).ok_or(LedgerError::Overflow)? })
}

/// The revenue of every order on `listing_id` (of `provider`), and their ids.
pub async fn listing_revenue(
    conn: &mut AsyncPgConnection,
    provider: OrgId,
    listing_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(Revenue, Vec<Uuid>), LedgerError> {
    let filter = OrderFilter {
        tenant_org_id: None,
        provider_org_id: Some(provider.0),
        listing_id: Some(listing_id),
        statuses: None,
        now,
        from: None,
        to: None,
    };
    let mut sum = Revenue::default();
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let batch = orders::list(conn, &filter, before, BATCH).await?;
        let outcomes = charged::outcomes_of(conn, &batch.iter().map(|o| o.id).collect::<Vec<_>>()).await?;
        for order in &batch {
            let postings = outcomes.get(&order.id).map(Vec::as_slice).unwrap_or_default();
            sum = add_order(sum, order, postings)?;
            ids.push(order.id);
        }
        match batch.last() {
            Some(last) if batch.len() as i64 == BATCH => before = Some((last.created_at, last.id)),
            _ => return Ok((sum, ids)),
        }
    }
}

/// Whose money one posting of an outage credit moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditPart {
    /// Back to a tenant's wallet (or released from its reservation).
    Tenant,
    /// Back to a programme's subsidy receivable.
    Programme,
    /// The platform fee on the lost hours, returned to the provider.
    Fee,
    /// The grant's memo mirror, or the provider's receivable after a payout:
    /// not money the outage gave back.
    Other,
}

/// Classifies a posting of an `outage_credit` entry by its two accounts.
pub fn credit_part(debit_code: &str, credit_code: &str) -> CreditPart {
    let either = |test: &dyn Fn(&str) -> bool| test(debit_code) || test(credit_code);
    if either(&|c| c.starts_with("liabilities:tenant:")) {
        CreditPart::Tenant
    } else if either(&|c| c.starts_with("assets:subsidy-receivable:")) {
        CreditPart::Programme
    } else if either(&|c| c == chart::PLATFORM_FEES) {
        CreditPart::Fee
    } else {
        CreditPart::Other
    }
}

/// What one outage credited, over all the orders it hit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutageCredits {
    /// The orders it credited, each with its `outage_credit` entry.
    pub entries: Vec<(Uuid, Uuid)>,
    pub to_tenants: Decimal,
    pub to_programmes: Decimal,
    pub fee_returned: Decimal,
}

impl OutageCredits {
    /// What the outage took off the provider's earnings: the price of the lost
    /// GPU-hours, less the fee on them.
    pub fn provider_loss(&self) -> Result<Decimal, LedgerError> {
        self.to_tenants
            .checked_add(self.to_programmes)
            .and_then(|g| g.checked_sub(self.fee_returned))
            .ok_or(LedgerError::Overflow)
    }
}

#[derive(QueryableByName)]
struct CreditPosting {
    #[diesel(sql_type = SqlUuid)]
    entry_id: Uuid,
    #[diesel(sql_type = Text)]
    outage_id: String,
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Text)]
    debit_code: String,
    #[diesel(sql_type = Text)]
    credit_code: String,
}

/// The credits each outage caused on the orders `order_ids` (a listing's),
/// by outage id, from their `outage_credit` entries.
pub async fn outage_credits(
    conn: &mut AsyncPgConnection,
    order_ids: &[Uuid],
) -> Result<HashMap<Uuid, OutageCredits>, LedgerError> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Found through the order the entry names (indexed: journal_entries_order).
    let rows: Vec<CreditPosting> = diesel::sql_query(
        "SELECT e.id AS entry_id, e.metadata ->> 'outage_id' AS outage_id, e.metadata ->> 'order_id' AS order_id, \
                p.amount, da.code AS debit_code, ca.code AS credit_code \
         FROM journal_entries e JOIN postings p ON p.entry_id = e.id \
         JOIN accounts da ON da.id = p.debit_account_id JOIN accounts ca ON ca.id = p.credit_account_id \
         WHERE e.metadata ? 'order_id' AND (e.metadata ->> 'order_id')::uuid = ANY($1) \
           AND e.kind = 'outage_credit' AND e.metadata ? 'outage_id' \
         ORDER BY e.seq, p.seq",
    )
    .bind::<Array<SqlUuid>, _>(order_ids)
    .load(conn)
    .await?;
    let mut by_outage: BTreeMap<Uuid, OutageCredits> = BTreeMap::new();
    for row in rows {
        let corrupt = || LedgerError::Corrupt(format!("outage credit entry {} names no outage or order", row.entry_id));
        let outage: Uuid = row.outage_id.parse().map_err(|_| corrupt())?;
        let order: Uuid = row.order_id.parse().map_err(|_| corrupt())?;
        let credits = by_outage.entry(outage).or_default();
        if !credits.entries.contains(&(order, row.entry_id)) {
            credits.entries.push((order, row.entry_id));
        }
        let slot = match credit_part(&row.debit_code, &row.credit_code) {
            CreditPart::Tenant => &mut credits.to_tenants,
            CreditPart::Programme => &mut credits.to_programmes,
            CreditPart::Fee => &mut credits.fee_returned,
            CreditPart::Other => continue,
        };
        *slot = slot.checked_add(row.amount).ok_or(LedgerError::Overflow)?;
    }
    Ok(by_outage.into_iter().collect())
}

/// A listing's outage reports, newest first.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::outages, check_for_backend(diesel::pg::Pg))]
pub struct OutageRow {
    pub id: Uuid,
    pub listing_id: Uuid,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub gpus: i32,
    pub created_at: DateTime<Utc>,
}

pub async fn outages_of(conn: &mut AsyncPgConnection, listing_id: Uuid, limit: i64) -> QueryResult<Vec<OutageRow>> {
    use crate::db::schema::outages;
    outages::table
        .filter(outages::listing_id.eq(listing_id))
        .order((outages::created_at.desc(), outages::id.desc()))
        .select(OutageRow::as_select())
        .limit(limit)
        .load(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    use crate::market::orders::sample_order as order;

    fn outcome(amount: Decimal, posted: Decimal, remaining: Decimal, refunded: Decimal) -> PendingOutcome {
        PendingOutcome {
            amount,
            posted,
            remaining,
            credited: amount - posted - remaining,
            released: Decimal::ZERO,
            refunded,
        }
    }

    #[test]
    fn revenue_is_what_is_charged_less_the_fee_as_charged() {
        // 1,401 from the tenant, 5,603 of subsidy, a fee of 70; half posted,
        // a tenth of each refunded by an outage, the rest still reserved.
        let o = order(dec!(1401), dec!(5603), dec!(70));
        let postings = [
            outcome(dec!(1401), dec!(700), dec!(701), dec!(140)),
            outcome(dec!(5603), dec!(2801), dec!(2802), dec!(560)),
            outcome(dec!(5603), dec!(2801), dec!(2802), dec!(560)),
            outcome(dec!(70), dec!(35), dec!(35), dec!(7)),
        ];
        let r = add_order(Revenue::default(), &o, &postings).expect("adds");
        // (700 − 140 + 701) + (2801 − 560 + 2802) = 1261 + 5043.
        assert_eq!(r, Revenue { gross: dec!(6304), fees: dec!(63), net: dec!(6241) });
        let twice = add_order(r, &o, &postings).expect("adds");
        assert_eq!(twice, Revenue { gross: dec!(12608), fees: dec!(126), net: dec!(12482) });
    }

    #[test]
    fn an_order_without_a_fee_has_none_and_a_missing_fee_posting_is_damage() {
        let o = order(dec!(1000), Decimal::ZERO, Decimal::ZERO);
        assert_eq!(fee_charged(&o, &[outcome(dec!(1000), dec!(0), dec!(1000), dec!(0))]).ok(), Some(dec!(0)));
        let o = order(dec!(1000), Decimal::ZERO, dec!(50));
        assert!(matches!(
            fee_charged(&o, &[outcome(dec!(1000), dec!(0), dec!(1000), dec!(0))]),
            Err(LedgerError::Corrupt(_))
        ));
    }

    #[test]
    fn outage_postings_are_told_apart_by_their_accounts() {
        let org = Uuid::from_u128(7);
        let payable = chart::provider_payable_code(org);
        let wallet = chart::tenant_wallet_code(org);
        let receivable = chart::subsidy_receivable_code(org);
        assert_eq!(credit_part(&wallet, &payable), CreditPart::Tenant);
        assert_eq!(credit_part(&payable, &wallet), CreditPart::Tenant, "a refund runs the other way");
        assert_eq!(credit_part(&receivable, &payable), CreditPart::Programme);
        assert_eq!(credit_part(&payable, chart::PLATFORM_FEES), CreditPart::Fee);
        assert_eq!(credit_part(&chart::grant_available_code(org), &chart::grant_spent_code(org)), CreditPart::Other);
        assert_eq!(credit_part(&chart::provider_receivable_code(org), &payable), CreditPart::Other);
        let credits = OutageCredits {
            entries: vec![],
            to_tenants: dec!(1000),
            to_programmes: dec!(4000),
            fee_returned: dec!(250),
        };
        assert_eq!(credits.provider_loss().ok(), Some(dec!(4750)));
    }
}
