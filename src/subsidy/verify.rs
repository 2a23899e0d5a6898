//! Claims agree with the postings they hold (`verify`'s invariant 6): every
//! settled subsidy posting is in at most one live (not voided) claim, and each
//! claim's amount is the sum of its items.

use diesel::sql_types::{Numeric, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::ledger::LedgerError;
use crate::ledger::verify::Difference;

#[derive(QueryableByName)]
struct Finding {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    field: String,
    #[diesel(sql_type = Numeric)]
    expected: Decimal,
    #[diesel(sql_type = Numeric)]
    actual: Decimal,
}

pub async fn claims_agree(conn: &mut AsyncPgConnection) -> Result<Vec<Difference>, LedgerError> {
    let findings: Vec<Finding> = sql_query(
        "SELECT ci.posting_id AS id, 'live_claims' AS field, 1::numeric AS expected, count(*)::numeric AS actual \
         FROM claim_items ci JOIN claims c ON c.id = ci.claim_id WHERE c.status <> 'void' \
         GROUP BY ci.posting_id HAVING count(*) > 1 \
         UNION ALL \
         SELECT c.id, 'claim_amount', coalesce(sum(ci.amount), 0), c.amount \
         FROM claims c LEFT JOIN claim_items ci ON ci.claim_id = c.id \
         GROUP BY c.id, c.amount HAVING c.amount <> coalesce(sum(ci.amount), 0)",
    )
    .load(conn)
    .await?;
    Ok(findings
        .into_iter()
        .map(|f| Difference {
            invariant: 6,
            currency: None,
            account_id: None,
            code: None,
            detail: if f.field == "live_claims" {
                format!("posting {} is claimed by {} live claims", f.id, f.actual)
            } else {
                format!("claim {}: its amount differs from the sum of its items", f.id)
            },
            field: Some(f.field),
            expected: Some(f.expected.normalize().to_string()),
            actual: Some(f.actual.normalize().to_string()),
        })
        .collect())
}

#[derive(QueryableByName)]
struct AllocationFinding {
    #[diesel(sql_type = SqlUuid)]
    grant_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    expected: i64,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    actual: i64,
}

/// Allocations agree with their draws (invariant 8): each grant's
/// `used_gpu_hours` is what its orders drew less what came back.
pub async fn allocations_agree(conn: &mut AsyncPgConnection) -> Result<Vec<Difference>, LedgerError> {
    let findings: Vec<AllocationFinding> = sql_query(
        "SELECT a.grant_id, coalesce(sum(d.gpu_hours - d.returned_gpu_hours), 0)::int8 AS expected, \
                a.used_gpu_hours AS actual \
         FROM grant_allocations a LEFT JOIN allocation_draws d ON d.grant_id = a.grant_id \
         GROUP BY a.grant_id, a.used_gpu_hours \
         HAVING a.used_gpu_hours <> coalesce(sum(d.gpu_hours - d.returned_gpu_hours), 0)",
    )
    .load(conn)
    .await?;
    Ok(findings
        .into_iter()
        .map(|f| Difference {
            invariant: 8,
            currency: None,
            account_id: None,
            code: None,
            detail: format!("grant {}: GPU-hours used differ from its orders' draws", f.grant_id),
            field: Some("used_gpu_hours".into()),
            expected: Some(f.expected.to_string()),
            actual: Some(f.actual.to_string()),
        })
        .collect())
}
