//! Sign-up, tokens, `GET /v1/me`, and user administration.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::login::{client_address, login, too_many};
use super::model::{Email, NewPassword, OrgKind, TenantCategory};
use super::principal::{Principal, Role};
use super::store::{self, OrgRow, StoreError, UserRow};
use super::token::TokenKeys;
use super::{password, throttle};
use crate::audit::WriteContext;
use crate::http::Write;
use crate::http::extract::{JsonBody, NoQuery, Query};
use crate::http::idempotency::{self, IdempotencyKey};
use crate::http::pagination::{self, Page, decode_cursor};
use crate::http::{ApiError, FieldError};
use crate::ledger::queries::{AccountFilter, list_accounts};
use crate::ledger::views::AccountView;
use crate::state::AppState;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateEmail => ApiError::invalid("email", "is already registered"),
            StoreError::Ledger(e) => e.into(),
            StoreError::Database(e) => e.into(),
        }
    }
}

/// Kinds of organisation that may sign themselves up (the operator is made at start).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignupKind {
    Tenant,
    Provider,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    pub org_name: String,
    pub org_kind: SignupKind,
    /// Required for tenants (programmes set rates by it); absent for providers.
    pub org_category: Option<TenantCategory>,
    pub email: String,
    /// At least 12 characters.
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// The user's id.
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub org_id: Uuid,
    pub org_name: String,
    pub org_kind: String,
    pub org_category: Option<String>,
    /// Whether finance has confirmed the category; until then a programme
    /// applies its default rate, not the category's.
    pub org_category_confirmed: bool,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

fn user_view(user: UserRow, org: OrgRow) -> UserView {
    UserView {
        id: user.id,
        email: user.email,
        role: user.role,
        org_id: org.id,
        org_name: org.name,
        org_kind: org.kind,
        org_category: org.category,
        org_category_confirmed: org.category_confirmed,
        created_at: user.created_at,
        disabled_at: user.disabled_at,
    }
}

/// Collects the field errors of an email and a new password.
fn credentials(email: &str, password: &str, errors: &mut Vec<FieldError>) -> Option<(Email, NewPassword)> {
    let email = Email::parse(email).map_err(|e| errors.push(FieldError::new("email", e))).ok();
    let password = NewPassword::parse(password).map_err(|e| errors.push(FieldError::new("password", e))).ok();
    email.zip(password)
}

