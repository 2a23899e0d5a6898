//! `gpuhour verify` and `GET /v1/ledger/verify`: every invariant the service
//! promises, recomputed from what is stored — the ledger's own (invariants 1–4
//! and the pending remainders, `ledger::verify`) and the marketplace's
//! (invariant 5: each order charged for its hours and no more, `market::verify`)
//! and the claims' (invariant 6: each settled subsidy in one live claim at
//! most, each claim the sum of its items, `subsidy::verify`) and the closed
//! periods' (invariant 7: the hash chain over their postings, `ledger::periods`)
//! and the grants' allocations (invariant 8: GPU-hours used are what orders
//! drew less what came back, `subsidy::verify`).

use diesel_async::AsyncPgConnection;

use crate::ledger::LedgerError;
use crate::ledger::verify::{self as ledger_verify, VerifyReport};

/// Runs every check; it only reads.
pub async fn verify(conn: &mut AsyncPgConnection) -> Result<VerifyReport, LedgerError> {
    let mut differences = ledger_verify::verify(conn).await?.differences;
    differences.extend(crate::market::verify::orders_agree(conn).await?);
    differences.extend(crate::subsidy::verify::claims_agree(conn).await?);
    differences.extend(crate::ledger::periods::chain_agrees(conn).await?);
    differences.extend(crate::subsidy::verify::allocations_agree(conn).await?);
    Ok(VerifyReport::from(differences))
}
