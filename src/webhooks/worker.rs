//! The webhook worker, started by `serve`: each tick it dispatches new events
//! into deliveries, then claims due deliveries and sends them, each in a task
//! of its own holding one of a bounded number of slots — so a slow or hostile
//! receiver holds at most its endpoint's share of slots for at most the
//! timeout, and every other endpoint's deliveries go on. [`run_once`] is one
//! round that waits for its sends (tests, and anyone driving it by hand).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::StreamExt;
use rand::Rng;
use reqwest::Url;
use serde::Serialize;
use uuid::Uuid;

use super::store::{self, Claimed};
use super::{Subscription, WebhookSettings, schedule, signing, url_rules, wall_now};
use crate::db::{DbPool, DbPoolError};
use crate::events::{self, EventHeader, EventType};

/// Events read from the outbox per dispatch transaction.
const DISPATCH_BATCH: i64 = 500;
/// The most of a receiver's answer that is read (kept in `last_error`).
const EXCERPT_BYTES: usize = 512;
/// The longest a host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("no database connection")]
    Pool(#[from] DbPoolError),
    #[error("database")]
    Database(#[from] diesel::result::Error),
}

/// How deliveries are sent.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryConfig {
    pub timeout: Duration,
    pub concurrency: usize,
    pub per_endpoint: usize,
    /// Sandbox mode: `http` and loopback receivers allowed.
    pub sandbox: bool,
}

impl DeliveryConfig {
    pub fn new(settings: &WebhookSettings, sandbox: bool) -> Self {
        DeliveryConfig {
            timeout: settings.timeout,
            concurrency: settings.concurrency.max(1),
            per_endpoint: settings.per_endpoint.max(1),
            sandbox,
        }
    }

    /// How long a claimed delivery is a worker's: longer than resolving and
    /// sending can take, so only a worker that died loses its lease.
    pub fn lease(&self) -> chrono::Duration {
        let longest_send = self.timeout.saturating_add(RESOLVE_TIMEOUT);
        let lease = longest_send.saturating_mul(2).saturating_add(Duration::from_secs(30));
        chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
    }
}

/// The (endpoint, event) pairs to deliver: each event to every endpoint that
/// receives it.
pub fn deliveries_for(events: &[EventHeader], endpoints: &[(Uuid, Subscription)]) -> Vec<(Uuid, Uuid)> {
    events
        .iter()
        .flat_map(|event| {
            endpoints
                .iter()
                .filter(|(_, s)| s.receives(event.event_type, &event.org_ids))
                .map(move |(endpoint, _)| (*endpoint, event.id))
        })
        .collect()
}

/// Turns every event the outbox has finished with, after the stored position,
/// into deliveries; returns how many were made. Each batch is one
/// transaction that locks the position, inserts the deliveries and moves the
/// position past the batch: a crash before the commit leaves the position
/// where it was, and the next dispatcher reads the same events again.
pub async fn dispatch(conn: &mut AsyncPgConnection) -> Result<usize, diesel::result::Error> {
    let mut made = 0;
    loop {
        let (read, new) = crate::db::transaction(conn, async |conn| {
            let position = store::lock_dispatch_position(conn).await?;
            let batch = events::headers_after(conn, position, DISPATCH_BATCH).await?;
            let Some(last) = batch.last() else { return Ok::<_, diesel::result::Error>((0, 0)) };
            let endpoints = store::active_subscriptions(conn).await?;
            let new = store::insert_deliveries(conn, &deliveries_for(&batch, &endpoints), wall_now()).await?;
            store::save_dispatch_position(conn, last.position()).await?;
            Ok((batch.len() as i64, new))
        })
        .await?;
        made += new;
        if read < DISPATCH_BATCH {
            return Ok(made);
        }
    }
}

/// The body every delivery sends.
#[derive(Serialize)]
struct Payload<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    event_type: EventType,
    occurred_at: DateTime<Utc>,
    data: &'a serde_json::Value,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded { status: u16 },
    Failed { status: Option<u16>, error: String },
}

fn failed(error: impl Into<String>) -> Outcome {
    Outcome::Failed { status: None, error: error.into() }
}

/// Where to connect: the URL's host checked again, and a host name resolved
/// now with every address it resolves to checked (so a name that has been
/// re-pointed at an internal address since registration is refused).
async fn resolve(url: &Url, sandbox: bool) -> Result<SocketAddr, String> {
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let checked = |ip: IpAddr, host: &str| {
        url_rules::check_address(ip, sandbox)
            .map(|()| SocketAddr::new(ip, port))
            .map_err(|range| format!("{host} resolves to {ip}, {}: not sent", range.describe()))
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => checked(IpAddr::V4(ip), &ip.to_string()),
        Some(url::Host::Ipv6(ip)) => checked(IpAddr::V6(ip), &ip.to_string()),
        Some(url::Host::Domain(name)) => {
            let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port)))
                .await
                .map_err(|_| format!("resolving {name} timed out"))?
                .map_err(|e| format!("could not resolve {name}: {e}"))?;
            let addresses: Vec<SocketAddr> = found.collect();
            let first = *addresses.first().ok_or_else(|| format!("{name} resolves to no address"))?;
            for address in &addresses {
                checked(address.ip(), name)?;
            }
            Ok(first)
        }
        None => Err("the URL has no host".into()),
    }
}

