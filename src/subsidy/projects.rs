//! Projects (과제), GPU-hour allocations and the per-organisation cap
//! (issue 12 item 5).
//!
//! - A grant may belong to a **project**: one per (programme, agreement
//!   number); several grants of the same tenant may name the same agreement
//!   (a second tranche), and then must describe it the same way.
//! - A grant may carry an **allocation** of GPU-hours of one model beside its
//!   money cap. An order drawing on it must buy that model (otherwise the grant
//!   does not apply: 422 `validation_failed` on `grant_id`, as for any
//!   eligibility rule) and takes its GPU-hours from it; an order needing more
//!   than is left is refused with 422 `budget_exhausted` naming the
//!   allocation. The order batch locks the allocations it touches (ascending
//!   grant id, after the hours and before the accounts) and judges each order
//!   against what the orders before it left ([`AllocationBook`]).
//!   A cancellation gives back the GPU-hours it voids, and an outage credit
//!   the GPU-hours it credits, as both give the money back to the grant.
//! - A programme may cap what one tenant organisation holds of its budget
//!   (`max_share_per_org`); a grant past it is refused with 422
//!   `budget_exhausted` naming the cap and the figures ([`check_share`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::programmes::{GrantError, GrantRow, ProgrammeRow};
use crate::db::schema::{allocation_draws, grant_allocations, grants, programme_caps, project_grants, projects};
use crate::http::FieldError;
use crate::money::{Currency, format_amount};

/// A project as asked for with a grant.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectFields {
    pub title: String,
    pub principal_investigator: String,
    /// The agreement (협약) number: one project per number within a programme.
    pub agreement_number: String,
    pub purpose: String,
}

/// An allocation as asked for with a grant, e.g. `{"gpu_model": "H100", "gpu_hours": 23360}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AllocationFields {
    pub gpu_model: String,
    pub gpu_hours: i64,
}

/// The most GPU-hours one allocation may hold (10,000 GPUs for a year).
pub const MAX_ALLOCATION_GPU_HOURS: i64 = 10_000 * 24 * 366;

fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) -> String {
    let v = value.trim().to_string();
    if v.is_empty() || v.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be 1 to {max} characters")));
    }
    v
}

/// Checks a project's fields (trimmed).
pub fn check_project(errors: &mut Vec<FieldError>, p: &ProjectFields) -> ProjectFields {
    ProjectFields {
        title: text(errors, "project.title", &p.title, 200),
        principal_investigator: text(errors, "project.principal_investigator", &p.principal_investigator, 200),
        agreement_number: text(errors, "project.agreement_number", &p.agreement_number, 100),
        purpose: text(errors, "project.purpose", &p.purpose, 2000),
    }
}

pub fn check_allocation(errors: &mut Vec<FieldError>, a: &AllocationFields) -> AllocationFields {
    let gpu_model = text(errors, "allocation.gpu_model", &a.gpu_model, 100);
    if !(1..=MAX_ALLOCATION_GPU_HOURS).contains(&a.gpu_hours) {
        errors
            .push(FieldError::new("allocation.gpu_hours", format!("must be between 1 and {MAX_ALLOCATION_GPU_HOURS}")));
    }
    AllocationFields { gpu_model, gpu_hours: a.gpu_hours }
}

/// Why a grant is refused by the per-organisation cap, with the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareExceeded {
    pub max_share_per_org: Decimal,
    pub cap: Decimal,
    pub held: Decimal,
    pub asked: Decimal,
}

/// The anti-concentration rule: a tenant may hold at most
/// `max_share × budget` of a programme (what its grants hold: each grant's
/// amount less what closing it released). Exact: no rounding of the cap.
pub fn check_share(budget: Decimal, max_share: Decimal, held: Decimal, asked: Decimal) -> Result<(), ShareExceeded> {
    let cap = budget.checked_mul(max_share).unwrap_or(Decimal::MAX);
    let after = held.checked_add(asked).unwrap_or(Decimal::MAX);
    if after > cap {
        return Err(ShareExceeded { max_share_per_org: max_share, cap, held, asked });
    }
    Ok(())
}

