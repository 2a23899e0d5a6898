//! What a console page answers when it cannot show what was asked: a page with
//! the problem in the viewer's language and the right status, or, for a
//! visitor who is not signed in, the way to the login page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::i18n::Lang;
use super::layout;
use crate::http::ApiError;

#[derive(Debug)]
pub enum ConsoleError {
    /// A problem page: status, title and what went wrong.
    Problem { lang: Lang, status: StatusCode, detail: String },
    /// Not signed in (or the session ended): to the login page, then back to `next`.
    SignIn { next: String },
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleError::Problem { status, detail, .. } => write!(f, "{status}: {detail}"),
            ConsoleError::SignIn { next } => write!(f, "sign in to see {next}"),
        }
    }
}

impl ConsoleError {
    /// The domain's answer, in a page.
    pub fn api(lang: Lang, e: impl Into<ApiError>) -> Self {
        let e: ApiError = e.into();
        if e.status.is_server_error() {
            // Logged with its whole chain, as the API logs it; the page says
            // only that it failed.
            tracing::error!(error = ?e, "console page failed");
            return ConsoleError::Problem {
                lang,
                status: e.status,
                detail: lang.tr("Something went wrong on our side.", "서버에서 문제가 생겼습니다.").into(),
            };
        }
        let mut detail = e.detail;
        for field in e.errors {
            detail.push_str(&format!("\n{}: {}", field.field, field.message));
        }
        ConsoleError::Problem { lang, status: e.status, detail }
    }

    pub fn not_found(lang: Lang) -> Self {
        ConsoleError::Problem {
            lang,
            status: StatusCode::NOT_FOUND,
            detail: lang.tr("There is no such page.", "그런 페이지는 없습니다.").into(),
        }
    }

    pub fn forbidden(lang: Lang, detail: &str) -> Self {
        ConsoleError::Problem { lang, status: StatusCode::FORBIDDEN, detail: detail.into() }
    }

    pub fn internal(lang: Lang, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "console page failed");
        ConsoleError::Problem {
            lang,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: lang.tr("Something went wrong on our side.", "서버에서 문제가 생겼습니다.").into(),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Problem { status, .. } => *status,
            ConsoleError::SignIn { .. } => StatusCode::SEE_OTHER,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::Problem { lang, status, detail } => layout::problem_page(*lang, *status, detail),
            ConsoleError::SignIn { next } => {
                let target =
                    format!("/login?next={}", form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>());
                layout::redirect(&target)
            }
        }
    }
}
