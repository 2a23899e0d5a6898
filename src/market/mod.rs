//! The marketplace (SPEC section 4): listings, capacity, search, quotes,
//! orders, settlement, cancellation and outages.
//!
//! - `pricing`, `schedule`: the rules as plain functions (no database);
//! - `listings`, `orders`: storage and the order's one transaction;
//! - `settlement`: what later resolves an order's reservations;
//! - `charged`: what an order has really cost, read from its postings;
//! - `revenue`: what a listing earned and what its outages credited, from the same postings;
//! - `verify`: the order-level invariant (each order charged for its hours, no more);
//! - `usage`: metered usage of orders, and utilisation and energy from it;
//! - `routes`: the HTTP handlers.

pub mod batch;
pub mod batcher;
pub mod charged;
pub mod energy;
pub mod listings;
pub mod orders;
pub mod pricing;
pub mod revenue;
pub mod routes;
pub mod schedule;
pub mod settlement;
pub mod usage;
pub mod verify;
pub mod views;
