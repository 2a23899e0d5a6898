//! Access tokens: short-lived HS256 JWTs. The algorithm is pinned (a token
//! claiming `none` or another algorithm is refused); `exp`, `iss` and `aud` are
//! checked on every request.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
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
    pub fn issue(&self, user: Uuid, org: Uuid, role: Role) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            org,
            role,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
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
        let token = keys().issue(user, org, Role::Finance).expect("issue");
        let claims = keys().verify(&token).expect("verify");
        assert_eq!((claims.sub, claims.org, claims.role), (user, org, Role::Finance));
    }

    #[test]
    fn another_key_or_alg_none_is_refused() {
        let token = keys().issue(Uuid::now_v7(), Uuid::now_v7(), Role::Admin).expect("issue");
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
