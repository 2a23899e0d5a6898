//! Configuration, read once from the environment at start.

use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Deserialize;

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
    /// The order group commit (`market::batcher`), one per process:
    /// `GPUHOUR_ORDER_BATCHES_IN_FLIGHT` (default 2) batches in the database
    /// at once; each takes at least `GPUHOUR_ORDER_BATCH_MIN` (default 32)
    /// orders, waiting up to `GPUHOUR_ORDER_BATCH_WINDOW_US` (default 2,000)
    /// from its first for them, and at most `GPUHOUR_ORDER_BATCH_MAX`
    /// (default 256); what is queued beyond that is shared out over the
    /// batches that are free to start.
    pub order_batch: OrderBatchLimits,
}

/// How the order group commit gathers a batch (see `market::batcher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBatchLimits {
    /// Below this a batch costs more per order than it saves in waiting: it
    /// waits (up to `window`) for this many rather than split the queue
    /// into smaller batches.
    pub min_orders: usize,
    pub max_orders: usize,
    pub window: Duration,
    /// Batches of the process in the database at once: while one waits on
    /// its round trips and commit, the next is judged and written.
    pub in_flight: usize,
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

/// Every variable the settings are read from.
const VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "GPUHOUR_BIND",
    "GPUHOUR_SANDBOX",
    "GPUHOUR_JWT_SECRET",
    "GPUHOUR_TOKEN_TTL_SECONDS",
    "GPUHOUR_DB_POOL_SIZE",
    "GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR",
    "GPUHOUR_MAX_BODY_BYTES",
    "GPUHOUR_FEE_RATE",
    "GPUHOUR_LOG_FORMAT",
    "GPUHOUR_SETTLE_INTERVAL_SECONDS",
    "GPUHOUR_ADMIN_EMAIL",
    "GPUHOUR_ADMIN_PASSWORD",
    "GPUHOUR_TIME_ZONE",
    "GPUHOUR_PAYOUT_ADVANCE_RATE",
    "GPUHOUR_BANK_MATCH_DAYS",
    "GPUHOUR_STATEMENT_TIMEOUT_MS",
    "GPUHOUR_LOCK_TIMEOUT_MS",
    "GPUHOUR_IDLE_IN_TRANSACTION_TIMEOUT_MS",
    "GPUHOUR_WEBHOOK_INTERVAL_MS",
    "GPUHOUR_WEBHOOK_TIMEOUT_SECONDS",
    "GPUHOUR_WEBHOOK_CONCURRENCY",
    "GPUHOUR_WEBHOOK_PER_ENDPOINT",
    "GPUHOUR_ORDER_BATCH_MAX",
    "GPUHOUR_ORDER_BATCH_WINDOW_US",
    "GPUHOUR_ORDER_BATCHES_IN_FLIGHT",
];

/// Values taken exactly as given (a secret's spaces are part of it); the
/// numbers, the switch and the zone name are read with surrounding spaces trimmed.
const UNTRIMMED: &[&str] = &[
    "DATABASE_URL",
    "GPUHOUR_BIND",
    "GPUHOUR_JWT_SECRET",
    "GPUHOUR_LOG_FORMAT",
    "GPUHOUR_ADMIN_EMAIL",
    "GPUHOUR_ADMIN_PASSWORD",
];

/// The variables as set, each parsed by its type (`envy` over serde); an unset
/// or blank one is `None`. Field names are the variables' names lower-cased.
/// Not `Debug`: it holds the secrets in the clear until they become `SecretString`s.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Environment {
    database_url: Option<String>,
    gpuhour_bind: Option<String>,
    gpuhour_sandbox: Option<Switch>,
    gpuhour_jwt_secret: Option<String>,
    gpuhour_token_ttl_seconds: Option<u64>,
    gpuhour_db_pool_size: Option<u64>,
    gpuhour_signups_per_address_per_hour: Option<u64>,
    gpuhour_max_body_bytes: Option<u64>,
    gpuhour_fee_rate: Option<Decimal>,
    gpuhour_log_format: Option<String>,
    gpuhour_settle_interval_seconds: Option<u64>,
    gpuhour_admin_email: Option<String>,
    gpuhour_admin_password: Option<String>,
    gpuhour_time_zone: Option<String>,
    gpuhour_payout_advance_rate: Option<Decimal>,
    gpuhour_bank_match_days: Option<u64>,
    gpuhour_statement_timeout_ms: Option<u64>,
    gpuhour_lock_timeout_ms: Option<u64>,
    gpuhour_idle_in_transaction_timeout_ms: Option<u64>,
    gpuhour_webhook_interval_ms: Option<u64>,
    gpuhour_webhook_timeout_seconds: Option<u64>,
    gpuhour_webhook_concurrency: Option<u64>,
    gpuhour_webhook_per_endpoint: Option<u64>,
    gpuhour_order_batch_min: Option<u64>,
    gpuhour_order_batch_max: Option<u64>,
    gpuhour_order_batch_window_us: Option<u64>,
    gpuhour_order_batches_in_flight: Option<u64>,
}

