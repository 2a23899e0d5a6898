//! Sessions: the API's own token, kept in an HttpOnly, SameSite=Strict cookie.
//! Logging in goes through the API's login ([`crate::auth::login::login`]):
//! the same password check and the same throttling; the viewer of a page is
//! the API's principal, loaded the same way.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, post, web};
use futures_util::future::LocalBoxFuture;
use maud::html;
use serde::Deserialize;

use super::error::ConsoleError;
use super::form::{self, ConsoleForm};
use super::i18n::{Lang, local_path};
use super::layout;
use crate::auth::login::{LoginError, TooMany, client_address, login as check_login};
use crate::auth::principal::{AuthError, load, verify_token};
use crate::auth::{Principal, TokenKeys};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "gpuhour_session";
/// Before login there is no session to tie the login form's token to: a
/// random nonce in a cookie of its own stands in for it.
pub const LOGIN_COOKIE: &str = "gpuhour_login";

/// The signed-in viewer of a console page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub principal: Principal,
    /// The session's token: what the form token is derived from.
    pub token: String,
    pub lang: Lang,
    /// The form token every form of this session carries.
    pub csrf: String,
    /// The path and query of the page, to come back to.
    pub path: String,
}

fn keys(req: &HttpRequest) -> Result<web::Data<TokenKeys>, ConsoleError> {
    req.app_data::<web::Data<TokenKeys>>()
        .cloned()
        .ok_or_else(|| ConsoleError::internal(Lang::of(req), "token keys are not configured"))
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ConsoleError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ConsoleError::internal(Lang::of(req), "no application state"))
}

impl FromRequest for Viewer {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let lang = Lang::of(&req);
            let path = req.uri().path_and_query().map_or_else(|| req.path().to_string(), |p| p.as_str().to_string());
            // After signing in, a form's target cannot be fetched: go home instead.
            let next = if req.method() == actix_web::http::Method::GET { path.clone() } else { "/".to_string() };
            let sign_in = || ConsoleError::SignIn { next: next.clone() };
            let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()).ok_or_else(sign_in)?;
            // An expired or forged cookie is the same as none: sign in again.
            let claims = verify_token(&req, &token).map_err(|_| sign_in())?;
            let state = state(&req)?;
            let principal = load(&state, claims).await.map_err(|e| match e {
                AuthError::NotCurrent => sign_in(),
                e => ConsoleError::api(lang, e),
            })?;
            let csrf = keys(&req)?.form_token(&token);
            Ok(Viewer { principal, token, lang, csrf, path })
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_nonce() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn login_form_token(keys: &TokenKeys, nonce: &str) -> String {
    keys.form_token(&format!("login:{nonce}"))
}

/// The login page: with `error`, shown again after a failed attempt.
fn login_page(
    req: &HttpRequest,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<&str>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = Lang::of(req);
    let keys = keys(req)?;
    let nonce = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_else(login_nonce);
    let body = html! {
        @if let Some(error) = error { div.problem role="alert" { p { (error) } } }
        form.stack method="post" action="/login" {
            input type="hidden" name="csrf" value=(login_form_token(&keys, &nonce));
            @if let Some(next) = local_path(next) { input type="hidden" name="next" value=(next); }
            label for="email" { (lang.tr("Email", "이메일")) }
            input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
            label for="password" { (lang.tr("Password", "비밀번호")) }
            input #password type="password" name="password" autocomplete="current-password" required;
            button type="submit" { (lang.tr("Sign in", "로그인")) }
        }
    };
    let mut response = layout::public_page(lang, status, lang.tr("Sign in", "로그인"), "/login", body);
    let cookie = Cookie::build(LOGIN_COOKIE, nonce)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(layout::is_secure(req))
        .finish();
    response.add_cookie(&cookie).map_err(|e| ConsoleError::internal(lang, e))?;
    Ok(response)
}

/// `GET /login`: the login form.
#[get("/login")]
pub async fn login_form(req: HttpRequest, query: web::Query<NextQuery>) -> Result<HttpResponse, ConsoleError> {
    login_page(&req, StatusCode::OK, "", query.next.as_deref(), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// `POST /login` (fields `email`, `password`): the API's login; on success the
/// token goes into the session cookie and the viewer to `next` or their home.
#[post("/login")]
pub async fn login(req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ConsoleError> {
    let lang = Lang::of(&req);
    form::check_origin(&req)?;
    let keys = keys(&req)?;
    let nonce = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    let csrf = form::csrf_field(&body);
    if nonce.is_empty() || !keys.form_token_matches(&format!("login:{nonce}"), &csrf) {
        return Err(form::csrf_refused(lang));
    }
    let LoginForm { email, password, next } = form::parse(lang, &body)?;
    let state = state(&req)?;
    match check_login(&state, &keys, &client_address(&req), &email, password).await {
        Ok(issued) => {
            let target = local_path(next.as_deref()).unwrap_or(layout::home_of(issued.role)).to_string();
            let max_age = i64::try_from(issued.expires_in).unwrap_or(i64::MAX);
            let session = Cookie::build(SESSION_COOKIE, issued.access_token)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(layout::is_secure(&req))
                .max_age(actix_web::cookie::time::Duration::seconds(max_age))
                .finish();
            let mut response = layout::redirect(&target);
            response.add_cookie(&session).map_err(|e| ConsoleError::internal(lang, e))?;
            response
                .add_removal_cookie(&Cookie::build(LOGIN_COOKIE, "").path("/").finish())
                .map_err(|e| ConsoleError::internal(lang, e))?;
            Ok(response)
        }
        Err(LoginError::WrongCredentials) => login_page(
            &req,
            StatusCode::UNAUTHORIZED,
            &email,
            next.as_deref(),
            Some(lang.tr("The email or the password is wrong.", "이메일 또는 비밀번호가 틀렸습니다.")),
        ),
        Err(LoginError::Throttled(TooMany { seconds, .. })) => {
            let message = match lang {
                Lang::Ko => format!("로그인 시도가 너무 많습니다. {seconds}초 후에 다시 시도하세요."),
                Lang::En => format!("Too many failed logins from here: try again in {seconds} seconds."),
            };
            let mut response =
                login_page(&req, StatusCode::TOO_MANY_REQUESTS, &email, next.as_deref(), Some(&message))?;
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
            }
            Ok(response)
        }
        Err(e) => Err(ConsoleError::api(lang, e)),
    }
}

/// `POST /logout`: ends the session (the cookie is cleared) and shows the login page.
#[post("/logout")]
pub async fn logout(form: ConsoleForm<form::Empty>) -> Result<HttpResponse, ConsoleError> {
    let mut response = layout::redirect("/login");
    response
        .add_removal_cookie(&Cookie::build(SESSION_COOKIE, "").path("/").finish())
        .map_err(|e| ConsoleError::internal(form.viewer.lang, e))?;
    Ok(response)
}
