//! What an order has actually cost, read from the ledger rather than from the
//! order row. The row keeps the nominal breakdown of the moment it was placed;
//! outages, cancellations and a grant that ran short change what is really
//! charged, and only the postings know it.
//!
//! An order's `order` entry holds its pending postings, in this order: the
//! tenant's (wallet → payable, `tenant_amount`), the subsidy's (receivable →
//! payable, `subsidy`), the grant's memo mirror (available → spent, `subsidy`)
//! and the fee (payable → fees, `platform_fee`); a zero amount is left out.
//! Later entries resolve them: settlements and cancellations post
//! (`post_pending`), outage credits and cancellations void (`void_pending`),
//! and an outage over hours already posted refunds them with a posted posting
//! the other way round, in an `outage_credit` entry naming the order.

use std::collections::HashMap;

use diesel::QueryableByName;
use diesel::sql_types::{Array, Numeric, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::orders::OrderRow;
use crate::ledger::LedgerError;
use crate::money::{Currency, format_amount};

/// Fraction digits of `effective_subsidy_rate` (rounded half-up).
pub const RATE_PLACES: u32 = 4;

/// One pending posting of an order and what later entries did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOutcome {
    pub amount: Decimal,
    /// Posted by settlements and cancellation.
    pub posted: Decimal,
    /// Still reserved.
    pub remaining: Decimal,
    /// Voided by outage credits (hours lost before they were posted).
    pub credited: Decimal,
    /// Voided otherwise: what a cancellation released.
    pub released: Decimal,
    /// Paid back by outage credits after it was posted.
    pub refunded: Decimal,
}

/// One payer's side of an order, as charged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Side {
    pub reserved: Decimal,
    pub posted: Decimal,
    pub pending: Decimal,
    pub credited: Decimal,
    pub refunded: Decimal,
    pub released: Decimal,
}

impl Side {
    fn of(p: &PendingOutcome) -> Side {
        Side {
            reserved: p.amount,
            posted: p.posted,
            pending: p.remaining,
            credited: p.credited,
            refunded: p.refunded,
            released: p.released,
        }
    }

    /// What this payer pays for the order: posted, less refunds, plus what is
    /// still reserved (final once nothing is pending). Equals `reserved −
    /// credited − released − refunded`.
    pub fn total(&self) -> Result<Decimal, LedgerError> {
        self.posted.checked_sub(self.refunded).and_then(|n| n.checked_add(self.pending)).ok_or(LedgerError::Overflow)
    }
}

/// The order as charged: the tenant's own money and the programme's subsidy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charged {
    pub currency: Currency,
    pub tenant: Side,
    pub subsidy: Side,
}

impl Charged {
    /// What the order costs in all, as charged (the fee is the provider's, not in it).
    pub fn subtotal(&self) -> Result<Decimal, LedgerError> {
        self.tenant.total()?.checked_add(self.subsidy.total()?).ok_or(LedgerError::Overflow)
    }

    /// Subsidy ÷ subtotal as charged, rounded half-up to `RATE_PLACES`; `None`
    /// when nothing is charged at all (a rate of nothing means nothing).
    pub fn effective_subsidy_rate(&self) -> Result<Option<Decimal>, LedgerError> {
        let subtotal = self.subtotal()?;
        if subtotal <= Decimal::ZERO {
            return Ok(None);
        }
        let rate = self.subsidy.total()?.checked_div(subtotal).ok_or(LedgerError::Overflow)?;
        Ok(Some(rate.round_dp_with_strategy(RATE_PLACES, RoundingStrategy::MidpointAwayFromZero)))
    }
}

