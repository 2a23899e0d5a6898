//! Corrections a programme office makes (issue 14, item 3), each a workflow
//! with exact postings that claims, reports and `verify` all understand —
//! instead of manual adjustments, which may not touch subsidy accounts:
//!
//! - a **credit note** gives subsidy back to a programme: `provider payable →
//!   subsidy receivable` and `grant spent → grant available` (released to the
//!   programme at once if the grant is closed); the next claim nets it;
//! - a **write-off** of an amount the programme disallowed on a submitted
//!   claim: `expenses:subsidy-disallowed → subsidy receivable`; invariant 4
//!   counts it beside payments;
//! - the **void** of a draft claim: its postings become claimable again;
//! - the **withdrawal** of part of a grant: `grant available → unallocated`
//!   (a `grant_release`), never more than the grant has left.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::claims::{ClaimRow, ClaimStatus};
use super::programmes::{GrantError, GrantRow, GrantStatus, find_programme};
use crate::db::schema::{claim_payments, claim_write_offs, claims, credit_notes, grants, orders};
use crate::finance::payout_policy::shortfall;
use crate::ledger::model::{Actor, EntryKind, NormalSide};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::{Currency, format_amount};

/// Why a correction is refused. The HTTP answer of each is chosen at the edge
/// (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum CorrectionError {
    #[error("programme {0} does not exist")]
    ProgrammeNotFound(Uuid),
    #[error("claim {0} does not exist")]
    ClaimNotFound(Uuid),
    #[error("grant {0} does not exist")]
    GrantNotFound(Uuid),
    #[error(
        "the claim is {0}: only a draft can be voided (a submitted claim is corrected by a credit note or a write-off)"
    )]
    NotVoidable(ClaimStatus),
    #[error("the claim is {0}: only a submitted claim has amounts to write off")]
    NothingToWriteOff(ClaimStatus),
    /// A field of the correction does not fit the books (an amount beyond
    /// what is outstanding, a grant of another programme…).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> CorrectionError {
    CorrectionError::Invalid { field, message: message.into() }
}

