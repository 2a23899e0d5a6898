//! The order-level invariant (`verify`'s invariant 5): every order's net charge
//! — per pending posting, what was posted less what outages refunded, plus what
//! is still reserved — equals the schedule's price of its charged hours less the
//! credits of those very hours. The ledger's own invariants cannot see an amount
//! charged for the wrong hour (the books still balance); this one does.

use std::collections::{BTreeMap, HashMap};

use diesel::sql_types::{Integer, Numeric, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::schedule::PostingSchedule;
use crate::ledger::LedgerError;
use crate::ledger::verify::Difference;
use crate::money::Currency;

/// One pending posting of an order and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostingOutcome {
    pub posting_id: Uuid,
    pub amount: Decimal,
    /// Posted by settlements and cancellation.
    pub posted: Decimal,
    /// Still reserved.
    pub remaining: Decimal,
    /// Paid back by outage credits after it was posted.
    pub refunded: Decimal,
}

/// An order as the invariant sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFacts {
    pub order_id: Uuid,
    pub currency: Currency,
    pub hours: i32,
    pub gpus: i32,
    pub charged_hours: i32,
    /// `tenant_amount + 2 × subsidy + platform_fee`: what its pending postings must add up to.
    pub reserved_total: Decimal,
    /// GPUs credited per hour index.
    pub credits: BTreeMap<i32, i32>,
    pub postings: Vec<PostingOutcome>,
}

/// What is wrong with one order, if anything.
pub fn order_differences(order: &OrderFacts) -> Vec<Difference> {
    let mut differences = Vec::new();
    let difference = |field: &str, expected: Decimal, actual: Decimal, detail: String| Difference {
        invariant: 5,
        currency: Some(order.currency.code().to_string()),
        account_id: None,
        code: None,
        field: Some(field.into()),
        expected: Some(expected.normalize().to_string()),
        actual: Some(actual.normalize().to_string()),
        detail,
    };
    let total: Decimal = order.postings.iter().map(|p| p.amount).sum();
    if total != order.reserved_total {
        differences.push(difference(
            "reserved",
            order.reserved_total,
            total,
            format!("order {}: its pending postings do not add up to its breakdown", order.order_id),
        ));
    }
    for p in &order.postings {
        let schedule = PostingSchedule {
            amount: p.amount,
            hours: order.hours,
            gpus: order.gpus,
            currency: order.currency,
            credits: &order.credits,
        };
        let expected = schedule.net(0, order.charged_hours);
        let actual = p.posted - p.refunded + p.remaining;
        if expected != actual {
            differences.push(difference(
                "charged",
                expected,
                actual,
                format!(
                    "order {}: posting {} charges {} for {} charged hours, which with their credits cost {}",
                    order.order_id,
                    p.posting_id,
                    crate::money::format_amount(actual, order.currency),
                    order.charged_hours,
                    crate::money::format_amount(expected, order.currency),
                ),
            ));
        }
    }
    differences
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    order_id: Uuid,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Integer)]
    hours: i32,
    #[diesel(sql_type = Integer)]
    gpus: i32,
    #[diesel(sql_type = Integer)]
    charged_hours: i32,
    #[diesel(sql_type = Numeric)]
    reserved_total: Decimal,
    #[diesel(sql_type = SqlUuid)]
    posting_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    debit_account_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    credit_account_id: Uuid,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Numeric)]
    posted: Decimal,
    #[diesel(sql_type = Numeric)]
    remaining: Decimal,
}

