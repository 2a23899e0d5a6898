//! Claims: the operator asks the programme for the subsidy it settled in a
//! period, and records what the programme pays.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Numeric, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::programmes::GrantError;
use super::programmes::find_programme;
use crate::db::schema::{claim_items, claim_payments, claims, programmes};
use crate::events::{EventType, NewEvent};
use crate::ledger::model::{Actor, EntryKind};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::{Currency, format_amount};

/// Why a claim, a payment on one or an advance is refused. The HTTP answer of
/// each is chosen at the edge (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("programme {0} does not exist")]
    ProgrammeNotFound(Uuid),
    #[error("claim {0} does not exist")]
    ClaimNotFound(Uuid),
    #[error("no unclaimed settled subsidy in this period")]
    NothingToClaim,
    #[error("the claim is {0}: only a draft can be submitted")]
    NotDraft(ClaimStatus),
    #[error("submit the claim before recording payments on it")]
    NotSubmitted,
    #[error("{0}")]
    InvalidAmount(String),
    #[error(
        "bank reference {reference:?} is already recorded (payment {payment} on claim {claim}); \
         if this is another transfer with the same reference, send \"allow_duplicate_reference\": true"
    )]
    DuplicatePaymentReference { reference: String, payment: Uuid, claim: Uuid },
    #[error("an advance with reference {0:?} is already recorded")]
    DuplicateAdvanceReference(String),
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
}

crate::ledger::model::text_enum_sql! {
    /// A claim is drafted, then submitted to the programme (which pays on it); a
    /// draft may be voided instead.
    pub enum ClaimStatus {
        Draft => "draft",
        Submitted => "submitted",
        Void => "void",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = claims, check_for_backend(diesel::pg::Pg))]
pub struct ClaimRow {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub amount: Decimal,
    pub status: ClaimStatus,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
}

