//! Finance's operations on money: deposits (and, with the subsidy work,
//! payouts, claims and reports).

pub mod deposits;