impl ShareExceeded {
    /// The refusal as the caller reads it, amounts in the programme's currency.
    pub fn describe(&self, currency: Currency) -> String {
        format!(
            "max_share_per_org {} caps one organisation at {} of this programme; it holds {} and this grant asks {}",
            self.max_share_per_org.normalize(),
            format_amount(self.cap, currency),
            format_amount(self.held, currency),
            format_amount(self.asked, currency),
        )
    }
}

/// Records a programme's cap (in the programme's creating transaction).
pub async fn set_cap(conn: &mut AsyncPgConnection, programme_id: Uuid, share: Decimal) -> QueryResult<usize> {
    diesel::insert_into(programme_caps::table)
        .values((programme_caps::programme_id.eq(programme_id), programme_caps::max_share_per_org.eq(share)))
        .execute(conn)
        .await
}

pub async fn caps_of(conn: &mut AsyncPgConnection, programme_ids: &[Uuid]) -> QueryResult<HashMap<Uuid, Decimal>> {
    Ok(programme_caps::table
        .filter(programme_caps::programme_id.eq_any(programme_ids))
        .select((programme_caps::programme_id, programme_caps::max_share_per_org))
        .load::<(Uuid, Decimal)>(conn)
        .await?
        .into_iter()
        .collect())
}

/// Enforces the programme's per-organisation cap for a grant of `amount` to
/// `tenant`, in the grant's transaction. The cap row is locked first, so
/// grants of one capped programme are judged one at a time: the second reads
/// what the first granted once it has committed.
pub async fn enforce_cap(
    conn: &mut AsyncPgConnection,
    programme: &ProgrammeRow,
    tenant: Uuid,
    amount: Decimal,
) -> Result<(), GrantError> {
    let share: Option<Decimal> = programme_caps::table
        .find(programme.id)
        .select(programme_caps::max_share_per_org)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some(share) = share else { return Ok(()) };
    let currency = programme.currency;
    let held: Option<Decimal> = grants::table
        .filter(grants::programme_id.eq(programme.id))
        .filter(grants::tenant_org_id.eq(tenant))
        .select(diesel::dsl::sum(grants::amount - grants::released))
        .first(conn)
        .await?;
    check_share(programme.budget, share, held.unwrap_or(Decimal::ZERO), amount)
        .map_err(|share| GrantError::ShareCapExceeded { share, currency })
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg))]
pub struct ProjectRow {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub tenant_org_id: Uuid,
    pub title: String,
    pub principal_investigator: String,
    pub agreement_number: String,
    pub purpose: String,
    pub created_at: DateTime<Utc>,
}

