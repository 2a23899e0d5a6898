//! Organisations, users and their credentials as plain values: parsed once,
//! valid thereafter.

use crate::ledger::model::text_enum;

text_enum! {
    pub enum OrgKind {
        Tenant => "tenant",
        Provider => "provider",
        Operator => "operator",
    }
}

text_enum! {
    /// A tenant's category: programmes set their co-payment rate by it.
    #[derive(PartialOrd, Ord)]
    pub enum TenantCategory {
        Sme => "sme",
        Midsize => "midsize",
        Enterprise => "enterprise",
        University => "university",
        Research => "research",
        Public => "public",
    }
}

/// An organisation's id, where a function takes it beside other ids (a token's
/// user, a listing, an order, an endpoint): an organisation is the boundary of
/// what a caller may see, so an argument swapped there must not compile. Rows
/// and principals keep plain `Uuid`s; a caller names which of its ids is the
/// organisation's by wrapping it (`Principal::org`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(pub uuid::Uuid);

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An email address, trimmed and lower-cased. Deliberately simple: the address
/// is a login name here, and a mail would prove it; this only refuses what
/// cannot be an address at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        let Some((local, domain)) = email.split_once('@') else {
            return Err("is not an email address");
        };
        let valid = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid { Ok(Email(email)) } else { Err("is not an email address") }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Argon2 would hash a megabyte happily; a login form should not ask it to.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A new password that meets the policy. Never logged: `Debug` hides it.
#[derive(Clone)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(NewPassword(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ana@Example.COM ").map(|e| e.0), Ok("ana@example.com".to_string()));
        for bad in ["", "ana", "@example.com", "ana@", "ana@example", "ana@.com", "a b@example.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(NewPassword::parse("short-pass1").is_err());
        assert!(NewPassword::parse("twelve-chars").is_ok());
        assert!(NewPassword::parse(&"x".repeat(257)).is_err());
        assert_eq!(format!("{:?}", NewPassword::parse("a-secret-password").expect("valid")), "NewPassword(<redacted>)");
    }
}
