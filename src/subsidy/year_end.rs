//! Year-end settlement of a programme (정산; issue 11, item 2). After its
//! fiscal year, once every order it funded has settled or been cancelled, the
//! programme is settled in one transaction: every grant is closed (what is
//! left goes back to the programme), what is unclaimed is claimed and
//! submitted (settled from the advance first), and what the programme gave
//! beyond what its subsidy earned — unapplied advance, or cash paid beyond its
//! claims — becomes `liabilities:programme:{id}:refund-due`, paid back with
//! `POST /v1/programmes/{id}/refunds`. A shortfall stays outstanding on the
//! claims for a cash payment. Afterwards the programme takes no new grants,
//! advances, claims or credit notes (409 naming the settlement).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::programmes::{ProgrammeRow, find_programme};
use crate::db::schema::{grants, programme_refunds, programmes};
use crate::ledger::model::{Actor, EntryKind, NormalSide};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::{Currency, format_amount};

/// Why a year-end settlement or a refund is refused. The HTTP answer of each
/// is chosen at the edge (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum YearEndError {
    #[error("programme {0} does not exist")]
    ProgrammeNotFound(Uuid),
    #[error("the programme runs until {}: it is settled after its fiscal year", .0.to_rfc3339())]
    StillRunning(DateTime<Utc>),
    #[error("{0} orders the programme funded have not settled yet: settle them (or wait for their hours) first")]
    OrdersUnsettled(i64),
    #[error("the programme is not settled yet: nothing is due back before its settlement")]
    NotSettled,
    #[error("a refund with reference {0:?} is already recorded")]
    DuplicateRefundReference(String),
    #[error("{0}")]
    InvalidAmount(String),
    #[error(transparent)]
    Grant(#[from] super::programmes::GrantError),
    #[error(transparent)]
    Claim(#[from] super::claims::ClaimError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
}

/// Refuses a change to a programme that has been settled.
pub async fn ensure_open(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
) -> Result<(), super::programmes::GrantError> {
    let settled: Option<Option<DateTime<Utc>>> =
        programmes::table.find(programme_id).select(programmes::settled_at).first(conn).await.optional()?;
    match settled {
        Some(Some(settled_at)) => Err(super::programmes::GrantError::ProgrammeSettled { programme_id, settled_at }),
        _ => Ok(()),
    }
}

/// What the year-end settlement did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SettlementOutcome {
    pub programme_id: Uuid,
    pub settled_at: DateTime<Utc>,
    pub currency: String,
    /// Released by closing the grants now.
    pub released_now: String,
    /// The final claim made now, if anything was unclaimed.
    pub final_claim_id: Option<Uuid>,
    /// What the programme is owed back.
    pub refund_due: String,
    /// What the programme still owes on its claims (the shortfall).
    pub outstanding: String,
    pub journal_entry_id: Option<Uuid>,
}

fn balance(
    accounts: &std::collections::BTreeMap<Uuid, crate::ledger::model::AccountState>,
    id: Uuid,
    side: NormalSide,
) -> Decimal {
    accounts.get(&id).map(|a| a.balances.posted_balance(side)).unwrap_or_default()
}

