//! Access tokens: short-lived HS256 JWTs. The algorithm is pinned (a token
//! claiming `none` or another algorithm is refused); `exp`, `iss` and `aud` are
//! checked on every request.

use std::time::Duration;

use sha2::Digest;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::OrgId;
use super::principal::Role;

pub const ISSUER: &str = "gpuhour";
pub const AUDIENCE: &str = "gpuhour-api";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    pub org: Uuid,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// The signing and verification keys, built once from the configured secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Keys the console's form tokens (see [`TokenKeys::form_token`]).
    form_key: [u8; 32],
    pub ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        // A key of its own for form tokens, derived from the secret, so that
        // no value signed for one purpose is valid for the other.
        let form_key: [u8; 32] =
            sha2::Sha256::new_with_prefix(b"gpuhour console form token\0").chain_update(secret).finalize().into();
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            form_key,
            ttl,
        }
    }

    /// A random 256-bit key, for sandbox mode without a configured secret.
    pub fn random(ttl: Duration) -> Self {
        let secret: [u8; 32] = rand::random();
        Self::from_secret(&secret, ttl)
    }

    /// Issues a token valid for `ttl` from now (wall-clock time: token lifetimes
    /// are security, not business time, so the sandbox clock does not apply).
    pub fn issue(&self, user: Uuid, org: OrgId, role: Role) -> Result<String, jsonwebtoken::errors::Error> {
        self.issue_not_before(user, org, role, None)
    }

    /// Issues a token as [`TokenKeys::issue`] does, but with an `iat` no
    /// earlier than the user's `tokens_not_before`: a user enabled again
    /// within the second they were disabled in gets a token that works.
    pub fn issue_not_before(
        &self,
        user: Uuid,
        org: OrgId,
        role: Role,
        not_before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let iat = not_before.map_or(now, |at| at.timestamp().max(now));
        let claims = Claims {
            sub: user,
            org: org.0,
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat,
            exp: now + self.ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The token a console form carries for the session (or pre-login
    /// nonce) `session`: an HMAC of it, which a page of another origin cannot
    /// compute because it cannot read the HttpOnly cookie.
    pub fn form_token(&self, session: &str) -> String {
        use hmac::{Mac, SimpleHmac};
        // HMAC accepts a key of any length: new_from_slice cannot fail here.
        let Ok(mut mac) = SimpleHmac::<sha2::Sha256>::new_from_slice(&self.form_key) else {
            return String::new();
        };
        mac.update(session.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `candidate` is the form token of `session`, compared in constant time.
    pub fn form_token_matches(&self, session: &str, candidate: &str) -> bool {
        use hmac::{Mac, SimpleHmac};
        let Ok(raw) = hex::decode(candidate) else { return false };
        let Ok(mut mac) = SimpleHmac::<sha2::Sha256>::new_from_slice(&self.form_key) else { return false };
        mac.update(session.as_bytes());
        mac.verify_slice(&raw).is_ok()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60))
    }

    #[test]
    fn a_token_round_trips() {
        let (user, org) = (Uuid::now_v7(), Uuid::now_v7());
        let token = keys().issue(user, OrgId(org), Role::Finance).expect("issue");
        let claims = keys().verify(&token).expect("verify");
        assert_eq!((claims.sub, claims.org, claims.role), (user, org, Role::Finance));
    }

    #[test]
    fn another_key_or_alg_none_is_refused() {
        let token = keys().issue(Uuid::now_v7(), OrgId(Uuid::now_v7()), Role::Admin).expect("issue");
        let other = TokenKeys::from_secret(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
        // Same claims, `alg: none`, no signature.
        let mut parts = token.split('.');
        let _header = parts.next();
        let payload = parts.next().expect("payload");
        use base64::Engine;
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys().verify(&format!("{none}.{payload}.")).is_err());
    }
}