#[derive(QueryableByName)]
struct Claimable {
    #[diesel(sql_type = SqlUuid)]
    posting_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    order_id: Option<Uuid>,
    #[diesel(sql_type = SqlUuid)]
    tenant_org_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    provider_org_id: Uuid,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

/// Gathers every settled subsidy of a programme in [`start`, `end`) that no
/// claim holds yet — settlements' posts from the subsidy receivable (positive)
/// and outage refunds to it (negative) — into a new draft claim. Claims of one
/// programme are made one at a time (the programme row is locked), and the
/// claim items' primary key is the posting: a settled subsidy is claimed once.
pub async fn create_claim(
    conn: &mut AsyncPgConnection,
    programme_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ClaimRow, ClaimError> {
    programmes::table
        .find(programme_id)
        .select(programmes::id)
        .for_update()
        .first::<Uuid>(conn)
        .await
        .optional()?
        .ok_or(ClaimError::ProgrammeNotFound(programme_id))?;
    super::year_end::ensure_open(conn, programme_id).await?;
    let programme = find_programme(conn, programme_id).await?.ok_or(ClaimError::ProgrammeNotFound(programme_id))?;
    let receivable =
        ledger_store::account_by_code(conn, &chart::subsidy_receivable_code(programme.id), programme.currency)
            .await?
            .ok_or_else(|| ClaimError::from(LedgerError::Corrupt("programme accounts are missing".into())))?;
    // Settled subsidy (positive), and what went back to the programme:
    // outage refunds and credit notes (negative). A posting held by a live
    // (not voided) claim is not claimable again.
    let items: Vec<Claimable> = diesel::sql_query(
        "SELECT p.id AS posting_id, o.id AS order_id, \
                coalesce(o.tenant_org_id, (e.metadata ->> 'tenant_org_id')::uuid) AS tenant_org_id, \
                coalesce(o.provider_org_id, (e.metadata ->> 'provider_org_id')::uuid) AS provider_org_id, \
                CASE WHEN p.debit_account_id = $1 THEN p.amount ELSE -p.amount END AS amount \
         FROM postings p \
         JOIN journal_entries e ON e.id = p.entry_id \
         LEFT JOIN orders o ON o.id = (e.metadata ->> 'order_id')::uuid \
         WHERE p.effective_at >= $2 AND p.effective_at < $3 \
           AND ((p.kind = 'post_pending' AND p.debit_account_id = $1) \
             OR (p.kind = 'posted' AND p.credit_account_id = $1 AND e.kind IN ('outage_credit', 'credit_note'))) \
           AND NOT EXISTS (SELECT 1 FROM claim_items ci JOIN claims c ON c.id = ci.claim_id \
                           WHERE ci.posting_id = p.id AND c.status <> 'void') \
         ORDER BY p.seq",
    )
    .bind::<SqlUuid, _>(receivable.id)
    .bind::<Timestamptz, _>(start)
    .bind::<Timestamptz, _>(end)
    .load(conn)
    .await?;
    if items.is_empty() {
        return Err(ClaimError::NothingToClaim);
    }
    let amount =
        items.iter().try_fold(Decimal::ZERO, |sum, i| sum.checked_add(i.amount)).ok_or(LedgerError::Overflow)?;
    let claim = ClaimRow {
        id: Uuid::now_v7(),
        programme_id,
        period_start: start,
        period_end: end,
        amount,
        status: ClaimStatus::Draft,
        created_by: actor.user_id,
        created_at: now,
        submitted_at: None,
        voided_at: None,
        void_reason: None,
    };
    diesel::insert_into(claims::table).values(&claim).execute(conn).await?;
    for chunk in items.chunks(1000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|i| {
                (
                    claim_items::posting_id.eq(i.posting_id),
                    claim_items::claim_id.eq(claim.id),
                    claim_items::order_id.eq(i.order_id),
                    claim_items::tenant_org_id.eq(i.tenant_org_id),
                    claim_items::provider_org_id.eq(i.provider_org_id),
                    claim_items::amount.eq(i.amount),
                )
            })
            .collect();
        diesel::insert_into(claim_items::table).values(rows).execute(conn).await?;
    }
    Ok(claim)
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ClaimRow>> {
    claims::table.find(id).select(ClaimRow::as_select()).first(conn).await.optional()
}

/// Submits a draft claim, then settles it first against the programme's
/// unapplied advance (`advances::apply`). Locks the programme, then the claim:
/// the order every writer of a programme's claims follows.
pub async fn submit(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ClaimRow, ClaimError> {
    let programme_id = claims::table
        .find(id)
        .select(claims::programme_id)
        .first::<Uuid>(conn)
        .await
        .optional()?
        .ok_or(ClaimError::ClaimNotFound(id))?;
    super::advances::lock_programme(conn, programme_id).await?;
    let claim = claims::table
        .find(id)
        .select(ClaimRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(ClaimError::ClaimNotFound(id))?;
    if claim.status != ClaimStatus::Draft {
        return Err(ClaimError::NotDraft(claim.status));
    }
    let submitted = diesel::update(claims::table.find(id))
        .set((claims::status.eq(ClaimStatus::Submitted), claims::submitted_at.eq(now)))
        .returning(ClaimRow::as_returning())
        .get_result(conn)
        .await?;
    let programme = find_programme(conn, programme_id)
        .await?
        .ok_or_else(|| ClaimError::from(LedgerError::Corrupt("claim without programme".into())))?;
    super::advances::apply(conn, programme_id, programme.currency, actor, now).await?;
    // After the advance is applied, so the view shows what is still outstanding.
    let data = crate::events::view_data(&view(conn, submitted.clone()).await?)?;
    crate::events::record(conn, NewEvent::new(EventType::ClaimSubmitted, now, submitted.id, vec![], data)).await?;
    Ok(submitted)
}

/// Records a payment by the programme on a submitted claim: `assets:bank →`
/// (credit) `subsidy receivable`. A payment may differ from the claim; the
/// difference stays visible as the claim's outstanding amount. A bank
/// `reference` already recorded for any claim payment (compared without case)
/// is refused with 409 `duplicate_reference` — the same transfer booked twice
/// would overstate what the programme paid — unless the caller says it is
/// another transfer (`allow_duplicate_reference`), which the entry then records.
pub async fn pay(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    amount: Decimal,
    reference: String,
    allow_duplicate_reference: bool,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ClaimRow, ClaimError> {
    let claim = claims::table
        .find(id)
        .select(ClaimRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(ClaimError::ClaimNotFound(id))?;
    if claim.status != ClaimStatus::Submitted {
        return Err(ClaimError::NotSubmitted);
    }
    let programme = find_programme(conn, claim.programme_id)
        .await?
        .ok_or_else(|| ClaimError::from(LedgerError::Corrupt("claim without programme".into())))?;
    let currency = programme.currency;
    crate::money::parse_amount(&amount.to_string(), currency).map_err(|e| ClaimError::InvalidAmount(e.to_string()))?;
    let duplicate_of = earlier_payment_with(conn, &reference).await?;
    if let Some((payment, claim_of_payment)) = duplicate_of
        && !allow_duplicate_reference
    {
        return Err(ClaimError::DuplicatePaymentReference { reference, payment, claim: claim_of_payment });
    }
    let codes = [chart::BANK.to_string(), chart::subsidy_receivable_code(programme.id)];
    let [bank, receivable] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut entry = NewEntry::new(EntryKind::ClaimPayment, now, vec![Movement::posted(bank, receivable, amount)]);
    entry.actor = actor;
    entry.memo = format!("payment on claim {id} by {}", programme.sponsor);
    entry.reference = Some(reference.clone());
    entry.metadata = match duplicate_of {
        None => serde_json::json!({"programme_id": programme.id, "claim_id": id}),
        Some((payment, _)) => serde_json::json!({"programme_id": programme.id, "claim_id": id,
            "duplicate_reference_allowed": true, "same_reference_as_payment": payment}),
    };
    let posted = ledger_posting::post_entry(conn, entry).await?;
    let payment_id = Uuid::now_v7();
    diesel::insert_into(claim_payments::table)
        .values((
            claim_payments::id.eq(payment_id),
            claim_payments::claim_id.eq(id),
            claim_payments::amount.eq(amount),
            claim_payments::reference.eq(&reference),
            claim_payments::journal_entry_id.eq(posted.id),
            claim_payments::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    // `claim.paid` for every payment recorded, full or part: the claim's view
    // (its `paid` and `outstanding` after this payment) and this payment.
    let payment = ClaimPaymentView {
        amount: format_amount(amount, currency),
        reference,
        journal_entry_id: posted.id,
        paid_at: now,
    };
    let mut data = crate::events::view_value(&view(conn, claim.clone()).await?)?;
    if let Some(fields) = data.as_object_mut() {
        let mut payment = crate::events::view_value(&payment)?;
        if let Some(p) = payment.as_object_mut() {
            p.insert("id".into(), serde_json::json!(payment_id));
        }
        fields.insert("payment".into(), payment);
    }
    let data = crate::events::view_data(&data)?;
    crate::events::record(conn, NewEvent::new(EventType::ClaimPaid, now, id, vec![], data)).await?;
    Ok(claim)
}

/// The first claim payment recorded with `reference` (without case), as
/// (payment, claim). Payments with one reference are serialised first (an
/// advisory lock held to the end of the transaction), so two racing with the
/// same reference cannot both find none.
async fn earlier_payment_with(conn: &mut AsyncPgConnection, reference: &str) -> QueryResult<Option<(Uuid, Uuid)>> {
    // The key is lower-cased by PostgreSQL, as the lookup is, so both agree on every text.
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('claim-payment-reference:' || lower($1), 0))")
        .bind::<diesel::sql_types::Text, _>(reference)
        .execute(conn)
        .await?;
    claim_payments::table
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("lower(reference) = lower(")
                .bind::<diesel::sql_types::Text, _>(reference)
                .sql(")"),
        )
        .order(claim_payments::created_at)
        .select((claim_payments::id, claim_payments::claim_id))
        .first(conn)
        .await
        .optional()
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimLine {
    pub org_id: Uuid,
    /// The organisation, by name.
    pub org: Option<crate::finance::names::OrgRef>,
    pub amount: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimPaymentView {
    pub amount: String,
    pub reference: String,
    pub journal_entry_id: Uuid,
    pub paid_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// `draft`, `submitted` or `void` (a voided draft: its postings are claimable again).
    pub status: ClaimStatus,
    pub currency: Currency,
    /// What is claimed: settled subsidy less outage refunds.
    pub amount: String,
    pub paid: String,
    /// Disallowed by the programme and written off (`subsidy_write_off` entries).
    pub written_off: String,
    /// Settled from the programme's advance (`advance_application` entries).
    pub advance_applied: String,
    /// amount − paid − written off − advance applied; negative when the
    /// programme paid more than claimed.
    pub outstanding: String,
    /// Settled postings the claim holds.
    pub items: i64,
    pub lines_by_provider: Vec<ClaimLine>,
    pub lines_by_tenant: Vec<ClaimLine>,
    pub payments: Vec<ClaimPaymentView>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
}

pub async fn view(conn: &mut AsyncPgConnection, claim: ClaimRow) -> Result<ClaimView, ClaimError> {
    let programme = find_programme(conn, claim.programme_id)
        .await?
        .ok_or_else(|| ClaimError::from(LedgerError::Corrupt("claim without programme".into())))?;
    let currency: Currency = programme.currency;
    let items: Vec<(Uuid, Uuid, Decimal)> = claim_items::table
        .filter(claim_items::claim_id.eq(claim.id))
        .select((claim_items::provider_org_id, claim_items::tenant_org_id, claim_items::amount))
        .load(conn)
        .await?;
    let mut by_provider: BTreeMap<Uuid, Decimal> = BTreeMap::new();
    let mut by_tenant: BTreeMap<Uuid, Decimal> = BTreeMap::new();
    for (provider, tenant, amount) in &items {
        *by_provider.entry(*provider).or_default() += amount;
        *by_tenant.entry(*tenant).or_default() += amount;
    }
    let payments: Vec<(Decimal, String, Uuid, DateTime<Utc>)> = claim_payments::table
        .filter(claim_payments::claim_id.eq(claim.id))
        .order(claim_payments::created_at)
        .select((
            claim_payments::amount,
            claim_payments::reference,
            claim_payments::journal_entry_id,
            claim_payments::created_at,
        ))
        .load(conn)
        .await?;
    let paid: Decimal = payments.iter().map(|p| p.0).sum();
    let advance_applied: Decimal = {
        use crate::db::schema::claim_advance_applications as applications;
        applications::table
            .filter(applications::claim_id.eq(claim.id))
            .select(applications::amount)
            .load::<Decimal>(conn)
            .await?
            .into_iter()
            .sum()
    };
    let written_off: Decimal = {
        use crate::db::schema::claim_write_offs;
        claim_write_offs::table
            .filter(claim_write_offs::claim_id.eq(claim.id))
            .select(claim_write_offs::amount)
            .load::<Decimal>(conn)
            .await?
            .into_iter()
            .sum()
    };
    let ids: Vec<Uuid> = by_provider.keys().chain(by_tenant.keys()).copied().collect();
    let orgs = crate::finance::names::orgs(conn, &ids).await?;
    let lines = |m: BTreeMap<Uuid, Decimal>| {
        m.into_iter()
            .map(|(org_id, a)| ClaimLine {
                org_id,
                org: orgs.get(&org_id).cloned(),
                amount: format_amount(a, currency),
            })
            .collect()
    };
    Ok(ClaimView {
        id: claim.id,
        programme_id: claim.programme_id,
        period_start: claim.period_start,
        period_end: claim.period_end,
        status: claim.status,
        currency,
        amount: format_amount(claim.amount, currency),
        paid: format_amount(paid, currency),
        written_off: format_amount(written_off, currency),
        advance_applied: format_amount(advance_applied, currency),
        outstanding: format_amount(claim.amount - paid - written_off - advance_applied, currency),
        items: items.len() as i64,
        lines_by_provider: lines(by_provider),
        lines_by_tenant: lines(by_tenant),
        payments: payments
            .into_iter()
            .map(|(a, reference, journal_entry_id, paid_at)| ClaimPaymentView {
                amount: format_amount(a, currency),
                reference,
                journal_entry_id,
                paid_at,
            })
            .collect(),
        created_at: claim.created_at,
        submitted_at: claim.submitted_at,
        voided_at: claim.voided_at,
        void_reason: claim.void_reason,
    })
}