/// The charged figures of `order` from its pending postings (in posting order),
/// which must be the ones its breakdown made: the tenant's, then the subsidy's
/// and the grant's, then the fee's, the zero ones left out.
pub fn charged(order: &OrderRow, postings: &[PendingOutcome]) -> Result<Charged, LedgerError> {
    let currency = order.currency;
    let mut expected = Vec::with_capacity(4);
    if order.tenant_amount > Decimal::ZERO {
        expected.push(("tenant", order.tenant_amount));
    }
    if order.subsidy > Decimal::ZERO {
        expected.push(("subsidy", order.subsidy));
        expected.push(("grant", order.subsidy));
    }
    if order.platform_fee > Decimal::ZERO {
        expected.push(("fee", order.platform_fee));
    }
    let matches =
        expected.len() == postings.len() && expected.iter().zip(postings).all(|((_, amount), p)| *amount == p.amount);
    if !matches {
        return Err(LedgerError::Corrupt(format!(
            "order {}: its pending postings do not match its breakdown",
            order.id
        )));
    }
    let mut result = Charged { currency, tenant: Side::default(), subsidy: Side::default() };
    for ((role, _), p) in expected.iter().zip(postings) {
        match *role {
            "tenant" => result.tenant = Side::of(p),
            "subsidy" => result.subsidy = Side::of(p),
            // The grant's memo posting mirrors the subsidy; the fee is the provider's.
            _ => {}
        }
    }
    Ok(result)
}

/// A new order's charged figures: all it reserved is still pending. (The
/// order group commit answers from this, without reading back what it wrote.)
pub fn when_placed(order: &OrderRow) -> Result<Charged, LedgerError> {
    let pending = |amount: Decimal| PendingOutcome {
        amount,
        posted: Decimal::ZERO,
        remaining: amount,
        credited: Decimal::ZERO,
        released: Decimal::ZERO,
        refunded: Decimal::ZERO,
    };
    let amounts = [order.tenant_amount, order.subsidy, order.subsidy, order.platform_fee];
    let postings: Vec<PendingOutcome> = amounts.into_iter().filter(|a| *a > Decimal::ZERO).map(pending).collect();
    charged(order, &postings)
}

#[derive(QueryableByName)]
struct OutcomeRow {
    #[diesel(sql_type = SqlUuid)]
    order_id: Uuid,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Numeric)]
    posted: Decimal,
    #[diesel(sql_type = Numeric)]
    remaining: Decimal,
    #[diesel(sql_type = Numeric)]
    credited: Decimal,
    #[diesel(sql_type = Numeric)]
    released: Decimal,
    #[diesel(sql_type = Numeric)]
    refunded: Decimal,
}

/// The pending postings of every order in `orders`, with their outcomes, in
/// one query (a page of a list costs the same round trip as one order).
pub async fn outcomes_of(
    conn: &mut AsyncPgConnection,
    orders: &[Uuid],
) -> Result<HashMap<Uuid, Vec<PendingOutcome>>, LedgerError> {
    if orders.is_empty() {
        return Ok(HashMap::new());
    }
    // Refunds are found through the order named in their entry's metadata
    // (indexed: journal_entries_order) and the posting's accounts, swapped.
    let rows: Vec<OutcomeRow> = diesel::sql_query(
        "SELECT o.id AS order_id, p.amount, coalesce(r.remaining, 0) AS remaining, \
                c.posted, c.credited, c.released, f.refunded \
         FROM orders o \
         JOIN postings p ON p.entry_id = o.journal_entry_id AND p.kind = 'pending' \
         LEFT JOIN pending_remainders r ON r.posting_id = p.id \
         CROSS JOIN LATERAL ( \
           SELECT coalesce(sum(c.amount) FILTER (WHERE c.kind = 'post_pending'), 0) AS posted, \
                  coalesce(sum(c.amount) FILTER (WHERE c.kind = 'void_pending' AND ce.kind = 'outage_credit'), 0) \
                    AS credited, \
                  coalesce(sum(c.amount) FILTER (WHERE c.kind = 'void_pending' AND ce.kind <> 'outage_credit'), 0) \
                    AS released \
           FROM postings c JOIN journal_entries ce ON ce.id = c.entry_id \
           WHERE c.pending_posting_id = p.id) c \
         CROSS JOIN LATERAL ( \
           SELECT coalesce(sum(f.amount), 0) AS refunded \
           FROM journal_entries fe JOIN postings f ON f.entry_id = fe.id \
           WHERE fe.metadata ? 'order_id' AND (fe.metadata ->> 'order_id')::uuid = o.id \
             AND fe.kind = 'outage_credit' AND f.kind = 'posted' \
             AND f.debit_account_id = p.credit_account_id AND f.credit_account_id = p.debit_account_id) f \
         WHERE o.id = ANY($1) \
         ORDER BY o.id, p.seq",
    )
    .bind::<Array<SqlUuid>, _>(orders)
    .load(conn)
    .await?;
    let mut by_order: HashMap<Uuid, Vec<PendingOutcome>> = HashMap::new();
    for r in rows {
        by_order.entry(r.order_id).or_default().push(PendingOutcome {
            amount: r.amount,
            posted: r.posted,
            remaining: r.remaining,
            credited: r.credited,
            released: r.released,
            refunded: r.refunded,
        });
    }
    Ok(by_order)
}

