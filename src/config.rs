//! Configuration, read once from the environment at start.

use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/gpuhour";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

// Secrets are `secrecy` types and the URL redacts its password, so the
// derived `Debug` (logged at start) never shows one.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `GPUHOUR_BIND`: address:port to listen on.
    pub bind: String,
    /// `GPUHOUR_SANDBOX=1`: the movable clock and a generated signing key are allowed.
    pub sandbox: bool,
    /// `GPUHOUR_JWT_SECRET`: HMAC key for access tokens, at least 32 bytes.
    pub jwt_secret: Option<SecretString>,
    /// `GPUHOUR_TOKEN_TTL_SECONDS`: lifetime of an access token (default 15 minutes).
    pub token_ttl: Duration,
    /// `GPUHOUR_DB_POOL_SIZE`: connections per process (default 16).
    pub pool_size: usize,
    /// `GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR`: sign-ups one client address may
    /// make before they are spaced out (default 20; 0 turns the limit off, for
    /// load tests that sign many organisations up from one machine).
    pub signups_per_address: i32,
    /// `GPUHOUR_MAX_BODY_BYTES`: largest request body accepted (default 64 KiB).
    pub max_body_bytes: usize,
    /// `GPUHOUR_FEE_RATE`: the platform fee as a fraction of the subtotal (default 0).
    pub fee_rate: Decimal,
    /// `GPUHOUR_LOG_FORMAT`: `json` (default) or `pretty`.
    pub log_json: bool,
    /// `GPUHOUR_SETTLE_INTERVAL_SECONDS`: how often the background settler runs
    /// (default 60; 0 turns it off, leaving `POST /v1/settlements/run`).
    pub settle_interval: Option<Duration>,
    /// `GPUHOUR_ADMIN_EMAIL` / `GPUHOUR_ADMIN_PASSWORD`: the first administrator,
    /// created at start if no administrator exists.
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    /// `GPUHOUR_TIME_ZONE`: the programme office's zone (IANA name, default
    /// `Asia/Seoul`), in which reports, claims and exports count days and months.
    /// Instants stay UTC everywhere else.
    pub time_zone: String,
    /// `GPUHOUR_PAYOUT_ADVANCE_RATE`: the fraction (0 to 1, default 0) of a
    /// provider's settled subsidy that may be paid out before the programme has
    /// paid it to the operator.
    pub payout_advance_rate: Decimal,
    /// `GPUHOUR_BANK_MATCH_DAYS`: how many days apart a bank line and a ledger
    /// entry of the same amount may be for the matcher to suggest them (default 3).
    pub bank_match_days: i64,
    /// `GPUHOUR_STATEMENT_TIMEOUT_MS` (default 15,000), `GPUHOUR_LOCK_TIMEOUT_MS`
    /// (5,000), `GPUHOUR_IDLE_IN_TRANSACTION_TIMEOUT_MS` (60,000): every pooled
    /// session's limits; 0 turns one off.
    pub session_limits: crate::db::SessionLimits,
    /// `GPUHOUR_WEBHOOK_INTERVAL_MS`, `GPUHOUR_WEBHOOK_TIMEOUT_SECONDS`,
    /// `GPUHOUR_WEBHOOK_CONCURRENCY`, `GPUHOUR_WEBHOOK_PER_ENDPOINT`: the webhook worker.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// `GPUHOUR_ORDER_BATCH_MAX` (default 256) and `GPUHOUR_ORDER_BATCH_WINDOW_US`
    /// (default 1,000): the group commit writes at most this many orders in one
    /// transaction, collected for at most this long once the first arrives.
    pub order_batch: OrderBatchLimits,
}

/// How the order group commit gathers a batch (see `market::batcher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBatchLimits {
    pub max_orders: usize,
    pub window: Duration,
}

/// The zone days and months are counted in when `GPUHOUR_TIME_ZONE` is not set.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Seoul";

/// A PostgreSQL connection URL: used as a `&str`, shown (`Debug`) without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(url.to_string())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

