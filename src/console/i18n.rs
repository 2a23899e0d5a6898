//! Korean and English: chosen by the `gpuhour_lang` cookie when the viewer has
//! switched, by `Accept-Language` otherwise, Korean when neither says.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, get, web};
use serde::Deserialize;

use super::error::ConsoleError;
use super::layout;

pub const COOKIE: &str = "gpuhour_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ko,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "ko" => Some(Lang::Ko),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The text in this language: every string of the console is written in
    /// both where it is used, so none can be missing in one.
    pub fn tr(self, en: &'static str, ko: &'static str) -> &'static str {
        match self {
            Lang::Ko => ko,
            Lang::En => en,
        }
    }

    /// The first of Korean or English in an `Accept-Language` header, by
    /// weight then by order; `None` when it names neither.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(u16, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, |q| q.trim().parse::<f32>().map_or(0, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16));
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else { continue };
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map(|(_, lang)| lang)
    }

    pub fn of(req: &HttpRequest) -> Lang {
        req.cookie(COOKIE)
            .and_then(|c| Lang::parse(c.value()))
            .or_else(|| {
                req.headers()
                    .get(actix_web::http::header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Lang::from_accept_language)
            })
            .unwrap_or(Lang::Ko)
    }
}

impl FromRequest for Lang {
    type Error = ConsoleError;
    type Future = Ready<Result<Self, ConsoleError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Lang::of(req)))
    }
}

#[derive(Debug, Deserialize)]
struct Next {
    next: Option<String>,
}

/// A path on this server to go back to: it starts with one `/` and names no
/// other host, so a link cannot send the viewer elsewhere (no open redirect).
pub fn local_path(next: Option<&str>) -> Option<&str> {
    let next = next?;
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    local.then_some(next)
}

/// `GET /lang/{ko|en}?next=/path`: remembers the language for a year and goes
/// back to `next` (a local path) or home.
#[get("/lang/{code}")]
pub async fn switch_language(
    req: HttpRequest,
    code: web::Path<String>,
    query: web::Query<Next>,
) -> Result<HttpResponse, ConsoleError> {
    let lang = Lang::parse(&code).ok_or_else(|| ConsoleError::not_found(Lang::of(&req)))?;
    let next = local_path(query.next.as_deref()).unwrap_or("/");
    let cookie = Cookie::build(COOKIE, lang.code())
        .path("/")
        .same_site(SameSite::Lax)
        .secure(layout::is_secure(&req))
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    let mut response = layout::redirect(next);
    response.add_cookie(&cookie).map_err(|e| ConsoleError::internal(lang, e))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_by_weight_then_order() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,ko;q=0.8"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("ko-KR,ko;q=0.9,en-US;q=0.8"), Some(Lang::Ko));
        assert_eq!(Lang::from_accept_language("fr;q=1, en;q=0.5, ko;q=0.7"), Some(Lang::Ko));
        assert_eq!(Lang::from_accept_language("de, fr"), None);
        assert_eq!(Lang::from_accept_language("ko;q=0, en;q=0.1"), Some(Lang::En));
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/market?gpu_model=H100")), Some("/market?gpu_model=H100"));
        assert_eq!(local_path(Some("//evil.example/")), None);
        assert_eq!(local_path(Some("/\\evil.example")), None);
        assert_eq!(local_path(Some("https://evil.example/")), None);
        assert_eq!(local_path(Some("evil")), None);
        assert_eq!(local_path(None), None);
    }
}
