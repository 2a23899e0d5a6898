//! Who is calling: access tokens and the authenticated principal.

pub mod principal;
pub mod token;

pub use principal::{Principal, Role};
pub use token::TokenKeys;
