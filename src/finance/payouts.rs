//! `POST /v1/payouts`: paying a provider what it is owed.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Numeric, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::FinanceError;
use crate::auth::OrgId;
use crate::auth::model::OrgKind;
use crate::db::schema::payouts;
use crate::events::{EventType, NewEvent};
use crate::finance::payout_policy::{PayoutPosition, received_on_claim};
use crate::http::Write;
use crate::http::extract::JsonBody;
use crate::http::{ApiError, FieldError};
use crate::ledger::model::AccountState;
use crate::ledger::model::{Actor, EntryKind};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::{Currency, format_amount, parse_amount};
use crate::state::AppState;

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
    /// What the provider owed back (outage credits after an earlier payout),
    /// recovered from its payable by this payout before the transfer.
    pub recovered: String,
    pub created_at: DateTime<Utc>,
}

/// A provider's payout position in one currency, with its payable and
/// receivable as `payable` and `receivable` (locked by the caller, or read).
pub async fn position(
    conn: &mut AsyncPgConnection,
    provider: OrgId,
    currency: Currency,
    payable: &AccountState,
    payable_id: Uuid,
    receivable: &AccountState,
    advance_rate: Decimal,
) -> Result<PayoutPosition, FinanceError> {
    #[derive(diesel::QueryableByName)]
    struct Earned {
        #[diesel(sql_type = Numeric)]
        amount: Decimal,
    }
    #[derive(diesel::QueryableByName)]
    struct ClaimLine {
        #[diesel(sql_type = Numeric)]
        claim_amount: Decimal,
        #[diesel(sql_type = Numeric)]
        line: Decimal,
        #[diesel(sql_type = Numeric)]
        paid: Decimal,
    }
    // Subsidy earned: what moved between any programme's receivable and this
    // payable. A claim counts as settled by payments and by write-offs: an
    // amount the programme disallowed is the operator's loss, not the provider's.
    let earned: Earned = diesel::sql_query(
        "SELECT coalesce(sum(CASE WHEN p.credit_account_id = $1 THEN p.amount ELSE -p.amount END), 0) AS amount \
    FROM postings p \
    JOIN accounts a ON a.id = CASE WHEN p.credit_account_id = $1 THEN p.debit_account_id ELSE p.credit_account_id END \
    WHERE p.kind IN ('posted', 'post_pending') AND (p.credit_account_id = $1 OR p.debit_account_id = $1) \
    AND a.code LIKE 'assets:subsidy-receivable:%'",
    )
    .bind::<SqlUuid, _>(payable_id)
    .get_result(conn)
    .await?;
    let lines: Vec<ClaimLine> = diesel::sql_query(
        "SELECT c.amount AS claim_amount, sum(ci.amount) AS line, \
    coalesce((SELECT sum(cp.amount) FROM claim_payments cp WHERE cp.claim_id = c.id), 0) \
    + coalesce((SELECT sum(w.amount) FROM claim_write_offs w WHERE w.claim_id = c.id), 0) \
    + coalesce((SELECT sum(a.amount) FROM claim_advance_applications a WHERE a.claim_id = c.id), 0) AS paid \
    FROM claim_items ci JOIN claims c ON c.id = ci.claim_id JOIN programmes pr ON pr.id = c.programme_id \
    WHERE ci.provider_org_id = $1 AND pr.currency = $2 \
    GROUP BY c.id, c.amount",
    )
    .bind::<SqlUuid, _>(provider.0)
    .bind::<Text, _>(currency.code())
    .load(conn)
    .await?;
    let received = lines
        .iter()
        .map(|l| received_on_claim(l.line, l.claim_amount, l.paid, currency))
        .try_fold(Decimal::ZERO, |sum, r| sum.checked_add(r))
        .ok_or(LedgerError::Overflow)?;
    let balance_in_currency = |account: &AccountState| account.balance().amount_in(currency).map_err(LedgerError::from);
    Ok(PayoutPosition::compute(
        balance_in_currency(payable)?,
        earned.amount,
        received,
        balance_in_currency(receivable)?,
        advance_rate,
        currency,
    ))
}

