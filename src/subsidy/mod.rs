//! Subsidy programmes, grants and claims (SPEC section 5).
//!
//! - `rules`: rates, eligibility, validity as plain functions;
//! - `programmes`: programmes and grants, and what a grant gives an order;
//! - `advances`: tranches the programme pays ahead, applied to submitted claims;
//! - `claims`: claiming settled subsidy from the programme, and its payments;
//! - `corrections`: credit notes, write-offs, voided claims, grant withdrawals;
//! - `year_end`: settling a programme after its fiscal year, and its refund;
//! - `routes`, `correction_routes`, `advance_routes`, `year_end_routes`: the HTTP handlers.

pub mod advance_routes;
pub mod advances;
pub mod claims;
pub mod correction_routes;
pub mod corrections;
pub mod list_routes;
pub mod programmes;
pub mod projects;
pub mod reclaim;
pub mod reclaim_routes;
pub mod routes;
pub mod rules;
pub mod verify;
pub mod year_end;
pub mod year_end_routes;
