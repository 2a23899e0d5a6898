//! `GET /v1/events`: an organisation's events in order, from a cursor, with
//! long polling. Tenants and providers read their organisation's events;
//! finance and administrators (the operator's people) read every event.
//!
//! A long poll asks the outbox again every [`POLL_INTERVAL`] until an event
//! arrives or the wait ends, taking a pooled connection for each ask and
//! giving it back before sleeping: thirty seconds of waiting must not hold one
//! of the pool's few connections. Polling rather than `LISTEN/NOTIFY`: a
//! notification says a row was written, not that it is readable yet (it may
//! still sit above the oldest running transaction, see the module above), so
//! a listener would have to poll after it anyway; and `LISTEN` needs a
//! connection of its own per waiting process, outside the pool.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{EventRow, EventType, Position, Reader};
use crate::auth::Principal;
use crate::http::ApiError;
use crate::http::extract::Query;
use crate::http::pagination;
use crate::state::AppState;

/// How often a long poll asks the outbox again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The longest a caller may ask to wait, in seconds.
pub const MAX_WAIT_SECONDS: i64 = 30;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The `next_cursor` of an earlier answer; without it, from the first event.
    pub after: Option<String>,
    /// Comma-separated event types, e.g. `order.reserved,order.cancelled`; all types without it.
    pub types: Option<String>,
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    /// Seconds to wait when there is nothing new yet: 0 to 30, default 0.
    pub wait: Option<i64>,
}

/// One event: what happened to which subject, and the subject as the API
/// showed it at that moment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: Uuid,
    /// `order.reserved`, `order.started`, `order.completed`, `order.cancelled`,
    /// `order.credited`, `listing.paused`, `listing.closed`, `grant.created`,
    /// `grant.closed`, `grant.flagged`, `grant.reclaimed`, `claim.submitted`,
    /// `claim.paid` or `payout.created`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    /// The order, listing, grant, claim or payout.
    pub subject_id: Uuid,
    /// The subject's API view at the moment of the change.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of events and where to go on from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<EventView>,
    /// Always present: after the last event returned, or the cursor asked
    /// with when none was, so a client keeps polling with it.
    pub next_cursor: String,
}

/// Who reads what: finance and administrators everything, anyone else their
/// own organisation's events.
pub fn reader_for(principal: &Principal) -> Reader {
    if principal.is_finance() { Reader::Everything } else { Reader::Organisation(principal.org_id) }
}

/// The opaque cursor of a position in the outbox.
pub fn encode_cursor(position: Position) -> String {
    pagination::encode_cursor(&(position.txid, position.seq))
}

/// A cursor this route gave out, back to its position.
pub fn decode_cursor(raw: &str) -> Result<Position, ApiError> {
    let refused = || ApiError::invalid("after", "is not a cursor this route gave out");
    let (txid, seq): (i64, i64) = pagination::decode_cursor(raw).map_err(|_| refused())?;
    if txid < 0 || seq < 0 {
        return Err(refused());
    }
    Ok(Position { txid, seq })
}

/// `types=a,b`: each must be an event type; unknown ones are named.
pub fn parse_types(raw: Option<&str>) -> Result<Vec<EventType>, ApiError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    let mut types = Vec::new();
    let mut unknown = Vec::new();
    for name in raw.split(',').map(str::trim) {
        match name.parse::<EventType>() {
            Ok(t) if !types.contains(&t) => types.push(t),
            Ok(_) => {}
            Err(_) => unknown.push(format!("{name:?}")),
        }
    }
    if unknown.is_empty() {
        Ok(types)
    } else {
        Err(ApiError::invalid("types", format!("unknown event type {}", unknown.join(", "))))
    }
}

/// `wait`: 0 to 30 seconds, default 0.
pub fn wait_of(raw: Option<i64>) -> Result<Duration, ApiError> {
    match raw.unwrap_or(0) {
        s @ 0..=MAX_WAIT_SECONDS => Ok(Duration::from_secs(s.unsigned_abs())),
        _ => Err(ApiError::invalid("wait", format!("must be between 0 and {MAX_WAIT_SECONDS} seconds"))),
    }
}

fn event_view(row: EventRow) -> EventView {
    EventView {
        id: row.id,
        event_type: row.event_type,
        occurred_at: row.occurred_at,
        subject_id: row.subject_id,
        data: row.data,
    }
}

/// The page answering a read from `from` that found `rows`.
pub fn page(from: Position, rows: Vec<EventRow>) -> EventPage {
    let next = rows.last().map(EventRow::position).unwrap_or(from);
    EventPage { data: rows.into_iter().map(event_view).collect(), next_cursor: encode_cursor(next) }
}

/// Events after a cursor, oldest first: a tenant's or provider's
/// organisation's, or (finance, admin) every event. With `wait`, answers as
/// soon as an event arrives, or with none when the wait ends. Roles: any.
#[utoipa::path(tag = "events", params(EventQuery), security(("bearer" = [])), responses(
    (status = 200, body = EventPage),
    (status = 422, description = "An unknown type, a bad cursor, limit or wait", body = crate::http::problem::Problem),
))]
#[get("/v1/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let from = q.after.as_deref().map(decode_cursor).transpose()?.unwrap_or_default();
    let types = parse_types(q.types.as_deref())?;
    let limit = pagination::limit(q.limit)?;
    let wait = wait_of(q.wait)?;
    let reader = reader_for(&principal);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // A connection per ask, given back before sleeping.
        let rows = {
            let mut conn = state.pool.get().await?;
            super::after(&mut conn, reader, from, &types, limit).await?
        };
        let now = tokio::time::Instant::now();
        if !rows.is_empty() || now >= deadline {
            return Ok(HttpResponse::Ok().json(page(from, rows)));
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_events);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        let p = Position { txid: 7_000_123, seq: 42 };
        assert_eq!(decode_cursor(&encode_cursor(p)).ok(), Some(p));
        // The start of the outbox is a cursor like any other.
        assert_eq!(decode_cursor(&encode_cursor(Position::default())).ok(), Some(Position::default()));
        for bad in
            ["", "!!", "bm90IGpzb24", &pagination::encode_cursor(&(-1i64, 5i64)), &pagination::encode_cursor(&"x")]
        {
            let e = decode_cursor(bad).err().map(|e| (e.status.as_u16(), e.errors[0].field.clone()));
            assert_eq!(e, Some((422, "after".to_string())), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_read_keeps_the_callers_cursor() {
        let from = Position { txid: 10, seq: 3 };
        let p = page(from, Vec::new());
        assert!(p.data.is_empty());
        assert_eq!(decode_cursor(&p.next_cursor).ok(), Some(from));
    }

    #[test]
    fn types_are_checked_by_name() {
        assert_eq!(parse_types(None).ok(), Some(vec![]));
        assert_eq!(
            parse_types(Some("order.reserved, payout.created,order.reserved")).ok(),
            Some(vec![EventType::OrderReserved, EventType::PayoutCreated])
        );
        let e = parse_types(Some("order.reserved,order.shipped")).err().map(|e| e.errors[0].message.clone());
        assert_eq!(e.as_deref(), Some("unknown event type \"order.shipped\""));
    }

    #[test]
    fn waits_are_bounded() {
        assert_eq!(wait_of(None).ok(), Some(Duration::ZERO));
        assert_eq!(wait_of(Some(30)).ok(), Some(Duration::from_secs(30)));
        assert!(wait_of(Some(31)).is_err());
        assert!(wait_of(Some(-1)).is_err());
    }
}