#[derive(QueryableByName)]
struct Refund {
    #[diesel(sql_type = SqlUuid)]
    order_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    debit_account_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    credit_account_id: Uuid,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

#[derive(QueryableByName)]
struct Credit {
    #[diesel(sql_type = SqlUuid)]
    order_id: Uuid,
    #[diesel(sql_type = Integer)]
    hour: i32,
    #[diesel(sql_type = Integer)]
    gpus: i32,
}

/// Orders read per round trip, so memory stays bounded on a large ledger.
const BATCH: i64 = 2000;

/// Checks invariant 5 over every order.
pub async fn orders_agree(conn: &mut AsyncPgConnection) -> Result<Vec<Difference>, LedgerError> {
    // Outage credits are rare: all of them fit in memory.
    let refunds: HashMap<(Uuid, Uuid, Uuid), Decimal> = sql_query(
        "SELECT (e.metadata->>'order_id')::uuid AS order_id, p.debit_account_id, p.credit_account_id, \
                sum(p.amount) AS amount \
         FROM journal_entries e JOIN postings p ON p.entry_id = e.id \
         WHERE e.kind = 'outage_credit' AND p.kind = 'posted' GROUP BY 1, 2, 3",
    )
    .load::<Refund>(conn)
    .await?
    .into_iter()
    .map(|r| ((r.order_id, r.debit_account_id, r.credit_account_id), r.amount))
    .collect();
    let mut credits: HashMap<Uuid, BTreeMap<i32, i32>> = HashMap::new();
    for c in sql_query(
        "SELECT c.order_id, (extract(epoch FROM c.hour - o.start_at) / 3600)::int AS hour, c.gpus \
         FROM order_hour_credits c JOIN orders o ON o.id = c.order_id",
    )
    .load::<Credit>(conn)
    .await?
    {
        credits.entry(c.order_id).or_default().insert(c.hour, c.gpus);
    }

    let mut differences = Vec::new();
    let mut after = Uuid::nil();
    loop {
        let rows: Vec<Row> = sql_query(
            "WITH batch AS (SELECT * FROM orders WHERE id > $1 ORDER BY id LIMIT $2) \
             SELECT o.id AS order_id, o.currency, o.hours, o.gpus, o.charged_hours, \
                    o.tenant_amount + 2 * o.subsidy + o.platform_fee AS reserved_total, \
                    p.id AS posting_id, p.debit_account_id, p.credit_account_id, p.amount, \
                    coalesce((SELECT sum(c.amount) FROM postings c \
                              WHERE c.pending_posting_id = p.id AND c.kind = 'post_pending'), 0) AS posted, \
                    coalesce(r.remaining, 0) AS remaining \
             FROM batch o JOIN postings p ON p.entry_id = o.journal_entry_id AND p.kind = 'pending' \
             LEFT JOIN pending_remainders r ON r.posting_id = p.id \
             ORDER BY o.id, p.seq",
        )
        .bind::<SqlUuid, _>(after)
        .bind::<diesel::sql_types::BigInt, _>(BATCH)
        .load(conn)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.order_id;
        let mut current: Option<OrderFacts> = None;
        for row in rows {
            if current.as_ref().is_some_and(|o| o.order_id != row.order_id) {
                differences.extend(current.take().map(|o| order_differences(&o)).unwrap_or_default());
            }
            let order = match current.as_mut() {
                Some(order) => order,
                None => {
                    let currency = row
                        .currency
                        .parse()
                        .map_err(|_| LedgerError::Corrupt(format!("order {} has an invalid currency", row.order_id)))?;
                    current.insert(OrderFacts {
                        order_id: row.order_id,
                        currency,
                        hours: row.hours,
                        gpus: row.gpus,
                        charged_hours: row.charged_hours,
                        reserved_total: row.reserved_total,
                        credits: credits.remove(&row.order_id).unwrap_or_default(),
                        postings: Vec::new(),
                    })
                }
            };
            // A refund reverses its posting: its accounts are the other way round.
            let refunded =
                refunds.get(&(row.order_id, row.credit_account_id, row.debit_account_id)).copied().unwrap_or_default();
            order.postings.push(PostingOutcome {
                posting_id: row.posting_id,
                amount: row.amount,
                posted: row.posted,
                remaining: row.remaining,
                refunded,
            });
        }
        differences.extend(current.map(|o| order_differences(&o)).unwrap_or_default());
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn order(posted: Decimal, remaining: Decimal, refunded: Decimal) -> OrderFacts {
        // 1 GPU × 10 hours at 1,000, half subsidised; hour 0 lost to an outage;
        // cancelled half an hour in (1 hour charged). Only the tenant's posting.
        OrderFacts {
            order_id: Uuid::nil(),
            currency: Currency::Krw,
            hours: 10,
            gpus: 1,
            charged_hours: 1,
            reserved_total: dec!(5000),
            credits: BTreeMap::from([(0, 1)]),
            postings: vec![PostingOutcome { posting_id: Uuid::nil(), amount: dec!(5000), posted, remaining, refunded }],
        }
    }

    #[test]
    fn an_order_charged_for_a_credited_hour_is_reported() {
        // What the reliability review found: the credited hour charged anyway.
        let wrong = order_differences(&order(dec!(500), dec!(0), dec!(0)));
        assert_eq!(wrong.len(), 1);
        assert_eq!(
            (wrong[0].invariant, wrong[0].expected.as_deref(), wrong[0].actual.as_deref()),
            (5, Some("0"), Some("500"))
        );
        // Right: nothing posted; or posted and refunded.
        assert_eq!(order_differences(&order(dec!(0), dec!(0), dec!(0))), vec![]);
        assert_eq!(order_differences(&order(dec!(500), dec!(0), dec!(500))), vec![]);
    }

    #[test]
    fn postings_must_add_up_to_the_breakdown() {
        let mut o = order(dec!(0), dec!(0), dec!(0));
        o.reserved_total = dec!(5001);
        assert_eq!(order_differences(&o)[0].field.as_deref(), Some("reserved"));
    }
}
