//! The authenticated caller, extracted from `Authorization: Bearer <JWT>`.

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use futures_util::future::LocalBoxFuture;

use super::store;
use super::token::TokenKeys;
use crate::db::DbPoolError;
use crate::http::ApiError;
use crate::state::AppState;

crate::ledger::model::text_enum! {
    /// A user's role (SPEC section 1).
    pub enum Role {
        Tenant => "tenant",
        Provider => "provider",
        Finance => "finance",
        Admin => "admin",
    }
}

/// Why a caller is not let in, or not let do what it asks. The HTTP answer of
/// each is chosen at the edge (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("send Authorization: Bearer <token>")]
    MissingBearer,
    #[error("the Authorization header must be: Bearer <token>")]
    MalformedAuthorization,
    /// The token failed verification; the message says which check refused it.
    #[error("{}", token_refusal(.0))]
    InvalidToken(#[source] jsonwebtoken::errors::Error),
    /// The token's user is gone, disabled (the token predates that), or
    /// changed organisation or role since the token was issued.
    #[error("the token's user does not exist or is disabled")]
    NotCurrent,
    #[error("the {0} role may not do this")]
    RoleForbidden(Role),
    #[error("token keys are not configured")]
    KeysNotConfigured,
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] DbPoolError),
}

/// What a caller is told about a token that failed verification: which check
/// refused it, never more.
fn token_refusal(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::InvalidSignature => "the token's signature is invalid",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "the token's algorithm is not accepted",
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => "the token was not issued for this service",
        _ => "the token is invalid",
    }
}

/// The caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    /// The `iat` of the token the caller came with (whole seconds); `None` for
    /// a principal the service makes itself (the demo, the sandbox seed).
    pub token_issued_at: Option<i64>,
}

impl Principal {
    /// The caller a verified token names, not yet checked against the database.
    pub fn of_token(claims: &super::token::Claims) -> Self {
        Principal { user_id: claims.sub, org_id: claims.org, role: claims.role, token_issued_at: Some(claims.iat) }
    }

    /// Refuses (403) a caller whose role is not in `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), AuthError> {
        if allowed.contains(&self.role) { Ok(()) } else { Err(AuthError::RoleForbidden(self.role)) }
    }

    /// Finance staff and administrators: the operator's people, who see everything.
    pub fn is_finance(&self) -> bool {
        matches!(self.role, Role::Finance | Role::Admin)
    }

    /// Finance staff and administrators only.
    pub fn require_finance(&self) -> Result<(), AuthError> {
        self.require(&[Role::Finance, Role::Admin])
    }

    /// The caller's organisation, typed for the functions that take it beside
    /// other ids.
    pub fn org(&self) -> super::model::OrgId {
        super::model::OrgId(self.org_id)
    }

    pub fn actor(&self) -> crate::ledger::model::Actor {
        crate::ledger::model::Actor { user_id: Some(self.user_id), org_id: Some(self.org_id) }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let claims = bearer_token(req).and_then(|token| verify_token(req, token));
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let claims = claims?;
            let state = state.ok_or_else(|| ApiError::internal(std::io::Error::other("no application state")))?;
            Ok(load(&state, claims).await?)
        })
    }
}

/// The caller as its verified token names it, not yet checked against the
/// database. Only for a write that checks it inside its own transaction: the
/// order group commit checks every caller of a batch in one query
/// ([`still_current`]) instead of one round trip per request before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPrincipal(pub Principal);

impl FromRequest for TokenPrincipal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            bearer_token(req)
                .and_then(|token| verify_token(req, token))
                .map(|claims| TokenPrincipal(Principal::of_token(&claims)))
                .map_err(ApiError::from),
        )
    }
}

/// Of `callers`, those the database still knows as they claim to be: the
/// user exists, is not disabled, has the organisation and role its token
/// names, and the token is not older than the user's `tokens_not_before`.
/// One query for any number of callers.
pub async fn still_current(
    conn: &mut diesel_async::AsyncPgConnection,
    callers: &[Principal],
) -> diesel::QueryResult<std::collections::HashSet<Principal>> {
    let ids: Vec<Uuid> = callers.iter().map(|p| p.user_id).collect();
    let known = store::active_users(conn, &ids).await?;
    Ok(current_of(callers, &known))
}