pub async fn settle(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<SettlementOutcome, YearEndError> {
    super::advances::lock_programme(conn, programme_id).await?;
    let programme: ProgrammeRow =
        find_programme(conn, programme_id).await?.ok_or(YearEndError::ProgrammeNotFound(programme_id))?;
    ensure_open(conn, programme_id).await?;
    if now < programme.ends_at {
        return Err(YearEndError::StillRunning(programme.ends_at));
    }
    let currency: Currency = programme.currency;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let running: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM orders o JOIN grants g ON g.id = o.grant_id \
         WHERE g.programme_id = $1 AND o.status IN ('reserved', 'active')",
    )
    .bind::<diesel::sql_types::Uuid, _>(programme_id)
    .get_result(conn)
    .await?;
    if running.n > 0 {
        return Err(YearEndError::OrdersUnsettled(running.n));
    }
    // Every grant closed: what any has left goes back to the programme.
    let grant_ids: Vec<Uuid> = grants::table
        .filter(grants::programme_id.eq(programme_id))
        .select(grants::id)
        .order(grants::id)
        .load(conn)
        .await?;
    let mut released_now = Decimal::ZERO;
    for id in grant_ids {
        let before: Decimal = grants::table.find(id).select(grants::released).first(conn).await?;
        let row = super::programmes::close_grant(conn, id, actor, now).await?;
        released_now += row.released - before;
    }
    // Whatever is unclaimed is claimed now, and submitted (advance applied first).
    let far_past = programme.starts_at - chrono::TimeDelta::days(3660);
    let final_claim = match super::claims::create_claim(conn, programme_id, far_past, now, actor, now).await {
        Ok(claim) => {
            super::claims::submit(conn, claim.id, actor, now).await?;
            Some(claim.id)
        }
        Err(super::claims::ClaimError::NothingToClaim) => None,
        Err(e) => return Err(e.into()),
    };
    // What the programme gave beyond what its subsidy earned becomes refund due.
    let codes = [
        chart::programme_advance_code(programme_id),
        chart::subsidy_receivable_code(programme_id),
        chart::programme_refund_due_code(programme_id),
    ];
    let [advance, receivable, refund_due] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut ids = vec![advance, receivable, refund_due];
    ids.sort_unstable();
    let locked = ledger_posting::lock_accounts(conn, &ids).await?;
    let unapplied = balance(&locked, advance, NormalSide::Credit);
    let owed = balance(&locked, receivable, NormalSide::Debit);
    let overpaid = (-owed).max(Decimal::ZERO);
    let mut movements = Vec::new();
    if unapplied > Decimal::ZERO {
        movements.push(Movement::posted(advance, refund_due, unapplied));
    }
    if overpaid > Decimal::ZERO {
        movements.push(Movement::posted(receivable, refund_due, overpaid));
    }
    let entry_id = if movements.is_empty() {
        None
    } else {
        let mut entry = NewEntry::new(EntryKind::ProgrammeSettlement, now, movements);
        entry.actor = actor;
        entry.memo = format!("{} settled: refund due to {}", programme.name, programme.sponsor);
        entry.metadata = serde_json::json!({"programme_id": programme_id});
        Some(ledger_posting::post_entry_locked(conn, entry, locked).await?.id)
    };
    diesel::update(programmes::table.find(programme_id))
        .set((programmes::settled_at.eq(now), programmes::settlement_entry_id.eq(entry_id)))
        .execute(conn)
        .await?;
    Ok(SettlementOutcome {
        programme_id,
        settled_at: now,
        currency: currency.code().into(),
        released_now: format_amount(released_now, currency),
        final_claim_id: final_claim,
        refund_due: format_amount(unapplied + overpaid, currency),
        outstanding: format_amount(owed.max(Decimal::ZERO), currency),
        journal_entry_id: entry_id,
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub journal_entry_id: Uuid,
    /// What is still due after it.
    pub refund_due: String,
    pub created_at: DateTime<Utc>,
}

/// Pays (part of) the refund due back to the programme: `refund-due → assets:bank`.
pub async fn refund(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    amount: Decimal,
    reference: String,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<RefundView, YearEndError> {
    super::advances::lock_programme(conn, programme_id).await?;
    let programme = find_programme(conn, programme_id).await?.ok_or(YearEndError::ProgrammeNotFound(programme_id))?;
    let settled: Option<DateTime<Utc>> =
        programmes::table.find(programme_id).select(programmes::settled_at).first(conn).await?;
    if settled.is_none() {
        return Err(YearEndError::NotSettled);
    }
    let currency = programme.currency;
    let seen = programme_refunds::table
        .filter(programme_refunds::programme_id.eq(programme_id))
        .filter(programme_refunds::reference.eq(&reference))
        .count()
        .get_result::<i64>(conn)
        .await?;
    if seen > 0 {
        return Err(YearEndError::DuplicateRefundReference(reference));
    }
    let codes = [chart::programme_refund_due_code(programme_id), chart::BANK.to_string()];
    let [due, bank] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut ids = vec![due, bank];
    ids.sort_unstable();
    let locked = ledger_posting::lock_accounts(conn, &ids).await?;
    let left = balance(&locked, due, NormalSide::Credit);
    if amount > left {
        return Err(YearEndError::InvalidAmount(format!(
            "is more than the refund due ({})",
            format_amount(left.max(Decimal::ZERO), currency)
        )));
    }
    let mut entry = NewEntry::new(EntryKind::ProgrammeRefund, now, vec![Movement::posted(due, bank, amount)]);
    entry.actor = actor;
    entry.memo = format!("refund to {} ({reference})", programme.sponsor);
    entry.reference = Some(reference.clone());
    entry.metadata = serde_json::json!({"programme_id": programme_id});
    let posted = ledger_posting::post_entry_locked(conn, entry, locked).await?;
    let id = Uuid::now_v7();
    diesel::insert_into(programme_refunds::table)
        .values((
            programme_refunds::id.eq(id),
            programme_refunds::programme_id.eq(programme_id),
            programme_refunds::amount.eq(amount),
            programme_refunds::reference.eq(&reference),
            programme_refunds::journal_entry_id.eq(posted.id),
            programme_refunds::created_by.eq(actor.user_id),
            programme_refunds::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(RefundView {
        id,
        programme_id,
        amount: format_amount(amount, currency),
        currency: currency.code().into(),
        reference,
        journal_entry_id: posted.id,
        refund_due: format_amount(left - amount, currency),
        created_at: now,
    })
}
