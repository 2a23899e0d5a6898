//! `Idempotency-Key` (SPEC section 7).
//!
//! The first successful response to a key is stored in the same transaction as
//! the effect it describes, so the effect and its record commit together or not
//! at all. Requests with one key are serialised by a transaction-scoped advisory
//! lock: a racing duplicate waits for the first to commit, then finds its record
//! and replays it. A failed request stores nothing (its transaction rolled back),
//! so retrying it runs it again.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use crate::audit::WriteContext;
use crate::db::DbPool;
use crate::db::schema::idempotency_keys;

pub const HEADER: &str = "Idempotency-Key";

/// The optional `Idempotency-Key` header, validated.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.headers().get(HEADER) {
            None => Ok(IdempotencyKey(None)),
            Some(value) => match value.to_str() {
                Ok(key) if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) => {
                    Ok(IdempotencyKey(Some(key.to_string())))
                }
                _ => Err(ApiError::invalid(HEADER, "must be 1 to 255 visible ASCII characters")),
            },
        };
        std::future::ready(result)
    }
}

/// A request's fingerprint: method, path with query, and body.
pub fn fingerprint(req: &HttpRequest, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("").as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher.finalize().to_vec()
}

/// The `id` of a response, if it has one: what the audit record points at.
#[derive(serde::Deserialize)]
struct ResourceId {
    id: Option<uuid::Uuid>,
}

/// A write's answer: its own, or the first answer to its key, replayed.
#[derive(Debug, Clone)]
pub enum Outcome {
    Fresh(StatusCode, String),
    Replay(StatusCode, String),
}

/// Serialises requests with one key: a transaction-scoped or session-scoped
/// advisory lock on the (caller, key) pair. Both scopes share one lock space.
fn lock_sql(session: bool) -> &'static str {
    if session {
        "SELECT pg_advisory_lock(hashtextextended($1, 0))"
    } else {
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
    }
}

/// Takes the key's lock and looks for the first answer to it: `Some` replays
/// it (or refuses a different request under the same key), `None` means the
/// request is the first and runs.
async fn lock_and_find(
    conn: &mut AsyncPgConnection,
    scope: &str,
    key: &str,
    request_hash: &[u8],
    session: bool,
) -> Result<Option<Outcome>, ApiError> {
    diesel::sql_query(lock_sql(session)).bind::<Text, _>(format!("{scope}\u{1f}{key}")).execute(conn).await?;
    let stored: Option<(Vec<u8>, i16, String)> = idempotency_keys::table
        .find((scope, key))
        .select((idempotency_keys::request_hash, idempotency_keys::response_status, idempotency_keys::response_body))
        .first(conn)
        .await
        .optional()?;
    match stored {
        None => Ok(None),
        Some((hash, _, _)) if hash != request_hash => Err(key_reused()),
        Some((_, stored_status, body)) => {
            let status = StatusCode::from_u16(stored_status as u16).unwrap_or(StatusCode::OK);
            Ok(Some(Outcome::Replay(status, body)))
        }
    }
}

/// The refusal of a key used before for a different request.
fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        crate::http::ProblemCode::IdempotencyKeyReused,
        "this Idempotency-Key was used for a different request; use a new key",
    )
}

/// One write of a batch (the order group commit): its audit context, key and
/// fingerprint, as [`run`] takes them one at a time.
#[derive(Debug, Clone)]
pub struct BatchedWrite {
    pub ctx: WriteContext,
    pub key: Option<String>,
    pub fingerprint: Vec<u8>,
}

impl BatchedWrite {
    /// The (scope, key) pair a key is stored under; `None` without a key.
    pub fn scoped_key(&self) -> Option<(String, String)> {
        self.key.as_ref().map(|k| (self.ctx.idempotency_scope(), k.clone()))
    }
}

