//! The administrator's users page (`/users`): every user, a form to create
//! one and buttons to disable and enable one — through the same rules, audit
//! record and idempotency as `POST /v1/users`, `POST /v1/users/{id}/disable`
//! and `POST /v1/users/{id}/enable`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ConsoleError;
use super::form::{ConsoleForm, KeyForm};
use super::i18n::Lang;
use super::layout::{self, page_with_status, time};
use super::session::Viewer;
use crate::auth::Role;
use crate::auth::routes::{NewUser, UserListQuery, check_new_user, disable, enable, insert_user, users_page};
use crate::finance::list_routes::{OrganisationListQuery, organisations_page};
use crate::http::{ApiError, FieldError};
use crate::state::AppState;

/// Users per page.
const PAGE: i64 = 50;
/// Organisations offered in the create form.
const ORGANISATIONS_OFFERED: i64 = 500;

fn admin_only(viewer: &Viewer) -> Result<(), ConsoleError> {
    viewer.principal.require(&[Role::Admin]).map_err(|e| ConsoleError::api(viewer.lang, e))
}

fn role_label(role: &str, lang: Lang) -> &'static str {
    match role {
        "tenant" => lang.tr("Tenant", "이용자"),
        "provider" => lang.tr("Provider", "공급자"),
        "finance" => lang.tr("Finance", "재무"),
        "admin" => lang.tr("Administrator", "관리자"),
        _ => lang.tr("Unknown", "알 수 없음"),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    disabled: Option<String>,
    #[serde(default)]
    enabled: Option<String>,
}

/// The create form's fields, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    org_id: String,
}

