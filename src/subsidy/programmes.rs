//! Programmes and grants in the database, and what a grant gives an order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::rules::{Eligibility, rate_category, rate_for, within};
use crate::auth::Principal;
use crate::auth::model::OrgKind;
use crate::db::schema::{grants, programmes};
use crate::events::{EventType, NewEvent};
use crate::ledger::model::{Actor, EntryKind};
use crate::ledger::posting::{self as ledger_posting, NewEntry};
use crate::ledger::rules::Movement;
use crate::ledger::store as ledger_store;
use crate::ledger::{LedgerError, chart};
use crate::money::Currency;

/// Why a programme or grant change, or a grant's use by an order, is refused.
/// The HTTP answer of each is chosen at the edge (`http/problem.rs`).
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("programme {0} does not exist")]
    ProgrammeNotFound(Uuid),
    #[error("grant {0} does not exist")]
    GrantNotFound(Uuid),
    #[error(
        "programme {programme_id} was settled at {}: only its refund and payments on its claims are taken",
        .settled_at.to_rfc3339()
    )]
    ProgrammeSettled { programme_id: Uuid, settled_at: DateTime<Utc> },
    #[error("no such tenant organisation")]
    NoSuchTenant,
    #[error("the programme has {0} left to grant")]
    BudgetExhausted(String),
    /// The grant would take the tenant past the programme's per-organisation cap.
    #[error("{}", .share.describe(*.currency))]
    ShareCapExceeded { share: super::projects::ShareExceeded, currency: Currency },
    /// A field of the grant asked for does not fit what is stored (its project).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The grant an order names cannot pay for it (not the caller's, closed,
    /// another currency, outside its validity, not eligible).
    #[error("{0}")]
    NotUsable(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("database error")]
    Database(#[from] diesel::result::Error),
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = programmes, check_for_backend(diesel::pg::Pg))]
pub struct ProgrammeRow {
    pub id: Uuid,
    pub name: String,
    pub sponsor: String,
    pub fiscal_year: i32,
    pub currency: Currency,
    pub budget: Decimal,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub default_rate: Decimal,
    pub rates_by_category: serde_json::Value,
    pub eligible_gpu_models: Option<Vec<String>>,
    pub eligible_regions: Option<Vec<String>>,
    pub eligible_provider_ids: Option<Vec<Uuid>>,
    pub journal_entry_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The reclaim rule (`subsidy::reclaim`): both or neither.
    pub reclaim_below_utilisation: Option<Decimal>,
    pub reclaim_window_hours: Option<i32>,
}

impl ProgrammeRow {
    pub fn rates(&self) -> BTreeMap<String, Decimal> {
        serde_json::from_value::<BTreeMap<String, String>>(self.rates_by_category.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.parse().ok().map(|r| (k, r)))
            .collect()
    }

    pub fn eligibility(&self) -> Eligibility {
        Eligibility {
            gpu_models: self.eligible_gpu_models.clone(),
            regions: self.eligible_regions.clone(),
            provider_ids: self.eligible_provider_ids.clone(),
        }
    }
}

crate::ledger::model::text_enum_sql! {
    /// A grant funds orders while active; closed, what it had left went back to
    /// its programme.
    pub enum GrantStatus {
        Active => "active",
        Closed => "closed",
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = grants, check_for_backend(diesel::pg::Pg))]
pub struct GrantRow {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub tenant_org_id: Uuid,
    pub amount: Decimal,
    pub rate: Option<Decimal>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub status: GrantStatus,
    pub journal_entry_id: Uuid,
    pub release_entry_id: Option<Uuid>,
    pub released: Decimal,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Set once by the reclaim job when the grant's orders fell below its
    /// programme's rule (`subsidy::reclaim`).
    pub flagged_at: Option<DateTime<Utc>>,
    pub flag_reason: Option<String>,
    /// Set by `POST /v1/grants/{id}/reclaim`.
    pub reclaimed_at: Option<DateTime<Utc>>,
    pub reclaim_reason: Option<String>,
}

/// A validated programme to create.
#[derive(Debug, Clone)]
pub struct NewProgramme {
    pub name: String,
    pub sponsor: String,
    pub fiscal_year: i32,
    pub currency: Currency,
    pub budget: Decimal,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub default_rate: Decimal,
    pub rates_by_category: BTreeMap<String, Decimal>,
    pub eligibility: Eligibility,
}

