//! Webhooks (issue 12): organisations register endpoints; a background worker
//! turns every event of the outbox (`crate::events`) into one delivery per
//! endpoint that should receive it, and sends each delivery, signed, until the
//! receiver answers 2xx or the retry schedule runs out.
//!
//! - `url_rules`: where webhooks may be sent (SSRF), pure;
//! - `signing`: secrets and the `Gpuhour-Signature` header, pure;
//! - `schedule`: the retry schedule, pure;
//! - `store`: the tables, thin;
//! - `worker`: dispatching, claiming and sending;
//! - `routes`: the API.
//!
//! Webhooks run on the wall clock, as token expiry does: a signature's
//! timestamp is checked against the receiver's clock, and retries wait real
//! time, whatever the sandbox clock says.

pub mod routes;
pub mod schedule;
pub mod signing;
pub mod store;
pub mod url_rules;
pub mod worker;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::events::EventType;

/// `GPUHOUR_WEBHOOK_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `GPUHOUR_WEBHOOK_INTERVAL_MS`: how often the worker looks for events
    /// and due deliveries (default 1,000; 0 turns the worker off).
    pub interval: Option<Duration>,
    /// `GPUHOUR_WEBHOOK_TIMEOUT_SECONDS`: the longest one delivery may take,
    /// connecting to reading the answer (default 10).
    pub timeout: Duration,
    /// `GPUHOUR_WEBHOOK_CONCURRENCY`: deliveries one process sends at once (default 32).
    pub concurrency: usize,
    /// `GPUHOUR_WEBHOOK_PER_ENDPOINT`: deliveries one endpoint may have in
    /// flight at once (default 4), so a slow receiver holds at most this many
    /// of the process's slots.
    pub per_endpoint: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            interval: Some(Duration::from_secs(1)),
            timeout: Duration::from_secs(10),
            concurrency: 32,
            per_endpoint: 4,
        }
    }
}

/// Which events an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its organisation.
    pub org_id: Uuid,
    /// Finance's endpoints receive every organisation's events.
    pub sees_every_event: bool,
    pub types: Vec<EventType>,
}

impl Subscription {
    /// Whether an event of `event_type`, seen by `event_orgs`, goes to this
    /// endpoint: one of its types, and an event its organisation sees (the
    /// rule of `events::Reader`).
    pub fn receives(&self, event_type: EventType, event_orgs: &[Uuid]) -> bool {
        self.types.contains(&event_type) && (self.sees_every_event || event_orgs.contains(&self.org_id))
    }
}

/// Now, to the microsecond (what PostgreSQL stores reads back equal).
pub fn wall_now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_receives_its_types_of_the_events_its_organisation_sees() {
        let (tenant, provider) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let endpoint = Subscription {
            org_id: tenant,
            sees_every_event: false,
            types: vec![EventType::OrderReserved, EventType::OrderCancelled],
        };
        assert!(endpoint.receives(EventType::OrderReserved, &[tenant, provider]));
        assert!(!endpoint.receives(EventType::OrderReserved, &[provider]), "another organisation's event");
        assert!(!endpoint.receives(EventType::OrderStarted, &[tenant]), "a type it did not ask for");
        assert!(!endpoint.receives(EventType::OrderReserved, &[]), "an event only finance sees");
    }

    #[test]
    fn finance_endpoints_receive_every_organisations_events() {
        let finance =
            Subscription { org_id: Uuid::from_u128(9), sees_every_event: true, types: vec![EventType::PayoutCreated] };
        assert!(finance.receives(EventType::PayoutCreated, &[Uuid::from_u128(2)]));
        assert!(finance.receives(EventType::PayoutCreated, &[]));
        assert!(!finance.receives(EventType::ClaimPaid, &[]));
    }
}