impl UserForm {
    fn new_user(&self, lang: Lang) -> Result<NewUser, ApiError> {
        let mut errors = Vec::new();
        let role = match self.role.as_str() {
            "tenant" => Some(Role::Tenant),
            "provider" => Some(Role::Provider),
            "finance" => Some(Role::Finance),
            "admin" => Some(Role::Admin),
            _ => {
                errors.push(FieldError::new("role", lang.tr("choose a role", "역할을 고르세요")));
                None
            }
        };
        let org_id = match self.org_id.trim() {
            "" => None,
            raw => match raw.parse::<Uuid>() {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.push(FieldError::new("org_id", lang.tr("is not an organisation", "기관이 아닙니다")));
                    None
                }
            },
        };
        match role {
            Some(role) if errors.is_empty() => {
                Ok(NewUser { email: self.email.clone(), password: self.password.clone(), role, org_id })
            }
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// `GET /users`: the users, oldest first, and the form for a new one.
#[get("/users")]
pub async fn list(
    viewer: Viewer,
    state: web::Data<AppState>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ConsoleError> {
    admin_only(&viewer)?;
    let form = UserForm { idempotency_key: Uuid::new_v4().to_string(), ..UserForm::default() };
    users_list_page(&viewer, &state, &query, &form, &[], StatusCode::OK).await
}

async fn users_list_page(
    viewer: &Viewer,
    state: &AppState,
    query: &UsersQuery,
    form: &UserForm,
    problems: &[String],
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    let fail = |e: ApiError| ConsoleError::api(lang, e);
    let mut conn = state.pool.get().await.map_err(|e| fail(e.into()))?;
    let cursor = Some(query.cursor.clone()).filter(|c| !c.is_empty());
    let users = users_page(&mut conn, UserListQuery { org_id: None, limit: Some(PAGE), cursor }).await.map_err(fail)?;
    let organisations = organisations_page(
        &mut conn,
        OrganisationListQuery { kind: None, category: None, q: None, limit: Some(ORGANISATIONS_OFFERED), cursor: None },
    )
    .await
    .map_err(fail)?;
    let body = html! {
        @if query.created.is_some() { div.notice role="status" { p { (lang.tr("The user is created.", "사용자를 만들었습니다.")) } } }
        @if query.disabled.is_some() { div.notice role="status" { p { (lang.tr("The user is disabled: their sessions have ended.", "사용자를 비활성화했습니다. 로그인 세션이 모두 종료되었습니다.")) } } }
        @if query.enabled.is_some() { div.notice role="status" { p { (lang.tr("The user is enabled: they may sign in again; their old sessions stay ended.", "사용자를 다시 활성화했습니다. 다시 로그인할 수 있으며, 이전 로그인 세션은 종료된 채로 남습니다.")) } } }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { (lang.tr("Email", "이메일")) }
                th scope="col" { (lang.tr("Role", "역할")) }
                th scope="col" { (lang.tr("Organisation", "기관")) }
                th scope="col" { (lang.tr("Created", "생성일")) }
                th scope="col" { (lang.tr("Status", "상태")) }
            } }
            tbody { @for u in &users.data { tr.user {
                td { (u.email) }
                td { (role_label(&u.role, lang)) }
                td { (u.org_name) }
                td { (time(u.created_at)) }
                td {
                    @if let Some(at) = u.disabled_at {
                        span.status.status-cancelled { (lang.tr("Disabled", "비활성")) " " (time(at)) }
                        " "
                        form.inline method="post" action={ "/users/" (u.id) "/enable" } {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                            button type="submit" aria-label={ (lang.tr("Enable", "활성화")) " " (u.email) } { (lang.tr("Enable", "활성화")) }
                        }
                    } @else if u.id == viewer.principal.user_id {
                        span.status { (lang.tr("You", "본인")) }
                    } @else {
                        a href={ "/users/" (u.id) "/disable" } aria-label={ (lang.tr("Disable", "비활성화")) " " (u.email) } { (lang.tr("Disable…", "비활성화…")) }
                    }
                }
            } } }
        } }
        @if let Some(next) = &users.next_cursor {
            @let link: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            p.pager { a href={ "/users?cursor=" (link) } rel="next" { (lang.tr("More users →", "더 보기 →")) } }
        }
        h2 #new { (lang.tr("New user", "새 사용자")) }
        p.muted { (lang.tr("Tenant and provider users join an organisation of their kind; finance and administrators belong to the operator. The password has at least 12 characters.", "이용자와 공급자는 같은 종류의 기관에 속하고, 재무와 관리자는 운영사에 속합니다. 비밀번호는 12자 이상입니다.")) }
        @if !problems.is_empty() { div.problem role="alert" { @for line in problems { p { (line) } } } }
        form.quote method="post" action="/users" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="idempotency_key" value=(form.idempotency_key);
            label { (lang.tr("Email", "이메일")) input #new_email type="email" name="email" required autocomplete="off" value=(form.email); }
            label { (lang.tr("Password", "비밀번호")) input #new_password type="password" name="password" required minlength="12" autocomplete="new-password"; }
            label { (lang.tr("Role", "역할"))
                select name="role" required {
                    @for r in ["tenant", "provider", "finance", "admin"] { option value=(r) selected[form.role == r] { (role_label(r, lang)) } }
                }
            }
            label { (lang.tr("Organisation", "기관"))
                select name="org_id" {
                    option value="" { (lang.tr("The operator (finance, administrators)", "운영사 (재무, 관리자)")) }
                    @for o in organisations.data.iter().filter(|o| o.kind != "operator") {
                        option value=(o.id) selected[form.org_id == o.id.to_string()] { (o.name) " · " (role_label(&o.kind, lang)) }
                    }
                }
            }
            button type="submit" { (lang.tr("Create user", "사용자 만들기")) }
        }
    };
    Ok(page_with_status(viewer, status, lang.tr("Users", "사용자"), body))
}

fn form_key(raw: &str) -> Option<String> {
    Some(raw.to_string()).filter(|k| !k.is_empty() && k.len() <= 255)
}

fn problem_lines(e: &ApiError) -> Vec<String> {
    let mut lines = vec![e.detail.clone()];
    lines.extend(e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)));
    lines
}

