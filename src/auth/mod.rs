//! Identity and access: organisations, users, passwords, tokens, and the
//! authenticated principal every handler receives.

pub mod login;
pub mod model;
pub mod password;
pub mod principal;
pub mod routes;
pub mod store;
pub mod throttle;
pub mod token;

pub use model::OrgId;
pub use principal::{Principal, Role};
pub use token::TokenKeys;
