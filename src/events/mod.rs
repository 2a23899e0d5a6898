//! Events, from an outbox (issue 12): every state change another system must
//! act on writes one event row in the change's own transaction, so there is
//! no event without its change and no change without its event.
//!
//! Readers walk the outbox in `(txid, seq)` order and see only rows whose
//! writing transaction is below the oldest transaction still running
//! (`pg_snapshot_xmin`). A sequence number alone would not do: a transaction
//! that took seq 10 can commit after one that took seq 11, and a reader that
//! had moved past 11 would never see 10. Below the xmin line every writer has
//! finished, so what a reader has seen never gains a row behind its cursor.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int8, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::db::schema::events;
use crate::ledger::LedgerError;

pub mod routes;

crate::ledger::model::text_enum_sql! {
    /// What happened. The text is the event's `type` on the wire and in the table.
    pub enum EventType {
        OrderReserved => "order.reserved",
        OrderStarted => "order.started",
        OrderCompleted => "order.completed",
        OrderCancelled => "order.cancelled",
        OrderCredited => "order.credited",
        ListingPaused => "listing.paused",
        ListingClosed => "listing.closed",
        GrantCreated => "grant.created",
        GrantClosed => "grant.closed",
        GrantFlagged => "grant.flagged",
        GrantReclaimed => "grant.reclaimed",
        ClaimSubmitted => "claim.submitted",
        ClaimPaid => "claim.paid",
        PayoutCreated => "payout.created",
    }
}

/// An event to record, in the transaction of the change it reports.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    /// The order, listing, grant, claim or payout the event is about.
    pub subject_id: Uuid,
    /// The organisations that see it (besides finance, which sees all).
    pub org_ids: Vec<Uuid>,
    /// The subject as the API shows it, at the moment of the change: its
    /// JSON text, as the API's answer carries it (the order batch writes one
    /// text as both, instead of building the view twice).
    pub data: Box<RawValue>,
}

impl NewEvent {
    pub fn new(
        event_type: EventType,
        occurred_at: DateTime<Utc>,
        subject_id: Uuid,
        org_ids: Vec<Uuid>,
        data: Box<RawValue>,
    ) -> Self {
        NewEvent { event_type, occurred_at, subject_id, org_ids, data }
    }
}

/// An event's `data`: the subject's API view as JSON. The views are plain
/// structs of strings, numbers and ids, so this cannot fail in practice; if
/// it ever did, the change is refused rather than recorded without its event.
pub fn view_data<T: Serialize + ?Sized>(view: &T) -> Result<Box<RawValue>, LedgerError> {
    serde_json::value::to_raw_value(view).map_err(not_serialised)
}

/// [`view_data`] as a JSON value, for data assembled from more than one view.
pub fn view_value<T: Serialize + ?Sized>(view: &T) -> Result<serde_json::Value, LedgerError> {
    serde_json::to_value(view).map_err(not_serialised)
}

fn not_serialised(e: serde_json::Error) -> LedgerError {
    LedgerError::Corrupt(format!("an event's data did not serialise: {e}"))
}

/// A stored event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub seq: i64,
    pub id: Uuid,
    pub txid: i64,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub subject_id: Uuid,
    pub org_ids: Vec<Uuid>,
    pub data: serde_json::Value,
}

impl EventRow {
    /// Where a reader that has seen this event goes on from.
    pub fn position(&self) -> Position {
        Position { txid: self.txid, seq: self.seq }
    }
}

/// A place in the outbox: every event at or before it has been seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub txid: i64,
    pub seq: i64,
}

