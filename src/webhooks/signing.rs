//! Signing secrets and signatures, as Stripe signs its webhooks: the header
//! `Gpuhour-Signature: t=TIMESTAMP,v1=SIGNATURE` where SIGNATURE is the hex
//! HMAC-SHA256, keyed with the endpoint's secret (the whole `whsec_…` text),
//! of `TIMESTAMP + "." + body`. During a rotation's grace period one `v1=` is
//! sent per live secret, so a receiver holding either one can verify.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and 32 random bytes (base64url).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!())
}

/// The hex HMAC-SHA256 of `timestamp.body` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Gpuhour-Signature` header: the timestamp, then one `v1=` per secret.
pub fn signature_header(timestamp: i64, body: &[u8], secrets: &[&str]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&signature(secret, timestamp, body));
    }
    header
}

/// What a receiver does: true when `header` carries a `v1=` signature of
/// `body` under `secret` and its timestamp is within `tolerance_seconds` of
/// `now` (so a captured request cannot be replayed later). Compares in
/// constant time.
pub fn verify(header: &str, body: &[u8], secret: &str, now: i64, tolerance_seconds: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.extend(hex::decode(s).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else { return false };
    if (now - t).abs() > tolerance_seconds {
        return false;
    }
    signatures.iter().any(|candidate| {
        let mut mac = mac(secret);
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(candidate).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("whsec_"));
        assert_eq!(a.len(), "whsec_".len() + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Reference value from `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn a_receiver_verifies_either_secret_during_a_rotation() {
        let body = br#"{"id":"e1"}"#;
        let header = signature_header(1_000, body, &["whsec_new", "whsec_old"]);
        assert!(header.starts_with("t=1000,v1="));
        assert_eq!(header.matches(",v1=").count(), 2);
        assert!(verify(&header, body, "whsec_new", 1_010, 300));
        assert!(verify(&header, body, "whsec_old", 1_010, 300));
        assert!(!verify(&header, body, "whsec_other", 1_010, 300));
        assert!(!verify(&header, br#"{"id":"e2"}"#, "whsec_new", 1_010, 300), "another body");
        assert!(!verify(&header, body, "whsec_new", 1_400, 300), "too old: a replay");
        assert!(!verify("v1=00", body, "whsec_new", 1_000, 300), "no timestamp");
        assert!(!verify(&header.replace("t=1000", "t=1001"), body, "whsec_new", 1_001, 300), "timestamp changed");
    }
}