/// Creates a tenant or provider organisation, its first user and the ledger
/// accounts it owns. Open to anyone; sign-ups from one address are limited
/// (`GPUHOUR_SIGNUPS_PER_ADDRESS_PER_HOUR`), then spaced out with 429.
#[utoipa::path(tag = "auth", request_body = Signup, params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = UserView),
    (status = 422, description = "Invalid field, short password, or email already registered", body = crate::http::problem::Problem),
    (status = 429, description = "Too many sign-ups from this address", body = crate::http::problem::Problem),
))]
#[post("/v1/auth/signup")]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: JsonBody<Signup>,
) -> Result<HttpResponse, ApiError> {
    let signup = &body.value;
    let mut errors = Vec::new();
    let name = signup.org_name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("org_name", "must be 1 to 200 characters"));
    }
    let kind = match signup.org_kind {
        SignupKind::Tenant => OrgKind::Tenant,
        SignupKind::Provider => OrgKind::Provider,
    };
    match (kind, signup.org_category) {
        (OrgKind::Tenant, None) => errors.push(FieldError::new("org_category", "is required for a tenant")),
        (OrgKind::Provider, Some(_)) => errors.push(FieldError::new("org_category", "only tenants have a category")),
        _ => {}
    }
    let creds = credentials(&signup.email, &signup.password, &mut errors);
    let (email, new_password) = match creds {
        Some(c) if errors.is_empty() => c,
        _ => return Err(ApiError::validation(errors)),
    };
    // Each sign-up answers whether an email is registered: counted per address
    // like login guesses, so the answer cannot be used to list who is a user.
    let limit = state.settings.signups_per_address;
    if limit > 0 {
        let now = Utc::now();
        let subject = [(throttle::signup_subject(&client_address(&req)), throttle::signup_policy(limit))];
        let mut conn = state.pool.get().await?;
        if let Err(until) = throttle::reserve_attempt(&mut conn, &subject, now).await? {
            return Err(too_many("sign-ups", until, now).into());
        }
    }
    let category = signup.org_category;
    let hash = idempotency::fingerprint(&req, &body.raw);
    let password_hash = password::hash(new_password.expose().to_string()).await.map_err(ApiError::internal)?;
    let clock = state.clock;
    idempotency::run(&state.pool, &WriteContext::new(&req, None), key, hash, StatusCode::CREATED, async move |conn| {
        if store::email_taken(conn, email.as_str()).await? {
            return Err(ApiError::invalid("email", "is already registered"));
        }
        let now = clock.now(conn).await?;
        let org = store::create_org(conn, &name, kind, category, store::CategorySource::Declared, now).await?;
        let role = if kind == OrgKind::Tenant { Role::Tenant } else { Role::Provider };
        let user = store::create_user(conn, org.id, email.as_str(), &password_hash, role, now).await?;
        Ok(user_view(user, org))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest").field("email", &self.email).finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Exchanges an email and password for a short-lived access token. Open to
/// anyone. Attempts are counted per email and address, per address and per
/// email; past a limit they are spaced out with 429 and `Retry-After`
/// (docs/security.md).
/// It ignores `Idempotency-Key`: it changes nothing, and storing issued tokens
/// to replay them would keep bearer secrets at rest.
#[utoipa::path(tag = "auth", request_body = TokenRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, description = "Wrong email or password (the same answer for both)", body = crate::http::problem::Problem),
    (status = 429, description = "Too many failed attempts", body = crate::http::problem::Problem),
))]
#[post("/v1/auth/token")]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    keys: web::Data<TokenKeys>,
    body: JsonBody<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let TokenRequest { email, password: attempt } = body.value;
    let issued = login(&state, &keys, &client_address(&req), &email, attempt).await?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer".into(),
        expires_in: issued.expires_in,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    pub org_id: Uuid,
    pub org_name: String,
    pub org_kind: String,
    pub org_category: Option<String>,
    /// Whether finance has confirmed the category (see `UserView`).
    pub org_category_confirmed: bool,
    /// A tenant's wallets (one per currency), or a provider's payables.
    pub accounts: Vec<AccountView>,
}

/// The caller, their organisation, and its wallets or payables. Roles: any.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses((status = 200, body = Me), (status = 401, body = crate::http::problem::Problem)))]
#[get("/v1/me")]
pub async fn me(state: web::Data<AppState>, principal: Principal, _: NoQuery) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let (user, org) = store::user_by_id(&mut conn, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token's user does not exist"))?;
    let filter = AccountFilter { org_id: Some(org.id), ..Default::default() };
    let accounts = list_accounts(&mut conn, &filter, None, 100).await?;
    Ok(HttpResponse::Ok().json(Me {
        user_id: user.id,
        email: user.email,
        role: user.role,
        org_id: org.id,
        org_name: org.name,
        org_kind: org.kind,
        org_category: org.category,
        org_category_confirmed: org.category_confirmed,
        accounts: accounts.into_iter().map(AccountView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: Role,
    /// Required for tenant and provider users: their organisation. Finance and
    /// admin users belong to the operator.
    pub org_id: Option<Uuid>,
}

/// Creates a user of any role. Roles: admin.
#[utoipa::path(tag = "auth", request_body = NewUser, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), responses(
    (status = 201, body = UserView),
    (status = 403, body = crate::http::problem::Problem),
    (status = 422, body = crate::http::problem::Problem),
))]
#[post("/v1/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    write: Write<JsonBody<NewUser>>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require(&[Role::Admin])?;
    let checked = check_new_user(&body.value).await?;
    let clock = state.clock;
    op.run(StatusCode::CREATED, async move |conn| {
        let now = clock.now(conn).await?;
        insert_user(conn, checked, now).await
    })
    .await
}

