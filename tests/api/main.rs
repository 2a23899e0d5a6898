//! Integration tests against real PostgreSQL and the running service.

mod helpers;

mod advances;
mod auth;
mod bank;
mod books;
mod charged;
mod console;
mod console_browser;
mod console_browser_finance;
mod console_browser_provider;
mod console_finance;
mod console_provider;
mod corrections;
mod demo_story;
mod energy;
mod errors;
mod funding;
mod idempotency;
mod ledger_bank;
mod ledger_entries;
mod lists;
mod market;
mod model;
mod nul;
mod operations;
mod order_batches;
mod order_hours;
mod payouts;
mod period_close;
mod periods;
mod projects;
mod spreadsheets;
mod subsidy;
mod timeouts;
mod year_end;
