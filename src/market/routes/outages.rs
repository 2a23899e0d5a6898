//! Outages: a provider reports one; the orders it hit are credited.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Principal, Role};
use crate::http::extract::JsonBody;
use crate::http::{ApiError, FieldError, Write};
use crate::market::listings::{self};
use crate::market::schedule::{WindowFields, parse_window};
use crate::market::settlement::{self, Outage};
use crate::market::views::*;
use crate::state::AppState;

type Problem = crate::http::problem::Problem;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOutage {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// GPUs out of service in every hour of the window.
    pub gpus: i32,
}

/// Reports an outage: the GPU-hours it cost the orders running then are
/// credited back to their tenants and programme and taken off the provider's
/// payable. Roles: provider (own listings).
#[utoipa::path(tag = "market", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = NewOutage, security(("bearer" = [])), responses(
    (status = 201, body = OutageView), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/v1/listings/{id}/outages")]
pub async fn report_outage(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewOutage>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Provider])?;
    let id = id.into_inner();
    let NewOutage { start, end, gpus } = body.value;
    check_outage(start, end, gpus)?;
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        record_outage(conn, &principal, id, NewOutage { start, end, gpus }, now).await
    })
    .await
}

/// An outage report's own rules: whole hours, at most 31 days, at least one GPU.
pub fn check_outage(start: DateTime<Utc>, end: DateTime<Utc>, gpus: i32) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Some(window) = parse_window(&mut errors, start, end, WindowFields::START_END)
        && window.span() > TimeDelta::days(31)
    {
        errors.push(FieldError::new("end", "report at most 31 days at a time"));
    }
    if gpus <= 0 {
        errors.push(FieldError::new("gpus", "must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(())
}

/// Records a provider's outage on its own listing and credits the orders it
/// hit, in the caller's transaction (the handler's effect; the demo's too).
pub async fn record_outage(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    id: Uuid,
    outage: NewOutage,
    now: DateTime<Utc>,
) -> Result<OutageView, ApiError> {
    use crate::db::schema::outages;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let NewOutage { start, end, gpus } = outage;
    let listing = listings::find_for_order(conn, id)
        .await?
        .filter(|l| l.provider_org_id == principal.org_id)
        .ok_or_else(|| ApiError::missing("listing", id))?;
    if gpus > listing.gpus {
        return Err(ApiError::invalid("gpus", format!("the listing has {} GPUs", listing.gpus)));
    }
    let outage_id = Uuid::now_v7();
    diesel::insert_into(outages::table)
        .values((
            outages::id.eq(outage_id),
            outages::listing_id.eq(id),
            outages::reported_by.eq(principal.user_id),
            outages::start_at.eq(start),
            outages::end_at.eq(end),
            outages::gpus.eq(gpus),
            outages::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let (entries, credits) = settlement::credit_outage(
        conn,
        Outage { id: outage_id, listing_id: id, start, end, gpus },
        principal.actor(),
        now,
    )
    .await?;
    diesel::update(outages::table.find(outage_id))
        .set(outages::journal_entry_id.eq(<[Uuid]>::first(&entries).copied()))
        .execute(conn)
        .await?;
    Ok(OutageView { id: outage_id, listing_id: id, start, end, gpus, credits })
}
