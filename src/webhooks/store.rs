//! The webhook tables: endpoints, deliveries and the dispatcher's position.
//! Every function runs in the caller's connection (and transaction, if any).

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Int4, Int8, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension, QueryResult, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::OrgId;
use crate::events::{EventType, Position};
use crate::ledger::model::text_enum_sql;

text_enum_sql! {
    /// An endpoint receives deliveries while active; disabled is for good.
    pub enum EndpointStatus {
        Active => "active",
        Disabled => "disabled",
    }
}

text_enum_sql! {
    /// A delivery is pending until an attempt succeeds or its attempts run out.
    pub enum DeliveryStatus {
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

/// An endpoint as stored.
#[derive(Debug, Clone, QueryableByName)]
pub struct EndpointRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub org_id: Uuid,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Array<Text>)]
    pub types: Vec<EventType>,
    #[diesel(sql_type = Nullable<Text>)]
    pub description: Option<String>,
    #[diesel(sql_type = Bool)]
    pub sees_every_event: bool,
    #[diesel(sql_type = Text)]
    pub secret: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_secret: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub secret_rotated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    pub status: EndpointStatus,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub disabled_at: Option<DateTime<Utc>>,
}

impl EndpointRow {
    pub fn is_active(&self) -> bool {
        self.status == EndpointStatus::Active
    }
}

const ENDPOINT_COLUMNS: &str = "id, org_id, url, types, description, sees_every_event, secret, previous_secret, \
     previous_secret_expires_at, secret_rotated_at, status, created_at, disabled_at";

/// What a new endpoint is made of.
pub struct NewEndpoint<'a> {
    pub org_id: Uuid,
    pub url: &'a str,
    pub types: &'a [EventType],
    pub description: Option<&'a str>,
    pub sees_every_event: bool,
    pub secret: &'a str,
    pub now: DateTime<Utc>,
}

pub async fn insert_endpoint(conn: &mut AsyncPgConnection, new: NewEndpoint<'_>) -> QueryResult<EndpointRow> {
    diesel::sql_query(format!(
        "INSERT INTO webhook_endpoints (id, org_id, url, types, description, sees_every_event, secret, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8)
         RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind::<SqlUuid, _>(Uuid::now_v7())
    .bind::<SqlUuid, _>(new.org_id)
    .bind::<Text, _>(new.url)
    .bind::<Array<Text>, _>(new.types)
    .bind::<Nullable<Text>, _>(new.description)
    .bind::<Bool, _>(new.sees_every_event)
    .bind::<Text, _>(new.secret)
    .bind::<Timestamptz, _>(new.now)
    .get_result(conn)
    .await
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = Int8)]
    n: i64,
}

/// How many active endpoints `org` has, counted under a lock on the
/// organisation's row so two registrations cannot both pass the limit.
pub async fn lock_and_count_active(conn: &mut AsyncPgConnection, org: Uuid) -> QueryResult<i64> {
    diesel::sql_query("SELECT 1 FROM organisations WHERE id = $1 FOR NO KEY UPDATE")
        .bind::<SqlUuid, _>(org)
        .execute(conn)
        .await?;
    let row: Count =
        diesel::sql_query("SELECT count(*) AS n FROM webhook_endpoints WHERE org_id = $1 AND status = 'active'")
            .bind::<SqlUuid, _>(org)
            .get_result(conn)
            .await?;
    Ok(row.n)
}

/// `org`'s endpoint `id` (another organisation's is not found), locked when
/// `for_update`.
pub async fn endpoint(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: Uuid,
    for_update: bool,
) -> QueryResult<Option<EndpointRow>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    diesel::sql_query(format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND org_id = $2{lock}"))
        .bind::<SqlUuid, _>(id)
        .bind::<SqlUuid, _>(org.0)
        .get_result(conn)
        .await
        .optional()
}

