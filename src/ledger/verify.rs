//! `gpuhour verify`: recompute the ledger's invariants (SPEC section 3) from the
//! postings and report every difference.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{Numeric, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::LedgerError;
use super::model::Balances;
use super::queries::figures_from_postings;
use super::store::AccountRow;
use crate::db::schema::accounts;

/// One way the ledger disagrees with itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Difference {
    /// Which invariant of SPEC section 3 (1: balanced, 2: figures equal postings,
    /// 3: floors, 4: budget agrees with money).
    pub invariant: u8,
    pub currency: Option<String>,
    pub account_id: Option<Uuid>,
    pub code: Option<String>,
    pub field: Option<String>,
    #[schema(value_type = Option<String>)]
    pub expected: Option<String>,
    #[schema(value_type = Option<String>)]
    pub actual: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    pub differences: Vec<Difference>,
}

impl VerifyReport {
    pub fn from(differences: Vec<Difference>) -> Self {
        VerifyReport { ok: differences.is_empty(), differences }
    }
}

/// Pure part of invariants 1–3, over stored accounts and recomputed figures.
pub fn compare(stored: &[AccountRow], recomputed: &HashMap<Uuid, Balances>) -> Vec<Difference> {
    let mut differences = Vec::new();
    // Invariant 1: per currency, debits equal credits, posted and pending.
    let mut totals: BTreeMap<&str, Balances> = BTreeMap::new();
    for row in stored {
        let t = totals.entry(row.currency.code()).or_default();
        t.debits_posted += row.debits_posted;
        t.credits_posted += row.credits_posted;
        t.debits_pending += row.debits_pending;
        t.credits_pending += row.credits_pending;
    }
    for (currency, t) in &totals {
        for (field, debits, credits) in
            [("posted", t.debits_posted, t.credits_posted), ("pending", t.debits_pending, t.credits_pending)]
        {
            if debits != credits {
                differences.push(Difference {
                    invariant: 1,
                    currency: Some(currency.to_string()),
                    account_id: None,
                    code: None,
                    field: Some(field.into()),
                    expected: Some(debits.normalize().to_string()),
                    actual: Some(credits.normalize().to_string()),
                    detail: format!("{currency}: {field} debits {debits} differ from {field} credits {credits}"),
                });
            }
        }
    }
    for row in stored {
        // Invariant 2: stored figures equal the postings' sum.
        let expected = recomputed.get(&row.id).copied().unwrap_or_default();
        let actual = row.balances();
        for (field, e, a) in [
            ("debits_posted", expected.debits_posted, actual.debits_posted),
            ("credits_posted", expected.credits_posted, actual.credits_posted),
            ("debits_pending", expected.debits_pending, actual.debits_pending),
            ("credits_pending", expected.credits_pending, actual.credits_pending),
        ] {
            if e != a {
                differences.push(Difference {
                    invariant: 2,
                    currency: Some(row.currency.to_string()),
                    account_id: Some(row.id),
                    code: Some(row.code.clone()),
                    field: Some(field.into()),
                    expected: Some(e.normalize().to_string()),
                    actual: Some(a.normalize().to_string()),
                    detail: format!("{} {}: stored {field} differs from its postings", row.code, row.currency),
                });
            }
        }
        // Invariant 3: no floor broken (judged on the postings' figures, which
        // are the truth; stored ones are compared above).
        if !expected.respects(row.floor, row.normal_side) {
            differences.push(Difference {
                invariant: 3,
                currency: Some(row.currency.to_string()),
                account_id: Some(row.id),
                code: Some(row.code.clone()),
                field: Some("available".into()),
                expected: Some("0".into()),
                actual: Some(expected.available(row.normal_side).normalize().to_string()),
                detail: format!("{} {} is below its floor", row.code, row.currency),
            });
        }
    }
    for id in recomputed.keys() {
        if !stored.iter().any(|r| r.id == *id) {
            differences.push(Difference {
                invariant: 2,
                currency: None,
                account_id: Some(*id),
                code: None,
                field: None,
                expected: None,
                actual: None,
                detail: format!("postings reference account {id}, which does not exist"),
            });
        }
    }
    differences
}

