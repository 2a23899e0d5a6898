//! Finance's operations and reports: deposits, payouts, the programme report,
//! statements and the journal export.

pub mod deposits;
pub mod export;
pub mod payout_policy;
pub mod payouts;
pub mod reports;
