//! `/v1/webhook-endpoints` and `/v1/webhook-deliveries`. Every role may
//! manage its own organisation's endpoints; another organisation's endpoints
//! and deliveries answer 404.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::store::{self, DeliveryRow, DeliveryStatus, EndpointRow, EndpointStatus};
use super::{signing, url_rules, wall_now};
use crate::auth::Principal;
use crate::events::EventType;
use crate::http::extract::{JsonBody, Query};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::problem::Problem;
use crate::http::{ApiError, FieldError, Write};
use crate::state::AppState;

/// Active endpoints one organisation may have.
pub const MAX_ACTIVE_ENDPOINTS: i64 = 20;
const MAX_DESCRIPTION_CHARS: usize = 200;
const DEFAULT_GRACE_HOURS: i64 = 24;
const MAX_GRACE_HOURS: i64 = 168;
/// How long registration waits for a host name to resolve.
const REGISTRATION_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create_endpoint)
        .service(list_endpoints)
        .service(get_endpoint)
        .service(disable_endpoint)
        .service(rotate_secret)
        .service(list_deliveries)
        .service(retry_delivery);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookEndpoint {
    /// Where events are POSTed: `https` (`http` in sandbox mode only), never
    /// an internal address.
    pub url: String,
    /// Event types to receive (`order.reserved`, …), at least one.
    pub types: Vec<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: Uuid,
    pub url: String,
    #[schema(value_type = Vec<String>)]
    pub types: Vec<EventType>,
    pub description: Option<String>,
    /// `active` or `disabled`.
    pub status: EndpointStatus,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret the last rotation replaced still signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl WebhookEndpointView {
    fn from_row(row: EndpointRow, now: DateTime<Utc>) -> Self {
        WebhookEndpointView {
            id: row.id,
            url: row.url,
            types: row.types,
            description: row.description,
            status: row.status,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            secret_rotated_at: row.secret_rotated_at,
            previous_secret_expires_at: row.previous_secret_expires_at.filter(|at| *at > now),
        }
    }
}

/// An endpoint with its signing secret: only in the answer that made the
/// secret (registration, rotation). Nothing shows it again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointWithSecret {
    #[serde(flatten)]
    pub endpoint: WebhookEndpointView,
    /// `whsec_…`: the HMAC-SHA256 key of `Gpuhour-Signature`.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing beside the new one (0 to 168, default 24).
    pub grace_hours: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryView {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When it is next tried (while pending; during a send, when its lease ends).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for WebhookDeliveryView {
    fn from(row: DeliveryRow) -> Self {
        WebhookDeliveryView {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event_type: row.event_type.as_str().to_string(),
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_attempt_at: row.last_attempt_at,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            created_at: row.created_at,
            succeeded_at: row.succeeded_at,
        }
    }
}

/// The event types named, each once, in the order given.
fn parse_types(raw: &[String], errors: &mut Vec<FieldError>) -> Vec<EventType> {
    if raw.is_empty() {
        errors.push(FieldError::new("types", "must name at least one event type"));
    }
    let mut types = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        match text.parse::<EventType>() {
            Ok(t) if !types.contains(&t) => types.push(t),
            Ok(_) => {}
            Err(_) => errors.push(FieldError::new(
                format!("types[{i}]"),
                format!(
                    "{text:?} is not an event type; expected one of {}",
                    EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    types
}

/// The refusal of a host name that resolves, now, to an address webhooks may
/// not reach. A name that does not resolve (yet) is accepted: every delivery
/// resolves and checks again.
async fn refused_by_dns(url: &reqwest::Url, sandbox: bool) -> Option<String> {
    let (Some(name), Some(port)) = (url.domain(), url.port_or_known_default()) else { return None };
    let found =
        tokio::time::timeout(REGISTRATION_RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await.ok()?.ok()?;
    for address in found {
        if let Err(range) = url_rules::check_address(address.ip(), sandbox) {
            return Some(format!(
                "{name} resolves to {}, {}: webhooks may not be sent there",
                address.ip(),
                range.describe()
            ));
        }
    }
    None
}

/// Registers an endpoint for the caller's organisation. It receives the
/// events its organisation sees (finance's: every event) of the types named.
/// The answer shows the signing secret — the only time it is shown. Roles: all.
#[utoipa::path(tag = "webhooks", request_body = NewWebhookEndpoint, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = WebhookEndpointWithSecret),
    (status = 422, description = "Invalid URL (naming the rule it breaks), type or description; too many endpoints", body = Problem),
))]
#[post("/v1/webhook-endpoints")]
pub async fn create_endpoint(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewWebhookEndpoint>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    let b = &body.value;
    let sandbox = state.settings.sandbox;
    let mut errors = Vec::new();
    let url = match url_rules::check_url(&b.url, sandbox) {
        Ok(url) => Some(url),
        Err(refusal) => {
            errors.push(FieldError::new("url", refusal.to_string()));
            None
        }
    };
    let types = parse_types(&b.types, &mut errors);
    let description = b.description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_string);
    if description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        errors.push(FieldError::new("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if let Some(url) = &url
        && let Some(refusal) = refused_by_dns(url, sandbox).await
    {
        errors.push(FieldError::new("url", refusal));
    }
    let (Some(url), true) = (url, errors.is_empty()) else { return Err(ApiError::validation(errors)) };
    let org_id = principal.org_id;
    let sees_every_event = principal.is_finance();
    op.run(StatusCode::CREATED, async move |conn| {
        if store::lock_and_count_active(conn, org_id).await? >= MAX_ACTIVE_ENDPOINTS {
            return Err(ApiError::invalid(
                "url",
                format!("an organisation may have at most {MAX_ACTIVE_ENDPOINTS} active endpoints; disable one first"),
            ));
        }
        let secret = signing::new_secret();
        let now = wall_now();
        let row = store::insert_endpoint(
            conn,
            store::NewEndpoint {
                org_id,
                url: url.as_str(),
                types: &types,
                description: description.as_deref(),
                sees_every_event,
                secret: &secret,
                now,
            },
        )
        .await?;
        Ok(WebhookEndpointWithSecret { endpoint: WebhookEndpointView::from_row(row, now), secret })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndpointListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's organisation's endpoints (active and disabled), oldest first.
#[utoipa::path(tag = "webhooks", params(EndpointListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<WebhookEndpointView>)),
))]
#[get("/v1/webhook-endpoints")]
pub async fn list_endpoints(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<EndpointListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut conn = state.pool.get().await?;
    let rows = store::endpoints(&mut conn, principal.org_id, after, limit + 1).await?;
    let now = wall_now();
    Ok(HttpResponse::Ok().json(pagination::page(rows, limit, |r| r.id, |r| WebhookEndpointView::from_row(r, now))))
}

/// One endpoint (never its secret).
#[utoipa::path(tag = "webhooks", params(("id" = Uuid, Path)), security(("bearer" = [])), responses(
    (status = 200, body = WebhookEndpointView), (status = 404, body = Problem),
))]
#[get("/v1/webhook-endpoints/{id}")]
pub async fn get_endpoint(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut conn = state.pool.get().await?;
    let row = store::endpoint(&mut conn, principal.org(), id, false)
        .await?
        .ok_or_else(|| ApiError::missing("webhook endpoint", id))?;
    Ok(HttpResponse::Ok().json(WebhookEndpointView::from_row(row, wall_now())))
}

/// Disables an endpoint: nothing more is sent to it, and its pending
/// deliveries fail. Kept, with its deliveries, for the record; disabling it
/// again changes nothing.
#[utoipa::path(tag = "webhooks", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = WebhookEndpointView), (status = 404, body = Problem),
))]
#[delete("/v1/webhook-endpoints/{id}")]
pub async fn disable_endpoint(write: Write, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    let id = id.into_inner();
    op.run(StatusCode::OK, async move |conn| {
        let row = store::endpoint(conn, principal.org(), id, true)
            .await?
            .ok_or_else(|| ApiError::missing("webhook endpoint", id))?;
        let now = wall_now();
        let row = if row.is_active() { store::disable(conn, id, now).await? } else { row };
        Ok(WebhookEndpointView::from_row(row, now))
    })
    .await
}