/// A new user whose email and password passed the rules, the password hashed.
pub struct CheckedUser {
    email: Email,
    password_hash: String,
    role: Role,
    org_id: Option<Uuid>,
}

/// Checks a new user's email and password by the API's rules and hashes the
/// password (outside any transaction: hashing is slow on purpose).
pub async fn check_new_user(new: &NewUser) -> Result<CheckedUser, ApiError> {
    let mut errors = Vec::new();
    let creds = credentials(&new.email, &new.password, &mut errors);
    let (email, new_password) = match creds {
        Some(c) if errors.is_empty() => c,
        _ => return Err(ApiError::validation(errors)),
    };
    let password_hash = password::hash(new_password.expose().to_string()).await.map_err(ApiError::internal)?;
    Ok(CheckedUser { email, password_hash, role: new.role, org_id: new.org_id })
}

/// Creates a checked user in its organisation, in the caller's transaction
/// (the API's `POST /v1/users` and the console's users page).
pub async fn insert_user(
    conn: &mut diesel_async::AsyncPgConnection,
    user: CheckedUser,
    now: DateTime<Utc>,
) -> Result<UserView, ApiError> {
    let org = resolve_org_for(conn, user.role, user.org_id, now).await?;
    let row = store::create_user(conn, org.id, user.email.as_str(), &user.password_hash, user.role, now).await?;
    Ok(user_view(row, org))
}

/// The organisation a new user of `role` joins: the operator for finance and
/// admin, the named organisation of the matching kind otherwise.
pub async fn resolve_org_for(
    conn: &mut diesel_async::AsyncPgConnection,
    role: Role,
    org_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<OrgRow, ApiError> {
    match role {
        Role::Finance | Role::Admin => {
            let operator = store::operator_org(conn, now).await?;
            match org_id {
                Some(id) if id != operator.id => {
                    Err(ApiError::invalid("org_id", "finance and admin users belong to the operator"))
                }
                _ => Ok(operator),
            }
        }
        Role::Tenant | Role::Provider => {
            let id = org_id.ok_or_else(|| ApiError::invalid("org_id", "is required for tenant and provider users"))?;
            let org =
                store::org_by_id(conn, id).await?.ok_or_else(|| ApiError::invalid("org_id", "no such organisation"))?;
            if org.kind != role.as_str() {
                return Err(ApiError::invalid("org_id", format!("a {role} user must join a {role} organisation")));
            }
            Ok(org)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    pub org_id: Option<Uuid>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists users, oldest first. Roles: admin.
#[utoipa::path(tag = "auth", params(UserListQuery), security(("bearer" = [])), responses(
    (status = 200, body = inline(Page<UserView>)),
))]
#[get("/v1/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<UserListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&[Role::Admin])?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(users_page(&mut conn, q).await?))
}

/// One page of users, oldest first (the API's list and the console's).
pub async fn users_page(
    conn: &mut diesel_async::AsyncPgConnection,
    q: UserListQuery,
) -> Result<Page<UserView>, ApiError> {
    use crate::db::schema::{organisations, users};
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let limit = pagination::limit(q.limit)?;
    let after: Option<Uuid> = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut query = users::table
        .inner_join(organisations::table)
        .select((UserRow::as_select(), OrgRow::as_select()))
        .order(users::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(org) = q.org_id {
        query = query.filter(users::org_id.eq(org));
    }
    if let Some(after) = after {
        query = query.filter(users::id.gt(after));
    }
    let rows: Vec<(UserRow, OrgRow)> = query.load(conn).await?;
    Ok(pagination::page(rows, limit, |(u, _)| u.id, |(u, o)| user_view(u, o)))
}

/// Disables a user: their tokens stop working at once; their history stays.
/// Roles: admin.
#[utoipa::path(tag = "auth", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = UserView), (status = 404, body = crate::http::problem::Problem),
))]
#[post("/v1/users/{id}/disable")]
pub async fn disable_user(
    state: web::Data<AppState>,
    write: Write,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require(&[Role::Admin])?;
    let id = id.into_inner();
    let clock = state.clock;
    op.run(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        disable(conn, &principal, id, now).await
    })
    .await
}

