//! gpuhour: a marketplace and double-entry ledger for subsidised GPU time.
//!
//! One folder per area of the product: `ledger` (the books), `auth` (who is
//! calling), `market` (listings and orders), `subsidy`, `finance`; `http` holds
//! what every area's routes share. See docs/architecture.md.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod demo;
pub mod events;
pub mod finance;
pub mod http;
pub mod ledger;
pub mod market;
pub mod money;
pub mod sandbox;
pub mod startup;
pub mod state;
pub mod subsidy;
pub mod telemetry;
pub mod verify;
pub mod webhooks;