/// `GPUHOUR_SANDBOX`: `0` or `false`, `1` or `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Switch {
    #[serde(rename = "0", alias = "false")]
    Off,
    #[serde(rename = "1", alias = "true")]
    On,
}

impl Environment {
    /// Parses `vars` (name, value), naming the variable whose value does not parse.
    fn parse(vars: Vec<(&'static str, String)>) -> Result<Self, ConfigError> {
        let pairs = |vars: &[(&'static str, String)]| -> Vec<(String, String)> {
            vars.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
        };
        envy::from_iter(pairs(&vars)).map_err(|whole| {
            // envy stops at the first bad value without always saying whose
            // it is: the variable that fails on its own is the one.
            vars.iter()
                .find_map(|one| {
                    envy::from_iter::<_, Environment>(pairs(std::slice::from_ref(one))).err().map(|e| (one.0, e))
                })
                .map_or_else(
                    || ConfigError::Invalid { name: "environment", reason: whole.to_string() },
                    |(name, e)| ConfigError::Invalid { name, reason: reason(name, &e) },
                )
        })
    }
}

/// What envy says is wrong with a value, without the variable's name (the
/// error names it once).
fn reason(name: &str, error: &envy::Error) -> String {
    let said = error.to_string();
    said.strip_suffix(&format!(" provided by {name}")).unwrap_or(&said).to_string()
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = VARIABLES
            .iter()
            .filter_map(|&name| {
                let value = lookup(name).filter(|v| !v.trim().is_empty())?;
                Some((name, if UNTRIMMED.contains(&name) { value } else { value.trim().to_string() }))
            })
            .collect();
        Self::from_environment(Environment::parse(vars)?)
    }

    /// The defaults, ranges and clamps over the parsed variables.
    fn from_environment(env: Environment) -> Result<Self, ConfigError> {
        if let Some(secret) = &env.gpuhour_jwt_secret
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid {
                name: "GPUHOUR_JWT_SECRET",
                reason: "must be at least 32 bytes".into(),
            });
        }
        let fee_rate = env.gpuhour_fee_rate.unwrap_or(Decimal::ZERO);
        if fee_rate < Decimal::ZERO || fee_rate >= Decimal::ONE {
            return Err(ConfigError::Invalid {
                name: "GPUHOUR_FEE_RATE",
                reason: "must be at least 0 and below 1".into(),
            });
        }
        let pool_size = env.gpuhour_db_pool_size.unwrap_or(16);
        if pool_size == 0 {
            return Err(ConfigError::Invalid { name: "GPUHOUR_DB_POOL_SIZE", reason: "must be at least 1".into() });
        }
        let time_zone = env.gpuhour_time_zone.unwrap_or_else(|| DEFAULT_TIME_ZONE.into());
        // The database knows the zones (checked against pg_timezone_names at
        // start); this only keeps the name to what a zone name can look like.
        if !time_zone.chars().all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c)) {
            return Err(ConfigError::Invalid {
                name: "GPUHOUR_TIME_ZONE",
                reason: format!("{time_zone:?} is not a zone name"),
            });
        }
        let payout_advance_rate = env.gpuhour_payout_advance_rate.unwrap_or(Decimal::ZERO);
        if payout_advance_rate < Decimal::ZERO || payout_advance_rate > Decimal::ONE {
            return Err(ConfigError::Invalid {
                name: "GPUHOUR_PAYOUT_ADVANCE_RATE",
                reason: format!("{payout_advance_rate} is not a fraction from 0 to 1"),
            });
        }
        let webhooks = crate::webhooks::WebhookSettings {
            interval: match env.gpuhour_webhook_interval_ms.unwrap_or(1_000) {
                0 => None,
                ms => Some(Duration::from_millis(ms.min(3_600_000))),
            },
            timeout: Duration::from_secs(env.gpuhour_webhook_timeout_seconds.unwrap_or(10).clamp(1, 60)),
            concurrency: env.gpuhour_webhook_concurrency.unwrap_or(32).clamp(1, 1_024) as usize,
            per_endpoint: env.gpuhour_webhook_per_endpoint.unwrap_or(4).clamp(1, 1_024) as usize,
        };
        Ok(Settings {
            webhooks,
            time_zone,
            payout_advance_rate,
            bank_match_days: env.gpuhour_bank_match_days.unwrap_or(3).min(366) as i64,
            session_limits: crate::db::SessionLimits {
                statement_timeout_ms: env.gpuhour_statement_timeout_ms.unwrap_or(15_000),
                lock_timeout_ms: env.gpuhour_lock_timeout_ms.unwrap_or(5_000),
                idle_in_transaction_timeout_ms: env.gpuhour_idle_in_transaction_timeout_ms.unwrap_or(60_000),
            },
            database_url: env.database_url.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()).into(),
            bind: env.gpuhour_bind.unwrap_or_else(|| DEFAULT_BIND.to_string()),
            sandbox: env.gpuhour_sandbox == Some(Switch::On),
            jwt_secret: env.gpuhour_jwt_secret.map(SecretString::from),
            token_ttl: Duration::from_secs(env.gpuhour_token_ttl_seconds.unwrap_or(15 * 60)),
            pool_size: pool_size as usize,
            signups_per_address: env.gpuhour_signups_per_address_per_hour.unwrap_or(20).min(1_000_000) as i32,
            max_body_bytes: env.gpuhour_max_body_bytes.unwrap_or(64 * 1024) as usize,
            fee_rate,
            log_json: env.gpuhour_log_format.as_deref() != Some("pretty"),
            settle_interval: match env.gpuhour_settle_interval_seconds.unwrap_or(60) {
                0 => None,
                seconds => Some(Duration::from_secs(seconds)),
            },
            admin_email: env.gpuhour_admin_email,
            admin_password: env.gpuhour_admin_password.map(SecretString::from),
            order_batch: {
                let max_orders = env.gpuhour_order_batch_max.unwrap_or(256).clamp(1, 4_096) as usize;
                OrderBatchLimits {
                    min_orders: (env.gpuhour_order_batch_min.unwrap_or(32).max(1) as usize).min(max_orders),
                    max_orders,
                    window: Duration::from_micros(env.gpuhour_order_batch_window_us.unwrap_or(2_000).min(100_000)),
                    in_flight: env.gpuhour_order_batches_in_flight.unwrap_or(2).clamp(1, 16) as usize,
                }
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

    #[test]
    fn every_default_is_the_documented_one() {
        let s = settings(&[]).expect("defaults are valid");
        assert!(s.jwt_secret.is_none() && s.admin_email.is_none() && s.admin_password.is_none());
        assert_eq!(s.token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(s.pool_size, 16);
        assert_eq!(s.signups_per_address, 20);
        assert_eq!(s.max_body_bytes, 64 * 1024);
        assert!(s.log_json);
        assert_eq!(s.settle_interval, Some(Duration::from_secs(60)));
        assert_eq!(s.time_zone, DEFAULT_TIME_ZONE);
        assert_eq!(s.payout_advance_rate, Decimal::ZERO);
        assert_eq!(s.bank_match_days, 3);
        assert_eq!(
            s.session_limits,
            crate::db::SessionLimits {
                statement_timeout_ms: 15_000,
                lock_timeout_ms: 5_000,
                idle_in_transaction_timeout_ms: 60_000,
            }
        );
        assert_eq!(
            s.order_batch,
            OrderBatchLimits { min_orders: 32, max_orders: 256, window: Duration::from_micros(2_000), in_flight: 2 }
        );
        // Blank is unset.
        let blank = settings(&[("GPUHOUR_DB_POOL_SIZE", "  "), ("GPUHOUR_BIND", "")]).expect("blank is unset");
        assert_eq!((blank.pool_size, blank.bind.as_str()), (16, DEFAULT_BIND));
    }

    #[test]
    fn values_are_read_trimmed_and_clamped() {
        let s = settings(&[
            ("GPUHOUR_SANDBOX", " true "),
            ("GPUHOUR_DB_POOL_SIZE", " 4 "),
            ("GPUHOUR_FEE_RATE", "0.05"),
            ("GPUHOUR_PAYOUT_ADVANCE_RATE", "1"),
            ("GPUHOUR_TIME_ZONE", " Europe/Berlin "),
            ("GPUHOUR_LOG_FORMAT", "pretty"),
            ("GPUHOUR_SETTLE_INTERVAL_SECONDS", "0"),
            ("GPUHOUR_BANK_MATCH_DAYS", "9999"),
            ("GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR", "0"),
            ("GPUHOUR_ORDER_BATCH_MAX", "0"),
            ("GPUHOUR_ORDER_BATCH_WINDOW_US", "5000000"),
            ("GPUHOUR_ORDER_BATCHES_IN_FLIGHT", "0"),
        ])
        .expect("valid");
        assert!(s.sandbox && !s.log_json);
        assert_eq!((s.pool_size, s.fee_rate, s.payout_advance_rate), (4, Decimal::new(5, 2), Decimal::ONE));
        assert_eq!((s.time_zone.as_str(), s.settle_interval, s.bank_match_days), ("Europe/Berlin", None, 366));
        assert_eq!(s.signups_per_address, 0);
        // The least a batch waits for is never more than the most it takes.
        assert_eq!(
            s.order_batch,
            OrderBatchLimits { min_orders: 1, max_orders: 1, window: Duration::from_millis(100), in_flight: 1 }
        );
        assert!(!settings(&[("GPUHOUR_SANDBOX", "0")]).expect("valid").sandbox);
        assert!(settings(&[("GPUHOUR_SANDBOX", "1")]).expect("valid").sandbox);
        // A secret is taken as given, spaces and all.
        use secrecy::ExposeSecret;
        let secret = " 0123456789abcdef0123456789abcdef ";
        let s = settings(&[("GPUHOUR_JWT_SECRET", secret)]).expect("valid");
        assert_eq!(s.jwt_secret.as_ref().map(|k| k.expose_secret()), Some(secret));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let invalid = |pairs: &[(&str, &str)]| match settings(pairs) {
            Err(ConfigError::Invalid { name, reason }) => (name, reason),
            Ok(_) => panic!("{pairs:?} was accepted"),
        };
        let (name, reason) = invalid(&[("GPUHOUR_TOKEN_TTL_SECONDS", "15m")]);
        assert_eq!(name, "GPUHOUR_TOKEN_TTL_SECONDS");
        assert!(reason.contains("'15m'") && !reason.contains("provided by"), "{reason}");
        assert_eq!(
            settings(&[("GPUHOUR_BANK_MATCH_DAYS", "-1")]).map(|_| ()).unwrap_err().to_string(),
            "GPUHOUR_BANK_MATCH_DAYS is invalid: invalid digit found in string while parsing value '-1'"
        );
        // Among good values, the bad one is named, whatever its type.
        let good = [("GPUHOUR_DB_POOL_SIZE", "8"), ("GPUHOUR_SANDBOX", "1"), ("GPUHOUR_BIND", "0.0.0.0:80")];
        for (bad, value) in [
            ("GPUHOUR_FEE_RATE", "a tenth"),
            ("GPUHOUR_PAYOUT_ADVANCE_RATE", "half"),
            ("GPUHOUR_SANDBOX", "yes"),
            ("GPUHOUR_WEBHOOK_CONCURRENCY", "many"),
            ("GPUHOUR_ORDER_BATCH_WINDOW_US", "1.5"),
        ] {
            let mut pairs = good.to_vec();
            pairs.retain(|(name, _)| *name != bad);
            pairs.push((bad, value));
            let (name, reason) = invalid(&pairs);
            assert_eq!(name, bad, "{reason}");
            assert!(reason.contains(value), "{bad}: {reason}");
        }
        // Ranges are checked after parsing.
        assert_eq!(invalid(&[("GPUHOUR_DB_POOL_SIZE", "0")]).0, "GPUHOUR_DB_POOL_SIZE");
        assert_eq!(invalid(&[("GPUHOUR_PAYOUT_ADVANCE_RATE", "1.01")]).0, "GPUHOUR_PAYOUT_ADVANCE_RATE");
        assert_eq!(invalid(&[("GPUHOUR_FEE_RATE", "-0.1")]).0, "GPUHOUR_FEE_RATE");
        assert_eq!(invalid(&[("GPUHOUR_TIME_ZONE", "Asia/Seoul; DROP")]).0, "GPUHOUR_TIME_ZONE");
    }

    #[test]
    fn every_variable_is_a_field_of_the_environment() {
        for name in VARIABLES {
            assert!(Environment::parse(vec![(name, "1".to_string())]).is_ok(), "{name}");
        }
        let unknown = envy::from_iter::<_, Environment>([("GPUHOUR_NOT_A_SETTING".to_string(), "1".to_string())]);
        assert!(unknown.is_err(), "unknown variables are refused, so the list and the fields agree");
    }
}
