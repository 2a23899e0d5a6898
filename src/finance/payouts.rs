//! `POST /v1/payouts`: paying a provider what it is owed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::WriteContext;
use crate::auth::Principal;
use crate::auth::model::OrgKind;
use crate::db::schema::payouts;
use crate::http::extract::JsonBody;
use crate::http::idempotency::{self, IdempotencyKey};
use crate::http::{ApiError, FieldError};
use crate::ledger::chart;
use crate::ledger::model::{Actor, EntryKind, NormalSide};
use crate::ledger::rules::Movement;
use crate::ledger::store::{self as ledger_store, NewEntry};
use crate::money::{Currency, format_amount, parse_amount};
use crate::startup::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayout {
    pub provider_org_id: Uuid,
    pub amount: String,
    pub currency: Currency,
    /// The bank's reference for the transfer.
    pub reference: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PayoutView {
    pub id: Uuid,
    pub provider_org_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub journal_entry_id: Uuid,
    /// The provider's posted payable after the payout.
    pub payable_balance: String,
    pub created_at: DateTime<Utc>,
}

/// Pays a provider: `payable → assets:bank`, never more than the posted payable
/// (read with the payable's row locked, so two payouts cannot both pass).
pub async fn pay_out(
    conn: &mut AsyncPgConnection,
    provider: Uuid,
    amount: Decimal,
    currency: Currency,
    reference: String,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<PayoutView, ApiError> {
    crate::auth::store::org_by_id(conn, provider)
        .await?
        .filter(|o| o.kind == OrgKind::Provider.as_str())
        .ok_or_else(|| ApiError::invalid("provider_org_id", "no such provider organisation"))?;
    let codes = [chart::provider_payable_code(provider), chart::BANK.to_string()];
    let [payable, bank] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut sorted = vec![payable, bank];
    sorted.sort_unstable();
    let locked = ledger_store::lock_accounts(conn, &sorted).await?;
    let posted = locked.get(&payable).map(|a| a.balances.posted_balance(NormalSide::Credit)).unwrap_or_default();
    if amount > posted {
        return Err(ApiError::invalid(
            "amount",
            format!("is more than the posted payable ({})", format_amount(posted.max(Decimal::ZERO), currency)),
        ));
    }
    let mut entry = NewEntry::new(EntryKind::Payout, now, vec![Movement::posted(payable, bank, amount)]);
    entry.actor = actor;
    entry.memo = format!("payout to provider {provider}");
    entry.reference = Some(reference.clone());
    entry.metadata = serde_json::json!({"provider_org_id": provider});
    let entry = ledger_store::post_entry(conn, entry).await?;
    let id = Uuid::now_v7();
    diesel::insert_into(payouts::table)
        .values((
            payouts::id.eq(id),
            payouts::provider_org_id.eq(provider),
            payouts::amount.eq(amount),
            payouts::currency.eq(currency.code()),
            payouts::reference.eq(&reference),
            payouts::journal_entry_id.eq(entry.id),
            payouts::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(PayoutView {
        id,
        provider_org_id: provider,
        amount: format_amount(amount, currency),
        currency: currency.code().to_string(),
        reference,
        journal_entry_id: entry.id,
        payable_balance: format_amount(entry.postings[0].1.debit_account_balance, currency),
        created_at: now,
    })
}

/// Pays a provider out of its posted payable. Roles: finance, admin.
#[utoipa::path(tag = "finance", request_body = NewPayout, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = PayoutView),
    (status = 422, description = "Invalid, or more than the posted payable", body = crate::http::problem::Problem),
))]
#[post("/v1/payouts")]
pub async fn create_payout(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    key: IdempotencyKey,
    body: JsonBody<NewPayout>,
) -> Result<HttpResponse, ApiError> {
    principal.require_finance()?;
    let b = &body.value;
    let mut errors = Vec::new();
    let amount =
        parse_amount(&b.amount, b.currency).map_err(|e| errors.push(FieldError::new("amount", e.to_string()))).ok();
    let reference = b.reference.trim().to_string();
    if reference.is_empty() || reference.chars().count() > 200 {
        errors.push(FieldError::new("reference", "must be 1 to 200 characters"));
    }
    let (Some(amount), true) = (amount, errors.is_empty()) else { return Err(ApiError::validation(errors)) };
    let (provider, currency) = (b.provider_org_id, b.currency);
    let hash = idempotency::fingerprint(&req, &body.raw);
    let clock = state.clock;
    let ctx = WriteContext::new(&req, Some(&principal));
    idempotency::run(&state.pool, &ctx, key, hash, StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        pay_out(conn, provider, amount, currency, reference, principal.actor(), now).await
    })
    .await
}
