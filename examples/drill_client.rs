//! The client the operational drills drive the service with
//! (`ops/failover-drill.sh`, `ops/restore-drill.sh`; see docs/operations.md).
//!
//! It talks to a running `gpuhour serve` over HTTP only, as a customer would:
//!
//! - `seed`: a market made through the API (a finance login, a provider with
//!   one large listing, a tenant with a deposit and a grant of a programme);
//! - `load`: workers placing orders, each with its own `Idempotency-Key`, until
//!   a stop file appears, recording every attempt and its answer;
//! - `check`: after the drill, settles every attempt the client is unsure of
//!   (no answer, 5xx) by retrying it with the same key, then replays every
//!   accepted order's key: an order the database lost would come back as a
//!   new order with another id, so "replayed with the same id" is "not lost";
//! - `settle`: moves the sandbox clock forward and runs settlement, so the
//!   ledger holds posted as well as pending money;
//! - `trial-balance`: the trial balance, as the API reports it, to a file.
//!
//! Run it with `cargo run --example drill_client -- --help`.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const PASSWORD: &str = "drill-password-123";
/// What a request may take before the client counts it as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "Drives gpuhour through its API for the failover and restore drills")]
struct Cli {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seeds a market through the API and writes what the other commands need.
    Seed {
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Places orders from several workers until the stop file appears.
    Load {
        #[arg(long)]
        seed: PathBuf,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Stop when this file exists.
        #[arg(long)]
        stop_file: Option<PathBuf>,
        /// Stop after this many seconds at the latest.
        #[arg(long, default_value_t = 300)]
        max_seconds: u64,
        /// Where every attempt is written, one JSON object a line.
        #[arg(long)]
        events: PathBuf,
    },
    /// Resolves unanswered attempts, replays accepted ones, writes a report.
    Check {
        #[arg(long)]
        seed: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// When the primary was killed (milliseconds since the epoch).
        #[arg(long)]
        kill_at_ms: Option<u64>,
        /// The report (JSON).
        #[arg(long)]
        report: PathBuf,
        /// Every accepted order as `order_id,idempotency_key` lines, for SQL checks.
        #[arg(long)]
        accepted_csv: PathBuf,
    },
    /// Moves the sandbox clock `hours` forward and runs settlement.
    Settle {
        #[arg(long)]
        seed: PathBuf,
        #[arg(long)]
        hours: i64,
    },
    /// Writes the trial balance (`GET /v1/reports/trial-balance`) to a file.
    TrialBalance {
        #[arg(long)]
        seed: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `seed` leaves for the other commands.
#[derive(Serialize, Deserialize)]
struct Seed {
    admin_email: String,
    admin_password: String,
    tenant_email: String,
    listing_id: String,
    grant_id: String,
    /// The first hour orders may start at.
    window_start: DateTime<Utc>,
}

/// One order attempt and what came of it.
#[derive(Serialize, Deserialize, Clone)]
struct Attempt {
    key: String,
    body: Value,
    /// The HTTP status; 0 when no answer came (connection error or timeout).
    status: u16,
    /// The problem's `code`, or the transport error.
    error: Option<String>,
    order_id: Option<String>,
    sent_ms: u64,
    done_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build()?;
        Ok(Api { http, base: base.trim_end_matches('/').to_string() })
    }

    /// Sends a request; `Ok((status, body))` for any answer, `Err` when none came.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> std::result::Result<(u16, Value), reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A call that must succeed with 200 or 201.
    async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value> {
        let (status, answer) = self.call(method.clone(), path, token, body, None).await?;
        if status == 200 || status == 201 {
            Ok(answer)
        } else {
            Err(format!("{method} {path}: {status} {answer}").into())
        }
    }

    async fn login(&self, email: &str, password: &str) -> Result<String> {
        let answer = self
            .ok(reqwest::Method::POST, "/v1/auth/token", None, Some(&json!({"email": email, "password": password})))
            .await?;
        answer["access_token"].as_str().map(str::to_string).ok_or_else(|| "no access_token in the answer".into())
    }
}

fn field(value: &Value, name: &str) -> Result<String> {
    value[name].as_str().map(str::to_string).ok_or_else(|| format!("no {name:?} in {value}").into())
}

fn read_seed(path: &Path) -> Result<Seed> {
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

async fn seed(api: &Api, admin_email: String, admin_password: String, out: &Path) -> Result<()> {
    use reqwest::Method;
    let admin = api.login(&admin_email, &admin_password).await?;
    let clock = api.ok(Method::GET, "/v1/sandbox/clock", Some(&admin), None).await?;
    let now: DateTime<Utc> = field(&clock, "now")?.parse()?;
    let window_start = now.duration_trunc(TimeDelta::hours(1))? + TimeDelta::hours(1);
    let window_end = window_start + TimeDelta::days(30);
    let run = uuid::Uuid::new_v4().simple().to_string();

    let provider_email = format!("provider-{run}@drill.example");
    api.ok(
        Method::POST,
        "/v1/auth/signup",
        None,
        Some(&json!({"org_name": format!("Drill provider {run}"), "org_kind": "provider",
                      "email": provider_email, "password": PASSWORD})),
    )
    .await?;
    let provider = api.login(&provider_email, PASSWORD).await?;
    let listing = api
        .ok(
            Method::POST,
            "/v1/listings",
            Some(&provider),
            Some(&json!({"gpu_model": "H100-SXM5-80GB", "gpu_memory_gb": 80, "gpus": 100_000,
                          "region": "kr-drill", "price_per_gpu_hour": "3800", "currency": "KRW",
                          "available_from": window_start, "available_until": window_end})),
        )
        .await?;

    let tenant_email = format!("tenant-{run}@drill.example");
    let user = api
        .ok(
            Method::POST,
            "/v1/auth/signup",
            None,
            Some(&json!({"org_name": format!("Drill tenant {run}"), "org_kind": "tenant",
                          "org_category": "sme", "email": tenant_email, "password": PASSWORD})),
        )
        .await?;
    let tenant_org = field(&user, "org_id")?;
    api.ok(
        Method::POST,
        "/v1/deposits",
        Some(&admin),
        Some(&json!({"tenant_org_id": tenant_org, "amount": "1000000000000", "currency": "KRW",
                      "reference": format!("drill-{run}")})),
    )
    .await?;
    let programme = api
        .ok(
            Method::POST,
            "/v1/programmes",
            Some(&admin),
            Some(&json!({"name": format!("Drill programme {run}"), "sponsor": "Drill", "fiscal_year": 2026,
                          "currency": "KRW", "budget": "100000000000",
                          "starts_at": window_start - TimeDelta::days(1), "ends_at": window_end,
                          "default_rate": "0.7", "rates_by_category": {"sme": "0.8"}})),
        )
        .await?;
    let grant = api
        .ok(
            Method::POST,
            &format!("/v1/programmes/{}/grants", field(&programme, "id")?),
            Some(&admin),
            Some(&json!({"tenant_org_id": tenant_org, "amount": "50000000000",
                          "valid_from": window_start - TimeDelta::days(1), "valid_until": window_end})),
        )
        .await?;
    let seeded = Seed {
        admin_email,
        admin_password,
        tenant_email,
        listing_id: field(&listing, "id")?,
        grant_id: field(&grant, "id")?,
        window_start,
    };
    std::fs::write(out, serde_json::to_string_pretty(&seeded)?)?;
    Ok(())
}

/// A random order in the first day of the window, so settlement has work.
fn random_order(seed: &Seed, rng: &mut impl Rng) -> Value {
    let start = seed.window_start + TimeDelta::hours(rng.random_range(0..24));
    let end = start + TimeDelta::hours(rng.random_range(1..=3));
    json!({"listing_id": seed.listing_id, "gpus": rng.random_range(1..=4), "start": start, "end": end,
           "grant_id": seed.grant_id})
}

async fn place(api: &Api, token: &str, key: &str, body: &Value) -> Attempt {
    let sent_ms = now_ms();
    let answer = api.call(reqwest::Method::POST, "/v1/orders", Some(token), Some(body), Some(key)).await;
    let (status, error, order_id) = match answer {
        Ok((201, answer)) => (201, None, answer["id"].as_str().map(str::to_string)),
        Ok((status, answer)) => (status, answer["code"].as_str().map(str::to_string), None),
        Err(e) => (0, Some(e.to_string()), None),
    };
    Attempt { key: key.to_string(), body: body.clone(), status, error, order_id, sent_ms, done_ms: now_ms() }
}

async fn load(
    api: &Api,
    seed: &Seed,
    workers: usize,
    stop_file: Option<&Path>,
    max: Duration,
    events: &Path,
) -> Result<()> {
    let token = api.login(&seed.tenant_email, PASSWORD).await?;
    let started = Instant::now();
    let stop = || started.elapsed() >= max || stop_file.is_some_and(Path::exists);
    let worker = |_| {
        let token = token.clone();
        async move {
            let mut attempts = Vec::new();
            let mut rng = rand::rng();
            while !stop() {
                let body = random_order(seed, &mut rng);
                let attempt = place(api, &token, &uuid::Uuid::new_v4().to_string(), &body).await;
                if attempt.status != 201 {
                    // The service answers fast while the database is away; do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                attempts.push(attempt);
            }
            attempts
        }
    };
    let all: Vec<Attempt> = futures::future::join_all((0..workers).map(worker)).await.into_iter().flatten().collect();
    let mut lines = String::new();
    for attempt in &all {
        lines.push_str(&serde_json::to_string(attempt)?);
        lines.push('\n');
    }
    std::fs::write(events, lines)?;
    let accepted = all.iter().filter(|a| a.status == 201).count();
    eprintln!("load: {} attempts, {} accepted", all.len(), accepted);
    Ok(())
}

/// Retries an attempt with its own key until the service gives a definite answer.
async fn resolve(api: &Api, token: &str, attempt: &Attempt) -> Attempt {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let again = place(api, token, &attempt.key, &attempt.body).await;
        if (again.status != 0 && again.status < 500) || Instant::now() >= deadline {
            return again;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Serialize)]
struct Report {
    attempts: usize,
    accepted: usize,
    accepted_before_kill: usize,
    accepted_after_kill: usize,
    /// Attempts answered with something other than 201, by status (0: no answer).
    failed_by_status: BTreeMap<String, usize>,
    /// From the kill to the first 201 for a request sent after it.
    downtime_ms: Option<u64>,
    /// From the first failed attempt's start to the last failed attempt's end.
    error_window_ms: Option<u64>,
    /// Unanswered or 5xx attempts, retried with their own key afterwards.
    unsure: usize,
    /// Of those, how many turned out (or were then) accepted.
    unsure_accepted: usize,
    /// Unsure attempts the retries could not settle.
    unresolved: usize,
    /// Accepted orders whose key, replayed, answered the same order.
    replayed_same: usize,
    /// Accepted orders whose key, replayed, answered anything else: lost orders.
    replay_mismatches: Vec<String>,
    /// Attempts refused with a 4xx: the market has room and money for all.
    refused: usize,
    ok: bool,
}

async fn check(api: &Api, seed: &Seed, events: &Path, kill_at_ms: Option<u64>, out: &Path, csv: &Path) -> Result<()> {
    let token = api.login(&seed.tenant_email, PASSWORD).await?;
    let attempts: Vec<Attempt> =
        std::fs::read_to_string(events)?.lines().map(serde_json::from_str).collect::<std::result::Result<_, _>>()?;
    let kill = kill_at_ms.unwrap_or(u64::MAX);

    let accepted: Vec<&Attempt> = attempts.iter().filter(|a| a.status == 201).collect();
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 201).collect();
    let mut failed_by_status = BTreeMap::new();
    for a in &failed {
        *failed_by_status.entry(format!("{} {}", a.status, a.error.as_deref().unwrap_or(""))).or_insert(0) += 1;
    }
    let downtime_ms = kill_at_ms.and_then(|kill| {
        accepted.iter().filter(|a| a.sent_ms >= kill).map(|a| a.done_ms).min().map(|first| first.saturating_sub(kill))
    });
    let error_window_ms = match (failed.iter().map(|a| a.sent_ms).min(), failed.iter().map(|a| a.done_ms).max()) {
        (Some(first), Some(last)) => Some(last.saturating_sub(first)),
        _ => None,
    };

    // Replays run a few at a time: they are cheap reads of the stored answer.
    let replays: Vec<(Attempt, Attempt)> = futures::stream::iter(accepted.iter().map(|a| {
        let token = token.clone();
        async move { ((*a).clone(), place(api, &token, &a.key, &a.body).await) }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    let mut replay_mismatches = Vec::new();
    for (first, again) in &replays {
        if again.status != 201 || again.order_id != first.order_id {
            replay_mismatches.push(format!(
                "key {} was order {:?}, replay answered {} {:?} {:?}",
                first.key, first.order_id, again.status, again.order_id, again.error
            ));
        }
    }

    let unsure: Vec<&Attempt> = failed.iter().copied().filter(|a| a.status == 0 || a.status >= 500).collect();
    let resolved: Vec<Attempt> =
        futures::stream::iter(unsure.iter().map(|a| resolve(api, &token, a))).buffer_unordered(8).collect().await;
    let unsure_accepted = resolved.iter().filter(|a| a.status == 201).count();
    let unresolved = resolved.iter().filter(|a| a.status == 0 || a.status >= 500).count();
    let refused = failed.len() - unsure.len() + resolved.iter().filter(|a| (400..500).contains(&a.status)).count();

    let mut lines = String::new();
    for a in accepted.iter().copied().chain(resolved.iter().filter(|a| a.status == 201)) {
        lines.push_str(&format!("{},{}\n", a.order_id.as_deref().unwrap_or(""), a.key));
    }
    std::fs::write(csv, lines)?;

    let report = Report {
        attempts: attempts.len(),
        accepted: accepted.len(),
        accepted_before_kill: accepted.iter().filter(|a| a.done_ms < kill).count(),
        accepted_after_kill: accepted.iter().filter(|a| a.sent_ms >= kill).count(),
        failed_by_status,
        downtime_ms,
        error_window_ms,
        unsure: unsure.len(),
        unsure_accepted,
        unresolved,
        replayed_same: replays.len() - replay_mismatches.len(),
        ok: replay_mismatches.is_empty() && unresolved == 0 && refused == 0,
        replay_mismatches,
        refused,
    };
    std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
    if report.ok { Ok(()) } else { Err(format!("check failed: see {}", out.display()).into()) }
}

async fn settle(api: &Api, seed: &Seed, hours: i64) -> Result<()> {
    use reqwest::Method;
    let admin = api.login(&seed.admin_email, &seed.admin_password).await?;
    let clock = api.ok(Method::GET, "/v1/sandbox/clock", Some(&admin), None).await?;
    let now: DateTime<Utc> = field(&clock, "now")?.parse()?;
    api.ok(Method::POST, "/v1/sandbox/clock", Some(&admin), Some(&json!({"now": now + TimeDelta::hours(hours)})))
        .await?;
    let run = api.ok(Method::POST, "/v1/settlements/run", Some(&admin), None).await?;
    eprintln!("settle: clock moved {hours} h; settled {} hours of {} orders", run["hours"], run["orders"]);
    Ok(())
}

async fn trial_balance(api: &Api, seed: &Seed, out: &Path) -> Result<()> {
    let admin = api.login(&seed.admin_email, &seed.admin_password).await?;
    let balance = api.ok(reqwest::Method::GET, "/v1/reports/trial-balance", Some(&admin), None).await?;
    std::fs::write(out, serde_json::to_string_pretty(&balance)?)?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let outcome = async {
        let api = Api::new(&cli.base)?;
        match cli.command {
            Command::Seed { admin_email, admin_password, out } => seed(&api, admin_email, admin_password, &out).await,
            Command::Load { seed, workers, stop_file, max_seconds, events } => {
                let seed = read_seed(&seed)?;
                load(&api, &seed, workers, stop_file.as_deref(), Duration::from_secs(max_seconds), &events).await
            }
            Command::Check { seed, events, kill_at_ms, report, accepted_csv } => {
                check(&api, &read_seed(&seed)?, &events, kill_at_ms, &report, &accepted_csv).await
            }
            Command::Settle { seed, hours } => settle(&api, &read_seed(&seed)?, hours).await,
            Command::TrialBalance { seed, out } => trial_balance(&api, &read_seed(&seed)?, &out).await,
        }
    };
    if let Err(e) = outcome.await {
        eprintln!("drill_client: {e}");
        std::process::exit(1);
    }
}
