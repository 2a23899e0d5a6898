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

enum Outcome {
    Fresh(StatusCode, String),
    Replay(StatusCode, String),
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
    let scope = ctx.idempotency_scope();
    let mut conn = pool.get().await?;
    let outcome =
        crate::db::transaction(&mut conn, async move |conn: &mut AsyncPgConnection| -> Result<Outcome, ApiError> {
            if let Some(key) = &key.0 {
                diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind::<Text, _>(format!("{scope}\u{1f}{key}"))
                    .execute(conn)
                    .await?;
                let stored: Option<(Vec<u8>, i16, String)> = idempotency_keys::table
                    .find((&scope, key))
                    .select((
                        idempotency_keys::request_hash,
                        idempotency_keys::response_status,
                        idempotency_keys::response_body,
                    ))
                    .first(conn)
                    .await
                    .optional()?;
                if let Some((hash, stored_status, body)) = stored {
                    if hash != request_hash {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency_key_reused",
                            "this Idempotency-Key was used for a different request; use a new key",
                        ));
                    }
                    let status = StatusCode::from_u16(stored_status as u16).unwrap_or(StatusCode::OK);
                    return Ok(Outcome::Replay(status, body));
                }
            }
            let value = effect(conn).await?;
            let body = serde_json::to_string(&value).map_err(ApiError::internal)?;
            let resource_id = serde_json::from_str::<ResourceId>(&body).ok().and_then(|r| r.id);
            crate::audit::record(conn, ctx, status.as_u16(), resource_id, key.0.as_deref()).await?;
            if let Some(key) = &key.0 {
                diesel::insert_into(idempotency_keys::table)
                    .values((
                        idempotency_keys::scope.eq(&scope),
                        idempotency_keys::key.eq(key),
                        idempotency_keys::request_hash.eq(&request_hash),
                        idempotency_keys::response_status.eq(status.as_u16() as i16),
                        idempotency_keys::response_body.eq(&body),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(Outcome::Fresh(status, body))
        })
        .await?;
    Ok(match outcome {
        Outcome::Fresh(status, body) => HttpResponse::build(status).insert_header(ContentType::json()).body(body),
        Outcome::Replay(status, body) => HttpResponse::build(status)
            .insert_header(ContentType::json())
            .insert_header(("Idempotent-Replayed", "true"))
            .body(body),
    })
}
