//! Advances (issue 11, item 1): the agency pays the operator tranches before
//! the claims (e.g. 70 % when the programme starts, 30 % later). A tranche is
//! `assets:bank → liabilities:programme:{id}:advance`; submitted claims are
//! settled first against what is unapplied — `advance → subsidy receivable`,
//! oldest claim first — and only the rest waits for a cash payment. The
//! advance account's floor means nothing is applied that was not received.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::claims::ClaimError;
use super::claims::ClaimRow;
use super::programmes::find_programme;
use crate::db::schema::{claim_advance_applications, claims, programme_advances, programmes};
use crate::ledger::model::{Actor, EntryKind, NormalSide};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::{Currency, format_amount};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdvanceView {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub received_at: DateTime<Utc>,
    pub journal_entry_id: Uuid,
    /// Applied to claims by this tranche's arrival (claims already submitted and outstanding).
    pub applied_now: String,
    /// What is left unapplied after it.
    pub unapplied: String,
}

/// Records a tranche received, then applies what is unapplied to outstanding
/// submitted claims. The programme row is locked: advances, applications and
/// claims of one programme happen one at a time.
pub async fn record(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    amount: Decimal,
    reference: String,
    received_at: DateTime<Utc>,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<AdvanceView, ClaimError> {
    lock_programme(conn, programme_id).await?;
    super::year_end::ensure_open(conn, programme_id).await?;
    let programme = find_programme(conn, programme_id).await?.ok_or(ClaimError::ProgrammeNotFound(programme_id))?;
    let currency = programme.currency;
    let seen = programme_advances::table
        .filter(programme_advances::programme_id.eq(programme_id))
        .filter(programme_advances::reference.eq(&reference))
        .count()
        .get_result::<i64>(conn)
        .await?;
    if seen > 0 {
        return Err(ClaimError::DuplicateAdvanceReference(reference));
    }
    let codes = [chart::BANK.to_string(), chart::programme_advance_code(programme_id)];
    let [bank, advance] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut entry = NewEntry::new(EntryKind::Advance, received_at, vec![Movement::posted(bank, advance, amount)]);
    entry.actor = actor;
    entry.memo = format!("advance from {} ({reference})", programme.sponsor);
    entry.reference = Some(reference.clone());
    entry.metadata = serde_json::json!({"programme_id": programme_id});
    let posted = ledger_posting::post_entry(conn, entry).await?;
    let id = Uuid::now_v7();
    diesel::insert_into(programme_advances::table)
        .values((
            programme_advances::id.eq(id),
            programme_advances::programme_id.eq(programme_id),
            programme_advances::amount.eq(amount),
            programme_advances::reference.eq(&reference),
            programme_advances::received_at.eq(received_at),
            programme_advances::journal_entry_id.eq(posted.id),
            programme_advances::created_by.eq(actor.user_id),
            programme_advances::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let applied_now = apply(conn, programme_id, currency, actor, now).await?;
    let unapplied = unapplied(conn, programme_id, currency).await?;
    Ok(AdvanceView {
        id,
        programme_id,
        amount: format_amount(amount, currency),
        currency: currency.code().into(),
        reference,
        received_at,
        journal_entry_id: posted.id,
        applied_now: format_amount(applied_now, currency),
        unapplied: format_amount(unapplied, currency),
    })
}

pub async fn lock_programme(conn: &mut AsyncPgConnection, programme_id: Uuid) -> Result<(), ClaimError> {
    programmes::table
        .find(programme_id)
        .select(programmes::id)
        .for_update()
        .first::<Uuid>(conn)
        .await
        .optional()?
        .ok_or(ClaimError::ProgrammeNotFound(programme_id))?;
    Ok(())
}

/// The programme's advance not yet applied to a claim.
pub async fn unapplied(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    currency: Currency,
) -> Result<Decimal, ClaimError> {
    let account = ledger_store::account_by_code(conn, &chart::programme_advance_code(programme_id), currency)
        .await?
        .ok_or_else(|| ClaimError::from(LedgerError::Corrupt("programme advance account missing".into())))?;
    Ok(account.balances().posted_balance(NormalSide::Credit))
}

/// What is still outstanding on a claim: its amount less payments, write-offs
/// and advance applied.
pub async fn outstanding(conn: &mut AsyncPgConnection, claim: &ClaimRow) -> QueryResult<Decimal> {
    let settled = super::corrections::outstanding(conn, claim).await?;
    let applied: Vec<Decimal> = claim_advance_applications::table
        .filter(claim_advance_applications::claim_id.eq(claim.id))
        .select(claim_advance_applications::amount)
        .load(conn)
        .await?;
    Ok(settled - applied.into_iter().sum::<Decimal>())
}

/// Applies unapplied advance to the programme's submitted claims that are
/// still outstanding, oldest first. The caller holds the programme's lock.
/// Returns what it applied.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    currency: Currency,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<Decimal, ClaimError> {
    let mut left = unapplied(conn, programme_id, currency).await?;
    let mut applied_total = Decimal::ZERO;
    if left <= Decimal::ZERO {
        return Ok(applied_total);
    }
    let submitted: Vec<ClaimRow> = claims::table
        .filter(claims::programme_id.eq(programme_id))
        .filter(claims::status.eq(super::claims::ClaimStatus::Submitted))
        .order(claims::created_at)
        .select(ClaimRow::as_select())
        .load(conn)
        .await?;
    let codes = [chart::programme_advance_code(programme_id), chart::subsidy_receivable_code(programme_id)];
    let [advance, receivable] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    for claim in submitted {
        if left <= Decimal::ZERO {
            break;
        }
        let open = outstanding(conn, &claim).await?;
        let apply = open.min(left);
        if apply <= Decimal::ZERO {
            continue;
        }
        let mut entry =
            NewEntry::new(EntryKind::AdvanceApplication, now, vec![Movement::posted(advance, receivable, apply)]);
        entry.actor = actor;
        entry.memo = format!("advance applied to claim {}", claim.id);
        entry.metadata = serde_json::json!({"programme_id": programme_id, "claim_id": claim.id});
        let posted = ledger_posting::post_entry(conn, entry).await?;
        diesel::insert_into(claim_advance_applications::table)
            .values((
                claim_advance_applications::id.eq(Uuid::now_v7()),
                claim_advance_applications::claim_id.eq(claim.id),
                claim_advance_applications::amount.eq(apply),
                claim_advance_applications::journal_entry_id.eq(posted.id),
                claim_advance_applications::created_at.eq(now),
            ))
            .execute(conn)
            .await?;
        left -= apply;
        applied_total += apply;
    }
    Ok(applied_total)
}