/// [`lock_and_find`] for a batch, in two statements: takes every key's lock
/// (in one order, so two batches cannot deadlock) and reads the first answers.
/// One element per write: `None` runs it; `Some` replays or refuses it. A
/// batch must not hold one key twice (the batcher defers the repeat).
pub async fn lock_and_find_many(
    conn: &mut AsyncPgConnection,
    writes: &[&BatchedWrite],
) -> Result<Vec<Option<Result<Outcome, ApiError>>>, ApiError> {
    use diesel::sql_types::{Array, Bytea, Int2};
    let keyed: Vec<(usize, (String, String))> =
        writes.iter().enumerate().filter_map(|(i, w)| w.scoped_key().map(|k| (i, k))).collect();
    let mut found: Vec<Option<Result<Outcome, ApiError>>> = writes.iter().map(|_| None).collect();
    if keyed.is_empty() {
        return Ok(found);
    }
    let mut lock_names: Vec<String> = keyed.iter().map(|(_, (scope, key))| format!("{scope}\u{1f}{key}")).collect();
    lock_names.sort_unstable();
    crate::db::prepared(
        "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) \
         FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k OFFSET 0) AS sorted",
    )
    .bind::<Array<Text>, _>(lock_names)
    .execute(conn)
    .await?;
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = Text)]
        scope: String,
        #[diesel(sql_type = Text)]
        key: String,
        #[diesel(sql_type = Bytea)]
        request_hash: Vec<u8>,
        #[diesel(sql_type = Int2)]
        response_status: i16,
        #[diesel(sql_type = Text)]
        response_body: String,
    }
    let (scopes, keys): (Vec<&str>, Vec<&str>) =
        keyed.iter().map(|(_, (scope, key))| (scope.as_str(), key.as_str())).unzip();
    let stored: Vec<Stored> = crate::db::prepared(
        "SELECT i.scope, i.key, i.request_hash, i.response_status, i.response_body \
         FROM idempotency_keys i JOIN unnest($1::text[], $2::text[]) AS w(scope, key) \
              ON i.scope = w.scope AND i.key = w.key",
    )
    .bind::<Array<Text>, _>(scopes)
    .bind::<Array<Text>, _>(keys)
    .load(conn)
    .await?;
    let stored: std::collections::HashMap<(String, String), Stored> =
        stored.into_iter().map(|s| ((s.scope.clone(), s.key.clone()), s)).collect();
    for (i, scoped) in keyed {
        if let Some(s) = stored.get(&scoped) {
            found[i] = Some(if s.request_hash != writes[i].fingerprint {
                Err(key_reused())
            } else {
                let status = StatusCode::from_u16(s.response_status as u16).unwrap_or(StatusCode::OK);
                Ok(Outcome::Replay(status, s.response_body.clone()))
            });
        }
    }
    Ok(found)
}