/// The charged figures of each of `orders`, in one query.
pub async fn charged_of(
    conn: &mut AsyncPgConnection,
    orders: &[OrderRow],
) -> Result<HashMap<Uuid, Charged>, LedgerError> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let outcomes = outcomes_of(conn, &ids).await?;
    orders
        .iter()
        .map(|o| {
            let postings = outcomes.get(&o.id).map(Vec::as_slice).unwrap_or_default();
            Ok((o.id, charged(o, postings)?))
        })
        .collect()
}

/// One payer's side of an order as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChargedSideView {
    /// What the order reserved from this payer when it was placed.
    pub reserved: String,
    /// Posted by settlements and cancellation.
    pub posted: String,
    /// Still reserved, for hours not yet settled.
    pub pending: String,
    /// Outage credits voided from the reservation (hours lost before settlement).
    pub credited: String,
    /// Outage credits paid back after posting (hours lost after settlement).
    pub refunded: String,
    /// Released by a cancellation (hours that never began).
    pub released: String,
    /// What this payer pays: posted − refunded + pending
    /// (= reserved − credited − released − refunded).
    pub total: String,
}

/// An order as charged, from the ledger.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChargedView {
    pub currency: String,
    /// The tenant's own money.
    pub tenant: ChargedSideView,
    /// The programme's subsidy.
    pub subsidy: ChargedSideView,
    /// `tenant.total + subsidy.total`: the order's price as charged.
    pub subtotal: String,
    /// `subsidy.total ÷ subtotal`, a decimal string with 4 fraction digits
    /// (rounded half-up); `null` when nothing is charged. Below the order's
    /// `subsidy_rate` when a grant ran short.
    pub effective_subsidy_rate: Option<String>,
}

fn side_view(side: &Side, currency: Currency) -> Result<ChargedSideView, LedgerError> {
    let amount = |v: Decimal| format_amount(v, currency);
    Ok(ChargedSideView {
        reserved: amount(side.reserved),
        posted: amount(side.posted),
        pending: amount(side.pending),
        credited: amount(side.credited),
        refunded: amount(side.refunded),
        released: amount(side.released),
        total: amount(side.total()?),
    })
}

