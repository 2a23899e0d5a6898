//! Finance's operations and reports: deposits, payouts, the programme report,
//! statements, the funding-mix report and the journal export.

pub mod bank;
pub mod bank_match;
pub mod bank_routes;
pub mod burn_down;
pub mod deposits;
pub mod error;
pub mod export;
pub mod funding;
pub mod list_routes;
pub mod names;
pub mod payout_policy;
pub mod payouts;
pub mod report_queries;
pub mod reports;
pub mod spreadsheet;

pub use error::FinanceError;