/// Disables user `id` on behalf of the administrator `principal`, in the
/// caller's transaction (the API's and the console's): never oneself.
pub async fn disable(
    conn: &mut diesel_async::AsyncPgConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<UserView, ApiError> {
    if id == principal.user_id {
        return Err(ApiError::conflict("an administrator cannot disable themselves"));
    }
    // Tokens carry wall-clock time (see `TokenKeys::issue`), so the instant
    // they are refused before is wall-clock time too, not the sandbox clock's.
    store::disable_user(conn, id, now, Utc::now()).await?;
    let (user, org) = store::user_by_id(conn, id).await?.ok_or_else(|| ApiError::missing("user", id))?;
    Ok(user_view(user, org))
}

/// Enables a disabled user again: they may log in, but every token issued
/// before they were disabled stays refused. Enabling an enabled user changes
/// nothing. Roles: admin.
#[utoipa::path(tag = "auth", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    security(("bearer" = [])), responses(
    (status = 200, body = UserView),
    (status = 403, body = crate::http::problem::Problem),
    (status = 404, body = crate::http::problem::Problem),
    (status = 409, description = "Another active user has the user's email", body = crate::http::problem::Problem),
))]
#[post("/v1/users/{id}/enable")]
pub async fn enable_user(write: Write, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let Write { principal, op, .. } = write;
    principal.require(&[Role::Admin])?;
    let id = id.into_inner();
    op.run(StatusCode::OK, async move |conn| enable(conn, id).await).await
}

/// Enables user `id` again, in the caller's transaction (the API's and the
/// console's).
pub async fn enable(conn: &mut diesel_async::AsyncPgConnection, id: Uuid) -> Result<UserView, ApiError> {
    match store::enable_user(conn, id).await {
        Ok(_) => {}
        // Their email was registered again while they were disabled.
        Err(e) if crate::ledger::store::is_unique_violation(&e) => {
            return Err(ApiError::conflict("another active user has this user's email"));
        }
        Err(e) => return Err(e.into()),
    }
    let (user, org) = store::user_by_id(conn, id).await?.ok_or_else(|| ApiError::missing("user", id))?;
    Ok(user_view(user, org))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganisationView {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub category: Option<String>,
    /// Whether finance has confirmed the category: only then does it set a rate.
    pub category_confirmed: bool,
    pub created_at: DateTime<Utc>,
}

impl From<OrgRow> for OrganisationView {
    fn from(o: OrgRow) -> Self {
        OrganisationView {
            id: o.id,
            name: o.name,
            kind: o.kind,
            category: o.category,
            category_confirmed: o.category_confirmed,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryChange {
    /// The category finance has checked: the one declared at sign-up, or another.
    pub category: TenantCategory,
}

/// Confirms or changes a tenant organisation's category. A category declared
/// at sign-up sets no subsidy rate (programmes apply their default rate) until
/// finance confirms it here; orders already placed keep their rate. Audited.
/// Roles: finance, admin.
#[utoipa::path(tag = "auth", params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = CategoryChange, security(("bearer" = [])), responses(
    (status = 200, body = OrganisationView),
    (status = 403, body = crate::http::problem::Problem),
    (status = 404, body = crate::http::problem::Problem),
    (status = 422, description = "Not a tenant organisation, or not a category", body = crate::http::problem::Problem),
))]
#[post("/v1/organisations/{id}/category")]
pub async fn set_category(
    write: Write<JsonBody<CategoryChange>>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let Write { principal, body, op } = write;
    principal.require_finance()?;
    let id = id.into_inner();
    let category = body.value.category;
    op.run(StatusCode::OK, async move |conn| match store::confirm_category(conn, id, category).await? {
        Some(org) => Ok(OrganisationView::from(org)),
        None => match store::org_by_id(conn, id).await? {
            Some(_) => Err(ApiError::invalid("category", "only tenant organisations have a category")),
            None => Err(ApiError::missing("organisation", id)),
        },
    })
    .await
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(signup)
        .service(token)
        .service(me)
        .service(create_user)
        .service(list_users)
        .service(disable_user)
        .service(enable_user)
        .service(set_category);
}