pub fn view(charged: &Charged) -> Result<ChargedView, LedgerError> {
    let c = charged.currency;
    Ok(ChargedView {
        currency: c.code().to_string(),
        tenant: side_view(&charged.tenant, c)?,
        subsidy: side_view(&charged.subsidy, c)?,
        subtotal: format_amount(charged.subtotal()?, c),
        effective_subsidy_rate: charged.effective_subsidy_rate()?.map(|r| crate::money::format_scaled(r, RATE_PLACES)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    use crate::market::orders::sample_order as order;

    fn untouched(amount: Decimal) -> PendingOutcome {
        PendingOutcome {
            amount,
            posted: Decimal::ZERO,
            remaining: amount,
            credited: Decimal::ZERO,
            released: Decimal::ZERO,
            refunded: Decimal::ZERO,
        }
    }

    #[test]
    fn the_sides_follow_the_breakdown_order_and_skip_zero_amounts() {
        // Subsidised with a fee: tenant, subsidy, grant, fee.
        let o = order(dec!(1401), dec!(5603), dec!(70));
        let postings = [untouched(dec!(1401)), untouched(dec!(5603)), untouched(dec!(5603)), untouched(dec!(70))];
        let c = charged(&o, &postings).expect("matches");
        assert_eq!((c.tenant.reserved, c.subsidy.reserved), (dec!(1401), dec!(5603)));
        // Fully subsidised, no fee: the subsidy's posting comes first.
        let o = order(Decimal::ZERO, dec!(500), Decimal::ZERO);
        let c = charged(&o, &[untouched(dec!(500)), untouched(dec!(500))]).expect("matches");
        assert_eq!((c.tenant, c.subsidy.pending), (Side::default(), dec!(500)));
        // Postings that do not match the breakdown are damaged data, not a guess.
        assert!(matches!(charged(&o, &[untouched(dec!(500))]), Err(LedgerError::Corrupt(_))));
        assert!(matches!(charged(&o, &[untouched(dec!(500)), untouched(dec!(499))]), Err(LedgerError::Corrupt(_))));
    }

    #[test]
    fn totals_take_off_credits_refunds_and_releases() {
        // 4,805 reserved; 6 hours posted (2,400), 4 of them refunded (1,600),
        // one unsettled hour voided by the outage (400).
        let tenant = PendingOutcome {
            amount: dec!(4805),
            posted: dec!(2400),
            remaining: dec!(2005),
            credited: dec!(400),
            released: Decimal::ZERO,
            refunded: dec!(1600),
        };
        let subsidy = PendingOutcome {
            amount: dec!(19219),
            posted: dec!(9606),
            remaining: dec!(8012),
            credited: dec!(1601),
            released: Decimal::ZERO,
            refunded: dec!(6404),
        };
        let o = order(dec!(4805), dec!(19219), Decimal::ZERO);
        let c = charged(&o, &[tenant, subsidy.clone(), subsidy]).expect("matches");
        assert_eq!((c.tenant.total().ok(), c.subsidy.total().ok()), (Some(dec!(2805)), Some(dec!(11214))));
        assert_eq!(c.subtotal().ok(), Some(dec!(14019)));
        // 11,214 ÷ 14,019 = 0.79991…: the rounding of each hour shows.
        assert_eq!(c.effective_subsidy_rate().ok().flatten(), Some(dec!(0.7999)));
        let v = view(&c).expect("view");
        assert_eq!((v.subtotal.as_str(), v.effective_subsidy_rate.as_deref()), ("14019", Some("0.7999")));
        assert_eq!(v.tenant.credited, "400");
    }

    #[test]
    fn a_capped_grant_shows_its_real_rate_and_nothing_charged_has_none() {
        let o = order(dec!(5000), dec!(5000), Decimal::ZERO);
        let c = charged(&o, &[untouched(dec!(5000)), untouched(dec!(5000)), untouched(dec!(5000))]).expect("ok");
        assert_eq!(view(&c).expect("view").effective_subsidy_rate.as_deref(), Some("0.5000"));
        let unsubsidised = order(dec!(10000), Decimal::ZERO, Decimal::ZERO);
        let c = charged(&unsubsidised, &[untouched(dec!(10000))]).expect("ok");
        assert_eq!(view(&c).expect("view").effective_subsidy_rate.as_deref(), Some("0.0000"));
        let released = PendingOutcome { remaining: Decimal::ZERO, released: dec!(10000), ..untouched(dec!(10000)) };
        let c = charged(&unsubsidised, &[released]).expect("ok");
        let v = view(&c).expect("view");
        assert_eq!((v.subtotal.as_str(), v.effective_subsidy_rate), ("0", None));
    }
}
