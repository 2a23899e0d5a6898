//! Lists of what finance recorded: `GET /v1/payouts`, `GET /v1/deposits` and
//! `GET /v1/organisations`, with filters and cursor pagination. Roles: finance, admin.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Numeric, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Principal;
use crate::auth::store::OrgRow;
use crate::db::schema::{organisations, payouts};
use crate::http::ApiError;
use crate::http::extract::Query;
use crate::http::pagination::{self, Page, decode_cursor};
use crate::money::{Currency, format_amount};
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PayoutSummary {
    pub id: Uuid,
    pub provider_org_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PayoutListQuery {
    pub provider_org_id: Option<Uuid>,
    #[param(value_type = Option<String>)]
    pub currency: Option<Currency>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Payouts, oldest first.
#[utoipa::path(tag = "finance", params(PayoutListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<PayoutSummary>)),
))]
#[get("/v1/payouts")]
pub async fn list_payouts(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<PayoutListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(payouts_page(&mut conn, q).await?))
}

/// One page of payouts, oldest first (the API's list; the console's earnings
/// page asks for one provider's).
pub async fn payouts_page(
    conn: &mut diesel_async::AsyncPgConnection,
    q: PayoutListQuery,
) -> Result<Page<PayoutSummary>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut query = payouts::table
        .select((
            payouts::id,
            payouts::provider_org_id,
            payouts::amount,
            payouts::currency,
            payouts::reference,
            payouts::journal_entry_id,
            payouts::created_at,
        ))
        .order(payouts::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(p) = q.provider_org_id {
        query = query.filter(payouts::provider_org_id.eq(p));
    }
    if let Some(c) = q.currency {
        query = query.filter(payouts::currency.eq(c));
    }
    if let Some(a) = after {
        query = query.filter(payouts::id.gt(a));
    }
    type Row = (Uuid, Uuid, Decimal, Currency, String, Uuid, DateTime<Utc>);
    let rows: Vec<Row> = query.load(conn).await?;
    Ok(pagination::page(
        rows,
        limit,
        |r| r.0,
        |r| PayoutSummary {
            id: r.0,
            provider_org_id: r.1,
            amount: format_amount(r.2, r.3),
            currency: r.3.code().to_string(),
            reference: r.4,
            journal_entry_id: r.5,
            created_at: r.6,
        },
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema, QueryableByName)]
pub struct DepositSummary {
    /// The `deposit` journal entry.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub tenant_org_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub amount: String,
    #[diesel(sql_type = Text)]
    #[schema(value_type = String)]
    pub currency: Currency,
    #[diesel(sql_type = Nullable<Text>)]
    pub reference: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
    #[serde(skip)]
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[serde(skip)]
    #[diesel(sql_type = Numeric)]
    pub raw_amount: Decimal,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DepositListQuery {
    pub tenant_org_id: Option<Uuid>,
    #[param(value_type = Option<String>)]
    pub currency: Option<Currency>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Deposits (from the journal), oldest first.
#[utoipa::path(tag = "finance", params(DepositListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<DepositSummary>)),
))]
#[get("/v1/deposits")]
pub async fn list_deposits(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<DepositListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let limit = pagination::limit(q.limit)?;
    let after: i64 = q.cursor.as_deref().map(decode_cursor).transpose()?.unwrap_or(0);
    let mut conn = state.pool.get().await?;
    let rows: Vec<DepositSummary> = diesel::sql_query(
        "SELECT e.id, (e.metadata ->> 'tenant_org_id')::uuid AS tenant_org_id, '' AS amount, p.amount AS raw_amount, \
                p.currency, e.reference, e.effective_at, e.seq \
         FROM journal_entries e JOIN postings p ON p.entry_id = e.id \
         WHERE e.kind = 'deposit' AND e.seq > $1 \
           AND ($2::uuid IS NULL OR e.metadata ->> 'tenant_org_id' = $2::text) \
           AND ($3::text IS NULL OR p.currency = $3) \
         ORDER BY e.seq LIMIT $4",
    )
    .bind::<BigInt, _>(after)
    .bind::<Nullable<SqlUuid>, _>(q.tenant_org_id)
    .bind::<Nullable<Text>, _>(q.currency.map(|c| c.code()))
    .bind::<BigInt, _>(limit + 1)
    .load(&mut conn)
    .await?;
    Ok(HttpResponse::Ok().json(pagination::page(
        rows,
        limit,
        |r| r.seq,
        |mut r| {
            r.amount = format_amount(r.raw_amount, r.currency);
            r
        },
    )))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganisationView {
    pub id: Uuid,
    pub name: String,
    /// `tenant`, `provider` or `operator`.
    pub kind: String,
    pub category: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrganisationListQuery {
    /// `tenant`, `provider` or `operator`.
    pub kind: Option<String>,
    pub category: Option<String>,
    /// Names containing this text (case-insensitive).
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Organisations, by name.
#[utoipa::path(tag = "auth", params(OrganisationListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<OrganisationView>)),
))]
#[get("/v1/organisations")]
pub async fn list_organisations(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<OrganisationListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(organisations_page(&mut conn, q).await?))
}

/// A page of organisations (`GET /v1/organisations`), for the API and the console.
pub(crate) async fn organisations_page(
    conn: &mut diesel_async::AsyncPgConnection,
    q: OrganisationListQuery,
) -> Result<Page<OrganisationView>, ApiError> {
    let limit = pagination::limit(q.limit)?;
    let after: Option<(String, Uuid)> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut query = organisations::table
        .select(OrgRow::as_select())
        .order((organisations::name, organisations::id))
        .limit(limit + 1)
        .into_boxed();
    if let Some(k) = q.kind {
        if !["tenant", "provider", "operator"].contains(&k.as_str()) {
            return Err(ApiError::invalid("kind", "must be tenant, provider or operator"));
        }
        query = query.filter(organisations::kind.eq(k));
    }
    if let Some(c) = q.category {
        query = query.filter(organisations::category.eq(c));
    }
    if let Some(text) = q.q {
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        query = query.filter(organisations::name.ilike(format!("%{escaped}%")));
    }
    if let Some((name, id)) = after {
        query = query.filter(
            organisations::name.gt(name.clone()).or(organisations::name.eq(name).and(organisations::id.gt(id))),
        );
    }
    let rows: Vec<OrgRow> = query.load(conn).await?;
    Ok(pagination::page(
        rows,
        limit,
        |o| (o.name.clone(), o.id),
        |o| OrganisationView { id: o.id, name: o.name, kind: o.kind, category: o.category, created_at: o.created_at },
    ))
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_payouts).service(list_deposits).service(list_organisations);
}
