//! Integration tests against real PostgreSQL and the running service.

mod helpers;

mod auth;
mod errors;
mod funding;
mod idempotency;
mod ledger_bank;
mod ledger_entries;
mod market;
mod operations;
mod subsidy;
