//! `POST /v1/deposits`: money a tenant wired in, credited to its wallet.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::FinanceError;
use crate::auth::model::OrgKind;
use crate::http::Write;
use crate::http::extract::JsonBody;
use crate::http::{ApiError, FieldError};
use crate::ledger::chart;
use crate::ledger::model::EntryKind;
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::money::{Currency, format_amount, parse_amount};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeposit {
    pub tenant_org_id: Uuid,
    /// Decimal string in the currency's precision.
    pub amount: String,
    pub currency: Currency,
    /// The bank's reference for the transfer.
    pub reference: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositView {
    /// The `deposit` journal entry.
    pub id: Uuid,
    pub tenant_org_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub wallet_account_id: Uuid,
    /// The wallet's posted balance after the deposit.
    pub wallet_balance: String,
    pub effective_at: DateTime<Utc>,
}

/// Records money received from a tenant: `assets:bank → wallet`. Roles: finance, admin.
#[utoipa::path(tag = "finance", request_body = NewDeposit, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = DepositView), (status = 422, body = crate::http::problem::Problem),
))]
#[post("/v1/deposits")]
pub async fn create_deposit(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewDeposit>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let d = &body.value;
    let mut errors = Vec::new();
    let amount =
        parse_amount(&d.amount, d.currency).map_err(|e| errors.push(FieldError::new("amount", e.to_string()))).ok();
    let reference = d.reference.trim().to_string();
    if reference.is_empty() || reference.chars().count() > 200 {
        errors.push(FieldError::new("reference", "must be 1 to 200 characters"));
    }
    let amount = match amount {
        Some(a) if errors.is_empty() => a,
        _ => return Err(ApiError::validation(errors)),
    };
    let (tenant, currency) = (d.tenant_org_id, d.currency);
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(deposit(conn, tenant, amount, currency, reference, principal.actor(), now).await?)
    })
    .await
}

/// Credits a tenant's wallet from the bank, in the caller's transaction.
pub async fn deposit(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: Uuid,
    amount: rust_decimal::Decimal,
    currency: Currency,
    reference: String,
    actor: crate::ledger::model::Actor,
    now: DateTime<Utc>,
) -> Result<DepositView, FinanceError> {
    let org = crate::auth::store::org_by_id(conn, tenant)
        .await?
        .filter(|o| o.kind == OrgKind::Tenant.as_str())
        .ok_or(FinanceError::NoSuchTenant)?;
    let codes = [chart::BANK.to_string(), chart::tenant_wallet_code(org.id)];
    let [bank, wallet] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut entry = NewEntry::new(EntryKind::Deposit, now, vec![Movement::posted(bank, wallet, amount)]);
    entry.actor = actor;
    entry.memo = format!("deposit from {}", org.name);
    entry.reference = Some(reference.clone());
    entry.metadata = serde_json::json!({"tenant_org_id": org.id});
    let posted = ledger_posting::post_entry(conn, entry).await?;
    let balance = posted.postings[0].1.credit_account_balance;
    Ok(DepositView {
        id: posted.id,
        tenant_org_id: org.id,
        amount: format_amount(amount, currency),
        currency: currency.code().to_string(),
        reference,
        wallet_account_id: wallet,
        wallet_balance: format_amount(balance, currency),
        effective_at: now,
    })
}