/// Attaches `grant` to the project of its agreement (made if new) and records
/// its allocation, in the grant's transaction.
pub async fn attach(
    conn: &mut AsyncPgConnection,
    grant: &GrantRow,
    project: Option<&ProjectFields>,
    allocation: Option<&AllocationFields>,
    now: DateTime<Utc>,
) -> Result<(), GrantError> {
    if let Some(p) = project {
        let fresh = ProjectRow {
            id: Uuid::now_v7(),
            programme_id: grant.programme_id,
            tenant_org_id: grant.tenant_org_id,
            title: p.title.clone(),
            principal_investigator: p.principal_investigator.clone(),
            agreement_number: p.agreement_number.clone(),
            purpose: p.purpose.clone(),
            created_at: now,
        };
        diesel::insert_into(projects::table)
            .values(&fresh)
            .on_conflict((projects::programme_id, projects::agreement_number))
            .do_nothing()
            .execute(conn)
            .await?;
        let stored: ProjectRow = projects::table
            .filter(projects::programme_id.eq(grant.programme_id))
            .filter(projects::agreement_number.eq(&p.agreement_number))
            .select(ProjectRow::as_select())
            .first(conn)
            .await?;
        if stored.tenant_org_id != grant.tenant_org_id {
            return Err(GrantError::Invalid {
                field: "project.agreement_number",
                message: "this agreement number is another organisation's project in this programme".into(),
            });
        }
        if (&stored.title, &stored.principal_investigator, &stored.purpose)
            != (&p.title, &p.principal_investigator, &p.purpose)
        {
            return Err(GrantError::Invalid {
                field: "project",
                message: format!(
                    "agreement {} is already the project {:?}: describe it the same way",
                    stored.agreement_number, stored.title
                ),
            });
        }
        diesel::insert_into(project_grants::table)
            .values((project_grants::grant_id.eq(grant.id), project_grants::project_id.eq(stored.id)))
            .execute(conn)
            .await?;
    }
    if let Some(a) = allocation {
        diesel::insert_into(grant_allocations::table)
            .values((
                grant_allocations::grant_id.eq(grant.id),
                grant_allocations::gpu_model.eq(&a.gpu_model),
                grant_allocations::gpu_hours.eq(a.gpu_hours),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// A grant's project as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProjectView {
    pub id: Uuid,
    pub title: String,
    pub principal_investigator: String,
    pub agreement_number: String,
    pub purpose: String,
}

/// A grant's allocation as shown: GPU-hours granted, drawn by orders (net of
/// what cancellations gave back), and left.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AllocationView {
    pub gpu_model: String,
    pub gpu_hours: i64,
    pub used_gpu_hours: i64,
    pub left_gpu_hours: i64,
}

/// Projects and allocations of `grant_ids`, two queries.
pub async fn views_of(
    conn: &mut AsyncPgConnection,
    grant_ids: &[Uuid],
) -> QueryResult<(HashMap<Uuid, ProjectView>, HashMap<Uuid, AllocationView>)> {
    let projects: HashMap<Uuid, ProjectView> = project_grants::table
        .inner_join(projects::table.on(projects::id.eq(project_grants::project_id)))
        .filter(project_grants::grant_id.eq_any(grant_ids))
        .select((project_grants::grant_id, ProjectRow::as_select()))
        .load::<(Uuid, ProjectRow)>(conn)
        .await?
        .into_iter()
        .map(|(g, p)| {
            let view = ProjectView {
                id: p.id,
                title: p.title,
                principal_investigator: p.principal_investigator,
                agreement_number: p.agreement_number,
                purpose: p.purpose,
            };
            (g, view)
        })
        .collect();
    let allocations = grant_allocations::table
        .filter(grant_allocations::grant_id.eq_any(grant_ids))
        .select(AllocationRow::as_select())
        .load::<AllocationRow>(conn)
        .await?
        .into_iter()
        .map(|a| {
            let view = AllocationView {
                left_gpu_hours: a.gpu_hours - a.used_gpu_hours,
                gpu_model: a.gpu_model,
                gpu_hours: a.gpu_hours,
                used_gpu_hours: a.used_gpu_hours,
            };
            (a.grant_id, view)
        })
        .collect();
    Ok((projects, allocations))
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = grant_allocations, check_for_backend(diesel::pg::Pg))]
pub struct AllocationRow {
    pub grant_id: Uuid,
    pub gpu_model: String,
    pub gpu_hours: i64,
    pub used_gpu_hours: i64,
}

/// Why an order may not draw on its grant's allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("the grant's allocation is of {allocated}; this listing sells {asked}")]
    OtherModel { allocated: String, asked: String },
    #[error("the grant's allocation of {gpu_model} has {left} GPU-hours left; this order needs {needed}")]
    Exceeded { gpu_model: String, left: i64, needed: i64 },
}

/// The allocations a batch of orders touches, locked, with what the orders
/// judged so far drew. A plain value: the rule needs no database.
#[derive(Debug, Default)]
pub struct AllocationBook {
    allocations: BTreeMap<Uuid, (AllocationRow, bool)>,
    draws: Vec<(Uuid, Uuid, i64)>,
}

impl AllocationBook {
    pub fn insert(&mut self, row: AllocationRow) {
        self.allocations.insert(row.grant_id, (row, false));
    }