/// A provider's payout position now, read without locking (for statements and
/// planning; a payout takes its own locked reading).
pub async fn current_position(
    conn: &mut AsyncPgConnection,
    provider: Uuid,
    currency: Currency,
    advance_rate: Decimal,
) -> Result<Option<PayoutPosition>, FinanceError> {
    let payable = ledger_store::account_by_code(conn, &chart::provider_payable_code(provider), currency).await?;
    let receivable = ledger_store::account_by_code(conn, &chart::provider_receivable_code(provider), currency).await?;
    let (Some(payable), Some(receivable)) = (payable, receivable) else { return Ok(None) };
    let (payable_state, receivable_state) = (payable.state(), receivable.state());
    Ok(Some(
        position(conn, OrgId(provider), currency, &payable_state, payable.id, &receivable_state, advance_rate).await?,
    ))
}

/// Pays a provider: `payable → assets:bank`, never more than it may be paid
/// now (`payout_policy`): its payable less the subsidy the programme has not
/// paid yet (beyond the advance rate), after recovering what the provider owes
/// back (`payable → provider receivable`, in the same entry). Read with the
/// accounts locked, so two payouts cannot both pass.
#[allow(clippy::too_many_arguments)]
pub async fn pay_out(
    conn: &mut AsyncPgConnection,
    provider: Uuid,
    amount: Decimal,
    currency: Currency,
    reference: String,
    advance_rate: Decimal,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<PayoutView, FinanceError> {
    crate::auth::store::org_by_id(conn, provider)
        .await?
        .filter(|o| o.kind == OrgKind::Provider.as_str())
        .ok_or(FinanceError::NoSuchProvider)?;
    let codes =
        [chart::provider_payable_code(provider), chart::BANK.to_string(), chart::provider_receivable_code(provider)];
    let [payable, bank, receivable] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut sorted = vec![payable, bank, receivable];
    sorted.sort_unstable();
    let locked = ledger_posting::lock_accounts(conn, &sorted).await?;
    let state = |id: Uuid| locked.get(&id).ok_or_else(|| LedgerError::Corrupt(format!("account {id} vanished")));
    let position =
        position(conn, OrgId(provider), currency, state(payable)?, payable, state(receivable)?, advance_rate).await?;
    if amount > position.payable_now {
        return Err(FinanceError::MoreThanPayableNow { position, currency });
    }
    let recover = position.to_recover();
    let mut movements = Vec::with_capacity(2);
    if recover > Decimal::ZERO {
        movements.push(Movement::posted(payable, receivable, recover));
    }
    movements.push(Movement::posted(payable, bank, amount));
    let mut entry = NewEntry::new(EntryKind::Payout, now, movements);
    entry.actor = actor;
    entry.memo = format!("payout to provider {provider}");
    entry.reference = Some(reference.clone());
    entry.metadata = serde_json::json!({"provider_org_id": provider});
    let entry = ledger_posting::post_entry_locked(conn, entry, locked).await?;
    let id = Uuid::now_v7();
    diesel::insert_into(payouts::table)
        .values((
            payouts::id.eq(id),
            payouts::provider_org_id.eq(provider),
            payouts::amount.eq(amount),
            payouts::currency.eq(currency),
            payouts::reference.eq(&reference),
            payouts::journal_entry_id.eq(entry.id),
            payouts::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let payable_after = entry.postings.last().map(|(_, p)| p.debit_account_balance).unwrap_or_default();
    let view = PayoutView {
        id,
        provider_org_id: provider,
        amount: format_amount(amount, currency),
        currency: currency.code().to_string(),
        reference,
        journal_entry_id: entry.id,
        payable_balance: format_amount(payable_after, currency),
        recovered: format_amount(recover, currency),
        created_at: now,
    };
    let data = crate::events::view_data(&view)?;
    crate::events::record(conn, NewEvent::new(EventType::PayoutCreated, now, id, vec![provider], data)).await?;
    Ok(view)
}

/// Pays a provider what it may be paid now: its posted payable less the
/// subsidy the programme has not paid yet, after recovering what it owes back.
/// Roles: finance, admin.
#[utoipa::path(tag = "finance", request_body = NewPayout, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = PayoutView),
    (status = 422, description = "Invalid, or more than the provider may be paid now", body = crate::http::problem::Problem),
    ))]
#[post("/v1/payouts")]
pub async fn create_payout(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewPayout>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
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
    let clock = state.clock;
    let advance_rate = state.settings.payout_advance_rate;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        Ok(pay_out(conn, provider, amount, currency, reference, advance_rate, principal.actor(), now).await?)
    })
    .await
}
