//! The audit log (SPEC section 7): every successful write records who did it,
//! through which route, when, and under which request id — in the write's own
//! transaction, so there is no write without its record.

pub mod routes;

use actix_web::{HttpMessage, HttpRequest};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tracing_actix_web::RequestId;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::schema::audit_log;
use crate::ledger::model::Actor;

/// What a write needs to know about its request: who, which route, which request.
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub method: String,
    /// The route's pattern (`/v1/journal-entries/{id}/reverse`).
    pub route: String,
    pub path: String,
    pub request_id: Option<String>,
}

impl WriteContext {
    pub fn new(req: &HttpRequest, principal: Option<&Principal>) -> Self {
        WriteContext {
            user_id: principal.map(|p| p.user_id),
            org_id: principal.map(|p| p.org_id),
            method: req.method().to_string(),
            route: req.match_pattern().unwrap_or_else(|| req.path().to_string()),
            path: req.path().to_string(),
            request_id: req.extensions().get::<RequestId>().map(|id| id.to_string()),
        }
    }

    /// A write that comes through no HTTP request (`gpuhour demo` seeding the
    /// market): recorded exactly as the handler of `route` records its own, with
    /// the acting user and organisation of `actor` and the request id `request_id`.
    pub fn internal(route: &str, path: String, actor: Actor, request_id: &str) -> Self {
        WriteContext {
            user_id: actor.user_id,
            org_id: actor.org_id,
            method: "POST".into(),
            route: route.into(),
            path,
            request_id: Some(request_id.into()),
        }
    }

    /// Idempotency keys are per caller: one caller never sees another's answers.
    pub fn idempotency_scope(&self) -> String {
        match self.user_id {
            Some(user) => format!("user:{user}"),
            None => "anonymous".to_string(),
        }
    }
}

/// Records one successful write.
pub async fn record(
    conn: &mut AsyncPgConnection,
    ctx: &WriteContext,
    status: u16,
    resource_id: Option<Uuid>,
    idempotency_key: Option<&str>,
) -> QueryResult<()> {
    record_many(conn, &[AuditRecord { ctx, status, resource_id, idempotency_key }]).await
}

/// One audit record of a batch of writes (the order group commit).
pub struct AuditRecord<'a> {
    pub ctx: &'a WriteContext,
    pub status: u16,
    pub resource_id: Option<Uuid>,
    pub idempotency_key: Option<&'a str>,
}

/// Records a batch of successful writes in one statement, in the batch's order.
/// The statement's text is the same whatever the batch's size, so each
/// connection prepares it once.
pub async fn record_many(conn: &mut AsyncPgConnection, records: &[AuditRecord<'_>]) -> QueryResult<()> {
    use diesel::sql_types::{Array, Int2, Nullable, Text, Uuid as SqlUuid};
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = records.iter().map(|_| Uuid::now_v7()).collect();
    let statuses: Vec<i16> = records.iter().map(|r| r.status as i16).collect();
    crate::db::prepared(
        "INSERT INTO audit_log (id, request_id, user_id, org_id, method, route, path, status, resource_id, \
                                idempotency_key) \
         SELECT v.id, v.request_id, v.user_id, v.org_id, v.method, v.route, v.path, v.status, v.resource_id, \
                v.idempotency_key \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
                     $8::int2[], $9::uuid[], $10::text[]) WITH ORDINALITY \
              AS v(id, request_id, user_id, org_id, method, route, path, status, resource_id, idempotency_key, n) \
         ORDER BY v.n",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Nullable<Text>>, _>(records.iter().map(|r| r.ctx.request_id.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(records.iter().map(|r| r.ctx.user_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(records.iter().map(|r| r.ctx.org_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(records.iter().map(|r| r.ctx.method.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(records.iter().map(|r| r.ctx.route.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(records.iter().map(|r| r.ctx.path.as_str()).collect::<Vec<_>>())
    .bind::<Array<Int2>, _>(statuses)
    .bind::<Array<Nullable<SqlUuid>>, _>(records.iter().map(|r| r.resource_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(records.iter().map(|r| r.idempotency_key).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Runs a write that comes through no handler (see `WriteContext::internal`)
/// the way `http::idempotency::run` runs a handler's: `effect` and its audit
/// record (with the id `resource_id` picks out of the result) in one
/// transaction, so there is no write without its record. It fails with the
/// effect's own error, or that error made of the audit record's database error.
pub async fn record_write<T, E, F>(
    conn: &mut AsyncPgConnection,
    ctx: &WriteContext,
    status: u16,
    resource_id: impl FnOnce(&T) -> Option<Uuid>,
    effect: F,
) -> Result<T, E>
where
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    crate::db::transaction(conn, async move |conn: &mut AsyncPgConnection| {
        let value = effect(conn).await?;
        record(conn, ctx, status, resource_id(&value), None).await?;
        Ok(value)
    })
    .await
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub id: Uuid,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub method: String,
    pub route: String,
    pub path: String,
    pub status: i16,
    pub resource_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    pub org_id: Option<Uuid>,
    pub route: Option<String>,
    pub resource_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Newest first, before the cursor `before_seq`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_log::table.select(AuditRow::as_select()).into_boxed();
    if let Some(user) = filter.user_id {
        query = query.filter(audit_log::user_id.eq(user));
    }
    if let Some(org) = filter.org_id {
        query = query.filter(audit_log::org_id.eq(org));
    }
    if let Some(route) = &filter.route {
        query = query.filter(audit_log::route.eq(route.clone()));
    }
    if let Some(resource) = filter.resource_id {
        query = query.filter(audit_log::resource_id.eq(resource));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::at.lt(to));
    }
    if let Some(seq) = before_seq {
        query = query.filter(audit_log::seq.lt(seq));
    }
    query.order(audit_log::seq.desc()).limit(limit).load(conn).await
}