/// Of `callers`, those whose user is among `known` as the caller claims it:
/// a map lookup per caller, whatever the batch size.
fn current_of(callers: &[Principal], known: &[store::CurrentUser]) -> std::collections::HashSet<Principal> {
    let by_id: std::collections::HashMap<Uuid, &store::CurrentUser> = known.iter().map(|user| (user.0, user)).collect();
    callers
        .iter()
        .copied()
        .filter(|p| {
            by_id.get(&p.user_id).is_some_and(|(_, org, role, not_before)| {
                *org == p.org_id && role == p.role.as_str() && !issued_too_early(p.token_issued_at, *not_before)
            })
        })
        .collect()
}

/// Whether a token issued at `issued_at` (its `iat`) predates the user's
/// `tokens_not_before`: such a token was issued before the user was disabled,
/// and stays refused after they are enabled again.
fn issued_too_early(issued_at: Option<i64>, not_before: Option<chrono::DateTime<chrono::Utc>>) -> bool {
    match (issued_at, not_before) {
        (Some(iat), Some(not_before)) => iat < not_before.timestamp(),
        _ => false,
    }
}

/// The principal a verified token names, as the database knows it now. The
/// token is signed, but the user may have been disabled since it was issued
/// (and perhaps enabled again: the token stays refused), or changed role: the
/// database has the last word.
pub async fn load(state: &AppState, claims: super::token::Claims) -> Result<Principal, AuthError> {
    let mut conn = state.pool.get().await?;
    let current = store::user_by_id(&mut conn, claims.sub).await?;
    let principal = Principal::of_token(&claims);
    match current {
        Some((user, _))
            if user.disabled_at.is_none()
                && user.org_id == claims.org
                && user.role == claims.role.as_str()
                && !issued_too_early(principal.token_issued_at, user.tokens_not_before) =>
        {
            Ok(principal)
        }
        _ => Err(AuthError::NotCurrent),
    }
}

fn bearer_token(req: &HttpRequest) -> Result<&str, AuthError> {
    let header = req.headers().get(AUTHORIZATION).ok_or(AuthError::MissingBearer)?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::MalformedAuthorization)
}

/// Checks a token's signature, algorithm, expiry, issuer and audience (the
/// API's bearer header and the console's session cookie).
pub fn verify_token(req: &HttpRequest, token: &str) -> Result<super::token::Claims, AuthError> {
    let keys = req.app_data::<web::Data<TokenKeys>>().ok_or(AuthError::KeysNotConfigured)?;
    keys.verify(token).map_err(AuthError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_is_current_only_with_its_own_organisation_and_role() {
        let p = Principal {
            user_id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            role: Role::Tenant,
            token_issued_at: Some(1_000),
        };
        let is_current =
            |user: (Uuid, Uuid, &str)| current_of(&[p], &[(user.0, user.1, user.2.into(), None)]).contains(&p);
        assert!(is_current((p.user_id, p.org_id, "tenant")));
        assert!(!is_current((p.user_id, Uuid::from_u128(3), "tenant")));
        assert!(!is_current((p.user_id, p.org_id, "provider")));
        assert!(!is_current((Uuid::from_u128(4), p.org_id, "tenant")));
    }

    #[test]
    fn of_a_batch_only_the_callers_still_known_pass() {
        let caller = |n: u128, role| Principal {
            user_id: Uuid::from_u128(n),
            org_id: Uuid::from_u128(100 + n),
            role,
            token_issued_at: Some(1_000),
        };
        let (a, b, c) = (caller(1, Role::Tenant), caller(2, Role::Tenant), caller(3, Role::Provider));
        // b was disabled (not among the known), c's role changed to tenant.
        let known =
            vec![(a.user_id, a.org_id, "tenant".to_string(), None), (c.user_id, c.org_id, "tenant".to_string(), None)];
        let current = current_of(&[a, b, c, a], &known);
        assert_eq!(current, std::collections::HashSet::from([a]));
    }

    #[test]
    fn a_token_issued_before_the_users_tokens_not_before_is_refused() {
        let at = |secs| chrono::DateTime::from_timestamp(secs, 0);
        let p = Principal {
            user_id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            role: Role::Tenant,
            token_issued_at: Some(1_000),
        };
        let known = |not_before| vec![(p.user_id, p.org_id, "tenant".to_string(), not_before)];
        assert!(current_of(&[p], &known(None)).contains(&p));
        assert!(current_of(&[p], &known(at(1_000))).contains(&p));
        assert!(!current_of(&[p], &known(at(1_001))).contains(&p));
        // A principal the service made itself carries no token to refuse.
        let own = Principal { token_issued_at: None, ..p };
        assert!(current_of(&[own], &known(at(1_001))).contains(&own));
    }
}