/// Creates a programme, its accounts, and its `programme_budget` entry
/// (appropriation → unallocated), in the caller's transaction.
pub async fn create_programme(
    conn: &mut AsyncPgConnection,
    p: NewProgramme,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<ProgrammeRow, GrantError> {
    let id = Uuid::now_v7();
    let accounts = ledger_store::ensure_accounts(conn, &chart::programme_accounts(id, p.currency), now).await?;
    let (appropriation, unallocated) = (accounts[1].id, accounts[2].id);
    let mut entry =
        NewEntry::new(EntryKind::ProgrammeBudget, now, vec![Movement::posted(appropriation, unallocated, p.budget)]);
    entry.actor = actor;
    entry.memo = format!("budget of {} (FY{})", p.name, p.fiscal_year);
    entry.metadata = serde_json::json!({"programme_id": id});
    let posted = ledger_posting::post_entry(conn, entry).await?;
    let rates: BTreeMap<String, String> = p.rates_by_category.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    let row = ProgrammeRow {
        id,
        name: p.name,
        sponsor: p.sponsor,
        fiscal_year: p.fiscal_year,
        currency: p.currency,
        budget: p.budget,
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        default_rate: p.default_rate,
        rates_by_category: serde_json::to_value(rates).unwrap_or_default(),
        eligible_gpu_models: p.eligibility.gpu_models,
        eligible_regions: p.eligibility.regions,
        eligible_provider_ids: p.eligibility.provider_ids,
        journal_entry_id: posted.id,
        created_by: actor.user_id,
        created_at: now,
        reclaim_below_utilisation: None,
        reclaim_window_hours: None,
    };
    diesel::insert_into(programmes::table).values(&row).execute(conn).await?;
    Ok(row)
}

pub async fn find_programme(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ProgrammeRow>> {
    programmes::table.find(id).select(ProgrammeRow::as_select()).first(conn).await.optional()
}

pub async fn find_grant(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<GrantRow>> {
    grants::table.find(id).select(GrantRow::as_select()).first(conn).await.optional()
}

/// A validated grant to make.
#[derive(Debug, Clone, Copy)]
pub struct NewGrant {
    pub programme_id: Uuid,
    pub tenant_org_id: Uuid,
    pub amount: Decimal,
    pub rate: Option<Decimal>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

/// Grants `amount` of a programme's unallocated budget to a tenant and
/// records `grant.created`. The unallocated account's floor makes
/// over-granting impossible, whatever runs at the same time: the loser gets
/// 422 `budget_exhausted` and nothing is written.
pub async fn create_grant(
    conn: &mut AsyncPgConnection,
    g: NewGrant,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<GrantRow, GrantError> {
    let row = insert_grant(conn, g, actor, now).await?;
    announce_grant(conn, row.clone(), now).await?;
    Ok(row)
}

/// [`create_grant`] without its event: for a caller that attaches a project
/// or an allocation first, then calls [`announce_grant`].
pub async fn insert_grant(
    conn: &mut AsyncPgConnection,
    g: NewGrant,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<GrantRow, GrantError> {
    let programme = find_programme(conn, g.programme_id).await?.ok_or(GrantError::ProgrammeNotFound(g.programme_id))?;
    super::year_end::ensure_open(conn, programme.id).await?;
    let currency = programme.currency;
    crate::auth::store::org_by_id(conn, g.tenant_org_id)
        .await?
        .filter(|o| o.kind == OrgKind::Tenant.as_str())
        .ok_or(GrantError::NoSuchTenant)?;
    let id = Uuid::now_v7();
    let unallocated = ledger_store::account_by_code(conn, &chart::unallocated_code(programme.id), currency)
        .await?
        .ok_or_else(|| LedgerError::Corrupt("programme accounts are missing".into()))?;
    let accounts = ledger_store::ensure_accounts(conn, &chart::grant_accounts(id, currency), now).await?;
    let mut entry =
        NewEntry::new(EntryKind::Grant, now, vec![Movement::posted(unallocated.id, accounts[0].id, g.amount)]);
    entry.actor = actor;
    entry.memo = format!("grant {id} of {}", programme.name);
    entry.metadata =
        serde_json::json!({"programme_id": programme.id, "grant_id": id, "tenant_org_id": g.tenant_org_id});
    let posted = ledger_posting::post_entry(conn, entry).await.map_err(|e| match e {
        LedgerError::FloorBroken { available, .. } => {
            GrantError::BudgetExhausted(crate::money::format_amount(available + g.amount, currency))
        }
        other => other.into(),
    })?;
    let row = GrantRow {
        id,
        programme_id: programme.id,
        tenant_org_id: g.tenant_org_id,
        amount: g.amount,
        rate: g.rate,
        valid_from: g.valid_from,
        valid_until: g.valid_until,
        status: GrantStatus::Active,
        journal_entry_id: posted.id,
        release_entry_id: None,
        released: Decimal::ZERO,
        created_at: now,
        closed_at: None,
        flagged_at: None,
        flag_reason: None,
        reclaimed_at: None,
        reclaim_reason: None,
    };
    diesel::insert_into(grants::table).values(&row).execute(conn).await?;
    Ok(row)
}

/// Records `grant.created` for a grant made by [`insert_grant`], once what
/// the grant carries besides (its project, its allocation) is attached, so
/// that the event's data is the whole grant.
pub async fn announce_grant(
    conn: &mut AsyncPgConnection,
    grant: GrantRow,
    now: DateTime<Utc>,
) -> Result<(), GrantError> {
    record_grant_event(conn, EventType::GrantCreated, grant, now).await
}

/// A grant's event, seen by its tenant (and finance), with the grant's view
/// after the change as its data.
async fn record_grant_event(
    conn: &mut AsyncPgConnection,
    event_type: EventType,
    grant: GrantRow,
    now: DateTime<Utc>,
) -> Result<(), GrantError> {
    let (id, tenant) = (grant.id, grant.tenant_org_id);
    let mut views = super::routes::grant_views(conn, vec![grant]).await?;
    let view = views.pop().ok_or_else(|| LedgerError::Corrupt(format!("grant {id} has no view")))?;
    let data = crate::events::view_data(&view)?;
    crate::events::record(conn, NewEvent::new(event_type, now, id, vec![tenant], data)).await?;
    Ok(())
}

/// Reads grant `id` and locks it for the transaction (closing, reclaiming).
pub async fn lock_grant(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<GrantRow>> {
    grants::table.find(id).select(GrantRow::as_select()).for_update().first(conn).await.optional()
}

/// Closes a grant: what it has left goes back to the programme in a
/// `grant_release` entry. Closing again releases whatever came back since
/// (outage refunds); a closed grant funds nothing new.
pub async fn close_grant(
    conn: &mut AsyncPgConnection,
    grant_id: Uuid,
    actor: Actor,
    now: DateTime<Utc>,
) -> Result<GrantRow, GrantError> {
    let grant = lock_grant(conn, grant_id).await?.ok_or(GrantError::GrantNotFound(grant_id))?;
    let programme = find_programme(conn, grant.programme_id)
        .await?
        .ok_or_else(|| LedgerError::Corrupt("grant without programme".into()))?;
    let currency = programme.currency;
    let codes = [chart::grant_available_code(grant.id), chart::unallocated_code(programme.id)];
    let [available_id, unallocated_id] = ledger_store::required_account_ids(conn, &codes, currency).await?;
    let mut sorted = vec![available_id, unallocated_id];
    sorted.sort_unstable();
    let locked = ledger_posting::lock_accounts(conn, &sorted).await?;
    let left = locked.get(&available_id).map(|a| a.balances.available(a.normal_side)).unwrap_or(Decimal::ZERO);
    let mut release_entry = grant.release_entry_id;
    if left > Decimal::ZERO {
        let mut entry =
            NewEntry::new(EntryKind::GrantRelease, now, vec![Movement::posted(available_id, unallocated_id, left)]);
        entry.actor = actor;
        entry.memo = format!("grant {} closed: {} returned", grant.id, crate::money::format_amount(left, currency));
        entry.metadata = serde_json::json!({"programme_id": programme.id, "grant_id": grant.id});
        release_entry = Some(ledger_posting::post_entry(conn, entry).await?.id);
    }
    let row = diesel::update(grants::table.find(grant.id))
        .set((
            grants::status.eq(GrantStatus::Closed),
            grants::closed_at.eq(grant.closed_at.unwrap_or(now)),
            grants::released.eq(grants::released + left),
            grants::release_entry_id.eq(release_entry),
        ))
        .returning(GrantRow::as_returning())
        .get_result(conn)
        .await?;
    // Closing again only releases what came back since: the grant closed once.
    if grant.status != GrantStatus::Closed {
        record_grant_event(conn, EventType::GrantClosed, row.clone(), now).await?;
    }
    Ok(row)
}

fn grant_problem(message: impl Into<String>) -> GrantError {
    GrantError::NotUsable(message.into())
}

/// What a grant gives one order, decided from the grant, its programme and the
/// tenant organisation (see [`grant_terms`]).
#[derive(Debug, Clone, Copy)]
pub struct GrantTerms {
    pub grant_id: Uuid,
    pub programme_id: Uuid,
    pub rate: Decimal,
    pub currency: Currency,
}

impl GrantTerms {
    /// The codes of the accounts an order under these terms touches on the
    /// subsidy side: the programme's receivable, the grant's available and spent.
    pub fn account_codes(&self) -> [String; 3] {
        [
            chart::subsidy_receivable_code(self.programme_id),
            chart::grant_available_code(self.grant_id),
            chart::grant_spent_code(self.grant_id),
        ]
    }
}

/// What an order asks a grant to pay for: its hours and what it buys. (The
/// marketplace fills it in from its order and listing; subsidy needs no
/// marketplace types.)
#[derive(Debug, Clone, Copy)]
pub struct Purchase<'a> {
    pub grant_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub gpu_model: &'a str,
    pub region: &'a str,
    pub provider_org_id: Uuid,
    pub currency: Currency,
}

/// The subsidy side of an order naming a grant: checks that the grant is the
/// caller's, active, valid for the order's hours, in the listing's currency and
/// eligible for the listing; returns its rate. A plain function of the rows, so
/// that a batch of orders reads each row once.
pub fn grant_terms(
    principal: &Principal,
    purchase: &Purchase<'_>,
    grant: Option<&GrantRow>,
    programme: Option<&ProgrammeRow>,
    tenant_category: Option<&str>,
) -> Result<GrantTerms, GrantError> {
    let grant_id = purchase.grant_id;
    let grant = grant
        .filter(|g| g.id == grant_id && g.tenant_org_id == principal.org_id)
        .ok_or_else(|| grant_problem(format!("grant {grant_id} is not one of yours")))?;
    if grant.status != GrantStatus::Active {
        return Err(grant_problem("the grant is closed"));
    }
    let programme = programme
        .filter(|p| p.id == grant.programme_id)
        .ok_or_else(|| LedgerError::Corrupt("grant without programme".into()))?;
    if programme.currency != purchase.currency {
        return Err(grant_problem(format!(
            "the grant funds {} orders; this listing sells in {}",
            programme.currency, purchase.currency
        )));
    }
    if !within(purchase.start, purchase.end, grant.valid_from, grant.valid_until)
        || !within(purchase.start, purchase.end, programme.starts_at, programme.ends_at)
    {
        return Err(grant_problem("the order's hours are outside the grant's validity"));
    }
    programme
        .eligibility()
        .check(purchase.gpu_model, purchase.region, purchase.provider_org_id)
        .map_err(grant_problem)?;
    let rate = rate_for(grant.rate, &programme.rates(), programme.default_rate, tenant_category);
    Ok(GrantTerms { grant_id, programme_id: programme.id, rate, currency: programme.currency })
}

/// The category a tenant organisation's rate is chosen by, if any.
pub fn category_of(org: Option<&crate::auth::store::OrgRow>) -> Option<String> {
    org.and_then(|o| rate_category(o.category.as_deref(), o.category_confirmed)).map(str::to_string)
}

/// The terms a quote gets, and what the grant has left (read without locks:
/// a quote reserves nothing). Orders read the rows in batches (`market::batch`).
pub async fn quote_terms(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    purchase: &Purchase<'_>,
) -> Result<(GrantTerms, Decimal), GrantError> {
    let grant = find_grant(conn, purchase.grant_id).await?;
    let programme = match &grant {
        Some(g) if g.tenant_org_id == principal.org_id => find_programme(conn, g.programme_id).await?,
        _ => None,
    };
    let org = crate::auth::store::org_by_id(conn, principal.org_id).await?;
    let category = category_of(org.as_ref());
    let terms = grant_terms(principal, purchase, grant.as_ref(), programme.as_ref(), category.as_deref())?;
    let available = ledger_store::account_by_code(conn, &chart::grant_available_code(terms.grant_id), terms.currency)
        .await?
        .map(|a| a.balances().available(crate::ledger::model::NormalSide::Credit))
        .unwrap_or(Decimal::ZERO);
    Ok((terms, available))
}