/// Sends one claimed delivery and says how it went. Never follows a
/// redirect, never uses a proxy, connects only to the address it checked,
/// and reads at most [`EXCERPT_BYTES`] of the answer.
pub async fn send(claimed: &Claimed, config: &DeliveryConfig) -> Outcome {
    let url = match url_rules::check_url(&claimed.url, config.sandbox) {
        Ok(url) => url,
        Err(refusal) => return failed(format!("the URL {refusal}: not sent")),
    };
    let address = match resolve(&url, config.sandbox).await {
        Ok(address) => address,
        Err(why) => return failed(why),
    };
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(concat!("gpuhour-webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(name) = url.domain() {
        client = client.resolve(name, address);
    }
    let client = match client.build() {
        Ok(client) => client,
        Err(e) => return failed(format!("could not build the HTTP client: {e}")),
    };
    let payload = Payload {
        id: claimed.event_id,
        event_type: claimed.event_type,
        occurred_at: claimed.occurred_at,
        data: &claimed.data,
    };
    let body = match serde_json::to_vec(&payload) {
        Ok(body) => body,
        Err(e) => return failed(format!("could not write the body: {e}")),
    };
    let secrets: Vec<&str> =
        std::iter::once(claimed.secret.as_str()).chain(claimed.previous_secret.as_deref()).collect();
    let signature = signing::signature_header(Utc::now().timestamp(), &body, &secrets);
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Gpuhour-Signature", signature)
        .header("Gpuhour-Event-Id", claimed.event_id.to_string())
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Outcome::Succeeded { status: response.status().as_u16() },
        Ok(mut response) => {
            let status = response.status();
            let mut excerpt = Vec::new();
            while excerpt.len() < EXCERPT_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - excerpt.len())])
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let excerpt = String::from_utf8_lossy(&excerpt).trim().to_string();
            let error = if excerpt.is_empty() {
                format!("the receiver answered {status}")
            } else {
                format!("the receiver answered {status}: {excerpt}")
            };
            Outcome::Failed { status: Some(status.as_u16()), error }
        }
        Err(e) if e.is_timeout() => failed(format!("no answer within {} s", config.timeout.as_secs_f32())),
        Err(e) if e.is_connect() => failed(format!("could not connect to {address}")),
        Err(e) => failed(format!("the request failed: {e}")),
    }
}

/// Sends one claimed delivery and records what happened: succeeded, due again
/// after the schedule's wait, or failed for good.
async fn attempt(
    pool: &DbPool,
    config: &DeliveryConfig,
    claimed: Claimed,
    round_now: DateTime<Utc>,
) -> Result<Outcome, WorkerError> {
    let outcome = send(&claimed, config).await;
    // The later of the round's time (tests drive it forward) and the time the send ended.
    let now = wall_now().max(round_now);
    let mut conn = pool.get().await?;
    match &outcome {
        Outcome::Succeeded { status } => store::record_success(&mut conn, claimed.delivery_id, *status, now).await?,
        Outcome::Failed { status, error } => {
            let wait = schedule::retry_delay(claimed.attempt, rand::rng().random());
            let retry_at =
                wait.and_then(|w| chrono::Duration::from_std(w).ok()).and_then(|w| now.checked_add_signed(w));
            store::record_failure(&mut conn, claimed.delivery_id, claimed.attempt, *status, error, retry_at).await?
        }
    }
    Ok(outcome)
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Deliveries made from new events.
    pub dispatched: usize,
    /// Deliveries sent, and how they went.
    pub succeeded: usize,
    pub failed: usize,
}

/// One round, as of `now` (or the wall clock, if later; tests pass a later
/// time to make retries due): dispatch, then claim what is due and send it all
/// (at most `concurrency` at once), waiting for every send to end.
pub async fn run_once(pool: &DbPool, config: &DeliveryConfig, now: DateTime<Utc>) -> Result<Round, WorkerError> {
    let mut conn = pool.get().await?;
    let dispatched = dispatch(&mut conn).await?;
    // Never earlier than the clock: what was dispatched a moment ago is due.
    let now = now.max(wall_now());
    let claimed =
        store::claim_due(&mut conn, now, config.concurrency as i64, config.per_endpoint as i64, config.lease()).await?;
    drop(conn);
    let outcomes: Vec<Result<Outcome, WorkerError>> = futures_util::stream::iter(claimed)
        .map(|c| attempt(pool, config, c, now))
        .buffer_unordered(config.concurrency)
        .collect()
        .await;
    let mut round = Round { dispatched, ..Round::default() };
    for outcome in outcomes {
        match outcome? {
            Outcome::Succeeded { .. } => round.succeeded += 1,
            Outcome::Failed { .. } => round.failed += 1,
        }
    }
    Ok(round)
}