async fn lock_claim(conn: &mut AsyncPgConnection, id: Uuid) -> Result<ClaimRow, CorrectionError> {
    claims::table
        .find(id)
        .select(ClaimRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(CorrectionError::ClaimNotFound(id))
}

async fn lock_grant(conn: &mut AsyncPgConnection, id: Uuid) -> Result<GrantRow, CorrectionError> {
    grants::table
        .find(id)
        .select(GrantRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(CorrectionError::GrantNotFound(id))
}

/// Voids a draft claim: it stays on record with its reason, and the postings it
/// held may be claimed again. A submitted claim is corrected by a credit note
/// or a write-off instead.
pub async fn void_claim(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    reason: String,
    now: DateTime<Utc>,
) -> Result<ClaimRow, CorrectionError> {
    let claim = lock_claim(conn, id).await?;
    if claim.status != ClaimStatus::Draft {
        return Err(CorrectionError::NotVoidable(claim.status));
    }
    Ok(diesel::update(claims::table.find(id))
        .set((claims::status.eq(ClaimStatus::Void), claims::voided_at.eq(now), claims::void_reason.eq(reason)))
        .returning(ClaimRow::as_returning())
        .get_result(conn)
        .await?)
}

/// What is still outstanding on a claim: its amount less payments and write-offs.
pub async fn outstanding(conn: &mut AsyncPgConnection, claim: &ClaimRow) -> QueryResult<Decimal> {
    let paid: Vec<Decimal> = claim_payments::table
        .filter(claim_payments::claim_id.eq(claim.id))
        .select(claim_payments::amount)
        .load(conn)
        .await?;
    let written: Vec<Decimal> = claim_write_offs::table
        .filter(claim_write_offs::claim_id.eq(claim.id))
        .select(claim_write_offs::amount)
        .load(conn)
        .await?;
    Ok(claim.amount - paid.into_iter().sum::<Decimal>() - written.into_iter().sum::<Decimal>())
}

/// Writes off an amount of a submitted claim that the programme disallowed:
/// `expenses:subsidy-disallowed → subsidy receivable`, never more than is
/// outstanding on the claim.
pub async fn write_off(
    conn: &mut AsyncPgConnection,
    claim_id: Uuid,
    amount: Decimal,
    reason: String,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ClaimRow, CorrectionError> {
    let claim = lock_claim(conn, claim_id).await?;
    if claim.status != ClaimStatus::Submitted {
        return Err(CorrectionError::NothingToWriteOff(claim.status));
    }
    let programme = find_programme(conn, claim.programme_id)
        .await?
        .ok_or_else(|| LedgerError::Corrupt("claim without programme".into()))?;
    let currency = programme.currency;
    let open = super::advances::outstanding(conn, &claim).await?;
    if amount > open {
        return Err(invalid(
            "amount",
            format!("is more than is outstanding on the claim ({})", format_amount(open.max(Decimal::ZERO), currency)),
        ));
    }
    let codes = [chart::SUBSIDY_DISALLOWED.to_string(), chart::subsidy_receivable_code(programme.id)];
    let [disallowed, receivable] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut entry =
        NewEntry::new(EntryKind::SubsidyWriteOff, now, vec![Movement::posted(disallowed, receivable, amount)]);
    entry.actor = actor;
    entry.memo =
        format!("claim {claim_id}: {} disallowed by {}: {reason}", format_amount(amount, currency), programme.sponsor);
    entry.metadata = serde_json::json!({"programme_id": programme.id, "claim_id": claim_id});
    let posted = ledger_posting::post_entry(conn, entry).await?;
    diesel::insert_into(claim_write_offs::table)
        .values((
            claim_write_offs::id.eq(Uuid::now_v7()),
            claim_write_offs::claim_id.eq(claim_id),
            claim_write_offs::amount.eq(amount),
            claim_write_offs::reason.eq(reason),
            claim_write_offs::journal_entry_id.eq(posted.id),
            claim_write_offs::created_by.eq(actor.user_id),
            claim_write_offs::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(claim)
}

/// A credit note to write.
#[derive(Debug, Clone)]
pub struct NewCreditNote {
    pub programme_id: Uuid,
    pub grant_id: Uuid,
    pub provider_org_id: Uuid,
    pub order_id: Option<Uuid>,
    pub amount: Decimal,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditNoteView {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub grant_id: Uuid,
    pub provider_org_id: Uuid,
    pub tenant_org_id: Uuid,
    pub order_id: Option<Uuid>,
    pub amount: String,
    pub currency: String,
    pub reason: String,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Gives subsidy back to a programme: the provider's payable and the grant's
/// spent both come down by `amount`, so the next claim asks the programme for
/// that much less and invariant 4 holds. Never more than the grant has funded;
/// a payable that would go negative becomes a receivable from the provider.
pub async fn credit_note(
    conn: &mut AsyncPgConnection,
    note: NewCreditNote,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<CreditNoteView, CorrectionError> {
    let programme =
        find_programme(conn, note.programme_id).await?.ok_or(CorrectionError::ProgrammeNotFound(note.programme_id))?;
    super::year_end::ensure_open(conn, programme.id).await?;
    let currency: Currency = programme.currency;
    let grant = match lock_grant(conn, note.grant_id).await {
        Ok(grant) if grant.programme_id == programme.id => grant,
        Ok(_) | Err(CorrectionError::GrantNotFound(_)) => {
            return Err(invalid("grant_id", "no such grant in this programme"));
        }
        Err(other) => return Err(other),
    };
    crate::auth::store::org_by_id(conn, note.provider_org_id)
        .await?
        .filter(|o| o.kind == crate::auth::model::OrgKind::Provider.as_str())
        .ok_or_else(|| invalid("provider_org_id", "no such provider organisation"))?;
    if let Some(order_id) = note.order_id {
        let fits = orders::table
            .find(order_id)
            .select((orders::grant_id, orders::provider_org_id))
            .first::<(Option<Uuid>, Uuid)>(conn)
            .await
            .optional()?
            .is_some_and(|(g, p)| g == Some(grant.id) && p == note.provider_org_id);
        if !fits {
            return Err(invalid("order_id", "no order of this grant and provider"));
        }
    }
    let codes = [
        chart::provider_payable_code(note.provider_org_id),
        chart::subsidy_receivable_code(programme.id),
        chart::grant_spent_code(grant.id),
        chart::grant_available_code(grant.id),
        chart::provider_receivable_code(note.provider_org_id),
        chart::unallocated_code(programme.id),
    ];
    let [payable, receivable, spent, available, provider_receivable, unallocated] =
        ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut ids = vec![payable, receivable, spent, available, provider_receivable, unallocated];
    ids.sort_unstable();
    ids.dedup();
    let locked = ledger_posting::lock_accounts(conn, &ids).await?;
    let posted =
        |id: Uuid, side: NormalSide| locked.get(&id).map(|a| a.balances.posted_balance(side)).unwrap_or_default();
    let funded = posted(spent, NormalSide::Credit);
    if note.amount > funded {
        return Err(invalid(
            "amount",
            format!("is more than the grant has funded ({})", format_amount(funded.max(Decimal::ZERO), currency)),
        ));
    }
    let mut movements =
        vec![Movement::posted(payable, receivable, note.amount), Movement::posted(spent, available, note.amount)];
    let closed = grant.status == GrantStatus::Closed;
    if closed {
        // A closed grant funds nothing more: what comes back goes to the programme.
        movements.push(Movement::posted(available, unallocated, note.amount));
    }
    let owed = shortfall(posted(payable, NormalSide::Credit), -note.amount);
    if owed > Decimal::ZERO {
        movements.push(Movement::posted(provider_receivable, payable, owed));
    }
    let mut entry = NewEntry::new(EntryKind::CreditNote, now, movements);
    entry.actor = actor;
    entry.memo = format!("credit note to {}: {}", programme.sponsor, note.reason);
    entry.metadata = serde_json::json!({
        "programme_id": programme.id, "grant_id": grant.id, "tenant_org_id": grant.tenant_org_id,
        "provider_org_id": note.provider_org_id, "order_id": note.order_id,
    });
    let entry = ledger_posting::post_entry_locked(conn, entry, locked).await?;
    if closed {
        diesel::update(grants::table.find(grant.id))
            .set(grants::released.eq(grants::released + note.amount))
            .execute(conn)
            .await?;
    }
    let id = Uuid::now_v7();
    diesel::insert_into(credit_notes::table)
        .values((
            credit_notes::id.eq(id),
            credit_notes::programme_id.eq(programme.id),
            credit_notes::grant_id.eq(grant.id),
            credit_notes::provider_org_id.eq(note.provider_org_id),
            credit_notes::tenant_org_id.eq(grant.tenant_org_id),
            credit_notes::order_id.eq(note.order_id),
            credit_notes::amount.eq(note.amount),
            credit_notes::reason.eq(&note.reason),
            credit_notes::journal_entry_id.eq(entry.id),
            credit_notes::created_by.eq(actor.user_id),
            credit_notes::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(CreditNoteView {
        id,
        programme_id: programme.id,
        grant_id: grant.id,
        provider_org_id: note.provider_org_id,
        tenant_org_id: grant.tenant_org_id,
        order_id: note.order_id,
        amount: format_amount(note.amount, currency),
        currency: currency.code().to_string(),
        reason: note.reason,
        journal_entry_id: entry.id,
        created_at: now,
    })
}

/// Withdraws part of a grant: `grant available → unallocated`, never more than
/// the grant has left (what pending orders hold stays theirs).
pub async fn withdraw(
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    amount: Decimal,
    reason: String,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<GrantRow, CorrectionError> {
    let grant = lock_grant(conn, grant_id).await?;
    let programme = find_programme(conn, grant.programme_id)
        .await?
        .ok_or_else(|| LedgerError::Corrupt("grant without programme".into()))?;
    super::year_end::ensure_open(conn, programme.id).await?;
    let currency = programme.currency;
    let codes = [chart::grant_available_code(grant.id), chart::unallocated_code(programme.id)];
    let [available, unallocated] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut ids = vec![available, unallocated];
    ids.sort_unstable();
    let locked = ledger_posting::lock_accounts(conn, &ids).await?;
    let left = locked.get(&available).map(|a| a.balances.available(a.normal_side)).unwrap_or_default();
    if amount > left {
        return Err(invalid(
            "amount",
            format!("is more than the grant has left ({})", format_amount(left.max(Decimal::ZERO), currency)),
        ));
    }
    let mut entry = NewEntry::new(EntryKind::GrantRelease, now, vec![Movement::posted(available, unallocated, amount)]);
    entry.actor = actor;
    entry.memo = format!("grant {grant_id}: {} withdrawn: {reason}", format_amount(amount, currency));
    entry.metadata = serde_json::json!({"programme_id": programme.id, "grant_id": grant.id, "withdrawal": true});
    ledger_posting::post_entry_locked(conn, entry, locked).await?;
    Ok(diesel::update(grants::table.find(grant.id))
        .set(grants::released.eq(grants::released + amount))
        .returning(GrantRow::as_returning())
        .get_result(conn)
        .await?)
}