/// `org`'s endpoints after `after`, oldest first, `limit` of them.
pub async fn endpoints(
    conn: &mut AsyncPgConnection,
    org: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<EndpointRow>> {
    diesel::sql_query(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
         WHERE org_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind::<SqlUuid, _>(org)
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// Disables an endpoint; its pending deliveries fail (nothing more is sent).
pub async fn disable(conn: &mut AsyncPgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<EndpointRow> {
    diesel::sql_query(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, leased_until = NULL,
             last_error = 'the endpoint was disabled'
         WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await?;
    diesel::sql_query(format!(
        "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = $2 WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await
}

/// Replaces the secret; `previous` (the old secret and when it stops
/// signing) keeps signing beside it, or nothing does.
pub async fn rotate_secret(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    secret: &str,
    previous: Option<(&str, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> QueryResult<EndpointRow> {
    diesel::sql_query(format!(
        "UPDATE webhook_endpoints SET secret = $2, previous_secret = $3, previous_secret_expires_at = $4,
             secret_rotated_at = $5
         WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(secret)
    .bind::<Nullable<Text>, _>(previous.map(|p| p.0))
    .bind::<Nullable<Timestamptz>, _>(previous.map(|p| p.1))
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, QueryableByName)]
pub struct DeliveryRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: EventType,
    #[diesel(sql_type = Text)]
    pub status: DeliveryStatus,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub last_status_code: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub succeeded_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.event_id, ev.type AS event_type, d.status, d.attempts, \
     d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error, d.created_at, d.succeeded_at";

/// The deliveries to `org`'s endpoints after `after`, oldest first.
pub async fn deliveries(
    conn: &mut AsyncPgConnection,
    org: Uuid,
    endpoint_id: Option<Uuid>,
    status: Option<DeliveryStatus>,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    diesel::sql_query(format!(
        "SELECT {DELIVERY_COLUMNS}
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN events ev ON ev.id = d.event_id
         WHERE e.org_id = $1
           AND ($2::uuid IS NULL OR d.endpoint_id = $2)
           AND ($3::text IS NULL OR d.status = $3)
           AND ($4::uuid IS NULL OR d.id > $4)
         ORDER BY d.id LIMIT $5"
    ))
    .bind::<SqlUuid, _>(org)
    .bind::<Nullable<SqlUuid>, _>(endpoint_id)
    .bind::<Nullable<Text>, _>(status)
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<Int8, _>(limit)
    .load(conn)
    .await
}

/// `org`'s delivery `id`, locked, with whether its endpoint is active.
pub async fn delivery_for_update(
    conn: &mut AsyncPgConnection,
    org: OrgId,
    id: Uuid,
) -> QueryResult<Option<(DeliveryRow, bool)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        delivery: DeliveryRow,
        #[diesel(sql_type = Bool)]
        endpoint_active: bool,
    }
    let row: Option<Row> = diesel::sql_query(format!(
        "SELECT {DELIVERY_COLUMNS}, e.status = 'active' AS endpoint_active
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         JOIN events ev ON ev.id = d.event_id
         WHERE d.id = $1 AND e.org_id = $2
         FOR UPDATE OF d"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(org.0)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r.delivery, r.endpoint_active)))
}

/// Makes a failed delivery due now, for one more attempt.
pub async fn requeue(conn: &mut AsyncPgConnection, id: Uuid, now: DateTime<Utc>) -> QueryResult<DeliveryRow> {
    diesel::sql_query(format!(
        "WITH d AS (
             UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, leased_until = NULL
             WHERE id = $1 RETURNING *
         )
         SELECT {DELIVERY_COLUMNS} FROM d JOIN events ev ON ev.id = d.event_id"
    ))
    .bind::<SqlUuid, _>(id)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
    .await
}

#[derive(QueryableByName)]
struct PositionRow {
    #[diesel(sql_type = Int8)]
    txid: i64,
    #[diesel(sql_type = Int8)]
    seq: i64,
}

/// The dispatcher's position, locked until the caller's transaction ends: a
/// second dispatcher waits here, then goes on from where the first stopped.
pub async fn lock_dispatch_position(conn: &mut AsyncPgConnection) -> QueryResult<Position> {
    let row: PositionRow =
        diesel::sql_query("SELECT txid, seq FROM webhook_dispatch_position FOR UPDATE").get_result(conn).await?;
    Ok(Position { txid: row.txid, seq: row.seq })
}

pub async fn save_dispatch_position(conn: &mut AsyncPgConnection, position: Position) -> QueryResult<()> {
    diesel::sql_query("UPDATE webhook_dispatch_position SET txid = $1, seq = $2")
        .bind::<Int8, _>(position.txid)
        .bind::<Int8, _>(position.seq)
        .execute(conn)
        .await?;
    Ok(())
}

/// Every active endpoint's id and subscription.
pub async fn active_subscriptions(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(Uuid, super::Subscription)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = SqlUuid)]
        org_id: Uuid,
        #[diesel(sql_type = Bool)]
        sees_every_event: bool,
        #[diesel(sql_type = Array<Text>)]
        types: Vec<EventType>,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT id, org_id, sees_every_event, types FROM webhook_endpoints WHERE status = 'active'")
            .load(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, super::Subscription { org_id: r.org_id, sees_every_event: r.sees_every_event, types: r.types }))
        .collect())
}

/// Inserts a pending delivery, due `now`, for each (endpoint, event) pair not
/// already delivered to. Returns how many were new.
pub async fn insert_deliveries(
    conn: &mut AsyncPgConnection,
    pairs: &[(Uuid, Uuid)],
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    if pairs.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = pairs.iter().map(|_| Uuid::now_v7()).collect();
    let endpoints: Vec<Uuid> = pairs.iter().map(|p| p.0).collect();
    let events: Vec<Uuid> = pairs.iter().map(|p| p.1).collect();
    diesel::sql_query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, next_attempt_at, created_at)
         SELECT id, endpoint_id, event_id, 'pending', 0, $4, $4
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS t (id, endpoint_id, event_id)
         ON CONFLICT (endpoint_id, event_id) DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<SqlUuid>, _>(endpoints)
    .bind::<Array<SqlUuid>, _>(events)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await
}

/// A delivery a worker has claimed: what to send, where, and with which keys.
#[derive(Debug, Clone, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    pub delivery_id: Uuid,
    /// The attempt this is (1 for the first send).
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: Uuid,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub secret: String,
    /// The secret a rotation replaced, while its grace period lasts.
    #[diesel(sql_type = Nullable<Text>)]
    pub previous_secret: Option<String>,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: EventType,
    #[diesel(sql_type = Timestamptz)]
    pub occurred_at: DateTime<Utc>,
    #[diesel(sql_type = Jsonb)]
    pub data: serde_json::Value,
}

/// Claims up to `limit` due deliveries of active endpoints, at most
/// `per_endpoint` in flight per endpoint (counting those other workers hold),
/// and leases them until `now + lease`: attempts + 1, not due again before
/// the lease ends. One statement, so it commits before anything is sent;
/// `SKIP LOCKED` lets concurrent workers claim different rows, and a row
/// another worker claimed a moment ago is no longer due.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: i64,
    per_endpoint: i64,
    lease: chrono::Duration,
) -> QueryResult<Vec<Claimed>> {
    diesel::sql_query(
        "WITH in_flight AS (
             SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
             WHERE status = 'pending' AND leased_until > $1 GROUP BY endpoint_id
         ), candidates AS (
             SELECT id, next_attempt_at FROM (
                 SELECT d.id, d.next_attempt_at,
                        coalesce(f.n, 0)
                          + row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS place
                 FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.status = 'active'
                 LEFT JOIN in_flight f ON f.endpoint_id = d.endpoint_id
                 WHERE d.status = 'pending' AND d.next_attempt_at <= $1
             ) ranked
             WHERE place <= $3
             ORDER BY next_attempt_at, id
             LIMIT $2
         ), claimed AS (
             SELECT d.id FROM webhook_deliveries d
             WHERE d.id IN (SELECT id FROM candidates) AND d.status = 'pending' AND d.next_attempt_at <= $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE webhook_deliveries d
         SET attempts = d.attempts + 1, next_attempt_at = $1 + $4 * interval '1 millisecond',
             leased_until = $1 + $4 * interval '1 millisecond', last_attempt_at = $1
         FROM claimed c, webhook_endpoints e, events ev
         WHERE d.id = c.id AND e.id = d.endpoint_id AND ev.id = d.event_id
         RETURNING d.id AS delivery_id, d.attempts AS attempt, e.id AS endpoint_id, e.url, e.secret,
             CASE WHEN e.previous_secret_expires_at > $1 THEN e.previous_secret END AS previous_secret,
             ev.id AS event_id, ev.type AS event_type, ev.occurred_at, ev.data",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Int8, _>(limit)
    .bind::<Int8, _>(per_endpoint)
    .bind::<Int8, _>(lease.num_milliseconds())
    .load(conn)
    .await
}

/// Records a 2xx: the delivery succeeded and is never sent again. Whoever
/// holds the lease now, success wins.
pub async fn record_success(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status_code: u16,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE webhook_deliveries SET status = 'succeeded', succeeded_at = $3, next_attempt_at = NULL,
             leased_until = NULL, last_status_code = $2, last_error = NULL
         WHERE id = $1 AND status = 'pending'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Int4, _>(i32::from(status_code))
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt: due again at `retry_at`, or failed for good when
/// `None`. Only if the delivery is still on the attempt this worker made (a
/// worker whose lease ran out and was overtaken leaves it to the newer one).
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempt: i32,
    status_code: Option<u16>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE webhook_deliveries
         SET status = CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
             next_attempt_at = $5, leased_until = NULL, last_status_code = $3, last_error = $4
         WHERE id = $1 AND attempts = $2 AND status = 'pending'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Int4, _>(attempt)
    .bind::<Nullable<Int4>, _>(status_code.map(i32::from))
    .bind::<Text, _>(error)
    .bind::<Nullable<Timestamptz>, _>(retry_at)
    .execute(conn)
    .await?;
    Ok(())
}
