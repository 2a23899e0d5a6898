//! Organisations and users in the database.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{OrgKind, TenantCategory};
use super::principal::Role;
use crate::db::schema::{organisations, users};
use crate::ledger::{LedgerError, chart, store as ledger_store};

#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = organisations, check_for_backend(diesel::pg::Pg))]
pub struct OrgRow {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub category: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Whether finance has confirmed (or set) the category. Only a confirmed
    /// category sets a subsidy rate; a self-declared one counts for nothing.
    pub category_confirmed: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Tokens issued (`iat`) before this whole second are refused: set when
    /// the user is disabled, so that enabling them again revives no old token.
    pub tokens_not_before: Option<DateTime<Utc>>,
}

pub const OPERATOR_NAME: &str = "gpuhour operator";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Who vouches for a new organisation's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategorySource {
    /// The organisation itself, signing up: unconfirmed until finance confirms.
    Declared,
    /// The operator (finance, an administrator, the demo): confirmed.
    Operator,
}

/// Creates an organisation and the ledger accounts it owns (SPEC section 3:
/// a tenant's wallets, a provider's payables), in the caller's transaction.
pub async fn create_org(
    conn: &mut AsyncPgConnection,
    name: &str,
    kind: OrgKind,
    category: Option<TenantCategory>,
    source: CategorySource,
    now: DateTime<Utc>,
) -> Result<OrgRow, StoreError> {
    let org = OrgRow {
        id: Uuid::now_v7(),
        name: name.to_string(),
        kind: kind.as_str().to_string(),
        category: category.map(|c| c.as_str().to_string()),
        created_at: now,
        category_confirmed: category.is_some() && source == CategorySource::Operator,
    };
    diesel::insert_into(organisations::table)
        .values((
            organisations::id.eq(org.id),
            organisations::name.eq(&org.name),
            organisations::kind.eq(&org.kind),
            organisations::category.eq(&org.category),
            organisations::category_confirmed.eq(org.category_confirmed),
            organisations::created_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let accounts = match kind {
        OrgKind::Tenant => chart::tenant_accounts(org.id),
        OrgKind::Provider => chart::provider_accounts(org.id),
        OrgKind::Operator => Vec::new(),
    };
    if !accounts.is_empty() {
        ledger_store::ensure_accounts(conn, &accounts, now).await?;
    }
    Ok(org)
}

/// The operator organisation, created on first use.
pub async fn operator_org(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> Result<OrgRow, StoreError> {
    diesel::insert_into(organisations::table)
        .values((
            organisations::id.eq(Uuid::now_v7()),
            organisations::name.eq(OPERATOR_NAME),
            organisations::kind.eq(OrgKind::Operator.as_str()),
            organisations::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(organisations::table
        .filter(organisations::kind.eq(OrgKind::Operator.as_str()))
        .select(OrgRow::as_select())
        .first(conn)
        .await?)
}

pub async fn create_user(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    email: &str,
    password_hash: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<UserRow, StoreError> {
    let user = UserRow {
        id: Uuid::now_v7(),
        org_id,
        email: email.to_string(),
        password_hash: password_hash.to_string(),
        role: role.as_str().to_string(),
        created_at: now,
        disabled_at: None,
        tokens_not_before: None,
    };
    let inserted = diesel::insert_into(users::table)
        .values((
            users::id.eq(user.id),
            users::org_id.eq(org_id),
            users::email.eq(email),
            users::password_hash.eq(password_hash),
            users::role.eq(role.as_str()),
            users::created_at.eq(now),
        ))
        .execute(conn)
        .await;
    match inserted {
        Ok(_) => Ok(user),
        Err(e) if ledger_store::is_unique_violation(&e) => Err(StoreError::DuplicateEmail),
        Err(e) => Err(e.into()),
    }
}

pub async fn email_taken(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::email.eq(email)).filter(users::disabled_at.is_null()),
    ))
    .get_result(conn)
    .await
}

/// An active user by email, with their organisation.
pub async fn active_user_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<(UserRow, OrgRow)>> {
    users::table
        .inner_join(organisations::table)
        .filter(users::email.eq(email))
        .filter(users::disabled_at.is_null())
        .select((UserRow::as_select(), OrgRow::as_select()))
        .first(conn)
        .await
        .optional()
}

/// A user by id (active or not), with their organisation.
pub async fn user_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<(UserRow, OrgRow)>> {
    users::table
        .inner_join(organisations::table)
        .filter(users::id.eq(id))
        .select((UserRow::as_select(), OrgRow::as_select()))
        .first(conn)
        .await
        .optional()
}

/// A user as a token is checked against: id, organisation, role, and the
/// instant before which their tokens are refused.
pub type CurrentUser = (Uuid, Uuid, String, Option<DateTime<Utc>>);

/// Each of `ids` that exists and is not disabled.
pub async fn active_users(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<CurrentUser>> {
    users::table
        .filter(users::id.eq_any(ids))
        .filter(users::disabled_at.is_null())
        .select((users::id, users::org_id, users::role, users::tokens_not_before))
        .load(conn)
        .await
}

pub async fn org_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<OrgRow>> {
    organisations::table.find(id).select(OrgRow::as_select()).first(conn).await.optional()
}

/// Sets a tenant organisation's category as confirmed by finance; `None` when
/// there is no such tenant organisation.
pub async fn confirm_category(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    category: TenantCategory,
) -> QueryResult<Option<OrgRow>> {
    diesel::update(organisations::table.find(id).filter(organisations::kind.eq(OrgKind::Tenant.as_str())))
        .set((organisations::category.eq(category.as_str()), organisations::category_confirmed.eq(true)))
        .returning(OrgRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn any_admin(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table.filter(users::role.eq(Role::Admin.as_str())).filter(users::disabled_at.is_null()),
    ))
    .get_result(conn)
    .await
}

/// Disables a user: their tokens stop working at once, and every token issued
/// up to now (`tokens_from`, wall-clock time) stays refused should they be
/// enabled again; their history stays. Disabling a disabled user changes nothing.
pub async fn disable_user(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    tokens_from: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)).filter(users::disabled_at.is_null()))
        .set((users::disabled_at.eq(now), users::tokens_not_before.eq(next_whole_second(tokens_from))))
        .execute(conn)
        .await
}

/// Enables a disabled user again; their tokens from before stay refused.
/// Enabling an enabled user changes nothing.
pub async fn enable_user(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)).filter(users::disabled_at.is_not_null()))
        .set(users::disabled_at.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await
}

/// The whole second after `at`. A token's `iat` counts whole seconds, so a
/// token issued in the same second as `at` (before or after it) has an `iat`
/// below this and is refused.
pub fn next_whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp().saturating_add(1), 0).unwrap_or(at)
}