    /// Whether an order of `gpu_hours` of `gpu_model` may draw on `grant`'s
    /// allocation (a grant without one: always).
    pub fn check(&self, grant: Uuid, gpu_model: &str, gpu_hours: i64) -> Result<(), AllocationError> {
        let Some((a, _)) = self.allocations.get(&grant) else { return Ok(()) };
        if a.gpu_model != gpu_model {
            return Err(AllocationError::OtherModel { allocated: a.gpu_model.clone(), asked: gpu_model.to_string() });
        }
        let left = a.gpu_hours - a.used_gpu_hours;
        if gpu_hours > left {
            return Err(AllocationError::Exceeded { gpu_model: a.gpu_model.clone(), left, needed: gpu_hours });
        }
        Ok(())
    }

    /// Draws what `check` allowed, for `order`.
    pub fn draw(&mut self, grant: Uuid, order: Uuid, gpu_hours: i64) {
        if let Some((a, changed)) = self.allocations.get_mut(&grant) {
            a.used_gpu_hours += gpu_hours;
            *changed = true;
            self.draws.push((order, grant, gpu_hours));
        }
    }

    pub fn has(&self, grant: Uuid) -> bool {
        self.allocations.contains_key(&grant)
    }
}

/// Locks the allocations of `grant_ids` (ascending), for the order batch.
pub async fn lock_allocations(conn: &mut AsyncPgConnection, grant_ids: &[Uuid]) -> QueryResult<AllocationBook> {
    let mut book = AllocationBook::default();
    if grant_ids.is_empty() {
        return Ok(book);
    }
    let rows = grant_allocations::table
        .filter(grant_allocations::grant_id.eq_any(grant_ids))
        .order(grant_allocations::grant_id)
        .select(AllocationRow::as_select())
        .for_no_key_update()
        .load::<AllocationRow>(conn)
        .await?;
    for row in rows {
        book.insert(row);
    }
    Ok(book)
}

/// A grant's allocation read without a lock (a quote reserves nothing).
pub async fn unlocked_allocation(conn: &mut AsyncPgConnection, grant: Uuid) -> QueryResult<AllocationBook> {
    let mut book = AllocationBook::default();
    let row = grant_allocations::table
        .find(grant)
        .select(AllocationRow::as_select())
        .first::<AllocationRow>(conn)
        .await
        .optional()?;
    if let Some(row) = row {
        book.insert(row);
    }
    Ok(book)
}

