//! The load generator of BENCH.md's `orders` scenario.
//!
//! Reads the market that `bench/orders.py` seeded (tenants with their token and
//! grant, listings with their window), then runs C concurrent clients for S
//! seconds, each on its own keep-alive HTTP/1.1 connection, each looping: pick
//! a random tenant and listing, 1–8 GPUs, 1–24 hours at a random whole-hour
//! start inside the listing's window, and `POST /v1/orders` with the tenant's
//! token, the tenant's grant and a fresh `Idempotency-Key`. Prints one JSON
//! object: requests, accepted, rejections by problem `code`, 5xx, transport
//! errors and latency percentiles.
//!
//! It runs on one thread (a current-thread runtime): the point is to leave the
//! cores to the service and PostgreSQL, which an interpreted client loop did not.
//!
//! ```text
//! gpuhour-loadgen --market market.json --url http://127.0.0.1:18181 [--url ...]
//!                 [--clients 64] [--seconds 30]
//! ```
//! With several `--url`s the clients are dealt out among them in turn.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Deserialize;
use tokio::net::TcpStream;

#[derive(Deserialize)]
struct Market {
    tenants: Vec<Tenant>,
    listings: Vec<Listing>,
}

#[derive(Deserialize)]
struct Tenant {
    token: String,
    grant_id: String,
}

#[derive(Deserialize)]
struct Listing {
    id: String,
    available_from: DateTime<Utc>,
    available_until: DateTime<Utc>,
}

struct Options {
    market: String,
    urls: Vec<String>,
    clients: usize,
    seconds: u64,
}

/// What one client saw; merged into the report at the end.
#[derive(Default)]
struct Tally {
    accepted: u64,
    rejections: BTreeMap<String, u64>,
    server_errors: BTreeMap<String, u64>,
    transport_errors: u64,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        for (code, n) in other.rejections {
            *self.rejections.entry(code).or_default() += n;
        }
        for (code, n) in other.server_errors {
            *self.server_errors.entry(code).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        self.latencies_us.extend(other.latencies_us);
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options { market: String::new(), urls: Vec::new(), clients: 64, seconds: 30 };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--market" => options.market = value,
            "--url" => options.urls.push(value),
            "--clients" => options.clients = value.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seconds" => options.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.market.is_empty() || options.urls.is_empty() || options.clients == 0 {
        return Err("usage: gpuhour-loadgen --market FILE --url URL [--url URL] [--clients C] [--seconds S]".into());
    }
    Ok(options)
}

/// `http://host:port` → (`host:port` to connect to, `host:port` for the Host header).
fn authority(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs"))?;
    Ok(rest.trim_end_matches('/').to_string())
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
    // Small requests and answers: don't let Nagle hold them back.
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One order as BENCH.md describes it, as the JSON body.
fn random_order(rng: &mut impl Rng, market: &Market) -> (usize, Vec<u8>) {
    let tenant = rng.random_range(0..market.tenants.len());
    let listing = &market.listings[rng.random_range(0..market.listings.len())];
    let gpus: u32 = rng.random_range(1..=8);
    let hours: i64 = rng.random_range(1..=24);
    let window_hours = (listing.available_until - listing.available_from).num_hours();
    let start_hour = rng.random_range(0..=(window_hours - hours).max(0));
    let start = listing.available_from + TimeDelta::hours(start_hour);
    let end = start + TimeDelta::hours(hours);
    let body = serde_json::json!({
        "listing_id": listing.id,
        "gpus": gpus,
        "start": start.to_rfc3339_opts(SecondsFormat::Secs, true),
        "end": end.to_rfc3339_opts(SecondsFormat::Secs, true),
        "grant_id": market.tenants[tenant].grant_id,
    });
    (tenant, body.to_string().into_bytes())
}

/// The problem `code` of an error answer, or the status when there is none.
fn problem_code(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("http-{}", status.as_u16()))
}

async fn client(market: &Market, authority: String, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut rng = rand::rng();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < deadline {
        let mut connection = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(&authority).await {
                Ok(s) => s,
                Err(_) => {
                    tally.transport_errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (tenant, body) = random_order(&mut rng, market);
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/orders")
            .header("host", &authority)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", market.tenants[tenant].token))
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .body(Full::new(Bytes::from(body)));
        let Ok(request) = request else {
            tally.transport_errors += 1;
            continue;
        };
        let began = Instant::now();
        let answer = match connection.ready().await {
            Ok(()) => connection.send_request(request).await,
            Err(e) => Err(e),
        };
        let response = match answer {
            Ok(r) => r,
            Err(_) => {
                tally.transport_errors += 1;
                continue; // the connection is dropped; the next turn opens a new one
            }
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                tally.transport_errors += 1;
                continue;
            }
        };
        tally.latencies_us.push(began.elapsed().as_micros() as u64);
        if status == StatusCode::CREATED {
            tally.accepted += 1;
        } else if status.is_server_error() {
            *tally.server_errors.entry(problem_code(status, &body)).or_default() += 1;
        } else {
            *tally.rejections.entry(problem_code(status, &body)).or_default() += 1;
        }
        sender = Some(connection);
    }
    tally
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let index = ((p * sorted_us.len() as f64) as usize).min(sorted_us.len() - 1);
    (sorted_us[index] as f64 / 100.0).round() / 10.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let market: Market = match std::fs::read(&options.market)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{}: {e}", options.market);
            return ExitCode::from(2);
        }
    };
    if market.tenants.is_empty() || market.listings.is_empty() {
        eprintln!("{}: no tenants or no listings", options.market);
        return ExitCode::from(2);
    }
    let mut authorities = Vec::new();
    for url in &options.urls {
        match authority(url) {
            Ok(a) => authorities.push(a),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }

    // The clients borrow the market for the whole run: leak it to get 'static.
    let market: &'static Market = Box::leak(Box::new(market));
    let began = Instant::now();
    let deadline = began + Duration::from_secs(options.seconds);
    let local = tokio::task::LocalSet::new();
    let tally = local
        .run_until(async {
            let handles: Vec<_> = (0..options.clients)
                .map(|i| {
                    let authority = authorities[i % authorities.len()].clone();
                    tokio::task::spawn_local(client(market, authority, deadline))
                })
                .collect();
            let mut tally = Tally::default();
            for handle in handles {
                match handle.await {
                    Ok(t) => tally.merge(t),
                    Err(_) => tally.transport_errors += 1,
                }
            }
            tally
        })
        .await;
    let elapsed = began.elapsed().as_secs_f64();

    let mut latencies = tally.latencies_us;
    latencies.sort_unstable();
    let server_error_count: u64 = tally.server_errors.values().sum();
    let report = serde_json::json!({
        "clients": options.clients,
        "urls": options.urls,
        "elapsed_seconds": (elapsed * 1000.0).round() / 1000.0,
        "requests": latencies.len(),
        "accepted": tally.accepted,
        "accepted_per_second": (tally.accepted as f64 / elapsed * 10.0).round() / 10.0,
        "rejections": tally.rejections,
        "server_errors": server_error_count,
        "server_error_codes": tally.server_errors,
        "transport_errors": tally.transport_errors,
        "latency_ms": {
            "p50": percentile_ms(&latencies, 0.50),
            "p95": percentile_ms(&latencies, 0.95),
            "p99": percentile_ms(&latencies, 0.99),
            "max": percentile_ms(&latencies, 1.0),
        },
    });
    println!("{report}");
    ExitCode::SUCCESS
}
