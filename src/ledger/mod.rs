//! The double-entry ledger (SPEC section 3).
//!
//! - `model`: accounts, floors, entry and posting kinds, the four figures;
//! - `rules`: what postings do to balances, and what is refused (no database);
//! - `posting`: writing entries inside the caller's transaction;
//! - `store`: creating and finding accounts, reading entries and postings;
//! - `queries`: statements, point-in-time figures; `verify`: the invariants;
//! - `periods`: closing months, the hash chain over their postings;
//! - `chart`: the account codes; `routes`, `period_routes`: finance's HTTP routes.

pub mod chart;
pub mod error;
pub mod model;
pub mod period_routes;
pub mod periods;
pub mod posting;
pub mod queries;
pub mod routes;
pub mod rules;
pub mod store;
pub mod verify;
pub mod views;

pub use error::LedgerError;