/// Makes a new signing secret, shown in this answer only. The old one keeps
/// signing beside it for `grace_hours` (default 24; 0 retires it at once):
/// deliveries meanwhile carry two `v1=` signatures, so receivers can switch
/// without missing one. Rotating again within a grace period retires the
/// older secret at once.
#[utoipa::path(tag = "webhooks", request_body = RotateSecret,
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])), responses(
    (status = 200, body = WebhookEndpointWithSecret), (status = 404, body = Problem),
    (status = 409, description = "The endpoint is disabled", body = Problem),
    (status = 422, description = "grace_hours outside 0 to 168", body = Problem),
))]
#[post("/v1/webhook-endpoints/{id}/rotate-secret")]
pub async fn rotate_secret(
    write: Write<JsonBody<RotateSecret>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    let id = id.into_inner();
    let grace_hours = body.value.grace_hours.unwrap_or(DEFAULT_GRACE_HOURS);
    if !(0..=MAX_GRACE_HOURS).contains(&grace_hours) {
        return Err(ApiError::invalid("grace_hours", format!("must be from 0 to {MAX_GRACE_HOURS}")));
    }
    op.run(StatusCode::OK, async move |conn| {
        let row = store::endpoint(conn, principal.org(), id, true)
            .await?
            .ok_or_else(|| ApiError::missing("webhook endpoint", id))?;
        if !row.is_active() {
            return Err(ApiError::conflict(format!("webhook endpoint {id} is disabled")));
        }
        let now = wall_now();
        let grace_ends = now + chrono::Duration::hours(grace_hours);
        let previous = (grace_hours > 0).then_some((row.secret.as_str(), grace_ends));
        let secret = signing::new_secret();
        let row = store::rotate_secret(conn, id, &secret, previous, now).await?;
        Ok(WebhookEndpointWithSecret { endpoint: WebhookEndpointView::from_row(row, now), secret })
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListQuery {
    /// One of the caller's endpoints.
    pub endpoint_id: Option<Uuid>,
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Deliveries to the caller's organisation's endpoints, oldest first: each
/// with its attempts, last answer or error and next attempt.
#[utoipa::path(tag = "webhooks", params(DeliveryListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<WebhookDeliveryView>)),
    (status = 404, description = "No such endpoint of the caller's", body = Problem),
))]
#[get("/v1/webhook-deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<DeliveryListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(|_| ApiError::invalid("status", "must be pending, succeeded or failed"))?;
    let mut conn = state.pool.get().await?;
    if let Some(endpoint) = q.endpoint_id
        && store::endpoint(&mut conn, principal.org(), endpoint, false).await?.is_none()
    {
        return Err(ApiError::missing("webhook endpoint", endpoint));
    }
    let rows = store::deliveries(&mut conn, principal.org_id, q.endpoint_id, status, after, limit + 1).await?;
    Ok(HttpResponse::Ok().json(pagination::page(rows, limit, |r| r.id, WebhookDeliveryView::from)))
}