#[derive(QueryableByName)]
struct RemainderRow {
    #[diesel(sql_type = SqlUuid)]
    posting_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<Numeric>)]
    stored: Option<Decimal>,
    #[diesel(sql_type = Numeric)]
    expected: Decimal,
}

/// Recomputes invariants 1–3 and the pending remainders, and reports differences.
pub async fn verify(conn: &mut AsyncPgConnection) -> Result<VerifyReport, LedgerError> {
    let stored: Vec<AccountRow> =
        accounts::table.select(AccountRow::as_select()).order(accounts::id).load(conn).await?;
    let recomputed: HashMap<Uuid, Balances> = figures_from_postings(conn, None).await?.into_iter().collect();
    let mut differences = compare(&stored, &recomputed);

    // Every pending posting's remainder is its amount less what later postings
    // posted or voided of it (part of invariant 2: the pending figures rest on it).
    let remainders: Vec<RemainderRow> = diesel::sql_query(
        "SELECT p.id AS posting_id, r.remaining AS stored, \
                p.amount - coalesce((SELECT sum(c.amount) FROM postings c WHERE c.pending_posting_id = p.id), 0) AS expected \
         FROM postings p LEFT JOIN pending_remainders r ON r.posting_id = p.id \
         WHERE p.kind = 'pending' \
           AND r.remaining IS DISTINCT FROM \
               p.amount - coalesce((SELECT sum(c.amount) FROM postings c WHERE c.pending_posting_id = p.id), 0)",
    )
    .load(conn)
    .await?;
    for r in remainders {
        differences.push(Difference {
            invariant: 2,
            currency: None,
            account_id: None,
            code: None,
            field: Some("pending_remaining".into()),
            expected: Some(r.expected.normalize().to_string()),
            actual: r.stored.map(|s| s.normalize().to_string()),
            detail: format!("pending posting {}: stored remainder differs from its postings", r.posting_id),
        });
    }
    differences.extend(budget_agrees(conn).await?);
    Ok(VerifyReport::from(differences))
}

#[derive(QueryableByName)]
struct ProgrammeFigures {
    #[diesel(sql_type = SqlUuid)]
    programme_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    currency: String,
    #[diesel(sql_type = Numeric)]
    spent_posted: Decimal,
    #[diesel(sql_type = Numeric)]
    spent_pending: Decimal,
    #[diesel(sql_type = Numeric)]
    receivable_posted: Decimal,
    #[diesel(sql_type = Numeric)]
    receivable_pending: Decimal,
    #[diesel(sql_type = Numeric)]
    paid: Decimal,
}

