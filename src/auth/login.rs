//! Logging in: one password check, throttled, shared by `POST /v1/auth/token`
//! and the console's `POST /login` so that both count the same attempts and
//! answer the same way.

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};

use super::model::Email;
use super::principal::Role;
use super::token::TokenKeys;
use super::{password, store, throttle};
use crate::db::DbPoolError;
use crate::state::AppState;

/// Why a login is refused. The HTTP answer of each is chosen at the edge
/// (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The same for an unknown email and a wrong password: the answer must
    /// not tell which emails are registered.
    #[error("the email or the password is wrong")]
    WrongCredentials,
    #[error(transparent)]
    Throttled(#[from] TooMany),
    #[error("user {user} has the stored role {role:?}, which is not a role")]
    UnknownRole { user: uuid::Uuid, role: String },
    #[error("the token could not be signed")]
    Signing(#[source] jsonwebtoken::errors::Error),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection")]
    Pool(#[from] DbPoolError),
}

/// Attempts (`what`: "failed logins", "sign-ups") from one client refused
/// until a block ends: answered 429 with `Retry-After: seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many {what} from here: try again in {seconds} seconds")]
pub struct TooMany {
    pub what: &'static str,
    pub seconds: u64,
}

/// A token issued to a user who gave the right password.
#[derive(Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub role: Role,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Checks `email` and `password` and issues a token. Attempts are counted per
/// email and address, per address and per email before the password is
/// checked; past a limit they are refused with 429 and `Retry-After`. A wrong
/// email or password answers 401, the same for both, after a delay that grows
/// with the failures.
pub async fn login(
    state: &AppState,
    keys: &TokenKeys,
    address: &str,
    email: &str,
    attempt: String,
) -> Result<IssuedToken, LoginError> {
    let email = Email::parse(email).map(|e| e.as_str().to_string()).unwrap_or_else(|_| email.trim().to_lowercase());
    // Security time, not business time: a frozen sandbox clock must not freeze a block.
    let now = Utc::now();

    let (found, known, pair_attempts) = {
        let mut conn = state.pool.get().await?;
        let known = throttle::is_known(&mut conn, &email, address, now).await?;
        // The attempt is counted before the password is checked, atomically, so
        // concurrent guesses cannot all slip under the limit.
        let counts =
            match throttle::reserve_attempt(&mut conn, &throttle::login_subjects(&email, address, known), now).await? {
                Ok(counts) => counts,
                Err(until) => return Err(too_many("failed logins", until, now).into()),
            };
        let pair_attempts = counts.first().map_or(0, |c| c.attempts);
        (store::active_user_by_email(&mut conn, &email).await?, known, pair_attempts)
    };
    let stored_hash = found.as_ref().map(|(user, _)| user.password_hash.clone());
    // The same Argon2 work whether or not the email exists.
    let matched = password::verify(attempt, stored_hash).await;
    match found {
        Some((user, _)) if matched => {
            let mut conn = state.pool.get().await?;
            throttle::record_login(&mut conn, &email, address, known, now).await?;
            let role: Role = user
                .role
                .parse()
                .map_err(|_: String| LoginError::UnknownRole { user: user.id, role: user.role.clone() })?;
            let access_token = keys
                .issue_not_before(user.id, crate::auth::OrgId(user.org_id), role, user.tokens_not_before)
                .map_err(LoginError::Signing)?;
            tracing::info!(user_id = %user.id, "token issued");
            Ok(IssuedToken { access_token, role, expires_in: keys.ttl.as_secs() })
        }
        _ => {
            tracing::warn!(%address, attempts = pair_attempts, "failed login");
            tokio::time::sleep(throttle::delay_after(pair_attempts)).await;
            Err(LoginError::WrongCredentials)
        }
    }
}

/// The client's address: the TCP peer (behind a proxy, the proxy's).
pub fn client_address(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// The refusal of `what` from a client blocked until `until`.
pub fn too_many(what: &'static str, until: DateTime<Utc>, now: DateTime<Utc>) -> TooMany {
    // Rounded up: a client that waits exactly this long is let through.
    let seconds = (until - now).num_milliseconds().saturating_add(999).div_euclid(1000).max(1);
    TooMany { what, seconds: seconds as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_told_in_whole_seconds_rounded_up() {
        let now = DateTime::from_timestamp(1_000, 0).expect("a time");
        let later = |millis| now + chrono::TimeDelta::milliseconds(millis);
        assert_eq!(too_many("failed logins", later(2_001), now), TooMany { what: "failed logins", seconds: 3 });
        assert_eq!(too_many("sign-ups", later(60_000), now).seconds, 60);
        // A block that has just ended still asks for a second: never `Retry-After: 0`.
        assert_eq!(too_many("sign-ups", now, now).seconds, 1);
        assert_eq!(
            too_many("failed logins", later(2_001), now).to_string(),
            "too many failed logins from here: try again in 3 seconds"
        );
    }
}