/// Records `batch` in the caller's transaction, in one statement.
pub async fn record_many(conn: &mut AsyncPgConnection, batch: &[NewEvent]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Text, Timestamptz, Uuid as SqlUuid};
    if batch.is_empty() {
        return Ok(());
    }
    // One statement whatever the batch's size, so each connection prepares it
    // once. Each event's organisations travel as an array literal (`{a,b}`):
    // arrays of arrays must be rectangular, and these are not.
    let org_ids: Vec<String> = batch
        .iter()
        .map(|e| format!("{{{}}}", e.org_ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    crate::db::prepared(
        "INSERT INTO events (id, type, occurred_at, subject_id, org_ids, data) \
         SELECT v.id, v.type, v.occurred_at, v.subject_id, v.org_ids::uuid[], v.data::jsonb \
         FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::uuid[], $5::text[], $6::text[]) \
              WITH ORDINALITY AS v(id, type, occurred_at, subject_id, org_ids, data, n) \
         ORDER BY v.n",
    )
    .bind::<Array<SqlUuid>, _>(batch.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(batch.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(batch.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(batch.iter().map(|e| e.subject_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(org_ids)
    .bind::<Array<Text>, _>(batch.iter().map(|e| e.data.get()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records one event in the caller's transaction.
pub async fn record(conn: &mut AsyncPgConnection, event: NewEvent) -> QueryResult<()> {
    record_many(conn, std::slice::from_ref(&event)).await
}

/// Who reads: one organisation's events, or every event (finance).
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    Organisation(Uuid),
    Everything,
}

/// The events after the position `($1, $2)` whose writers have all finished
/// (below the xmin line): what every reader of the outbox may see.
const FINISHED_AFTER: &str = "(txid, seq) > ($1, $2) AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// What the webhook dispatcher needs of an event to choose its receivers:
/// no `data`, which it does not send (a delivery reads it when it is sent).
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct EventHeader {
    #[diesel(sql_type = Int8)]
    pub seq: i64,
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Int8)]
    pub txid: i64,
    #[diesel(sql_type = Text)]
    pub event_type: EventType,
    #[diesel(sql_type = Array<SqlUuid>)]
    pub org_ids: Vec<Uuid>,
}

impl EventHeader {
    /// Where a reader that has seen this event goes on from.
    pub fn position(&self) -> Position {
        Position { txid: self.txid, seq: self.seq }
    }
}

/// [`after`] for every event and every type, without the events' `data`:
/// reading and parsing each event's JSON only to choose its receivers took about
/// 7 % of the service's CPU while orders were placed (docs/performance.md).
pub async fn headers_after(conn: &mut AsyncPgConnection, after: Position, limit: i64) -> QueryResult<Vec<EventHeader>> {
    diesel::sql_query(format!(
        "SELECT seq, id, txid, type AS event_type, org_ids FROM events WHERE {FINISHED_AFTER} ORDER BY txid, seq LIMIT $3"
    ))
    .bind::<Int8, _>(after.txid)
    .bind::<Int8, _>(after.seq)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// Up to `limit` events after `after` that every writer has finished with,
/// oldest first, of the given types (all types if empty).
pub async fn after(
    conn: &mut AsyncPgConnection,
    reader: Reader,
    after: Position,
    types: &[EventType],
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    let type_texts: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    let org = match reader {
        Reader::Organisation(org) => Some(org),
        Reader::Everything => None,
    };
    diesel::sql_query(format!(
        "SELECT seq, id, txid, type AS event_type, occurred_at, subject_id, org_ids, data
         FROM events
         WHERE {FINISHED_AFTER}
           AND (cardinality($3::text[]) = 0 OR type = ANY($3))
           AND ($4::uuid IS NULL OR org_ids @> ARRAY[$4::uuid])
         ORDER BY txid, seq
         LIMIT $5"
    ))
    .bind::<Int8, _>(after.txid)
    .bind::<Int8, _>(after.seq)
    .bind::<Array<Text>, _>(type_texts)
    .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(org)
    .bind::<Int8, _>(limit)
    .load::<EventRowByName>(conn)
    .await
    .map(|rows| rows.into_iter().map(EventRow::from).collect())
}

#[derive(QueryableByName)]
struct EventRowByName {
    #[diesel(sql_type = Int8)]
    seq: i64,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Int8)]
    txid: i64,
    #[diesel(sql_type = Text)]
    event_type: EventType,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    occurred_at: DateTime<Utc>,
    #[diesel(sql_type = SqlUuid)]
    subject_id: Uuid,
    #[diesel(sql_type = Array<SqlUuid>)]
    org_ids: Vec<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    data: serde_json::Value,
}

impl From<EventRowByName> for EventRow {
    fn from(r: EventRowByName) -> Self {
        EventRow {
            seq: r.seq,
            id: r.id,
            txid: r.txid,
            event_type: r.event_type,
            occurred_at: r.occurred_at,
            subject_id: r.subject_id,
            org_ids: r.org_ids,
            data: r.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_back_as_written() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
            assert_eq!(serde_json::to_value(t).ok(), Some(serde_json::Value::String(t.as_str().to_string())));
        }
        assert!("order.shipped".parse::<EventType>().is_err());
    }

    #[test]
    fn positions_order_by_transaction_then_sequence() {
        let late_commit = Position { txid: 100, seq: 20 };
        let early_seq_later_tx = Position { txid: 105, seq: 15 };
        assert!(late_commit < early_seq_later_tx);
    }
}