/// `POST /users`: creates a user by the rules of `POST /v1/users`; a refused
/// one comes back to the form with its problems (the password never does).
#[post("/users")]
pub async fn create(state: web::Data<AppState>, form: ConsoleForm<UserForm>) -> Result<HttpResponse, ConsoleError> {
    let viewer = form.viewer.clone();
    let lang = viewer.lang;
    admin_only(&viewer)?;
    let checked = match form.value.new_user(lang) {
        Ok(new) => check_new_user(&new).await,
        Err(e) => Err(e),
    };
    let written = match checked {
        Ok(checked) => {
            let op = form.write_op(form_key(&form.value.idempotency_key))?;
            let clock = op.state().clock;
            op.run_answer(StatusCode::CREATED, async move |conn| {
                let now = clock.now(conn).await?;
                insert_user(conn, checked, now).await
            })
            .await
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(_) => Ok(layout::redirect("/users?created=1")),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN => {
            let problems = problem_lines(&e);
            users_list_page(&viewer, &state, &UsersQuery::default(), &form.value, &problems, e.status).await
        }
        Err(e) => Err(ConsoleError::api(lang, e)),
    }
}

/// `GET /users/{id}/disable`: what disabling means, and the form that does it.
#[get("/users/{id}/disable")]
pub async fn confirm_disable(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = viewer.lang;
    admin_only(&viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let mut conn = state.pool.get().await.map_err(|e| ConsoleError::api(lang, e))?;
    let (user, org) = crate::auth::store::user_by_id(&mut conn, id)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?
        .ok_or_else(|| ConsoleError::not_found(lang))?;
    let body = html! {
        p { strong { (user.email) } " · " (role_label(&user.role, lang)) " · " (org.name) }
        @if user.disabled_at.is_some() {
            p.muted { (lang.tr("This user is already disabled.", "이미 비활성화된 사용자입니다.")) }
        } @else {
            p { (lang.tr("Disabling ends this user's sessions and tokens at once; they can no longer sign in to the console or the API. Their history stays. Enabled again, they may sign in anew; the sessions and tokens ended now stay ended.", "비활성화하면 이 사용자의 로그인 세션과 토큰이 즉시 종료되어 콘솔과 API에 더 이상 로그인할 수 없습니다. 기록은 그대로 남습니다. 다시 활성화하면 새로 로그인할 수 있지만, 지금 종료되는 세션과 토큰은 되살아나지 않습니다.")) }
            form method="post" action={ "/users/" (user.id) "/disable" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="idempotency_key" value=(Uuid::new_v4());
                button.danger type="submit" { (lang.tr("Disable this user", "이 사용자 비활성화")) }
            }
        }
        p { a href="/users" { (lang.tr("← Back to the users", "← 사용자 목록으로")) } }
    };
    Ok(layout::page(&viewer, lang.tr("Disable a user", "사용자 비활성화"), body))
}

/// `POST /users/{id}/disable`: disables the user, as `POST /v1/users/{id}/disable`.
#[post("/users/{id}/disable")]
pub async fn disable_user(form: ConsoleForm<KeyForm>, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let lang = form.viewer.lang;
    admin_only(&form.viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let principal = form.viewer.principal;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    let clock = op.state().clock;
    op.run_answer(StatusCode::OK, async move |conn| {
        let now = clock.now(conn).await?;
        disable(conn, &principal, id, now).await
    })
    .await
    .map_err(|e| ConsoleError::api(lang, e))?;
    Ok(layout::redirect("/users?disabled=1"))
}

/// `POST /users/{id}/enable`: enables the user again, as `POST /v1/users/{id}/enable`.
#[post("/users/{id}/enable")]
pub async fn enable_user(form: ConsoleForm<KeyForm>, id: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let lang = form.viewer.lang;
    admin_only(&form.viewer)?;
    let id = id.parse::<Uuid>().map_err(|_| ConsoleError::not_found(lang))?;
    let op = form.write_op(form_key(&form.value.idempotency_key))?;
    op.run_answer(StatusCode::OK, async move |conn| enable(conn, id).await)
        .await
        .map_err(|e| ConsoleError::api(lang, e))?;
    Ok(layout::redirect("/users?enabled=1"))
}
