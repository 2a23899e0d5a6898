//! Subsidy programmes and grants (SPEC section 5). The marketplace asks this
//! module what a grant named in a quote or an order contributes.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use crate::auth::Principal;
use crate::http::ApiError;
use crate::market::listings::ListingRow;
use crate::market::orders::{Request, SubsidySide};
use crate::market::pricing::SubsidyTerms;

/// The terms a quote gets from the grant it names (none without a grant).
pub async fn terms_for_quote(
    _conn: &mut AsyncPgConnection,
    _principal: &Principal,
    request: &Request,
    _listing: &ListingRow,
    _now: DateTime<Utc>,
) -> Result<Option<SubsidyTerms>, ApiError> {
    match request.grant_id {
        None => Ok(None),
        Some(id) => Err(ApiError::invalid("grant_id", format!("grant {id} does not exist"))),
    }
}

/// The subsidy side of an order naming a grant, read inside the order's transaction.
pub async fn side_for_order(
    _conn: &mut AsyncPgConnection,
    _principal: &Principal,
    request: &Request,
    _now: DateTime<Utc>,
) -> Result<Option<SubsidySide>, ApiError> {
    match request.grant_id {
        None => Ok(None),
        Some(id) => Err(ApiError::invalid("grant_id", format!("grant {id} does not exist"))),
    }
}