/// Tries a failed delivery again, now: one more attempt (it fails again if
/// that attempt fails). Roles: the endpoint's organisation.
#[utoipa::path(tag = "webhooks", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = WebhookDeliveryView), (status = 404, body = Problem),
    (status = 409, description = "Not failed, or its endpoint is disabled", body = Problem),
))]
#[post("/v1/webhook-deliveries/{id}/retry")]
pub async fn retry_delivery(write: Write, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    let id = id.into_inner();
    op.run(StatusCode::OK, async move |conn| {
        let (delivery, endpoint_active) = store::delivery_for_update(conn, principal.org(), id)
            .await?
            .ok_or_else(|| ApiError::missing("webhook delivery", id))?;
        if !endpoint_active {
            return Err(ApiError::conflict(format!("the endpoint of webhook delivery {id} is disabled")));
        }
        if delivery.status != DeliveryStatus::Failed {
            return Err(ApiError::conflict(format!(
                "webhook delivery {id} is {}: only a failed delivery can be retried",
                delivery.status
            )));
        }
        Ok(WebhookDeliveryView::from(store::requeue(conn, id, wall_now()).await?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_parsed_once_each_and_unknown_ones_named() {
        let mut errors = Vec::new();
        let types = parse_types(
            &["order.reserved".into(), "order.shipped".into(), "order.reserved".into(), "claim.paid".into()],
            &mut errors,
        );
        assert_eq!(types, vec![EventType::OrderReserved, EventType::ClaimPaid]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "types[1]");
        assert!(
            errors[0].message.starts_with("\"order.shipped\" is not an event type; expected one of order.reserved,")
        );
        let mut errors = Vec::new();
        assert!(parse_types(&[], &mut errors).is_empty());
        assert_eq!(errors, vec![FieldError::new("types", "must name at least one event type")]);
    }
}