/// The background worker: every `interval`, dispatch and hand due deliveries
/// to free slots; sends run on their own, so a tick never waits for one.
pub async fn run_worker(pool: DbPool, config: DeliveryConfig, interval: Duration) {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = tick(&pool, &config, &slots).await {
            tracing::warn!(error = ?e, "webhook round failed; retrying at the next tick");
        }
    }
}

async fn tick(pool: &DbPool, config: &DeliveryConfig, slots: &Arc<tokio::sync::Semaphore>) -> Result<(), WorkerError> {
    let mut conn = pool.get().await?;
    // Deliveries already made still go out if this dispatch fails.
    if let Err(e) = dispatch(&mut conn).await {
        tracing::warn!(error = ?e, "webhook dispatch failed; retrying at the next tick");
    }
    let free = slots.available_permits();
    if free == 0 {
        return Ok(());
    }
    let claimed =
        store::claim_due(&mut conn, wall_now(), free as i64, config.per_endpoint as i64, config.lease()).await?;
    drop(conn);
    for delivery in claimed {
        // Only this loop takes slots, and it claimed no more than were free.
        let Ok(slot) = slots.clone().acquire_owned().await else { return Ok(()) };
        let (pool, config) = (pool.clone(), *config);
        tokio::spawn(async move {
            let id = delivery.delivery_id;
            match attempt(&pool, &config, delivery, wall_now()).await {
                Ok(Outcome::Failed { error, .. }) => {
                    tracing::info!(delivery_id = %id, %error, "webhook delivery failed")
                }
                Ok(Outcome::Succeeded { .. }) => {}
                Err(e) => tracing::warn!(delivery_id = %id, error = ?e, "could not record a webhook delivery"),
            }
            drop(slot);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: EventType, orgs: &[Uuid]) -> EventHeader {
        EventHeader { seq: 1, id: Uuid::now_v7(), txid: 1, event_type, org_ids: orgs.to_vec() }
    }

    #[test]
    fn each_event_goes_to_every_endpoint_that_receives_it() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let endpoints = vec![
            (
                Uuid::from_u128(10),
                Subscription { org_id: a, sees_every_event: false, types: vec![EventType::OrderReserved] },
            ),
            (
                Uuid::from_u128(11),
                Subscription { org_id: b, sees_every_event: false, types: vec![EventType::OrderReserved] },
            ),
            (
                Uuid::from_u128(12),
                Subscription {
                    org_id: Uuid::from_u128(3),
                    sees_every_event: true,
                    types: vec![EventType::OrderReserved, EventType::ClaimPaid],
                },
            ),
        ];
        let events = vec![event(EventType::OrderReserved, &[a]), event(EventType::ClaimPaid, &[])];
        assert_eq!(
            deliveries_for(&events, &endpoints),
            vec![
                (Uuid::from_u128(10), events[0].id),
                (Uuid::from_u128(12), events[0].id),
                (Uuid::from_u128(12), events[1].id)
            ]
        );
    }

    #[tokio::test]
    async fn the_addresses_a_name_resolves_to_are_checked_at_delivery() {
        // What registration cannot see: a name that resolves to an internal
        // address when the delivery is made (here `localhost`, from the hosts file).
        let url = Url::parse("https://localhost:8443/hook").expect("url");
        let refused = resolve(&url, false).await.expect_err("loopback outside sandbox mode");
        assert!(refused.starts_with("localhost resolves to "), "{refused}");
        assert!(refused.ends_with(", a loopback address (127.0.0.0/8, ::1, localhost): not sent"), "{refused}");
        let allowed = resolve(&url, true).await.expect("loopback in sandbox mode");
        assert!(allowed.ip().is_loopback() && allowed.port() == 8443, "{allowed}");
        let literal = Url::parse("https://10.1.2.3/").expect("url");
        assert_eq!(
            resolve(&literal, true).await,
            Err("10.1.2.3 resolves to 10.1.2.3, a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16): not sent"
                .to_string())
        );
        let public = Url::parse("https://93.184.215.14/").expect("url");
        assert_eq!(resolve(&public, false).await, Ok("93.184.215.14:443".parse().expect("socket address")));
    }

    #[test]
    fn a_lease_outlasts_the_longest_send() {
        let config =
            DeliveryConfig { timeout: Duration::from_secs(10), concurrency: 4, per_endpoint: 2, sandbox: false };
        assert_eq!(config.lease(), chrono::Duration::seconds(60));
    }
}