/// Writes what a batch drew: the allocations' new figures and one draw row
/// per order (after the orders are inserted: the draw refers to its order).
pub async fn write_draws(conn: &mut AsyncPgConnection, book: &AllocationBook) -> QueryResult<()> {
    use diesel::sql_types::{Array, Int8, Uuid as SqlUuid};
    // Each statement's text is the same whatever the batch's size, so each
    // connection prepares it once.
    let (grants, used): (Vec<Uuid>, Vec<i64>) =
        book.allocations.values().filter(|(_, changed)| *changed).map(|(a, _)| (a.grant_id, a.used_gpu_hours)).unzip();
    if !grants.is_empty() {
        crate::db::prepared(
            "UPDATE grant_allocations AS t SET used_gpu_hours = v.used \
             FROM unnest($1::uuid[], $2::int8[]) AS v(grant_id, used) WHERE t.grant_id = v.grant_id",
        )
        .bind::<Array<SqlUuid>, _>(grants)
        .bind::<Array<Int8>, _>(used)
        .execute(conn)
        .await?;
    }
    if book.draws.is_empty() {
        return Ok(());
    }
    crate::db::prepared(
        "INSERT INTO allocation_draws (order_id, grant_id, gpu_hours) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[])",
    )
    .bind::<Array<SqlUuid>, _>(book.draws.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(book.draws.iter().map(|d| d.1).collect::<Vec<_>>())
    .bind::<Array<Int8>, _>(book.draws.iter().map(|d| d.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives back to their allocations the GPU-hours orders no longer use
/// (`(order, gpu_hours)`: what a cancellation voids, what an outage credits),
/// never more than each order drew. In the caller's transaction, with the
/// orders' rows locked; the allocations are locked here, in ascending grant
/// id and before any account, as the order batch locks them.
pub async fn give_back(conn: &mut AsyncPgConnection, unused: &[(Uuid, i64)]) -> QueryResult<()> {
    let orders: Vec<Uuid> = unused.iter().filter(|(_, h)| *h > 0).map(|(o, _)| *o).collect();
    if orders.is_empty() {
        return Ok(());
    }
    let draws: HashMap<Uuid, (Uuid, i64, i64)> = allocation_draws::table
        .filter(allocation_draws::order_id.eq_any(&orders))
        .select((
            allocation_draws::order_id,
            allocation_draws::grant_id,
            allocation_draws::gpu_hours,
            allocation_draws::returned_gpu_hours,
        ))
        .load::<(Uuid, Uuid, i64, i64)>(conn)
        .await?
        .into_iter()
        .map(|(o, g, drawn, returned)| (o, (g, drawn, returned)))
        .collect();
    let mut by_grant: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut by_order: Vec<(Uuid, i64)> = Vec::new();
    for (order, hours) in unused {
        let Some((grant, drawn, returned)) = draws.get(order) else { continue };
        let back = (*hours).min(drawn - returned);
        if back > 0 {
            *by_grant.entry(*grant).or_default() += back;
            by_order.push((*order, back));
        }
    }
    for (grant, back) in by_grant {
        diesel::update(grant_allocations::table.find(grant))
            .set(grant_allocations::used_gpu_hours.eq(grant_allocations::used_gpu_hours - back))
            .execute(conn)
            .await?;
    }
    for (order, back) in by_order {
        diesel::update(allocation_draws::table.find(order))
            .set(allocation_draws::returned_gpu_hours.eq(allocation_draws::returned_gpu_hours + back))
            .execute(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn allocation(gpu_hours: i64, used: i64) -> AllocationRow {
        AllocationRow { grant_id: Uuid::from_u128(1), gpu_model: "H100".into(), gpu_hours, used_gpu_hours: used }
    }

    #[test]
    fn orders_draw_an_allocation_down_until_it_is_spent() {
        let grant = Uuid::from_u128(1);
        let mut book = AllocationBook::default();
        book.insert(allocation(100, 20));
        assert_eq!(book.check(grant, "H100", 80), Ok(()));
        book.draw(grant, Uuid::from_u128(10), 80);
        assert_eq!(
            book.check(grant, "H100", 1),
            Err(AllocationError::Exceeded { gpu_model: "H100".into(), left: 0, needed: 1 })
        );
        assert_eq!(
            book.check(grant, "A100", 1),
            Err(AllocationError::OtherModel { allocated: "H100".into(), asked: "A100".into() })
        );
        // A grant without an allocation limits nothing.
        assert_eq!(book.check(Uuid::from_u128(2), "A100", 1_000_000), Ok(()));
    }

    #[test]
    fn the_cap_is_a_share_of_the_budget_exactly() {
        assert_eq!(check_share(dec!(1000000), dec!(0.1), dec!(60000), dec!(40000)), Ok(()));
        assert_eq!(
            check_share(dec!(1000000), dec!(0.1), dec!(60000), dec!(40001)),
            Err(ShareExceeded {
                max_share_per_org: dec!(0.1),
                cap: dec!(100000.0),
                held: dec!(60000),
                asked: dec!(40001)
            })
        );
    }

    #[test]
    fn projects_and_allocations_are_checked() {
        let mut errors = Vec::new();
        check_allocation(&mut errors, &AllocationFields { gpu_model: " ".into(), gpu_hours: 0 });
        check_project(
            &mut errors,
            &ProjectFields {
                title: "LLM".into(),
                principal_investigator: "".into(),
                agreement_number: "RS-2026-001".into(),
                purpose: "training".into(),
            },
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["allocation.gpu_model", "allocation.gpu_hours", "project.principal_investigator"]);
    }
}