/// Drops the password from a connection URL for logging.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let parse_number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| ConfigError::Invalid { name, reason: format!("{v:?} is not a whole number") }),
            }
        };
        let sandbox = match get("GPUHOUR_SANDBOX").as_deref().map(str::trim) {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "GPUHOUR_SANDBOX",
                    reason: format!("{other:?} is not 0 or 1"),
                });
            }
        };
        let jwt_secret = get("GPUHOUR_JWT_SECRET");
        if let Some(secret) = &jwt_secret
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid {
                name: "GPUHOUR_JWT_SECRET",
                reason: "must be at least 32 bytes".into(),
            });
        }
        let jwt_secret = jwt_secret.map(SecretString::from);
        let fee_rate = match get("GPUHOUR_FEE_RATE") {
            None => Decimal::ZERO,
            Some(v) => {
                let rate: Decimal = v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name: "GPUHOUR_FEE_RATE",
                    reason: format!("{v:?} is not a decimal"),
                })?;
                if rate < Decimal::ZERO || rate >= Decimal::ONE {
                    return Err(ConfigError::Invalid {
                        name: "GPUHOUR_FEE_RATE",
                        reason: "must be at least 0 and below 1".into(),
                    });
                }
                rate
            }
        };
        let pool_size = parse_number("GPUHOUR_DB_POOL_SIZE", 16)?;
        if pool_size == 0 {
            return Err(ConfigError::Invalid { name: "GPUHOUR_DB_POOL_SIZE", reason: "must be at least 1".into() });
        }
        let time_zone = get("GPUHOUR_TIME_ZONE").map(|z| z.trim().to_string()).unwrap_or(DEFAULT_TIME_ZONE.into());
        // The database knows the zones (checked against pg_timezone_names at
        // start); this only keeps the name to what a zone name can look like.
        if !time_zone.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)) {
            return Err(ConfigError::Invalid {
                name: "GPUHOUR_TIME_ZONE",
                reason: format!("{time_zone:?} is not a zone name"),
            });
        }
        let payout_advance_rate = match get("GPUHOUR_PAYOUT_ADVANCE_RATE") {
            None => Decimal::ZERO,
            Some(v) => match v.trim().parse::<Decimal>() {
                Ok(rate) if rate >= Decimal::ZERO && rate <= Decimal::ONE => rate,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "GPUHOUR_PAYOUT_ADVANCE_RATE",
                        reason: format!("{v:?} is not a fraction from 0 to 1"),
                    });
                }
            },
        };
        let webhooks = crate::webhooks::WebhookSettings {
            interval: match parse_number("GPUHOUR_WEBHOOK_INTERVAL_MS", 1_000)? {
                0 => None,
                ms => Some(Duration::from_millis(ms.min(3_600_000))),
            },
            timeout: Duration::from_secs(parse_number("GPUHOUR_WEBHOOK_TIMEOUT_SECONDS", 10)?.clamp(1, 60)),
            concurrency: parse_number("GPUHOUR_WEBHOOK_CONCURRENCY", 32)?.clamp(1, 1_024) as usize,
            per_endpoint: parse_number("GPUHOUR_WEBHOOK_PER_ENDPOINT", 4)?.clamp(1, 1_024) as usize,
        };
        Ok(Settings {
            webhooks,
            time_zone,
            payout_advance_rate,
            bank_match_days: parse_number("GPUHOUR_BANK_MATCH_DAYS", 3)?.min(366) as i64,
            session_limits: crate::db::SessionLimits {
                statement_timeout_ms: parse_number("GPUHOUR_STATEMENT_TIMEOUT_MS", 15_000)?,
                lock_timeout_ms: parse_number("GPUHOUR_LOCK_TIMEOUT_MS", 5_000)?,
                idle_in_transaction_timeout_ms: parse_number("GPUHOUR_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000)?,
            },
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()).into(),
            bind: get("GPUHOUR_BIND").unwrap_or_else(|| DEFAULT_BIND.to_string()),
            sandbox,
            jwt_secret,
            token_ttl: Duration::from_secs(parse_number("GPUHOUR_TOKEN_TTL_SECONDS", 15 * 60)?),
            pool_size: pool_size as usize,
            signups_per_address: parse_number("GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR", 20)?.min(1_000_000) as i32,
            max_body_bytes: parse_number("GPUHOUR_MAX_BODY_BYTES", 64 * 1024)? as usize,
            fee_rate,
            log_json: get("GPUHOUR_LOG_FORMAT").as_deref() != Some("pretty"),
            settle_interval: match parse_number("GPUHOUR_SETTLE_INTERVAL_SECONDS", 60)? {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            admin_email: get("GPUHOUR_ADMIN_EMAIL"),
            admin_password: get("GPUHOUR_ADMIN_PASSWORD").map(SecretString::from),
            order_batch: OrderBatchLimits {
                max_orders: parse_number("GPUHOUR_ORDER_BATCH_MAX", 256)?.clamp(1, 4_096) as usize,
                window: Duration::from_micros(parse_number("GPUHOUR_ORDER_BATCH_WINDOW_US", 1_000)?.min(100_000)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_apply() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(&*s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.bind, DEFAULT_BIND);
        assert!(!s.sandbox);
        assert_eq!(s.fee_rate, Decimal::ZERO);
    }

    #[test]
    fn refuses_a_short_secret_and_bad_numbers() {
        assert!(matches!(
            settings(&[("GPUHOUR_JWT_SECRET", "short")]),
            Err(ConfigError::Invalid { name: "GPUHOUR_JWT_SECRET", .. })
        ));
        assert!(matches!(
            settings(&[("GPUHOUR_SANDBOX", "yes")]),
            Err(ConfigError::Invalid { name: "GPUHOUR_SANDBOX", .. })
        ));
        assert!(matches!(settings(&[("GPUHOUR_DB_POOL_SIZE", "x")]), Err(ConfigError::Invalid { .. })));
        assert!(matches!(settings(&[("GPUHOUR_FEE_RATE", "1.5")]), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn webhook_settings_default_and_turn_off() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.webhooks, crate::webhooks::WebhookSettings::default());
        let s = settings(&[
            ("GPUHOUR_WEBHOOK_INTERVAL_MS", "0"),
            ("GPUHOUR_WEBHOOK_TIMEOUT_SECONDS", "600"),
            ("GPUHOUR_WEBHOOK_CONCURRENCY", "0"),
            ("GPUHOUR_WEBHOOK_PER_ENDPOINT", "2"),
        ])
        .expect("valid");
        assert_eq!(
            s.webhooks,
            crate::webhooks::WebhookSettings {
                interval: None,
                timeout: Duration::from_secs(60),
                concurrency: 1,
                per_endpoint: 2,
            }
        );
        assert!(matches!(settings(&[("GPUHOUR_WEBHOOK_TIMEOUT_SECONDS", "soon")]), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let s = settings(&[
            ("GPUHOUR_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/gpuhour"),
            ("GPUHOUR_ADMIN_PASSWORD", "admin-password-value"),
        ])
        .expect("valid");
        let shown = format!("{s:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("admin-password-value"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/gpuhour"), "{shown}");
    }
}
