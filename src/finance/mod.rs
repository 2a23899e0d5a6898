//! Finance's operations and reports: deposits, payouts, the programme report,
//! statements, the funding-mix report and the journal export.

pub mod deposits;
pub mod export;
pub mod funding;
pub mod names;
pub mod payouts;
pub mod reports;
