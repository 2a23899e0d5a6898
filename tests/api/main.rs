//! Integration tests against real PostgreSQL and the running service.

mod helpers;

mod auth;
mod books;
mod charged;
mod errors;
mod idempotency;
mod ledger_bank;
mod ledger_entries;
mod market;
mod operations;
mod order_hours;
mod subsidy;