/// Invariant 4: for each programme, the subsidy its grants funded (net posted
/// balance of their `spent` accounts) equals what the programme owes (the
/// subsidy receivable) plus what it has paid on claims (in cash or from its
/// advance) and what the operator wrote off as disallowed; pending likewise.
async fn budget_agrees(conn: &mut AsyncPgConnection) -> Result<Vec<Difference>, LedgerError> {
    let rows: Vec<ProgrammeFigures> = diesel::sql_query(
        "WITH spent AS ( \
           SELECT g.programme_id, sum(a.credits_posted - a.debits_posted) AS posted, \
                  sum(a.credits_pending - a.debits_pending) AS pending \
           FROM grants g JOIN programmes pr ON pr.id = g.programme_id \
           JOIN accounts a ON a.code = 'budget:grant:' || g.id::text || ':spent' AND a.currency = pr.currency \
           GROUP BY g.programme_id), \
         paid AS ( \
           SELECT a.id AS account_id, \
                  sum(CASE WHEN p.credit_account_id = a.id THEN p.amount ELSE -p.amount END) AS paid \
           FROM accounts a JOIN postings p ON p.credit_account_id = a.id OR p.debit_account_id = a.id \
           JOIN journal_entries e ON e.id = p.entry_id \
           WHERE a.code LIKE 'assets:subsidy-receivable:%' \
             AND e.kind IN ('claim_payment', 'subsidy_write_off', 'advance_application', 'programme_settlement') \
           GROUP BY a.id) \
         SELECT pr.id AS programme_id, pr.currency, \
                coalesce(s.posted, 0) AS spent_posted, coalesce(s.pending, 0) AS spent_pending, \
                r.debits_posted - r.credits_posted AS receivable_posted, \
                r.debits_pending - r.credits_pending AS receivable_pending, \
                coalesce(pd.paid, 0) AS paid \
         FROM programmes pr \
         JOIN accounts r ON r.code = 'assets:subsidy-receivable:' || pr.id::text AND r.currency = pr.currency \
         LEFT JOIN spent s ON s.programme_id = pr.id \
         LEFT JOIN paid pd ON pd.account_id = r.id",
    )
    .load(conn)
    .await?;
    let mut differences = Vec::new();
    for r in rows {
        let owed_and_paid = r.receivable_posted + r.paid;
        for (field, expected, actual) in
            [("posted", r.spent_posted, owed_and_paid), ("pending", r.spent_pending, r.receivable_pending)]
        {
            if expected != actual {
                differences.push(Difference {
                    invariant: 4,
                    currency: Some(r.currency.clone()),
                    account_id: None,
                    code: Some(format!("assets:subsidy-receivable:{}", r.programme_id)),
                    field: Some(field.into()),
                    expected: Some(expected.normalize().to_string()),
                    actual: Some(actual.normalize().to_string()),
                    detail: format!(
                        "programme {}: {field} subsidy funded by its grants differs from its receivable (plus payments)",
                        r.programme_id
                    ),
                });
            }
        }
    }
    Ok(differences)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::{AccountType, Floor, NormalSide};
    use crate::money::Currency;
    use chrono::Utc;
    use rust_decimal_macros::dec;

    fn row(id: u128, currency: Currency, floor: Option<Floor>, b: Balances) -> AccountRow {
        AccountRow {
            id: Uuid::from_u128(id),
            code: format!("test:{id}"),
            currency,
            account_type: AccountType::Liability,
            normal_side: NormalSide::Credit,
            floor,
            org_id: None,
            debits_posted: b.debits_posted,
            credits_posted: b.credits_posted,
            debits_pending: b.debits_pending,
            credits_pending: b.credits_pending,
            created_at: Utc::now(),
        }
    }

    fn b(dp: Decimal, cp: Decimal) -> Balances {
        Balances { debits_posted: dp, credits_posted: cp, ..Default::default() }
    }

    #[test]
    fn a_clean_ledger_has_no_differences() {
        let stored = vec![
            row(1, Currency::Krw, None, b(dec!(100), dec!(0))),
            row(2, Currency::Krw, Some(Floor::NoOverdraft), b(dec!(0), dec!(100))),
        ];
        let recomputed = stored.iter().map(|r| (r.id, r.balances())).collect();
        assert_eq!(compare(&stored, &recomputed), vec![]);
    }

    #[test]
    fn reports_each_broken_invariant() {
        let stored = vec![
            row(1, Currency::Krw, None, b(dec!(100), dec!(0))),
            row(2, Currency::Krw, Some(Floor::NoOverdraft), b(dec!(50), dec!(40))),
        ];
        let mut recomputed: HashMap<Uuid, Balances> = stored.iter().map(|r| (r.id, r.balances())).collect();
        recomputed.insert(Uuid::from_u128(1), b(dec!(90), dec!(0)));
        let found: Vec<(u8, Option<String>)> =
            compare(&stored, &recomputed).into_iter().map(|d| (d.invariant, d.field)).collect();
        assert_eq!(
            found,
            vec![(1, Some("posted".into())), (2, Some("debits_posted".into())), (3, Some("available".into())),]
        );
    }
}