/// [`record`] for a batch: every fresh answer's audit record and, with a key,
/// the answer itself, one statement each.
pub async fn record_many(
    conn: &mut AsyncPgConnection,
    answers: &[(&BatchedWrite, StatusCode, &str, Option<uuid::Uuid>)],
) -> Result<(), ApiError> {
    let audit: Vec<crate::audit::AuditRecord<'_>> = answers
        .iter()
        .map(|(w, status, _, resource_id)| crate::audit::AuditRecord {
            ctx: &w.ctx,
            status: status.as_u16(),
            resource_id: *resource_id,
            idempotency_key: w.key.as_deref(),
        })
        .collect();
    crate::audit::record_many(conn, &audit).await?;
    let keyed: Vec<_> =
        answers.iter().filter_map(|(w, status, body, _)| Some((w.scoped_key()?, w, *status, *body))).collect();
    if keyed.is_empty() {
        return Ok(());
    }
    use diesel::sql_types::{Array, Bytea, Int2};
    crate::db::prepared(
        "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int2[], $5::text[])",
    )
    .bind::<Array<Text>, _>(keyed.iter().map(|((scope, _), ..)| scope.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keyed.iter().map(|((_, key), ..)| key.as_str()).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(keyed.iter().map(|(_, w, ..)| w.fingerprint.as_slice()).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(keyed.iter().map(|(_, _, status, _)| status.as_u16() as i16).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(keyed.iter().map(|(.., body)| *body).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a fresh answer's audit record and, with a key, the answer itself,
/// in the caller's transaction.
async fn record<T: Serialize>(
    conn: &mut AsyncPgConnection,
    ctx: &WriteContext,
    scope: &str,
    key: Option<&str>,
    request_hash: &[u8],
    status: StatusCode,
    value: &T,
) -> Result<Outcome, ApiError> {
    let body = serde_json::to_string(value).map_err(ApiError::internal)?;
    let resource_id = serde_json::from_str::<ResourceId>(&body).ok().and_then(|r| r.id);
    crate::audit::record(conn, ctx, status.as_u16(), resource_id, key).await?;
    if let Some(key) = key {
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::scope.eq(scope),
                idempotency_keys::key.eq(key),
                idempotency_keys::request_hash.eq(request_hash),
                idempotency_keys::response_status.eq(status.as_u16() as i16),
                idempotency_keys::response_body.eq(&body),
            ))
            .execute(conn)
            .await?;
    }
    Ok(Outcome::Fresh(status, body))
}

/// A write's answer as stored: its status, its JSON, and whether it is the
/// replay of a first answer to the same key. The console reads it to render a
/// page; the API sends it as it is.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub replayed: bool,
}

impl From<Outcome> for Answer {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Fresh(status, body) => Answer { status, body, replayed: false },
            Outcome::Replay(status, body) => Answer { status, body, replayed: true },
        }
    }
}

pub fn respond(outcome: Outcome) -> HttpResponse {
    match outcome {
        Outcome::Fresh(status, body) => HttpResponse::build(status).insert_header(ContentType::json()).body(body),
        Outcome::Replay(status, body) => HttpResponse::build(status)
            .insert_header(ContentType::json())
            .insert_header(("Idempotent-Replayed", "true"))
            .body(body),
    }
}

/// Runs `effect` in one transaction, at most once per (caller, `key`), and
/// answers `status` with its JSON, or the stored first answer to this key. The
/// write's audit record is part of the same transaction.
pub async fn run<T, F>(
    pool: &DbPool,
    ctx: &WriteContext,
    key: IdempotencyKey,
    request_hash: Vec<u8>,
    status: StatusCode,
    effect: F,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, ApiError>,
{
    run_outcome(pool, ctx, key, request_hash, status, effect).await.map(respond)
}

/// Like [`run`], answering the stored answer itself rather than a response.
pub async fn run_answer<T, F>(
    pool: &DbPool,
    ctx: &WriteContext,
    key: IdempotencyKey,
    request_hash: Vec<u8>,
    status: StatusCode,
    effect: F,
) -> Result<Answer, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, ApiError>,
{
    run_outcome(pool, ctx, key, request_hash, status, effect).await.map(Answer::from)
}

async fn run_outcome<T, F>(
    pool: &DbPool,
    ctx: &WriteContext,
    key: IdempotencyKey,
    request_hash: Vec<u8>,
    status: StatusCode,
    effect: F,
) -> Result<Outcome, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, ApiError>,
{
    let scope = ctx.idempotency_scope();
    let mut conn = pool.get().await?;
    let outcome =
        crate::db::transaction(&mut conn, async move |conn: &mut AsyncPgConnection| -> Result<Outcome, ApiError> {
            if let Some(key) = &key.0
                && let Some(replay) = lock_and_find(conn, &scope, key, &request_hash, false).await?
            {
                return Ok(replay);
            }
            let value = effect(conn).await?;
            record(conn, ctx, &scope, key.0.as_deref(), &request_hash, status, &value).await
        })
        .await?;
    Ok(outcome)
}

/// Like [`run`], for an effect that commits in transactions of its own (a
/// settlement run settles each order in its own, through the pool): it cannot
/// share one transaction with its record. With a key, the key is held for the
/// whole run by a session lock on a connection taken out of the pool — closed
/// when the run ends or is abandoned, so the lock can never outlive it — and
/// the answer and the audit record are stored together once the effect is done.
/// A duplicate waits for the first run and replays its answer. Should the
/// process die between the effect and its record, a retry runs the effect
/// again: use this only for effects that are safe to repeat.
pub async fn run_in_own_transactions<T, F>(
    pool: &DbPool,
    ctx: &WriteContext,
    key: IdempotencyKey,
    request_hash: Vec<u8>,
    status: StatusCode,
    effect: F,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: AsyncFnOnce() -> Result<T, ApiError>,
{
    let scope = ctx.idempotency_scope();
    let Some(key) = key.0 else {
        let value = effect().await?;
        let mut conn = pool.get().await?;
        let outcome = crate::db::transaction(&mut conn, async |conn: &mut AsyncPgConnection| {
            record(conn, ctx, &scope, None, &request_hash, status, &value).await
        })
        .await?;
        return Ok(respond(outcome));
    };
    let mut conn = crate::db::PooledConnection::take(pool.get().await?);
    if let Some(replay) = lock_and_find(&mut conn, &scope, &key, &request_hash, true).await? {
        return Ok(respond(replay));
    }
    let value = effect().await?;
    let outcome = crate::db::transaction(&mut conn, async |conn: &mut AsyncPgConnection| {
        record(conn, ctx, &scope, Some(&key), &request_hash, status, &value).await
    })
    .await?;
    // Dropping the connection closes it, which releases the session lock.
    drop(conn);
    Ok(respond(outcome))
}
