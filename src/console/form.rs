//! A console form's POST: the viewer, the fields, and the checks every form
//! passes before anything happens — the request comes from this origin, and
//! it carries the session's form token (CSRF).

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::ORIGIN;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;
use super::i18n::Lang;
use super::session::Viewer;
use crate::audit::WriteContext;
use crate::auth::TokenKeys;
use crate::http::idempotency::{self, IdempotencyKey};
use crate::http::{ApiError, WriteOp};
use crate::state::AppState;

/// The problems of a refused form, shown above it.
pub fn problem_box(lines: &[String]) -> maud::Markup {
    maud::html! { @if !lines.is_empty() { div.problem role="alert" { @for line in lines { p { (line) } } } } }
}

/// The lines a refused write shows on its form: the API's detail and each field's problem.
pub fn problem_lines(e: &ApiError) -> Vec<String> {
    let mut lines = vec![e.detail.clone()];
    lines.extend(e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)));
    lines
}

/// A refused write: its lines, to show on its form, when the viewer can fix
/// it there (bad input, a conflict); a problem page otherwise (not found,
/// forbidden, a server fault).
pub fn refused(lang: Lang, e: ApiError) -> Result<Vec<String>, ConsoleError> {
    if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND && e.status != StatusCode::FORBIDDEN {
        Ok(problem_lines(&e))
    } else {
        Err(ConsoleError::api(lang, e))
    }
}

/// A form whose only field is its idempotency key (close, submit, disable).
#[derive(Debug, Default, serde::Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    pub idempotency_key: String,
}

/// A form without fields of its own (sign out, cancel).
#[derive(Debug, serde::Deserialize)]
pub struct Empty {}

/// A checked form post by a signed-in viewer.
pub struct ConsoleForm<T> {
    pub viewer: Viewer,
    pub value: T,
    req: HttpRequest,
    raw: web::Bytes,
}

impl<T> ConsoleForm<T> {
    /// The write this form makes, through the API's machinery: its audit
    /// record, and at most one effect per `key` (the key the form carried).
    pub fn write_op(&self, key: Option<String>) -> Result<WriteOp, ConsoleError> {
        let state = self
            .req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| ConsoleError::internal(self.viewer.lang, "no application state"))?;
        let ctx = WriteContext::new(&self.req, Some(&self.viewer.principal));
        let fingerprint = idempotency::fingerprint(&self.req, &self.raw);
        Ok(WriteOp::new(state, ctx, IdempotencyKey(key), fingerprint))
    }
}

pub fn csrf_refused(lang: Lang) -> ConsoleError {
    ConsoleError::forbidden(
        lang,
        lang.tr(
            "This form has expired or did not come from this site. Open the page again and resend it.",
            "양식이 만료되었거나 이 사이트에서 보낸 것이 아닙니다. 페이지를 다시 열고 다시 보내세요.",
        ),
    )
}

/// Refuses a POST whose `Origin` names another origin than this server's.
/// (A browser that sends no `Origin` is still held to the form token.)
pub fn check_origin(req: &HttpRequest) -> Result<(), ConsoleError> {
    let Some(origin) = req.headers().get(ORIGIN) else { return Ok(()) };
    let info = req.connection_info();
    let ours = format!("{}://{}", info.scheme(), info.host());
    if origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&ours)) { Ok(()) } else { Err(csrf_refused(Lang::of(req))) }
}

/// The `csrf` field of a form body (empty when absent).
pub fn csrf_field(body: &[u8]) -> String {
    form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// A form body's fields (unknown ones, such as `csrf`, ignored).
pub fn parse<T: DeserializeOwned>(lang: Lang, body: &[u8]) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body).map_err(|e| ConsoleError::Problem {
        lang,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        detail: format!("{}: {e}", lang.tr("The form is incomplete", "양식이 완전하지 않습니다")),
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for ConsoleForm<T> {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let viewer = Viewer::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let viewer = viewer.await?;
            let lang = viewer.lang;
            check_origin(&req)?;
            let raw = body.await.map_err(|e| ConsoleError::Problem {
                lang,
                status: StatusCode::PAYLOAD_TOO_LARGE,
                detail: e.to_string(),
            })?;
            let keys = req
                .app_data::<web::Data<TokenKeys>>()
                .ok_or_else(|| ConsoleError::internal(lang, "token keys are not configured"))?;
            if !keys.form_token_matches(&viewer.token, &csrf_field(&raw)) {
                return Err(csrf_refused(lang));
            }
            let value = parse(lang, &raw)?;
            Ok(ConsoleForm { viewer, value, req, raw })
        })
    }
}
